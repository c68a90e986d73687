//! Self-updates of the supervisor and the releases they live in, with real
//! git repositories and real cargo builds of this workspace (see
//! tests/support/project.rs), run by the real `supervisor` and `worker`.
//!
//! Every commit deployed here is a real change to the source, built by
//! cargo: a comment (in worker/src for a worker-only commit, in
//! supervisor/src for a supervisor change), or an edit of a `main` that
//! makes the built binary behave as a test needs. Builds are what these
//! tests spend their time on, so each test deploys as few commits as it
//! can: the commit under test is the project's first deploy (see
//! [`start`]).

use std::fs;
use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;

use harness::project::{append, Project, BUILD_DEADLINE};
use harness::supervisor::{supervisor_bin, worker_pid, KillOnDrop, Supervisor};
use harness::{wait_until, Conn, DEADLINE};
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use serde_json::json;

/// A project whose supervisors run short probations.
fn project() -> Project {
    let mut p = Project::new();
    p.probation_ms = 300;
    p.supervisor_probation_ms = 300;
    p
}

/// Whether a project's first deploy counts as a supervisor change. The
/// updater compares it with the commit the running worker (else the
/// supervisor) was built from: one the project lacks, so nothing can be
/// compared and the deploy counts. Built outside a git checkout, they do
/// not know their commit and the first deploy never counts: the tests
/// then deploy the seed first (a worker-only deploy), so that the next
/// commit is compared with it.
fn first_deploy_replaces_the_supervisor() -> bool {
    let (worker, supervisor) = (harness::worker_bin(), supervisor_bin());
    [worker.as_path(), supervisor.as_path()].iter().any(|bin| {
        let out = Command::new(bin).arg("--version").output().unwrap();
        assert!(out.status.success(), "{}: {out:?}", bin.display());
        !String::from_utf8_lossy(&out.stdout).contains("(unknown)")
    })
}

/// `supervisor run` on `p`, its worker ready, such that the next deployed
/// commit that changes supervisor/ replaces it.
fn start(p: &Project, extra: &[&str]) -> Supervisor {
    let sup = p.start(extra);
    if !first_deploy_replaces_the_supervisor() {
        let out = p.deploy();
        assert!(!out.contains("replaces itself"), "{out}");
    }
    sup
}

/// Commits a comment in supervisor/src (a supervisor change, nothing
/// else) and pushes it; the sha.
fn push_supervisor_change(p: &Project) -> String {
    p.push(
        "supervisor/src/lib.rs",
        append("// a supervisor change"),
        "supervisor change",
    )
}

/// An edit that replaces the first `from` with `to`; panics if the file
/// has no `from` (the source changed: fix the test).
fn replace_once(from: &'static str, to: String) -> impl FnOnce(String) -> String {
    move |text| {
        assert!(text.contains(from), "{from:?} is not in the file any more");
        text.replacen(from, &to, 1)
    }
}

/// The releases present, sorted.
fn releases(p: &Project) -> Vec<String> {
    let mut names: Vec<String> = fs::read_dir(p.dir.data.join("releases"))
        .unwrap()
        .map(|e| e.unwrap())
        .filter(|e| e.file_type().unwrap().is_dir())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.len() == 40)
        .collect();
    names.sort();
    names
}

/// `path` with every link resolved, as the supervisor reports its binary.
fn real(path: &Path) -> String {
    fs::canonicalize(path)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        .to_str()
        .unwrap()
        .to_string()
}

/// Writes an executable script.
fn script(path: &Path, text: &str) {
    fs::write(path, text).unwrap();
    fs::set_permissions(path, fs::Permissions::from_mode(0o755)).unwrap();
}

/// Opens the FIFO `path` for writing (waiting for its reader) and writes
/// a line: lets a script blocked in `read < path` go on.
fn release_fifo(path: &Path) {
    let mut f = fs::OpenOptions::new().write(true).open(path).unwrap();
    writeln!(f, "go").unwrap();
}

