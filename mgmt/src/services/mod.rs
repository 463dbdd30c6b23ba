//! Services: the use cases. Surfaces (`crate::http`) call them; they reach
//! storage through `crossline_store`. See docs/ARCHITECTURE.md.

pub mod channels;
pub mod contacts;
pub mod conversations;
pub mod fleet;
pub mod routing;
pub mod users;
