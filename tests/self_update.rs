//! Self-updates of the supervisor and the releases they live in, with real
//! git repositories and the real `supervisor` and `worker` binaries.
//!
//! What these tests check is what happens once a build has produced
//! binaries (pruning, trying and re-executing a new supervisor, retrying a
//! self-update), not the build itself (tests/update.rs runs real cargo
//! builds). So `cargo` here is a script first on PATH that "builds" by
//! copying the binaries a test chose into the staging target dir: those
//! binaries are the real ones (or, to test a broken release, a script).

mod support;

use std::fs;
use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};

use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use serde_json::{json, Value};
use support::supervisor::{status_of, supervisor_bin, supervisor_cmd, worker_pid, Supervisor};
use support::{git, wait_until, Conn, TestDir, DEADLINE};

/// A tiny watched repository (`worker/` and `supervisor/` each hold one
/// file, so a commit can change either), its origin, a developer clone,
/// and the fake cargo's choice of binaries.
struct Project {
    dir: TestDir,
    checkout: PathBuf,
    dev: PathBuf,
    /// The fake cargo's PATH entry, and the files naming what it copies.
    bin: PathBuf,
}

const FAKE_CARGO: &str = r#"#!/bin/sh
# Test stand-in for cargo: copies the binaries named in CTL/worker and
# CTL/supervisor (for `-p supervisor`) into the target dir.
[ "$1" = "--version" ] && { echo "cargo 0.0.0 (test stand-in)"; exit 0; }
target= ; sup= ; prev=
for a in "$@"; do
    [ "$prev" = "--target-dir" ] && target=$a
    [ "$prev" = "-p" ] && [ "$a" = supervisor ] && sup=1
    prev=$a
done
mkdir -p "$target/debug" || exit 1
cp "$(cat "CTL/worker")" "$target/debug/worker" || exit 1
if [ -n "$sup" ]; then cp "$(cat "CTL/supervisor")" "$target/debug/supervisor" || exit 1; fi
"#;

impl Project {
    fn new() -> Project {
        let dir = TestDir::new();
        let root = dir.root().to_path_buf();
        let seed = root.join("seed");
        for f in ["worker/version.txt", "supervisor/version.txt"] {
            fs::create_dir_all(seed.join(f).parent().unwrap()).unwrap();
            fs::write(seed.join(f), "0\n").unwrap();
        }
        git(&seed, &["init", "-q", "-b", "main"]);
        git(&seed, &["add", "-A"]);
        git(&seed, &["commit", "-q", "-m", "seed"]);
        let (origin, checkout, dev) = (
            root.join("origin.git"),
            root.join("checkout"),
            root.join("dev"),
        );
        let s = |p: &Path| p.to_str().unwrap().to_string();
        git(&root, &["clone", "-q", "--bare", &s(&seed), &s(&origin)]);
        git(&root, &["clone", "-q", &s(&origin), &s(&checkout)]);
        git(&root, &["clone", "-q", &s(&origin), &s(&dev)]);
        let bin = root.join("bin");
        fs::create_dir(&bin).unwrap();
        let ctl = root.join("ctl");
        fs::create_dir(&ctl).unwrap();
        let script = FAKE_CARGO.replace("CTL", ctl.to_str().unwrap());
        fs::write(bin.join("cargo"), script).unwrap();
        fs::set_permissions(bin.join("cargo"), fs::Permissions::from_mode(0o755)).unwrap();
        let p = Project {
            dir,
            checkout,
            dev,
            bin,
        };
        p.present(&support::worker_bin(), Path::new(supervisor_bin()));
        p
    }

    /// What the next "build" produces.
    fn present(&self, worker: &Path, supervisor: &Path) {
        let ctl = self.dir.root().join("ctl");
        fs::write(ctl.join("worker"), worker.to_str().unwrap()).unwrap();
        fs::write(ctl.join("supervisor"), supervisor.to_str().unwrap()).unwrap();
    }

    /// Commits a change to `<part>/version.txt` and pushes it; the sha.
    fn push(&self, part: &str) -> String {
        let file = self.dev.join(part).join("version.txt");
        let n: u32 = fs::read_to_string(&file).unwrap().trim().parse().unwrap();
        fs::write(&file, format!("{}\n", n + 1)).unwrap();
        git(
            &self.dev,
            &["commit", "-q", "-am", &format!("{part} {}", n + 1)],
        );
        git(&self.dev, &["push", "-q", "origin", "HEAD:main"]);
        git(&self.dev, &["rev-parse", "HEAD"])
    }

