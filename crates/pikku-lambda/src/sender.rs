//! Frames out through API Gateway's management API (`@connections`).

use std::error::Error as StdError;
use std::fmt;

use aws_sdk_apigatewaymanagement::config::{BehaviorVersion, Credentials, Region};
use aws_sdk_apigatewaymanagement::error::{DisplayErrorContext, ProvideErrorMetadata, SdkError};
use aws_sdk_apigatewaymanagement::primitives::Blob;
use aws_sdk_apigatewaymanagement::{Client, Config};
use pikku_core::store::{BoxFuture, PlatformSendError, PlatformSender};
use pikku_core::OutFrame;

/// The platform name in [`PlatformSendError::Failed`] and in logs.
const PLATFORM: &str = "apigateway";

/// Sends frames to API Gateway WebSocket connections: `PostToConnection`, `DeleteConnection` and
/// `GetConnection` of the management API, signed with SigV4 for the `execute-api` service.
///
/// A `410 Gone` answer (`GoneException`) is [`PlatformSendError::Gone`], so a publication to a connection that
/// has gone removes its record; every other failure (throttling, a payload over 128 KiB, a missing permission,
/// the network) is [`PlatformSendError::Failed`] and keeps it.
///
/// The endpoint is the stage's callback URL, `https://{api-id}.execute-api.{region}.amazonaws.com/{stage}`
/// (for a custom domain, its base path URL). Without the cargo feature `https` (on by default) only `http://`
/// endpoints can be reached, which is what tests against a local stand-in need.
///
/// ```no_run
/// use pikku::lambda::ApiGatewaySender;
///
/// // In the function: region and credentials from the variables Lambda sets.
/// let sender = ApiGatewaySender::from_env("https://abc123.execute-api.eu-west-1.amazonaws.com/prod")?;
///
/// // Elsewhere: all explicit.
/// let sender = ApiGatewaySender::builder("http://127.0.0.1:4510/prod")
///     .region("eu-west-1")
///     .credentials("AKIDEXAMPLE", "secret", None)
///     .build()?;
/// # Ok::<(), pikku::lambda::SenderConfigError>(())
/// ```
#[derive(Clone)]
pub struct ApiGatewaySender {
    client: Client,
}

impl fmt::Debug for ApiGatewaySender {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ApiGatewaySender")
            .field("region", &self.client.config().region())
            .finish_non_exhaustive()
    }
}

impl ApiGatewaySender {
    /// A builder for the stage whose callback URL is `endpoint_url`; region and credentials default to the
    /// environment (see [`from_env`](Self::from_env)).
    pub fn builder(endpoint_url: impl Into<String>) -> ApiGatewaySenderBuilder {
        ApiGatewaySenderBuilder {
            endpoint_url: endpoint_url.into(),
            region: None,
            credentials: None,
        }
    }

    /// A sender for `endpoint_url` with the region from `AWS_REGION` (or `AWS_DEFAULT_REGION`) and the
    /// credentials from `AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY` and `AWS_SESSION_TOKEN`: the variables
    /// Lambda sets for the function's execution role. They are read once, here: a process's environment does
    /// not change while it runs, so later reads would see the same values.
    ///
    /// # Errors
    /// [`SenderConfigError`] when the region or a key is not set.
    pub fn from_env(endpoint_url: impl Into<String>) -> Result<Self, SenderConfigError> {
        Self::builder(endpoint_url).build()
    }

    /// A sender over a management API client configured elsewhere (with `aws-config`, say).
    #[must_use]
    pub fn from_client(client: Client) -> Self {
        Self { client }
    }

    /// The SDK client, for calls this type does not wrap.
    #[must_use]
    pub fn client(&self) -> &Client {
        &self.client
    }

    /// Writes `data` to the connection `connection_id` (`PostToConnection`).
    ///
    /// # Errors
    /// [`PlatformSendError::Gone`] when API Gateway answers 410; [`PlatformSendError::Failed`] otherwise.
    ///
    /// # Cancel safety
    /// A dropped future may or may not have delivered the data.
    pub async fn post(&self, connection_id: &str, data: &[u8]) -> Result<(), PlatformSendError> {
        self.client
            .post_to_connection()
            .connection_id(connection_id)
            .data(Blob::new(data))
            .send()
            .await
            .map(drop)
            .map_err(send_error)
    }

    /// Closes the connection `connection_id` (`DeleteConnection`). API Gateway then invokes the `$disconnect`
    /// route for it.
    ///
    /// # Errors
    /// [`PlatformSendError::Gone`] when the connection is already closed; [`PlatformSendError::Failed`]
    /// otherwise.
    ///
    /// # Cancel safety
    /// A dropped future may or may not have closed the connection.
    pub async fn delete(&self, connection_id: &str) -> Result<(), PlatformSendError> {
        self.client
            .delete_connection()
            .connection_id(connection_id)
            .send()
            .await
            .map(drop)
            .map_err(send_error)
    }

    /// Whether API Gateway still holds the connection `connection_id` (`GetConnection`).
    ///
    /// # Errors
    /// [`PlatformSendError::Failed`] when the answer is neither the connection nor 410.
    ///
    /// # Cancel safety
    /// Cancel safe: it only reads.
    pub async fn is_connected(&self, connection_id: &str) -> Result<bool, PlatformSendError> {
        match self
            .client
            .get_connection()
            .connection_id(connection_id)
            .send()
            .await
            .map_err(send_error)
        {
            Ok(_) => Ok(true),
            Err(PlatformSendError::Gone) => Ok(false),
            Err(err) => Err(err),
        }
    }
}