fn mkfifo(path: &Path) {
    nix::unistd::mkfifo(path, nix::sys::stat::Mode::from_bits_truncate(0o600)).unwrap();
}

/// Deploys a supervisor change and waits until the supervisor runs its
/// release's binary (same pid) and has proven itself. The commit's sha.
fn self_update(p: &Project, sup: &Supervisor) -> String {
    let sha = push_supervisor_change(p);
    let out = p.deploy();
    assert!(out.contains("replaces itself"), "{out}");
    let new_bin = real(&p.release(&sha).join("supervisor"));
    let s = wait_until(DEADLINE, "the supervisor re-executed", || {
        let s = p.status();
        (s["supervisor"]["binary"] == new_bin.as_str()).then_some(s)
    });
    assert_eq!(s["supervisor"]["pid"], sup.pid(), "same process");
    assert_eq!(s["supervisor"]["commit"], sha.as_str());
    let proven = p.release(&sha).join("supervisor-proven");
    wait_until(DEADLINE, "the new supervisor proven", || {
        proven.exists().then_some(())
    });
    sha
}

#[test]
fn worker_only_deploys_keep_the_running_supervisors_release_and_a_restart_runs_it() {
    let p = project();
    let mut sup = start(&p, &[]);
    let sup_sha = self_update(&p, &sup);
    let release = p.release(&sup_sha);
    let sup_bin = real(&release.join("supervisor"));

    // Worker-only commits (a comment in worker/src): the worker is
    // replaced, the supervisor is not.
    let mut deployed = Vec::new();
    for n in 1..=5 {
        let change = format!("// worker-only change {n}");
        let sha = p.push("worker/src/lib.rs", append(change), "worker-only change");
        let out = p.deploy();
        assert!(!out.contains("replaces itself"), "{out}");
        let s = p.status();
        assert_eq!(s["update"]["deployed_commit"], sha.as_str());
        assert_eq!(s["worker"]["commit"], sha.as_str());
        assert_eq!(s["supervisor"]["binary"], sup_bin.as_str());
        assert!(!p.release(&sha).join("supervisor").exists());
        deployed.push(sha);
    }
    // Each old worker stopped on SIGTERM (none had to be killed).
    let log = sup.log_text("supervisor");
    assert!(!log.contains("did not stop in time"), "{log}");
    assert!(
        release.join("supervisor").is_file(),
        "the running supervisor's binary was pruned"
    );
    assert!(
        release.join("supervisor-proven").is_file(),
        "its proven marker was pruned"
    );
    // Kept: the deployed release, the three before it, and the running
    // supervisor's (older than all of them); the first worker-only one
    // (and the seed's, if it was deployed) is gone.
    let mut want: Vec<String> = deployed[1..].to_vec();
    want.push(sup_sha.clone());
    want.sort();
    assert_eq!(releases(&p), want);

    // Stopped and started again as launchd would: the same supervisor runs.
    sup.signal(Signal::SIGTERM);
    assert!(sup.wait_exit().success());
    let mut again = p.start(&[]);
    let s = p.status();
    assert_eq!(
        s["supervisor"]["binary"],
        sup_bin.as_str(),
        "a restart went back to another supervisor: {s}"
    );
    let last = deployed.last().unwrap();
    assert_eq!(
        s["worker"]["binary"],
        p.release(last).join("worker").to_str().unwrap()
    );
    assert!(s["update"]["self_update"].is_null(), "{s}");
    again.signal(Signal::SIGTERM);
    assert!(again.wait_exit().success());

    // Damaged since (it exits at once): a start tries it, keeps the
    // supervisor it was started as, and says why.
    let sup_bin = release.join("supervisor");
    fs::remove_file(&sup_bin).unwrap();
    script(
        &sup_bin,
        "#!/bin/sh\necho 'damaged on purpose' >&2\nexit 1\n",
    );
    let again = p.start(&[]);
    let s = p.status();
    assert_eq!(s["supervisor"]["pid"], again.pid());
    assert_eq!(s["supervisor"]["binary"], real(&supervisor_bin()).as_str());
    let why = s["update"]["self_update"].as_str().unwrap_or_default();
    for words in [
        sup_bin.to_str().unwrap(),
        "damaged on purpose",
        "this one runs",
    ] {
        assert!(why.contains(words), "{words:?} missing from {why:?}");
    }
    assert_eq!(s["worker"]["state"], "ready");
}