    fn args(&self, extra: &[&str]) -> Vec<String> {
        let staging = self.dir.root().join("staging");
        let mut all = vec![
            "--repo",
            self.checkout.to_str().unwrap(),
            "--staging-dir",
            staging.to_str().unwrap(),
            "--build-profile",
            "dev",
            "--probation-ms",
            "300",
            "--supervisor-probation-ms",
            "300",
        ];
        all.extend_from_slice(extra);
        all.into_iter().map(String::from).collect()
    }

    /// `supervisor run` with the fake cargo first on PATH.
    fn spawn(&self, extra: &[&str]) -> Supervisor {
        let args = self.args(extra);
        let refs: Vec<&str> = args.iter().map(String::as_str).collect();
        let path = format!(
            "{}:{}",
            self.bin.display(),
            std::env::var("PATH").unwrap_or_default()
        );
        Supervisor::spawn_env(&self.dir, None, &refs, &[("PATH", path.as_ref())])
    }

    fn start(&self) -> Supervisor {
        let mut sup = self.spawn(&[]);
        sup.wait_ready();
        sup
    }

    /// `supervisor update` run to its end: (succeeded, what it printed).
    fn update(&self) -> (bool, String) {
        let out = supervisor_cmd(&self.dir.data, &["update"])
            .output()
            .unwrap();
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        (out.status.success(), text)
    }

    /// `supervisor update` started, not waited for.
    fn update_in_background(&self) -> Child {
        supervisor_cmd(&self.dir.data, &["update"])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap()
    }

    fn status(&self) -> Value {
        status_of(&self.dir.data).1.expect("status answers")
    }

    fn release(&self, sha: &str) -> PathBuf {
        self.dir.data.join("releases").join(sha)
    }

    /// The release directories present, sorted.
    fn releases(&self) -> Vec<String> {
        let mut names: Vec<String> = fs::read_dir(self.dir.data.join("releases"))
            .unwrap()
            .map(|e| e.unwrap())
            .filter(|e| e.file_type().unwrap().is_dir())
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .filter(|n| n.len() == 40)
            .collect();
        names.sort();
        names
    }

