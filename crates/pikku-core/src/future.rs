//! The boxed future the pipeline's stored (type-erased) functions return.

use std::future::Future;
use std::pin::Pin;

/// A boxed, sendable future: what [`Next::run`](crate::Next::run) and the pipeline's runner-facing calls return.
///
/// ```
/// use pikku::core::handler::BoxFuture;
///
/// fn later(n: u32) -> BoxFuture<u32> {
///     Box::pin(async move { n + 1 })
/// }
/// # let _ = later(1);
/// ```
pub type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send + 'static>>;
