//! How the flush model slows every flush down, and the labels of the
//! delays (see `flush.rs`: `--flush-inject`).

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use super::{Config, Inject};

/// Runs `program` with every sync held for `delay` after the real call
/// (none for 0): by the program itself (`Inject::Hook`, the environment
/// variable of `shared::sync::bench_pause`), or by strace.
pub(super) fn flushing(program: &Path, delay: Duration, how: Inject) -> Command {
    if delay.is_zero() {
        return Command::new(program);
    }
    let us = delay.as_micros();
    if how == Inject::Hook {
        let mut cmd = Command::new(program);
        cmd.env(shared::sync::BENCH_DELAY_ENV, us.to_string());
        return cmd;
    }
    let mut cmd = Command::new("strace");
    cmd.args(["-f", "--seccomp-bpf", "-qq", "-o", "/dev/null"])
        .args(["-e", "trace=fdatasync,fsync"])
        .arg("-e")
        .arg(format!("inject=fdatasync,fsync:delay_exit={us}"))
        .arg("--")
        .arg(program);
    cmd
}

/// The delays this machine can inject, or why it cannot: the hook works
/// everywhere, strace only on Linux, and only where it is installed.
pub(super) fn usable_delays(cfg: &Config) -> Result<Vec<Duration>, String> {
    if cfg.flush_inject == Inject::Hook || cfg.flush_delays.iter().all(|d| d.is_zero()) {
        return Ok(cfg.flush_delays.clone());
    }
    if !cfg!(target_os = "linux") {
        return Err("BENCH_FLUSH_INJECT=strace is Linux-only; use hook".into());
    }
    let ok = Command::new("strace")
        .arg("-V")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !ok {
        return Err(
            "BENCH_FLUSH_INJECT=strace needs strace, which did not run: install it \
             (apt-get install strace), or use BENCH_FLUSH_INJECT=hook"
                .into(),
        );
    }
    Ok(cfg.flush_delays.clone())
}

pub(super) fn delay_label(d: Duration) -> String {
    if d.is_zero() {
        "0 (disk)".into()
    } else {
        format!("{} ms", trim(d.as_secs_f64() * 1000.0))
    }
}

fn trim(x: f64) -> String {
    let s = format!("{x:.3}");
    s.trim_end_matches('0').trim_end_matches('.').to_string()
}