#[test]
fn a_new_supervisor_that_cannot_run_is_not_run_and_status_says_why() {
    let p = project();
    let mut sup = start(&p, &[]);
    let me = p.status()["supervisor"]["binary"]
        .as_str()
        .expect("status names the supervisor's binary")
        .to_string();

    // A commit whose supervisor exits at once, whatever it is asked.
    let sha = p.push(
        "supervisor/src/main.rs",
        replace_once(
            "fn main() -> ExitCode {",
            "fn main() -> ExitCode {\n    eprintln!(\"broken on purpose\");\n    \
             if true {\n        return ExitCode::FAILURE;\n    }"
                .to_string(),
        ),
        "a supervisor that cannot start",
    );
    let (ok, out) = p.update();
    assert!(!ok, "{out}");
    assert!(out.contains("cannot run"), "{out}");
    let s = p.status();
    assert_eq!(s["supervisor"]["pid"], sup.pid());
    assert_eq!(s["supervisor"]["binary"], me.as_str(), "the old one stays");
    assert_eq!(s["worker"]["state"], "ready");
    assert_eq!(s["worker"]["commit"], sha.as_str(), "its worker serves");
    assert_eq!(s["update"]["deployed_commit"], sha.as_str());
    let why = s["update"]["self_update"].as_str().unwrap_or_default();
    let bin = p.release(&sha).join("supervisor");
    for words in [bin.to_str().unwrap(), "broken on purpose", "exit status: 1"] {
        assert!(why.contains(words), "{words:?} missing from {why:?}");
    }
    assert_eq!(p.ping()["ok"], true);
    // A later poll does not hide it, and runs nothing.
    p.deploy();
    let s = p.status();
    assert_eq!(s["update"]["self_update"], why);
    assert_eq!(s["supervisor"]["binary"], me.as_str());

    // Started again, it tries the release's supervisor once more, keeps
    // the one that runs, and says why.
    let mut restarts = |words: &[&str]| {
        sup.signal(Signal::SIGTERM);
        assert!(sup.wait_exit().success());
        sup = p.start(&[]);
        let s = wait_until(DEADLINE, "the reason in status after a restart", || {
            let s = p.status();
            s["update"]["self_update"]
                .as_str()
                .is_some_and(|w| w.contains(bin.to_str().unwrap()))
                .then_some(s)
        });
        assert_eq!(s["supervisor"]["pid"], sup.pid());
        assert_eq!(s["supervisor"]["binary"], me.as_str());
        assert_eq!(s["worker"]["state"], "ready");
        let why = s["update"]["self_update"].as_str().unwrap();
        for w in words {
            assert!(why.contains(w), "{w:?} missing from {why:?}");
        }
    };
    restarts(&["cannot run", "broken on purpose"]);
    // Damaged since into something that is not a program at all: the same.
    fs::remove_file(&bin).unwrap();
    fs::write(&bin, b"\x7fELF\x02\x01 not really\n").unwrap();
    fs::set_permissions(&bin, fs::Permissions::from_mode(0o755)).unwrap();
    restarts(&["cannot run"]);
}

/// A self-update that found the worker not ready and waits.
struct Waiting {
    /// The commit whose supervisor waits to run.
    sha: String,
    /// The supervisor binary running meanwhile.
    me: String,
    /// While this file exists, the commit's worker waits at `gate_fifo`.
    gate: PathBuf,
    gate_fifo: PathBuf,
}

/// `supervisor run` whose worker may wait a long time to be ready.
fn patient(p: &Project) -> Supervisor {
    start(p, &["--ready-timeout-ms", "120000"])
}

