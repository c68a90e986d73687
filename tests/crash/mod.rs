//! Crash states of the real worker, as a power cut would leave its disk.
//!
//! The worker runs a workload under `strace -f -xx -y`; its file system
//! calls and the bytes it exchanges with clients are recorded
//! ([`trace`]), turned into an ordered list of operations per file and
//! directory ([`ops`]), replayed under four persistence models into disk
//! states ([`states`], on the small file system model of [`fs`]), and each
//! state is checked by starting the real worker on it ([`check`]) against
//! what clients were told before the cut ([`expect`]) and what an answered
//! SIGUSR1 promised ([`promise`]). The workloads are in [`workload`]. The
//! approach is ALICE's (OSDI'14, "All File Systems Are Not Created Equal").
#![allow(dead_code)] // unit tests use parts the crash test does not

pub mod check;
pub mod expect;
pub mod fs;
pub mod ops;
pub mod promise;
pub mod states;
pub mod trace;
pub mod workload;
