//! The real supervisor and worker processes in a temp dir: status, crash
//! restarts with zero refused connections, graceful restarts with zero
//! failed requests, backoff, stopping, orphans, logs.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::process::Command;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use harness::supervisor::{alive, status_of, supervisor_cmd, worker_pid, Supervisor};
use harness::{request, wait_until, Conn, Tally, TestDir, DEADLINE};
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use serde_json::{json, Value};

#[test]
fn status_reports_every_key_and_exit_codes_follow_the_state() {
    let dir = TestDir::new();
    let (code, _) = status_of(&dir.data);
    assert_eq!(code, 3, "no supervisor running");

    let mut sup = Supervisor::start(&dir, &[]);
    let s = sup.wait_ready();
    let keys = |v: &Value| v.as_object().unwrap().keys().cloned().collect::<Vec<_>>();
    for (section, want) in [
        (
            "supervisor",
            &["pid", "version", "commit", "started_at", "uptime_secs"][..],
        ),
        (
            "worker",
            &[
                "state",
                "pid",
                "commit",
                "started_at",
                "restarts",
                "last_exit",
            ][..],
        ),
        ("sessions", &["count"][..]),
        (
            "update",
            &[
                "repo",
                "branch",
                "poll_interval_ms",
                "last_poll_at",
                "last_poll",
                "deployed_commit",
                "state",
                "last_error",
                "held_commits",
            ][..],
        ),
        ("paths", &["data_dir", "log_dir"][..]),
        ("store", &["state", "last_error", "since"][..]),
    ] {
        let have = keys(&s[section]);
        for k in want {
            assert!(
                have.contains(&k.to_string()),
                "{section}.{k} missing in {s}"
            );
        }
    }
    assert_eq!(s["supervisor"]["pid"], sup.pid());
    assert!(s["supervisor"]["uptime_secs"].is_u64());
    assert!(s["supervisor"]["started_at"]
        .as_str()
        .unwrap()
        .ends_with('Z'));
    assert_eq!(s["worker"]["state"], "ready");
    assert!(s["worker"]["pid"].is_u64());
    assert_eq!(s["worker"]["restarts"], 0);
    assert!(s["worker"]["last_exit"].is_null());
    assert_eq!(s["sessions"]["count"], 0);
    assert_eq!(s["store"]["state"], "ok");
    assert!(s["store"]["last_error"].is_null());
    assert_eq!(s["update"]["poll_interval_ms"], 0);
    assert_eq!(s["update"]["branch"], "main");
    assert!(s["update"]["held_commits"].is_array());
    // Nothing deployed yet: the commit the worker was built from serves.
    assert!(s["worker"]["commit"].is_string(), "{s}");
    assert_eq!(s["update"]["deployed_commit"], s["worker"]["commit"]);
    assert!(s["worker"]["probation"].is_null());
    assert_eq!(s["paths"]["data_dir"], dir.data.to_str().unwrap());
    // The worker answers ping with the pid status names.
    let ping = Conn::connect(&sup.sock()).call(&json!({"op": "ping"}));
    assert_eq!(ping["pid"], s["worker"]["pid"]);

    // The human view names the facts too.
    let out = supervisor_cmd(&dir.data, &["status"]).output().unwrap();
    assert_eq!(out.status.code(), Some(0));
    let text = String::from_utf8(out.stdout).unwrap();
    for word in [
        "ready",
        &worker_pid(&s).to_string(),
        dir.data.to_str().unwrap(),
        "restarts",
    ] {
        assert!(text.contains(word), "{word:?} missing in:\n{text}");
    }

    sup.signal(Signal::SIGTERM);
    assert!(sup.wait_exit().success());
    assert_eq!(status_of(&dir.data).0, 3);
}