impl PlatformSender for ApiGatewaySender {
    /// Posts a text or binary frame's bytes; the management API takes bytes only, so API Gateway chooses the
    /// frame type the client sees. Pings are the gateway's own business and are skipped.
    fn send<'a>(
        &'a self,
        channel_id: &'a str,
        frame: &'a OutFrame,
    ) -> BoxFuture<'a, Result<(), PlatformSendError>> {
        Box::pin(async move {
            match frame {
                OutFrame::Text(bytes) | OutFrame::Binary(bytes) => {
                    self.post(channel_id, bytes).await
                }
                _ => Ok(()),
            }
        })
    }
}

/// Sorts an SDK failure into gone (410, `GoneException`) and everything else.
fn send_error<E>(err: SdkError<E>) -> PlatformSendError
where
    E: ProvideErrorMetadata + StdError + Send + Sync + 'static,
{
    let status = err
        .raw_response()
        .map(|response| response.status().as_u16());
    let gone = status == Some(410)
        || err
            .as_service_error()
            .is_some_and(|service| service.code() == Some("GoneException"));
    if gone {
        PlatformSendError::Gone
    } else {
        // The SDK's own `Display` says only "service error"; the context names the cause.
        PlatformSendError::failed(
            PLATFORM,
            DisplayedSdkError(DisplayErrorContext(&err).to_string()),
        )
    }
}

/// An SDK failure as text: the SDK's error types borrow their operation's generics, and the text is all a
/// log needs.
#[derive(Debug)]
struct DisplayedSdkError(String);

impl fmt::Display for DisplayedSdkError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl StdError for DisplayedSdkError {}

/// Configures an [`ApiGatewaySender`]; from [`ApiGatewaySender::builder`].
#[derive(Debug)]
#[must_use = "a builder does nothing until `build` is called"]
pub struct ApiGatewaySenderBuilder {
    endpoint_url: String,
    region: Option<String>,
    credentials: Option<Credentials>,
}

impl ApiGatewaySenderBuilder {
    /// The region requests are signed for (default: `AWS_REGION`, else `AWS_DEFAULT_REGION`).
    pub fn region(mut self, region: impl Into<String>) -> Self {
        self.region = Some(region.into());
        self
    }

    /// Static credentials: an access key id, its secret and, for temporary credentials, the session token
    /// (default: the `AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY` and `AWS_SESSION_TOKEN` variables).
    pub fn credentials(
        mut self,
        access_key_id: impl Into<String>,
        secret_access_key: impl Into<String>,
        session_token: Option<String>,
    ) -> Self {
        self.credentials = Some(Credentials::new(
            access_key_id,
            secret_access_key,
            session_token,
            None,
            "pikku-lambda",
        ));
        self
    }

    /// The sender.
    ///
    /// # Errors
    /// [`SenderConfigError::MissingRegion`] or [`SenderConfigError::MissingCredentials`] when neither the
    /// builder nor the environment supplies them.
    pub fn build(self) -> Result<ApiGatewaySender, SenderConfigError> {
        let region = match self.region {
            Some(region) => region,
            None => env_var("AWS_REGION")
                .or_else(|| env_var("AWS_DEFAULT_REGION"))
                .ok_or(SenderConfigError::MissingRegion)?,
        };
        let credentials = match self.credentials {
            Some(credentials) => credentials,
            None => credentials_from_env()?,
        };
        let config = Config::builder()
            .behavior_version(BehaviorVersion::latest())
            .endpoint_url(self.endpoint_url)
            .region(Region::new(region))
            .credentials_provider(credentials)
            .http_client(http_client())
            .build();
        Ok(ApiGatewaySender {
            client: Client::from_conf(config),
        })
    }
}

fn env_var(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|value| !value.is_empty())
}

fn credentials_from_env() -> Result<Credentials, SenderConfigError> {
    let key = env_var("AWS_ACCESS_KEY_ID")
        .ok_or(SenderConfigError::MissingCredentials("AWS_ACCESS_KEY_ID"))?;
    let secret = env_var("AWS_SECRET_ACCESS_KEY").ok_or(SenderConfigError::MissingCredentials(
        "AWS_SECRET_ACCESS_KEY",
    ))?;
    Ok(Credentials::new(
        key,
        secret,
        env_var("AWS_SESSION_TOKEN"),
        None,
        "environment",
    ))
}

/// The SDK's hyper client: with TLS (rustls on ring) under the `https` feature, which reaches `http://`
/// endpoints too; plain HTTP without it.
fn http_client() -> aws_sdk_apigatewaymanagement::config::SharedHttpClient {
    #[cfg(feature = "https")]
    {
        use aws_smithy_http_client::tls::{rustls_provider::CryptoMode, Provider};
        aws_smithy_http_client::Builder::new()
            .tls_provider(Provider::Rustls(CryptoMode::Ring))
            .build_https()
    }
    #[cfg(not(feature = "https"))]
    {
        aws_smithy_http_client::Builder::new().build_http()
    }
}

/// Why an [`ApiGatewaySender`] could not be built.
///
/// ```
/// use pikku::lambda::SenderConfigError;
///
/// assert_eq!(
///     SenderConfigError::MissingCredentials("AWS_ACCESS_KEY_ID").to_string(),
///     "no AWS credentials: AWS_ACCESS_KEY_ID is not set"
/// );
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum SenderConfigError {
    /// No region was given and neither `AWS_REGION` nor `AWS_DEFAULT_REGION` is set.
    MissingRegion,
    /// No credentials were given and this environment variable is not set.
    MissingCredentials(&'static str),
}

impl fmt::Display for SenderConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::MissingRegion => {
                f.write_str("no AWS region: set AWS_REGION or give one to the builder")
            }
            Self::MissingCredentials(variable) => {
                write!(f, "no AWS credentials: {variable} is not set")
            }
        }
    }
}

impl StdError for SenderConfigError {}