/// Deploys a supervisor change whose worker, started while a gate file
/// exists, first waits at a FIFO.
/// During the deploy the worker dies and the next one waits at the gate,
/// so the self-update finds the worker not ready. Returns once status
/// says the self-update waits.
fn self_update_waiting(p: &Project) -> Waiting {
    let me = p.status()["supervisor"]["binary"]
        .as_str()
        .expect("status names the supervisor's binary")
        .to_string();
    let root = p.dir.root();
    let (gate, gate_fifo) = (root.join("gate"), root.join("gate.fifo"));
    mkfifo(&gate_fifo);
    p.edit(
        "worker/src/main.rs",
        replace_once(
            "fn main() -> ExitCode {",
            format!(
                "fn main() -> ExitCode {{\n    \
                 // A test's gate: wait while it is there.\n    \
                 if std::path::Path::new({gate:?}).exists() {{\n        \
                 let _ = std::fs::read({gate_fifo:?});\n    }}"
            ),
        ),
    );
    p.edit("supervisor/src/lib.rs", append("// a supervisor change"));
    let sha = p.commit_and_push("a worker that waits at a gate, a supervisor change");
    // The pull that follows the deploy (a fast-forward of the watched
    // checkout) waits in its post-merge hook until the test lets it go.
    let (in_hook, hook_fifo) = (root.join("in-hook"), root.join("hook.fifo"));
    mkfifo(&hook_fifo);
    script(
        &p.checkout.join(".git/hooks/post-merge"),
        &format!(
            "#!/bin/sh\ntouch {}\nread go < {}\n",
            in_hook.display(),
            hook_fifo.display()
        ),
    );
    let update = p.update_in_background();
    wait_until(BUILD_DEADLINE, "the deploy's pull in the hook", || {
        in_hook.exists().then_some(())
    });
    // Meanwhile the worker dies, and the next one waits at the gate.
    let s = p.status();
    assert_eq!(s["worker"]["commit"], sha.as_str(), "{s}");
    let old_worker = worker_pid(&s);
    fs::write(&gate, "").unwrap();
    kill(Pid::from_raw(old_worker as i32), Signal::SIGKILL).unwrap();
    wait_until(DEADLINE, "a new worker, not ready", || {
        let s = p.status();
        (s["worker"]["state"] == "starting" && s["worker"]["pid"] != old_worker).then_some(())
    });
    // The deploy ends while the worker is not ready: the self-update waits.
    release_fifo(&hook_fifo);
    let out = update.wait_with_output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text}");
    assert!(text.contains("replaces itself"), "{text}");
    let s = wait_until(DEADLINE, "the self-update waiting in status", || {
        let s = p.status();
        s["update"]["self_update"]
            .as_str()
            .is_some_and(|w| w.contains("waiting"))
            .then_some(s)
    });
    assert_eq!(s["supervisor"]["binary"], me.as_str(), "{s}");
    assert_eq!(s["worker"]["state"], "starting", "{s}");
    Waiting {
        sha,
        me,
        gate,
        gate_fifo,
    }
}

#[test]
fn a_self_update_that_finds_the_worker_not_ready_happens_once_it_is() {
    let p = project();
    let mut sup = patient(&p);
    let w = self_update_waiting(&p);
    // The worker gets ready: the new supervisor takes over, same pid.
    fs::remove_file(&w.gate).unwrap();
    release_fifo(&w.gate_fifo);
    let new_bin = real(&p.release(&w.sha).join("supervisor"));
    let s = wait_until(DEADLINE, "the self-update done", || {
        let s = p.status();
        (s["supervisor"]["binary"] == new_bin.as_str()).then_some(s)
    });
    assert_eq!(s["supervisor"]["pid"], sup.pid());
    assert_eq!(s["supervisor"]["commit"], w.sha.as_str());
    assert!(s["update"]["self_update"].is_null(), "{s}");
    assert_eq!(s["worker"]["state"], "ready");
    assert_eq!(p.ping()["ok"], true);
    assert!(sup.try_exit().is_none());
    assert_ne!(w.me, new_bin);
}

