//! What the second-brain `supervisor` and `worker` must agree on: the
//! session protocol, how a worker is launched, the store's health report,
//! configuration resolution,
//! data-directory paths, durable file helpers and syncs, logging setup, a
//! small blocking client and portable probes of other processes.

pub mod accept_log;
pub mod client;
pub mod completions;
pub mod config;
pub mod fd;
pub mod fdlimit;
pub mod fsutil;
pub mod health;
pub mod ids;
pub mod launch;
pub mod lock;
pub mod logging;
pub mod paths;
pub mod procs;
pub mod protocol;
pub mod sync;
pub mod time;
pub mod version;
