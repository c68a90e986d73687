//! What the second-brain `supervisor` and `worker` must agree on: the
//! session protocol, configuration resolution, data-directory paths, durable
//! file helpers and syncs, logging setup and a small blocking client.

pub mod client;
pub mod config;
pub mod fsutil;
pub mod ids;
pub mod lock;
pub mod logging;
pub mod paths;
pub mod protocol;
pub mod sync;
pub mod time;
pub mod version;