#[test]
fn a_self_update_still_waiting_when_the_service_stops_happens_at_the_next_start() {
    let p = project();
    let mut sup = patient(&p);
    let w = self_update_waiting(&p);
    sup.signal(Signal::SIGTERM);
    assert!(sup.wait_exit().success());
    fs::remove_file(&w.gate).unwrap();
    // Started again: its worker gets ready, then it replaces itself.
    let again = patient(&p);
    let new_bin = real(&p.release(&w.sha).join("supervisor"));
    let s = wait_until(DEADLINE, "the self-update done after a restart", || {
        let s = p.status();
        (s["supervisor"]["binary"] == new_bin.as_str()).then_some(s)
    });
    assert_eq!(s["supervisor"]["pid"], again.pid());
    assert_eq!(s["supervisor"]["commit"], w.sha.as_str());
    assert_eq!(s["worker"]["state"], "ready");
    assert!(p.release(&w.sha).join("supervisor-tried").is_file());
}

#[test]
fn a_sigterm_while_the_supervisor_replaces_itself_is_not_lost() {
    harness::strace::require_strace();
    let p = project();
    if !first_deploy_replaces_the_supervisor() {
        let mut sup = start(&p, &[]);
        sup.signal(Signal::SIGTERM);
        assert!(sup.wait_exit().success());
    }
    // Run under strace, which holds the exec of the next release's
    // supervisor 3 s at the kernel's door: the old image is still whole
    // (every thread alive) while the SIGTERM comes. (Only execve stops
    // under strace, so the cargo build it also runs is not slowed.)
    let sha = push_supervisor_change(&p);
    let new_bin = p.release(&sha).join("supervisor");
    let args = p.args(&[]);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let wrapper = [
        "strace",
        "-f",
        "--seccomp-bpf",
        "-qq",
        "-o",
        "/dev/null",
        "-P",
        new_bin.to_str().unwrap(),
        "-e",
        "trace=execve",
        "-e",
        "inject=execve:delay_enter=3000000",
    ];
    let mut sup = Supervisor::spawn_under(&p.dir, &wrapper, None, &args);
    let ready = sup.wait_ready();
    let real_pid = ready["supervisor"]["pid"].as_u64().unwrap() as u32;
    let _guard = KillOnDrop(Some(real_pid));
    assert_ne!(real_pid, sup.pid(), "strace runs it");
    let put = json!({"op": "put", "id": "kept", "data": 1});
    assert_eq!(Conn::connect(&p.dir.sock()).call(&put)["ok"], true);

    // (The log dir may be an earlier run's too: count, do not just look.)
    let execs = || {
        sup.log_text("supervisor")
            .matches("replacing the supervisor in place")
            .count()
    };
    let before = execs();
    let mark = sup.log_text("supervisor").len();
    let update = p.update_in_background();
    wait_until(BUILD_DEADLINE, "the exec under way", || {
        (execs() > before).then_some(())
    });
    kill(Pid::from_raw(real_pid as i32), Signal::SIGTERM).unwrap();
    let out = update.wait_with_output().unwrap();
    assert!(out.status.success(), "{out:?}");
    // The new image took the SIGTERM: the worker wrote its sessions, and
    // the supervisor exited 0.
    let status = sup.wait_exit();
    let log = sup.log_text("supervisor");
    assert!(status.success(), "{status}: {log}");
    let new = &log[mark..];
    let resumed = new
        .find("supervisor re-executed")
        .unwrap_or_else(|| panic!("the new image did not run: {new}"));
    assert!(new[resumed..].contains("stopping the service"), "{new}");
    assert!(!harness::supervisor::alive(worker_pid(&ready)));
    let snapshot = p.dir.snapshot();
    assert_eq!(snapshot["kept"]["data"], 1);
}
