//! `LambdaChannels::run` against a local stand-in of the Lambda Runtime API: the real runtime client fetches
//! each invocation from `/runtime/invocation/next`, the handler answers it, and the answer is posted back to
//! `/runtime/invocation/{id}/response`. Alone in its file, since the runtime client reads its configuration
//! from the process environment.

mod support;

use std::collections::VecDeque;
use std::convert::Infallible;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Method, Request, Response};
use hyper_util::rt::TokioIo;
use parking_lot::Mutex;
use pikku::lambda::LambdaChannels;
use pikku::stateless::StatelessStores;
use serde_json::{json, Value};
use support::{connect, disconnect, text, Log, ManagementApi};
use tokio::net::TcpListener;
use tokio::sync::Notify;

/// The invocations still to hand out, and the answers posted back, by request id.
#[derive(Default)]
struct Invocations {
    pending: Mutex<VecDeque<(String, Value)>>,
    answers: Mutex<Vec<(String, String, Value)>>,
    answered: Notify,
}

/// Serves `/2018-06-01/runtime/invocation/next` from the queue (holding the request once it is empty, as
/// Lambda does between invocations) and records what is posted to `…/{id}/response` and `…/{id}/error`.
async fn runtime_api(invocations: Arc<Invocations>) -> (String, tokio::task::JoinHandle<()>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap().to_string();
    let task = tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let invocations = invocations.clone();
            tokio::spawn(async move {
                let service = service_fn(move |request| {
                    let invocations = invocations.clone();
                    async move { Ok::<_, Infallible>(answer(&invocations, request).await) }
                });
                let _ = http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            });
        }
    });
    (address, task)
}

async fn answer(invocations: &Invocations, request: Request<Incoming>) -> Response<Full<Bytes>> {
    let path = request.uri().path().to_owned();
    let method = request.method().clone();
    let body = request.into_body().collect().await.unwrap().to_bytes();
    if method == Method::GET && path == "/2018-06-01/runtime/invocation/next" {
        let next = invocations.pending.lock().pop_front();
        let Some((id, event)) = next else {
            std::future::pending::<()>().await;
            unreachable!();
        };
        let deadline = SystemTime::now() + Duration::from_secs(300);
        let deadline_ms = deadline.duration_since(UNIX_EPOCH).unwrap().as_millis();
        return Response::builder()
            .header("lambda-runtime-aws-request-id", id)
            .header("lambda-runtime-deadline-ms", deadline_ms.to_string())
            .header(
                "lambda-runtime-invoked-function-arn",
                "arn:aws:lambda:eu-north-1:123456789012:function:pikku",
            )
            .header(
                "lambda-runtime-trace-id",
                "Root=1-00000000-000000000000000000000000",
            )
            .body(Full::new(Bytes::from(event.to_string())))
            .unwrap();
    }
    let posted = path
        .strip_prefix("/2018-06-01/runtime/invocation/")
        .and_then(|rest| rest.split_once('/'));
    if let (Method::POST, Some((id, kind))) = (method, posted) {
        let value = serde_json::from_slice(&body).unwrap_or(Value::Null);
        invocations
            .answers
            .lock()
            .push((id.to_owned(), kind.to_owned(), value));
        invocations.answered.notify_one();
        return Response::builder()
            .status(202)
            .body(Full::new(Bytes::from_static(b"{}")))
            .unwrap();
    }
    Response::builder()
        .status(404)
        .body(Full::new(Bytes::new()))
        .unwrap()
}

#[tokio::test]
async fn the_runtime_client_drives_the_handler() {
    let api = ManagementApi::start().await;
    let invocations = Arc::new(Invocations::default());
    let events = [
        ("inv-1", connect("r-1", json!({"channel": "/nowhere"}))),
        ("inv-2", connect("r-2", json!({}))),
        (
            "inv-3",
            text("r-2", json!({"action": "echo", "text": "over the runtime"})),
        ),
        ("inv-4", disconnect("r-2")),
    ];
    invocations.pending.lock().extend(
        events
            .into_iter()
            .map(|(id, event)| (id.to_owned(), serde_json::to_value(event).unwrap())),
    );
    let (address, runtime_task) = runtime_api(invocations.clone()).await;

    // What Lambda sets for a function; the runtime client reads it when `run` starts.
    std::env::set_var("AWS_LAMBDA_RUNTIME_API", &address);
    std::env::set_var("AWS_LAMBDA_FUNCTION_NAME", "pikku");
    std::env::set_var("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "128");
    std::env::set_var("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST");

    let stores = StatelessStores::memory();
    let log = Log::default();
    let channels = LambdaChannels::new(support::app(log.clone()), stores.clone(), api.sender())
        .unwrap()
        .with_path("/rooms/lobby")
        .with_path_parameter("channel");
    let running = tokio::spawn(channels.run());

    // A guard against a hang, not a measurement.
    tokio::time::timeout(Duration::from_secs(60), async {
        while invocations.answers.lock().len() < 4 {
            invocations.answered.notified().await;
        }
    })
    .await
    .expect("four answers from the runtime client");
    running.abort();
    runtime_task.abort();

    let answers = invocations.answers.lock().clone();
    let kinds: Vec<(&str, &str)> = answers
        .iter()
        .map(|(id, kind, _)| (id.as_str(), kind.as_str()))
        .collect();
    assert_eq!(
        kinds,
        [
            ("inv-1", "response"),
            ("inv-2", "response"),
            ("inv-3", "response"),
            ("inv-4", "response")
        ]
    );
    let refused = &answers[0].2;
    assert_eq!(refused["statusCode"], 404);
    let body: Value = serde_json::from_str(refused["body"].as_str().unwrap()).unwrap();
    assert_eq!(body["name"], "NotFoundError");
    for (_, _, answer) in &answers[1..] {
        assert_eq!(answer["statusCode"], 200, "{answer}");
    }

    let sent = api.requests();
    assert_eq!(sent[0].method, Method::POST);
    assert_eq!(sent[0].connection_id, "r-2");
    assert_eq!(&sent[0].body[..], b"over the runtime");
    assert_eq!(*log.lock(), ["r-2 client_closed"]);
    assert!(stores.channels.get_channel("r-2").await.is_err());
}
