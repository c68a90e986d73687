//! `supervisor start` and `stop` against the recording fake `launchctl`
//! and `systemctl` (harness::service): the exact commands, in a dry run
//! and for real, and a real `supervisor run` that the fake starts and
//! stops, so that `stop` is seen returning only after the worker saved
//! its sessions.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Output;
use std::time::Instant;

use harness::service::{assert_ok, text, Manager, Setup, LABEL};
use harness::supervisor::{alive, KillOnDrop};
use harness::{put_id, wait_until, Conn, DEADLINE};

const UNIT: &str = "second-brain.service";

fn uid() -> u32 {
    nix::unistd::getuid().as_raw()
}

/// Installs for `manager` (through the fake) and forgets its calls.
fn installed(manager: &str) -> Setup {
    let s = Setup::new(Manager::Working);
    assert_ok(&s.run(&["install", "--manager", manager]));
    fs::write(&s.calls, "").unwrap();
    s
}

fn run(s: &Setup, args: &[&str]) -> Output {
    s.command(args).output().expect("run the supervisor")
}

/// The `$ COMMAND` lines a run printed.
fn printed_commands(out: &Output) -> Vec<String> {
    text(&out.stdout)
        .lines()
        .filter_map(|l| l.strip_prefix("$ "))
        .map(String::from)
        .collect()
}

/// The calls that change something: every call but `launchctl print`.
fn changes(s: &Setup) -> Vec<String> {
    s.calls()
        .into_iter()
        .filter(|c| !c.starts_with("launchctl print"))
        .collect()
}

/// Makes the fake start a real `supervisor run` (the installed binary),
/// and returns where it writes that supervisor's pid.
fn serve_on_start(s: &Setup) -> PathBuf {
    let bin = s.bin("supervisor");
    s.start_with(&format!("exec '{}' run\n", bin.display()))
}

/// The pid the fake started, once it is written.
fn started_pid(pid_file: &Path) -> u32 {
    wait_until(DEADLINE, "the fake manager to start the service", || {
        fs::read_to_string(pid_file).ok()?.trim().parse().ok()
    })
}

/// Puts `n` sessions through the worker's socket.
fn put_sessions(s: &Setup, n: usize) {
    let mut conn = Conn::connect(&s.data.join("worker.sock"));
    for i in 0..n {
        assert_eq!(put_id(&mut conn, &format!("s{i}"))["ok"], true);
    }
}

/// The sessions in `sessions.json`, or none if it is missing.
fn saved_sessions(s: &Setup) -> usize {
    match fs::read(s.data.join("sessions.json")) {
        Ok(bytes) => {
            let v: serde_json::Value = serde_json::from_slice(&bytes).unwrap();
            v["sessions"].as_object().map_or(0, |o| o.len())
        }
        Err(_) => 0,
    }
}

#[test]
fn start_and_stop_refuse_a_service_that_is_not_installed() {
    let s = Setup::new(Manager::Working);
    for cmd in ["start", "stop"] {
        let out = run(&s, &[cmd, "--manager", "systemd"]);
        assert_eq!(out.status.code(), Some(1), "{cmd}: {out:?}");
        let err = text(&out.stderr);
        assert!(
            err.contains("not installed") && err.contains("supervisor install"),
            "{cmd}: {err}"
        );
    }
    assert!(s.calls().is_empty(), "{:?}", s.calls());
}