#[test]
fn status_exits_1_while_the_worker_is_not_ready() {
    let dir = TestDir::new();
    // A "worker" that runs but never reports ready.
    let script = dir.root().join("silent-worker");
    fs::write(&script, "#!/bin/sh\nexec sleep 600\n").unwrap();
    fs::set_permissions(&script, fs::Permissions::from_mode(0o755)).unwrap();
    let mut sup = Supervisor::start_with(&dir, &script, &[]);
    let status = wait_until(DEADLINE, "status of a starting worker", || {
        assert!(sup.try_exit().is_none());
        match status_of(&dir.data) {
            (1, Some(s)) if s["worker"]["state"] == "starting" => Some(s),
            _ => None,
        }
    });
    assert!(status["sessions"].is_null());
    let human = supervisor_cmd(&dir.data, &["status"]).output().unwrap();
    assert_eq!(human.status.code(), Some(1));
}

#[test]
fn a_killed_worker_is_replaced_without_refusing_a_connection() {
    let dir = TestDir::new();
    let mut sup = Supervisor::start(&dir, &[]);
    let first = sup.wait_ready();
    let old_pid = worker_pid(&first);
    let sock = sup.sock();

    let stop = Arc::new(AtomicBool::new(false));
    let tally = Arc::new(Tally::default());
    let acked = Arc::new(AtomicU64::new(0));
    let client = {
        let (stop, tally, acked, sock) = (stop.clone(), tally.clone(), acked.clone(), sock.clone());
        std::thread::spawn(move || {
            let mut n = 0u64;
            while !stop.load(Ordering::Relaxed) {
                // A new connection for every request: a tight connect loop.
                let mut conn = None;
                n += 1;
                let req = json!({"op": "put", "id": "counter", "data": n});
                if request(&sock, &mut conn, &req, &tally).is_some() {
                    acked.store(n, Ordering::Relaxed);
                }
            }
        })
    };
    wait_until(DEADLINE, "some acknowledged puts", || {
        (acked.load(Ordering::Relaxed) > 20).then_some(())
    });
    kill(Pid::from_raw(old_pid as i32), Signal::SIGKILL).unwrap();
    let after = sup.wait_worker("a new worker after SIGKILL", |s| {
        worker_pid(s) != old_pid && s["worker"]["state"] == "ready"
    });
    let before_more = acked.load(Ordering::Relaxed);
    wait_until(DEADLINE, "puts served by the new worker", || {
        (acked.load(Ordering::Relaxed) > before_more + 20).then_some(())
    });
    stop.store(true, Ordering::Relaxed);
    client.join().unwrap();

    assert_eq!(after["worker"]["restarts"], 1);
    assert_eq!(after["worker"]["last_exit"], "signal 9 (SIGKILL)");
    tally.assert_clean();
    let last = acked.load(Ordering::Relaxed);
    let got = Conn::connect(&sock).call(&json!({"op": "get", "id": "counter"}));
    let stored = got["session"]["data"].as_u64().unwrap();
    // The last acknowledged value, or the one request after it that was in
    // flight when the client stopped.
    assert!(
        stored == last || stored == last + 1,
        "stored {stored}, last acknowledged {last}"
    );
}

