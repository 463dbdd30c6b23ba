//! Services: the use cases. Surfaces (`crate::http`) call them; they reach
//! storage through `crossline_store` and through repository traits they
//! declare (`users::repo`, ...), implemented in `crate::storage`. See
//! docs/ARCHITECTURE.md.

use std::future::Future;
use std::pin::Pin;

/// What a repository method returns: a future that owns what it needs (so
/// a caller may hold it across awaits), with the store's error.
pub type RepoFuture<T> = Pin<Box<dyn Future<Output = crossline_store::Result<T>> + Send>>;

pub mod channels;
pub mod contacts;
pub mod conversations;
pub mod fleet;
pub mod recordings;
pub mod routing;
pub mod users;
