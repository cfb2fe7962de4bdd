//! Typed calls ([`RouteCall`]) and typed reverse RPC ([`ClientCapability`]) against the conformance fixture, with
//! the message types in a module standing in for a crate shared with the server.

mod support;

use pikku_client::{ClientError, RpcError};
use serde_json::json;
use support::{authed, events, sentinel, server};

/// What a shared types crate holds for the fixture's `events` channel.
mod shared {
    use pikku_client::{ClientCapability, RouteCall};
    use serde::{Deserialize, Serialize};

    #[derive(Serialize, Deserialize)]
    pub(crate) struct Auth {
        pub(crate) token: String,
    }

    #[derive(Debug, PartialEq, Serialize, Deserialize)]
    #[serde(rename_all = "camelCase")]
    pub(crate) struct AuthResult {
        pub(crate) auth_result: bool,
    }

    impl RouteCall for Auth {
        const PROPERTY: &'static str = "action";
        const VALUE: &'static str = "auth";
        type Reply = AuthResult;
    }

    #[derive(Serialize, Deserialize)]
    pub(crate) struct Create {
        pub(crate) title: String,
    }

    #[derive(Debug, PartialEq, Serialize, Deserialize)]
    pub(crate) struct Created {
        pub(crate) id: u32,
        pub(crate) title: String,
    }

    impl RouteCall for Create {
        const PROPERTY: &'static str = "action";
        const VALUE: &'static str = "create";
        type Reply = Created;
    }

    /// A client whose types drifted from the server's: `title` became a number.
    #[derive(Serialize)]
    pub(crate) struct CreateNumbered {
        pub(crate) title: u32,
    }

    impl RouteCall for CreateNumbered {
        const PROPERTY: &'static str = "action";
        const VALUE: &'static str = "create";
        type Reply = Created;
    }

    #[derive(Serialize)]
    pub(crate) struct Count;

    impl RouteCall for Count {
        const PROPERTY: &'static str = "action";
        const VALUE: &'static str = "count";
        type Reply = u32;
    }

    #[derive(Serialize)]
    pub(crate) struct Forbid;

    impl RouteCall for Forbid {
        const PROPERTY: &'static str = "action";
        const VALUE: &'static str = "forbid";
        type Reply = ();
    }

    /// A route under another routing property.
    #[derive(Serialize)]
    pub(crate) struct Ping;

    #[derive(Debug, PartialEq, Deserialize)]
    pub(crate) struct Pong {
        pub(crate) pong: bool,
    }

    impl RouteCall for Ping {
        const PROPERTY: &'static str = "type";
        const VALUE: &'static str = "ping";
        type Reply = Pong;
    }

    /// What the fixture's `rev` route calls, with `{"q":1}`.
    pub(crate) struct ClientThing;

    #[derive(Debug, Serialize, Deserialize)]
    pub(crate) struct Question {
        pub(crate) q: u32,
    }

    #[derive(Serialize, Deserialize)]
    pub(crate) struct Answer {
        pub(crate) doubled: u32,
    }

    impl ClientCapability for ClientThing {
        const NAME: &'static str = "clientThing";
        type Input = Question;
        type Output = Answer;
    }

    /// The same name with an argument the server does not send.
    pub(crate) struct StrictThing;

    #[derive(Debug, Deserialize)]
    pub(crate) struct Strict {
        #[allow(dead_code)]
        pub(crate) needed: String,
    }

    impl ClientCapability for StrictThing {
        const NAME: &'static str = "clientThing";
        type Input = Strict;
        type Output = ();
    }
}

use shared::*;

#[tokio::test]
async fn typed_requests_return_typed_replies() {
    let server = server().await;
    let client = events(&server).await;
    let auth = client
        .request(&Auth {
            token: "valid".into(),
        })
        .await
        .unwrap();
    assert_eq!(auth, AuthResult { auth_result: true });

    let created = client
        .request(&Create {
            title: "milk".into(),
        })
        .await
        .unwrap();
    assert_eq!(
        created,
        Created {
            id: 1,
            title: "milk".into()
        }
    );
    // A unit struct: the routing member alone; a wrapped primitive reply.
    assert_eq!(client.request(&Count).await.unwrap(), 1);
    assert_eq!(client.request(&Count).await.unwrap(), 2);
    // Another routing property.
    assert_eq!(client.request(&Ping).await.unwrap(), Pong { pong: true });
    sentinel(&client).await;
}

#[tokio::test]
async fn error_frames_are_remote_errors() {
    let server = server().await;
    let client = authed(&server).await;
    let err = client.request(&Forbid).await.unwrap_err();
    assert!(
        matches!(&err, ClientError::Remote { name, message, .. }
            if name == "ForbiddenError" && message == "Permission denied"),
        "{err:?}"
    );
    // Input the server's type rejects: a validation error with the offending member.
    let err = client
        .request(&CreateNumbered { title: 5 })
        .await
        .unwrap_err();
    match err {
        ClientError::Remote { name, details, .. } => {
            assert_eq!(name, "UnprocessableContentError");
            assert_eq!(details.first().map(|d| d.path.as_str()), Some("/title"));
        }
        other => panic!("expected a remote error, got {other:?}"),
    }
    // The connection is fine after both.
    assert_eq!(client.request(&Count).await.unwrap(), 1);
}

#[tokio::test]
async fn typed_capability_answers_the_server() {
    let server = server().await;
    let client = authed(&server).await;
    client.answer::<ClientThing, _, _>(|question: Question| async move {
        Ok::<_, RpcError>(Answer {
            doubled: question.q * 2,
        })
    });
    let said = client.route("action").call("rev", &()).await.unwrap();
    assert_eq!(said.value(), json!({"remoteSaid": {"doubled": 2}}));
    sentinel(&client).await;
}

#[tokio::test]
async fn typed_capability_registered_before_connecting() {
    let server = server().await;
    let client = pikku_client::Client::builder(server.url("/events"))
        .answer::<ClientThing, _, _>(|question: Question| async move {
            Ok::<_, RpcError>(Answer {
                doubled: question.q + 10,
            })
        })
        .connect()
        .await
        .unwrap();
    support::next(&client).await; // hello!
    client
        .request(&Auth {
            token: "valid".into(),
        })
        .await
        .unwrap();
    let said = client.route("action").call("rev", &()).await.unwrap();
    assert_eq!(said.value(), json!({"remoteSaid": {"doubled": 11}}));
}

#[tokio::test]
async fn an_argument_that_does_not_fit_is_refused_without_calling() {
    let server = server().await;
    let client = authed(&server).await;
    client.answer::<StrictThing, _, _>(|strict: Strict| async move {
        if true {
            panic!("called with {strict:?}, which the server never sends");
        }
        Ok::<(), RpcError>(())
    });
    let err = client.route("action").call("rev", &()).await.unwrap_err();
    assert!(
        matches!(&err, ClientError::Remote { name, message, .. }
            if name == "ChannelRPCError" && message.contains("does not fit")),
        "{err:?}"
    );
    assert_eq!(server.recorder().rpc_failures(), ["remote"]);
}