#[test]
fn a_graceful_restart_under_load_fails_no_request() {
    let dir = TestDir::new();
    let mut sup = Supervisor::start(&dir, &[]);
    let first = sup.wait_ready();
    let sock = sup.sock();
    let stop = Arc::new(AtomicBool::new(false));
    let tally = Arc::new(Tally::default());
    let clients: Vec<_> = (0..8)
        .map(|c| {
            let (stop, tally, sock) = (stop.clone(), tally.clone(), sock.clone());
            std::thread::spawn(move || {
                let mut conn = None;
                let mut last = 0u64;
                let mut n = 0u64;
                while !stop.load(Ordering::Relaxed) {
                    n += 1;
                    let req = json!({"op": "put", "id": format!("client-{c}"), "data": n});
                    if request(&sock, &mut conn, &req, &tally).is_some() {
                        last = n;
                    }
                }
                last
            })
        })
        .collect();
    wait_until(DEADLINE, "load", || {
        (tally.ok.load(Ordering::Relaxed) > 200).then_some(())
    });
    let out = supervisor_cmd(&dir.data, &["restart"]).output().unwrap();
    assert!(
        out.status.success(),
        "restart: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let status = status_of(&dir.data).1.unwrap();
    assert_ne!(
        worker_pid(&status),
        worker_pid(&first),
        "restart returned before a new worker"
    );
    assert_eq!(
        status["worker"]["state"], "ready",
        "restart returns once the new worker is ready"
    );
    let ok_at_restart = tally.ok.load(Ordering::Relaxed);
    wait_until(DEADLINE, "load on the new worker", || {
        (tally.ok.load(Ordering::Relaxed) > ok_at_restart + 200).then_some(())
    });
    stop.store(true, Ordering::Relaxed);
    let lasts: Vec<u64> = clients.into_iter().map(|c| c.join().unwrap()).collect();
    tally.assert_clean();
    assert_eq!(status["worker"]["last_exit"], "exit code 0");
    for (c, last) in lasts.iter().enumerate() {
        let got = Conn::connect(&sock).call(&json!({"op": "get", "id": format!("client-{c}")}));
        assert_eq!(got["session"]["data"], *last, "client {c}");
    }
    eprintln!("graceful restart under load: {tally:?}");
}

#[test]
fn a_worker_that_exits_at_once_backs_off_to_the_cap_and_recovers() {
    let dir = TestDir::new();
    let bin = dir.root().join("worker-bin");
    fs::write(&bin, "#!/bin/sh\necho 'failing on purpose' >&2\nexit 3\n").unwrap();
    fs::set_permissions(&bin, fs::Permissions::from_mode(0o755)).unwrap();
    let mut sup = Supervisor::start_with(&dir, &bin, &["--backoff-max-ms", "800"]);
    let started = Instant::now();
    // The delay reaches its cap: 0, 100, 200, 400, 800, 800 …
    let capped = wait_until(DEADLINE, "backoff at its cap", || {
        assert!(sup.try_exit().is_none(), "the supervisor gave up");
        let (code, s) = status_of(&dir.data);
        let s = s?;
        assert_eq!(code, 1);
        let next = s["worker"]["next_start_in_ms"].as_u64();
        (s["worker"]["state"] == "backoff" && s["worker"]["restarts"].as_u64()? >= 6 && next? > 400)
            .then_some(s)
    });
    assert_eq!(capped["worker"]["last_exit"], "exit code 3");
    assert!(capped["sessions"].is_null());
    let log = sup.log_text("supervisor");
    assert!(log.contains("restart_in_ms=800"), "{log}");
    assert!(
        !log.contains("restart_in_ms=1600"),
        "the cap was passed: {log}"
    );
    assert!(sup.log_text("worker").contains("failing on purpose"));

    // A good worker is back: rename it into place.
    let tmp = dir.root().join("worker-bin.new");
    fs::copy(harness::worker_bin(), &tmp).unwrap();
    fs::rename(&tmp, &bin).unwrap();
    let s = sup.wait_ready();
    assert_eq!(s["worker"]["state"], "ready");

    // Little CPU all along, mostly spent failing: well under 20% of one
    // core. Counted from its start to its exit, with the workers it reaped.
    let (status, cpu) = sup.stop_with_cpu(Signal::SIGTERM);
    assert_eq!(status.code(), Some(0));
    let share = cpu.as_secs_f64() / started.elapsed().as_secs_f64();
    assert!(
        share < 0.2,
        "the supervisor used {:.0}% of a core ({cpu:?} in {:?}) while backing off",
        share * 100.0,
        started.elapsed()
    );
}

#[test]
fn sigterm_stops_everything_and_writes_the_sessions() {
    let dir = TestDir::new();
    let mut sup = Supervisor::start(&dir, &[]);
    let s = sup.wait_ready();
    let wpid = worker_pid(&s);
    let mut conn = Conn::connect(&sup.sock());
    for i in 0..50 {
        let a = conn.call(&json!({"op": "put", "id": format!("s{i}"), "data": {"i": i}}));
        assert_eq!(a["ok"], true);
    }
    drop(conn);
    // A second supervisor on the same data dir is refused, naming the first.
    let second = supervisor_cmd(&dir.data, &["run", "--poll-interval-ms", "0"])
        .arg("--log-dir")
        .arg(dir.root().join("logs2"))
        .output()
        .unwrap();
    assert_eq!(second.status.code(), Some(1));
    let msg = String::from_utf8_lossy(&second.stderr);
    assert!(harness::names_number(&msg, sup.pid() as u64), "{msg}");
    assert!(
        alive(wpid),
        "the refused supervisor must not touch the worker"
    );

    sup.signal(Signal::SIGTERM);
    let status = sup.wait_exit();
    assert_eq!(status.code(), Some(0));
    assert!(!alive(wpid), "worker {wpid} outlived its supervisor");
    let snapshot = dir.snapshot();
    assert_eq!(snapshot.len(), 50);
    assert_eq!(snapshot["s49"]["data"]["i"], 49);
    assert_eq!(status_of(&dir.data).0, 3);
    assert!(
        !dir.sock().exists(),
        "the socket is removed on the final stop"
    );
}

#[test]
fn a_killed_supervisor_leaves_no_worker_behind() {
    let dir = TestDir::new();
    let mut sup = Supervisor::start(&dir, &[]);
    let s = sup.wait_ready();
    let wpid = worker_pid(&s);
    Conn::connect(&sup.sock()).call(&json!({"op": "put", "id": "kept", "data": 1}));
    sup.signal(Signal::SIGKILL);
    sup.wait_exit();
    wait_until(DEADLINE, "the orphaned worker to exit", || {
        (!alive(wpid)).then_some(())
    });
    // It stopped gracefully: its sessions are in sessions.json.
    assert_eq!(dir.snapshot()["kept"]["data"], 1);
    // A new supervisor starts cleanly on the same data dir.
    let mut again = Supervisor::start(&dir, &[]);
    let s = again.wait_ready();
    assert_eq!(s["sessions"]["count"], 1);
}

#[test]
fn logs_hold_both_processes_and_old_files_are_deleted() {
    let dir = TestDir::new();
    let logs = dir.root().join("logs");
    fs::create_dir_all(&logs).unwrap();
    let old = logs.join("worker.2020-01-01.log");
    let recent = logs.join("supervisor.2020-01-02.log");
    fs::write(&old, "old").unwrap();
    fs::write(&recent, "recent").unwrap();
    let now = SystemTime::now();
    let f = fs::File::options().write(true).open(&old).unwrap();
    f.set_modified(now - Duration::from_secs(8 * 86_400))
        .unwrap();
    let f = fs::File::options().write(true).open(&recent).unwrap();
    f.set_modified(now - Duration::from_secs(6 * 86_400))
        .unwrap();

    // A worker that panics the way Rust does: message on stderr, exit 101.
    let bin = dir.root().join("panicking-worker");
    fs::write(
        &bin,
        "#!/bin/sh\necho \"thread 'main' panicked at src/main.rs:1:1:\" >&2\necho 'boom: the test panic' >&2\nexit 101\n",
    )
    .unwrap();
    fs::set_permissions(&bin, fs::Permissions::from_mode(0o755)).unwrap();
    let mut sup = Supervisor::start_with(&dir, &bin, &["--log-retention-days", "7"]);
    wait_until(DEADLINE, "the panic in the worker log", || {
        assert!(sup.try_exit().is_none());
        sup.log_text("worker")
            .contains("boom: the test panic")
            .then_some(())
    });
    wait_until(DEADLINE, "the exit in the supervisor log", || {
        sup.log_text("supervisor")
            .contains("exit code 101")
            .then_some(())
    });
    assert!(
        !old.exists(),
        "a log file older than the retention was kept"
    );
    assert!(
        recent.exists(),
        "a log file within the retention was deleted"
    );
    let today = shared_day();
    assert!(logs.join(format!("worker.{today}.log")).exists());
    assert!(logs.join(format!("supervisor.{today}.log")).exists());
    let mode = fs::metadata(logs.join(format!("worker.{today}.log")))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o077, 0, "log files are private");
}