#[test]
fn dry_runs_print_the_manager_commands_and_run_none() {
    let target = format!("gui/{}/{LABEL}", uid());
    let s = installed("systemd");
    let start = run(&s, &["start", "--dry-run", "--manager", "systemd"]);
    assert_ok(&start);
    assert_eq!(
        printed_commands(&start),
        [format!("systemctl --user start {UNIT}")]
    );
    let stop = run(&s, &["stop", "--dry-run", "--manager", "systemd"]);
    assert_ok(&stop);
    assert_eq!(
        printed_commands(&stop),
        [format!("systemctl --user stop {UNIT}")]
    );
    assert!(s.calls().is_empty(), "{:?}", s.calls());

    // launchd, loaded since the install: start kicks it, stop boots it out.
    let s = installed("launchd");
    let start = run(&s, &["start", "--dry-run", "--manager", "launchd"]);
    assert_ok(&start);
    assert_eq!(
        printed_commands(&start),
        [format!("launchctl kickstart {target}")]
    );
    let stop = run(&s, &["stop", "--dry-run", "--manager", "launchd"]);
    assert_ok(&stop);
    assert_eq!(
        printed_commands(&stop),
        [format!("launchctl bootout {target}")]
    );
    assert!(changes(&s).is_empty(), "{:?}", s.calls());
}

#[test]
fn systemd_start_serves_and_stop_returns_after_the_sessions_are_saved() {
    let s = installed("systemd");
    let pid_file = serve_on_start(&s);
    let asked = Instant::now();
    let start = run(&s, &["start", "--manager", "systemd"]);
    let start_took = asked.elapsed();
    let pid = started_pid(&pid_file);
    let _guard = KillOnDrop(Some(pid));
    let said = assert_ok(&start);
    assert!(
        said.contains(&format!(
            "started: supervisor pid {pid}, worker ready (pid "
        )),
        "{said}"
    );
    put_sessions(&s, 5);
    assert_eq!(saved_sessions(&s), 0, "nothing saved before the stop");

    let asked = Instant::now();
    let stop = run(&s, &["stop", "--manager", "systemd"]);
    eprintln!(
        "start took {:.0} ms, stop {:.0} ms (5 sessions)",
        start_took.as_secs_f64() * 1000.0,
        asked.elapsed().as_secs_f64() * 1000.0
    );
    // Checked the moment stop returns: it waited for the exit and the save.
    let saved = saved_sessions(&s);
    let gone = !alive(pid);
    let said = assert_ok(&stop);
    assert!(gone, "stop returned while the supervisor {pid} still ran");
    assert_eq!(saved, 5, "sessions.json when stop returned: {said}");
    assert!(said.contains("the worker saved 5 sessions"), "{said}");
    assert_eq!(
        s.calls(),
        [
            format!("systemctl --user start {UNIT}"),
            format!("systemctl --user stop {UNIT}"),
        ]
    );
    // Still installed.
    assert!(s.unit().is_file());
}

#[test]
fn launchd_stop_boots_out_and_start_bootstraps_again() {
    let target = format!("gui/{}/{LABEL}", uid());
    let domain = format!("gui/{}", uid());
    let s = installed("launchd");
    // Loaded by the install, but nothing answers: stop unloads it.
    let stop = run(&s, &["stop", "--manager", "launchd"]);
    let said = assert_ok(&stop);
    assert!(said.contains("no supervisor was answering"), "{said}");
    assert_eq!(changes(&s), [format!("launchctl bootout {target}")]);

    fs::write(&s.calls, "").unwrap();
    let pid_file = serve_on_start(&s);
    let start = run(&s, &["start", "--manager", "launchd"]);
    let pid = started_pid(&pid_file);
    let _guard = KillOnDrop(Some(pid));
    assert_ok(&start);
    assert_eq!(
        changes(&s),
        [
            format!("launchctl enable {target}"),
            format!("launchctl bootstrap {domain} {}", s.plist().display()),
        ]
    );
    put_sessions(&s, 3);

    fs::write(&s.calls, "").unwrap();
    let stop = run(&s, &["stop", "--manager", "launchd"]);
    let saved = saved_sessions(&s);
    let gone = !alive(pid);
    let said = assert_ok(&stop);
    assert!(gone, "stop returned while the supervisor {pid} still ran");
    assert_eq!(saved, 3, "sessions.json when stop returned: {said}");
    assert_eq!(changes(&s), [format!("launchctl bootout {target}")]);
    assert!(s.plist().is_file(), "still installed");
}