    fn ping(&self) -> Value {
        Conn::connect(&self.dir.sock()).call(&json!({"op": "ping"}))
    }
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

/// `supervisor update` for the seed commit, waiting for a self-update it
/// announces (the seed counts as a supervisor change when the running
/// supervisor was built from a commit this repository does not have).
/// The running supervisor's binary afterwards.
fn deploy_seed(p: &Project) -> String {
    let (ok, out) = p.update();
    assert!(ok, "the seed deploys: {out}");
    if out.contains("replaces itself") {
        let seed = git(&p.dev, &["rev-parse", "HEAD"]);
        let bin = real(&p.release(&seed).join("supervisor"));
        wait_until(DEADLINE, "the seed's supervisor running", || {
            (p.status()["supervisor"]["binary"] == bin.as_str()).then_some(())
        });
    }
    p.status()["supervisor"]["binary"]
        .as_str()
        .expect("status names the supervisor's binary")
        .to_string()
}

/// Deploys a commit that changes the supervisor and waits until the
/// supervisor runs the release's binary (same pid) and has proven itself.
fn self_update(p: &Project, sup: &Supervisor) -> String {
    let sha = p.push("supervisor");
    let (ok, out) = p.update();
    assert!(ok, "{out}");
    assert!(out.contains("replaces itself"), "{out}");
    let new_bin = real(&p.release(&sha).join("supervisor"));
    let s = wait_until(DEADLINE, "the supervisor re-executed", || {
        let s = p.status();
        (s["supervisor"]["binary"] == new_bin.as_str()).then_some(s)
    });
    assert_eq!(s["supervisor"]["pid"], sup.pid(), "same process");
    let proven = p.release(&sha).join("supervisor-proven");
    wait_until(DEADLINE, "the new supervisor proven", || {
        proven.exists().then_some(())
    });
    sha
}

#[test]
fn worker_only_deploys_keep_the_running_supervisors_release_and_a_restart_runs_it() {
    let p = Project::new();
    let mut sup = p.start();
    deploy_seed(&p);
    let sup_sha = self_update(&p, &sup);

    let mut deployed = Vec::new();
    for _ in 0..5 {
        let sha = p.push("worker");
        let (ok, out) = p.update();
        assert!(ok, "{out}");
        assert_eq!(p.status()["update"]["deployed_commit"], sha.as_str());
        deployed.push(sha);
    }
    // Each old worker stopped on SIGTERM (none had to be killed).
    let log = sup.log_text("supervisor");
    assert!(!log.contains("did not stop in time"), "{log}");
    let release = p.release(&sup_sha);
    assert!(
        release.join("supervisor").is_file(),
        "the running supervisor's binary was pruned"
    );
    assert!(
        release.join("supervisor-proven").is_file(),
        "its proven marker was pruned"
    );
    // Kept: the deployed release, the three before it, and the running
    // supervisor's; the seed and the first worker-only deploy are gone.
    let mut want: Vec<String> = deployed[1..].to_vec();
    want.push(sup_sha.clone());
    want.sort();
    assert_eq!(p.releases(), want);

    // Stopped and started again as launchd would: the same supervisor runs.
    sup.signal(Signal::SIGTERM);
    assert!(sup.wait_exit().success());
    let mut again = p.start();
    let s = p.status();
    assert_eq!(
        s["supervisor"]["binary"],
        real(&release.join("supervisor")).as_str(),
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
    let again = p.start();
    let s = p.status();
    assert_eq!(s["supervisor"]["pid"], again.pid());
    assert_eq!(
        s["supervisor"]["binary"],
        real(Path::new(supervisor_bin())).as_str()
    );
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
    let p = Project::new();
    let mut sup = p.start();
    let me = deploy_seed(&p);
    let root = p.dir.root();

    // A release whose supervisor exits at once.
    let exits = root.join("exits-at-once");
    script(&exits, "#!/bin/sh\necho 'broken on purpose' >&2\nexit 1\n");
    p.present(&support::worker_bin(), &exits);
    let sha = p.push("supervisor");
    let (ok, out) = p.update();
    assert!(!ok, "{out}");
    assert!(out.contains("cannot run"), "{out}");
    let s = p.status();
    assert_eq!(s["supervisor"]["pid"], sup.pid());
    assert_eq!(s["supervisor"]["binary"], me.as_str(), "the old one stays");
    assert_eq!(s["worker"]["state"], "ready");
    assert_eq!(s["update"]["deployed_commit"], sha.as_str());
    let why = s["update"]["self_update"].as_str().unwrap_or_default();
    let bin = p.release(&sha).join("supervisor");
    for words in [bin.to_str().unwrap(), "broken on purpose", "exit status: 1"] {
        assert!(why.contains(words), "{words:?} missing from {why:?}");
    }
    assert_eq!(p.ping()["ok"], true);
    // A later poll does not hide it, and runs nothing.
    let (ok, out) = p.update();
    assert!(ok, "{out}");
    let s = p.status();
    assert_eq!(s["update"]["self_update"], why);
    assert_eq!(s["supervisor"]["binary"], me.as_str());

    // A release whose supervisor is not a program at all.
    let junk = root.join("junk");
    fs::write(&junk, b"\x7fELF\x02\x01 not really\n").unwrap();
    p.present(&support::worker_bin(), &junk);
    let sha = p.push("supervisor");
    let (ok, out) = p.update();
    assert!(!ok, "{out}");
    let s = p.status();
    assert_eq!(s["supervisor"]["pid"], sup.pid());
    assert_eq!(s["supervisor"]["binary"], me.as_str());
    let why = s["update"]["self_update"].as_str().unwrap_or_default();
    let bin = p.release(&sha).join("supervisor");
    assert!(why.contains(bin.to_str().unwrap()), "{why}");
    assert!(why.contains("cannot run"), "{why}");

    // Started again, it tries the release's supervisor once more, keeps
    // the one that runs, and says why.
    sup.signal(Signal::SIGTERM);
    assert!(sup.wait_exit().success());
    let again = p.start();
    let s = wait_until(DEADLINE, "the reason in status after a restart", || {
        let s = p.status();
        s["update"]["self_update"]
            .as_str()
            .is_some_and(|w| w.contains(bin.to_str().unwrap()))
            .then_some(s)
    });
    assert_eq!(s["supervisor"]["pid"], again.pid());
    assert_ne!(s["supervisor"]["binary"], real(&bin).as_str());
    assert_eq!(s["worker"]["state"], "ready");
}

/// A self-update that found the worker not ready and waits.
struct Waiting {
    /// The commit whose supervisor waits to run.
    sha: String,
    /// The supervisor binary running meanwhile.
    me: String,
    /// While this file exists, the release's worker waits at `gate_fifo`.
    gate: PathBuf,
    gate_fifo: PathBuf,
}

/// `supervisor run` whose worker may wait a long time to be ready.
fn patient(p: &Project) -> Supervisor {
    let mut sup = p.spawn(&["--ready-timeout-ms", "120000"]);
    sup.wait_ready();
    sup
}

/// Deploys a supervisor change whose self-update finds the worker not
/// ready, and waits until status says it waits.
fn self_update_waiting(p: &Project) -> Waiting {
    let me = deploy_seed(p);
    let root = p.dir.root();

    // The new release's worker: the real one, started through a script
    // that first waits at a gate while `gate` exists.
    let (gate, gate_fifo) = (root.join("gate"), root.join("gate.fifo"));
    mkfifo(&gate_fifo);
    let gated = root.join("gated-worker");
    script(
        &gated,
        &format!(
            "#!/bin/sh\nif [ -e {} ]; then read go < {}; fi\nexec {} \"$@\"\n",
            gate.display(),
            gate_fifo.display(),
            support::worker_bin().display()
        ),
    );
    p.present(&gated, Path::new(supervisor_bin()));
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
    let sha = p.push("supervisor");
    let update = p.update_in_background();
    wait_until(DEADLINE, "the deploy's pull in the hook", || {
        in_hook.exists().then_some(())
    });
    // Meanwhile the worker dies, and the next one waits at the gate.
    let old_worker = worker_pid(&p.status());
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
    let p = Project::new();
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
    assert!(s["update"]["self_update"].is_null(), "{s}");
    assert_eq!(s["worker"]["state"], "ready");
    assert_eq!(p.ping()["ok"], true);
    assert!(sup.try_exit().is_none());
    assert_ne!(w.me, new_bin);
}

#[test]
fn a_self_update_still_waiting_when_the_service_stops_happens_at_the_next_start() {
    let p = Project::new();
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
    assert_eq!(s["worker"]["state"], "ready");
    assert!(p.release(&w.sha).join("supervisor-tried").is_file());
}

/// SIGKILLs the real supervisor (not its strace) when dropped.
struct KillOnDrop(Option<u32>);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        if let Some(pid) = self.0 {
            let _ = kill(Pid::from_raw(pid as i32), Signal::SIGKILL);
        }
    }
}

#[test]
fn a_sigterm_while_the_supervisor_replaces_itself_is_not_lost() {
    support::strace::require_strace();
    let p = Project::new();
    let mut sup = p.start();
    deploy_seed(&p);
    sup.signal(Signal::SIGTERM);
    assert!(sup.wait_exit().success());

    // Started again under strace, which holds the exec of the next
    // release's supervisor 3 s at the kernel's door: the old image is
    // still whole (every thread alive) while the SIGTERM comes.
    let sha = p.push("supervisor");
    let new_bin = p.release(&sha).join("supervisor");
    let path = format!(
        "PATH={}:{}",
        p.bin.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let args = p.args(&[]);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let wrapper = [
        "env",
        &path,
        "strace",
        "-f",
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

    // (The log dir is the first run's too: count, do not just look.)
    let execs = || {
        sup.log_text("supervisor")
            .matches("replacing the supervisor in place")
            .count()
    };
    let before = execs();
    let mark = sup.log_text("supervisor").len();
    let update = p.update_in_background();
    wait_until(DEADLINE, "the exec under way", || {
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
    assert!(!support::supervisor::alive(worker_pid(&ready)));
    let snapshot = p.dir.snapshot();
    assert_eq!(snapshot["kept"]["data"], 1);
}