/// Today's date (UTC) as the log files name it.
fn shared_day() -> String {
    let out = Command::new("date")
        .args(["-u", "+%Y-%m-%d"])
        .output()
        .unwrap();
    String::from_utf8(out.stdout).unwrap().trim().to_string()
}

#[test]
fn sighup_restarts_the_worker_and_checkpoints_come_on_their_own() {
    let dir = TestDir::new();
    let mut sup = Supervisor::start(&dir, &["--checkpoint-interval-ms", "200"]);
    let first = sup.wait_ready();
    // Checkpoints: sessions.json catches up without anyone asking.
    Conn::connect(&sup.sock()).call(&json!({"op": "put", "id": "ticked", "data": 7}));
    wait_until(DEADLINE, "the periodic checkpoint", || {
        let bytes = fs::read(dir.sessions_json()).ok()?;
        let doc: Value = serde_json::from_slice(&bytes).ok()?;
        (doc["sessions"]["ticked"]["data"] == 7).then_some(())
    });
    // SIGHUP is `supervisor restart`.
    sup.signal(Signal::SIGHUP);
    let after = sup.wait_worker("a worker restarted by SIGHUP", |s| {
        worker_pid(s) != worker_pid(&first) && s["worker"]["state"] == "ready"
    });
    assert_eq!(after["worker"]["restarts"], 1);
    assert_eq!(after["worker"]["last_exit"], "exit code 0");
    assert_eq!(after["supervisor"]["pid"], sup.pid());
    let got = Conn::connect(&sup.sock()).call(&json!({"op": "get", "id": "ticked"}));
    assert_eq!(got["session"]["data"], 7);
}

#[test]
fn a_data_dir_too_long_for_a_socket_is_refused_naming_the_socket_path() {
    let dir = TestDir::new();
    // Over 108 bytes: too long for a socket on Linux as on macOS.
    let long = dir.root().join("d".repeat(120));
    let sock = long.join("worker.sock");
    let max = shared::paths::max_socket_path();
    let worker = |args: &[&str]| {
        let mut cmd = Command::new(harness::worker_bin());
        cmd.arg("--data-dir").arg(&long).args(args);
        cmd
    };
    let mut from_env = Command::new(harness::supervisor::supervisor_bin());
    from_env
        .args(["status"])
        .env("SECOND_BRAIN_DATA_DIR", &long);
    let logs = dir.root().join("logs");
    let mut run = supervisor_cmd(&long, &["run", "--poll-interval-ms", "0"]);
    run.arg("--log-dir").arg(&logs);
    let cases = [
        ("supervisor run", run, "--data-dir"),
        (
            "supervisor status",
            supervisor_cmd(&long, &["status"]),
            "--data-dir",
        ),
        (
            "supervisor status (variable)",
            from_env,
            "SECOND_BRAIN_DATA_DIR",
        ),
        ("worker", worker(&[]), "--data-dir"),
        ("worker call", worker(&["call", "ping"]), "--data-dir"),
    ];
    for (what, mut cmd, source) in cases {
        let out = cmd.env("RUST_LOG", "info").output().unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{what}: {err}");
        for part in [
            sock.display().to_string(),
            format!("is {} bytes long", sock.as_os_str().len()),
            format!("the {max} bytes"),
            "shorter data directory".into(),
            source.into(),
        ] {
            assert!(err.contains(&part), "{what} does not say {part:?}: {err}");
        }
    }
    assert!(!long.exists(), "the data dir was created");
    assert!(!logs.exists(), "the log dir was created");
}
