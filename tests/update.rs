//! Updates from git with real repositories (a bare origin, the watched
//! checkout, a developer clone) and real cargo builds, sharing one warm
//! staging area (its own checkout and target dir) across the tests (see
//! tests/support/project.rs).

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use harness::project::{append, commit_all, Project, BUILD_DEADLINE};
use harness::supervisor::{status_of, supervisor_cmd, worker_pid, KillOnDrop, Supervisor};
use harness::{git, request, wait_until, Conn, Tally, TestDir};
use nix::sys::signal::Signal;
use serde_json::{json, Value};

/// Clients that write all along and count failures.
struct Load {
    stop: Arc<AtomicBool>,
    tally: Arc<Tally>,
    threads: Vec<std::thread::JoinHandle<u64>>,
}

impl Load {
    fn start(sock: PathBuf, clients: usize) -> Load {
        let stop = Arc::new(AtomicBool::new(false));
        let tally = Arc::new(Tally::default());
        let threads = (0..clients)
            .map(|c| {
                let (stop, tally, sock) = (stop.clone(), tally.clone(), sock.clone());
                std::thread::spawn(move || {
                    let mut conn = None;
                    let (mut n, mut last) = (0u64, 0u64);
                    while !stop.load(Ordering::Relaxed) {
                        n += 1;
                        let req = json!({"op": "put", "id": format!("load-{c}"), "data": n});
                        if request(&sock, &mut conn, &req, &tally).is_some() {
                            last = n;
                        }
                        // Pace the load so builds get the CPU.
                        std::thread::sleep(Duration::from_millis(5));
                    }
                    last
                })
            })
            .collect();
        Load {
            stop,
            tally,
            threads,
        }
    }

    /// Stops the clients; checks nothing failed and every last write is there.
    fn finish(self, sock: &Path) {
        self.stop.store(true, Ordering::Relaxed);
        let lasts: Vec<u64> = self
            .threads
            .into_iter()
            .map(|t| t.join().unwrap())
            .collect();
        let t = &self.tally;
        assert!(t.ok.load(Ordering::Relaxed) > 0, "{t:?}");
        t.assert_clean();
        for (c, last) in lasts.iter().enumerate() {
            let got = Conn::connect(sock).call(&json!({"op": "get", "id": format!("load-{c}")}));
            assert_eq!(got["session"]["data"], *last, "client {c}");
        }
        eprintln!("load during updates: {t:?}");
    }
}

#[test]
fn pushes_deploy_bad_commits_are_held_and_rolled_back() {
    let p = Project::new();
    let sup = p.start(&[]);
    let first_worker = worker_pid(&p.status());
    let load = Load::start(p.dir.sock(), 4);
    Conn::connect(&p.dir.sock()).call(&json!({"op": "put", "id": "kept", "data": {"v": 1}}));

    // The seed commit replaces the worker this supervisor was started with.
    p.deploy();
    let seed = p.head();
    assert_eq!(p.ping()["commit"], seed.as_str());
    assert_ne!(worker_pid(&p.status()), first_worker);

    // A good push serves, and the clean checkout is fast-forwarded to it.
    let c1 = p.push(
        "worker/src/lib.rs",
        append("// update test: a harmless change"),
        "harmless",
    );
    let out = p.deploy();
    assert!(out.contains(&c1[..12]), "{out}");
    let s = p.status();
    assert_eq!(p.ping()["commit"], c1.as_str());
    assert_eq!(s["worker"]["commit"], c1.as_str());
    assert_eq!(s["update"]["deployed_commit"], c1.as_str());
    assert_eq!(git(&p.checkout, &["rev-parse", "HEAD"]), c1);
    let release = p.release(&c1).join("worker");
    assert!(release.is_file());
    assert_eq!(s["worker"]["binary"], release.to_str().unwrap());

    // A commit that does not compile: held, the old worker serves on.
    let c2 = p.push(
        "worker/src/lib.rs",
        append("compile_error!(\"held on purpose\");"),
        "broken",
    );
    let (ok, out) = p.update();
    assert!(!ok, "{out}");
    assert!(out.contains("cargo build failed"), "{out}");
    let s = p.status();
    assert!(
        s["update"]["held_commits"]
            .as_array()
            .unwrap()
            .contains(&json!(c2)),
        "{s}"
    );
    assert!(
        s["update"]["last_error"]
            .as_str()
            .unwrap()
            .contains("held on purpose"),
        "{s}"
    );
    assert_eq!(p.ping()["commit"], c1.as_str());
    // Not rebuilt on the next poll.
    let builds = sup.log_text("supervisor").matches("building").count();
    let out = p.deploy();
    assert!(out.contains("held"), "{out}");
    assert_eq!(
        sup.log_text("supervisor").matches("building").count(),
        builds
    );

    // A later fix deploys.
    let c3 = p.push(
        "worker/src/lib.rs",
        |t| t.replace("compile_error!(\"held on purpose\");", "// fixed"),
        "fix",
    );
    p.deploy();
    assert_eq!(p.ping()["commit"], c3.as_str());

    // A worker that exits at start: rolled back and held.
    let c4 = p.push(
        "worker/src/main.rs",
        |t| t.replacen("fn main() -> ExitCode {", "fn main() -> ExitCode {\n    std::process::exit(7);\n    #[allow(unreachable_code)]", 1),
        "exits at start",
    );
    let (ok, out) = p.update();
    assert!(!ok, "{out}");
    assert!(out.contains("rolled back"), "{out}");
    assert!(out.contains("exit code 7"), "{out}");
    assert_eq!(p.ping()["commit"], c3.as_str());
    assert!(p.status()["update"]["held_commits"]
        .as_array()
        .unwrap()
        .contains(&json!(c4)));

    // A worker that dies a moment after it is ready: rolled back and held.
    let c5 = p.push(
        "worker/src/main.rs",
        |t| {
            t.replacen(
                "    std::process::exit(7);\n    #[allow(unreachable_code)]",
                "    std::thread::spawn(|| {\n        std::thread::sleep(std::time::Duration::from_millis(1500));\n        std::process::exit(9);\n    });",
                1,
            )
        },
        "dies after ready",
    );
    let (ok, out) = p.update();
    assert!(!ok, "{out}");
    assert!(out.contains("probation"), "{out}");
    let s = p.status();
    assert_eq!(p.ping()["commit"], c3.as_str());
    assert_eq!(s["worker"]["state"], "ready");
    assert_eq!(s["update"]["deployed_commit"], c3.as_str());
    assert!(s["update"]["held_commits"]
        .as_array()
        .unwrap()
        .contains(&json!(c5)));

    load.finish(&p.dir.sock());
    let kept = Conn::connect(&p.dir.sock()).call(&json!({"op": "get", "id": "kept"}));
    assert_eq!(kept["session"]["data"]["v"], 1);
}

#[test]
fn polling_deploys_a_push_and_faults_never_stop_the_service() {
    let p = Project::new();
    let _sup = p.start(&["--poll-interval-ms", "300"]);
    // Polling alone deploys the seed.
    let seed = p.head();
    wait_until(BUILD_DEADLINE, "the seed deployed by polling", || {
        (p.status()["update"]["deployed_commit"] == seed.as_str()).then_some(())
    });
    // A push serves within poll + build, with nobody asking.
    let c1 = p.push("worker/src/lib.rs", append("// polled change"), "polled");
    let s = wait_until(BUILD_DEADLINE, "the push deployed by polling", || {
        let s = p.status();
        (s["update"]["deployed_commit"] == c1.as_str()).then_some(s)
    });
    assert_eq!(p.ping()["commit"], c1.as_str());
    assert!(s["update"]["last_poll_at"].is_string());
    assert!(s["update"]["last_poll"].is_string());

    // An unreachable remote: an error in status, the worker serves on.
    git(
        &p.checkout,
        &["remote", "set-url", "origin", "/nonexistent/origin.git"],
    );
    let errored = wait_until(Duration::from_secs(60), "the fetch error in status", || {
        let s = p.status();
        s["update"]["last_error"]
            .as_str()
            .filter(|e| e.contains("fetch failed"))
            .map(|_| s.clone())
    });
    assert_eq!(errored["worker"]["state"], "ready");
    assert_eq!(p.ping()["commit"], c1.as_str());
    // Back again: the next poll is fine.
    git(
        &p.checkout,
        &["remote", "set-url", "origin", p.origin.to_str().unwrap()],
    );
    wait_until(Duration::from_secs(60), "a clean poll", || {
        let s = p.status();
        s["update"]["last_error"].is_null().then_some(())
    });
}

/// A tiny HTTP server that answers 401 to everything: a remote that asks
/// for credentials.
fn start_auth_server(dir: &Path) -> (std::process::Child, u16) {
    let script = dir.join("auth_server.py");
    fs::write(
        &script,
        r#"import http.server, sys
class H(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        self.send_response(401)
        self.send_header("WWW-Authenticate", 'Basic realm="private"')
        self.send_header("Content-Length", "0")
        self.end_headers()
    def log_message(self, *a):
        pass
s = http.server.HTTPServer(("127.0.0.1", 0), H)
print(s.server_address[1], flush=True)
s.serve_forever()
"#,
    )
    .unwrap();
    let mut child = Command::new("python3")
        .arg(&script)
        .stdout(Stdio::piped())
        .spawn()
        .expect("python3 runs");
    let mut line = String::new();
    std::io::BufRead::read_line(
        &mut std::io::BufReader::new(child.stdout.take().unwrap()),
        &mut line,
    )
    .unwrap();
    (child, line.trim().parse().unwrap())
}

#[test]
fn the_persons_checkout_is_never_touched_and_remotes_never_hang() {
    let p = Project::new();
    let _sup = p.start(&[]);
    p.deploy();

    // A remote that asks for credentials: an error, at once, no prompt.
    let (mut server, port) = start_auth_server(p.dir.root());
    git(
        &p.checkout,
        &[
            "remote",
            "set-url",
            "origin",
            &format!("http://127.0.0.1:{port}/repo.git"),
        ],
    );
    let (ok, out) = p.update();
    let _ = server.kill();
    assert!(!ok, "{out}");
    assert!(out.contains("fetch failed"), "{out}");
    assert_eq!(p.status()["worker"]["state"], "ready");
    git(
        &p.checkout,
        &["remote", "set-url", "origin", p.origin.to_str().unwrap()],
    );

    // A dirty checkout: deployed, but the person's edit stays as it is.
    let readme = p.checkout.join("README.md");
    let edited = format!(
        "{}\nlocal edit, not committed\n",
        fs::read_to_string(&readme).unwrap()
    );
    fs::write(&readme, &edited).unwrap();
    let head = git(&p.checkout, &["rev-parse", "HEAD"]);
    let c1 = p.push("worker/src/lib.rs", append("// while dirty"), "while dirty");
    p.deploy();
    assert_eq!(p.ping()["commit"], c1.as_str());
    assert_eq!(fs::read_to_string(&readme).unwrap(), edited);
    assert_eq!(git(&p.checkout, &["rev-parse", "HEAD"]), head);
    let why = p.status()["update"]["checkout"]
        .as_str()
        .unwrap_or("")
        .to_string();
    assert!(why.contains("uncommitted"), "{why}");
    git(&p.checkout, &["checkout", "--", "README.md"]);

    // A checkout on another branch: left alone, and status says why.
    git(&p.checkout, &["checkout", "-q", "-b", "feature"]);
    let c2 = p.push(
        "worker/src/lib.rs",
        append("// while on a branch"),
        "on a branch",
    );
    p.deploy();
    assert_eq!(p.ping()["commit"], c2.as_str());
    assert_eq!(git(&p.checkout, &["rev-parse", "HEAD"]), head);
    let why = p.status()["update"]["checkout"]
        .as_str()
        .unwrap_or("")
        .to_string();
    assert!(why.contains("feature"), "{why}");
    git(&p.checkout, &["checkout", "-q", "main"]);

    // A force-pushed branch: the new tip deploys. The person's checkout,
    // which holds the commit the force-push dropped, is not behind the new
    // tip and is left alone.
    git(&p.checkout, &["merge", "-q", "--ff-only", &c2]);
    git(&p.dev, &["reset", "-q", "--hard", "HEAD~1"]);
    let forced = {
        fs::write(p.dev.join("worker/src/forced.txt"), "forced\n").unwrap();
        commit_all(&p.dev, "forced");
        git(&p.dev, &["push", "-q", "--force", "origin", "HEAD:main"]);
        git(&p.dev, &["rev-parse", "HEAD"])
    };
    p.deploy();
    assert_eq!(p.ping()["commit"], forced.as_str());
    assert_eq!(git(&p.checkout, &["rev-parse", "HEAD"]), c2);
    let why = p.status()["update"]["checkout"]
        .as_str()
        .unwrap_or("")
        .to_string();
    assert!(why.contains("not behind"), "{why}");
}

#[test]
fn a_supervisor_change_replaces_it_in_place_and_a_restart_runs_the_deployed_release() {
    let p = Project::new();
    let mut sup = p.start(&[]);
    p.deploy();
    let pid = sup.pid();
    let load = Load::start(p.dir.sock(), 2);
    let before = p.status();
    let c1 = p.push(
        "supervisor/src/lib.rs",
        append("// a supervisor change"),
        "supervisor change",
    );
    p.deploy();
    let after = wait_until(
        Duration::from_secs(60),
        "the re-executed supervisor",
        || {
            let s = p.status();
            (s["supervisor"]["commit"] == c1.as_str()).then_some(s)
        },
    );
    assert_eq!(
        after["supervisor"]["pid"], pid,
        "the supervisor kept its pid"
    );
    assert!(sup.try_exit().is_none(), "the supervisor process exited");
    assert_eq!(after["worker"]["commit"], c1.as_str());
    // The store's health was handed over with the worker.
    assert_eq!(after["store"]["state"], "ok", "{after}");
    assert!(
        after["supervisor"]["uptime_secs"].as_u64() >= before["supervisor"]["uptime_secs"].as_u64()
    );
    let wpid = worker_pid(&after);
    // Once it has run its probation, later starts run it again.
    let proven = p.release(&c1).join("supervisor-proven");
    wait_until(Duration::from_secs(60), "the new supervisor proven", || {
        proven.exists().then_some(())
    });
    let log = sup.log_text("supervisor");
    assert!(
        log.contains(&format!(
            "supervisor re-executed; the worker kept serving worker={wpid}"
        )),
        "{log}"
    );
    load.finish(&p.dir.sock());

    // SIGTERM, then start again the way launchd would: the deployed
    // release runs, not the older binaries.
    sup.signal(Signal::SIGTERM);
    assert!(sup.wait_exit().success());
    let _again = p.start(&[]);
    let s = p.status();
    assert_eq!(s["worker"]["commit"], c1.as_str());
    assert_eq!(s["supervisor"]["commit"], c1.as_str());
    let release = p.release(&c1);
    assert_eq!(
        s["worker"]["binary"],
        release.join("worker").to_str().unwrap()
    );
}

#[test]
fn commits_that_land_during_a_build_win() {
    let p = Project::new();
    let sup = p.start(&[]);
    p.deploy();
    let c1 = p.push("worker/src/lib.rs", append("// first of two"), "first");
    let updating = {
        let data = p.dir.data.clone();
        std::thread::spawn(move || supervisor_cmd(&data, &["update"]).output().unwrap())
    };
    // While c1 builds, c2 lands.
    wait_until(BUILD_DEADLINE, "the build of the first commit", || {
        let s = p.status();
        (s["update"]["state"] == "building" && s["update"]["target_commit"] == c1.as_str())
            .then_some(())
    });
    let c2 = p.push("worker/src/lib.rs", append("// second of two"), "second");
    let out = updating.join().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text}");
    assert!(text.contains(&c2[..12]), "{text}");
    assert_eq!(p.ping()["commit"], c2.as_str());
    let log = sup.log_text("supervisor");
    assert!(log.contains("the branch moved during the build"), "{log}");
    let tried: Vec<&str> = log
        .lines()
        .filter(|l| l.contains("worker started to try a new commit"))
        .collect();
    assert!(tried.iter().any(|l| l.contains(&c2)), "{log}");
    assert!(
        !tried.iter().any(|l| l.contains(&c1)),
        "c1 was swapped in: {log}"
    );
}

/// A watched checkout (with its bare origin) of a one-file repository
/// without a Cargo.toml: enough for every update step up to cargo, which
/// then fails at once instead of building.
fn tiny_checkout(dir: &TestDir) -> PathBuf {
    let seed = dir.root().join("tiny-seed");
    fs::create_dir(&seed).unwrap();
    fs::write(seed.join("README"), "not a cargo project\n").unwrap();
    git(&seed, &["init", "-q", "-b", "main"]);
    commit_all(&seed, "tiny");
    let origin = dir.root().join("tiny-origin.git");
    let checkout = dir.root().join("tiny-checkout");
    for (args, to) in [
        (&["clone", "-q", "--bare"][..], &origin),
        (&["clone", "-q"][..], &checkout),
    ] {
        let from = if to == &origin { &seed } else { &origin };
        let mut all = args.to_vec();
        all.extend([from.to_str().unwrap(), to.to_str().unwrap()]);
        git(dir.root(), &all);
    }
    checkout
}

#[test]
fn the_build_cache_is_kept_out_of_backups_and_the_index() {
    let dir = TestDir::new();
    let checkout = tiny_checkout(&dir);
    let staging = dir.root().join("staging");
    let mut sup = Supervisor::start(
        &dir,
        &[
            "--repo",
            checkout.to_str().unwrap(),
            "--staging-dir",
            staging.to_str().unwrap(),
            "--build-profile",
            "dev",
        ],
    );
    sup.wait_ready();
    let out = supervisor_cmd(&dir.data, &["update"]).output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(
        out.status.code(),
        Some(1),
        "cargo has nothing to build: {err}"
    );
    assert!(err.contains("cargo build failed"), "{err}");
    // Marked before cargo ran: Spotlight's marker, the cache tag.
    let target = staging.join("target");
    assert!(target.join(".metadata_never_index").is_file());
    let tag = fs::read_to_string(target.join("CACHEDIR.TAG")).unwrap();
    assert!(
        tag.starts_with("Signature: 8a477f597d28d172789f06886806bc55"),
        "{tag}"
    );
}

/// `supervisor update` with every chdir into `refused` (every chdir at
/// all if `None`) failing with EPERM, as macOS privacy protection refuses
/// a background agent's git in ~/Documents: git is started there (a chdir
/// in the child), so it cannot start at all. Returns `status --json` and
/// what `update` printed on stderr. Needs strace.
fn update_refused(
    dir: &TestDir,
    checkout: &Path,
    staging: &Path,
    refused: Option<&Path>,
) -> (Value, String) {
    assert!(
        Command::new("strace").arg("-V").output().is_ok(),
        "this test needs strace (apt-get install strace)"
    );
    let mut wrapper = vec!["strace", "-f", "--seccomp-bpf", "-qq", "-o", "/dev/null"];
    if let Some(path) = refused {
        wrapper.extend(["-P", path.to_str().unwrap()]);
    }
    wrapper.extend(["-e", "trace=chdir", "-e", "inject=chdir:error=EPERM"]);
    let args = [
        "--repo",
        checkout.to_str().unwrap(),
        "--staging-dir",
        staging.to_str().unwrap(),
        "--build-profile",
        "dev",
    ];
    let mut sup = Supervisor::spawn_under(dir, &wrapper, Some(&harness::worker_bin()), &args);
    let ready = sup.wait_ready();
    let mut kill_real = KillOnDrop(ready["supervisor"]["pid"].as_u64().map(|p| p as u32));
    assert_ne!(ready["supervisor"]["pid"], sup.pid(), "strace runs it");

    let out = supervisor_cmd(&dir.data, &["update"]).output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    assert_eq!(out.status.code(), Some(1), "{err}");
    let status = status_of(&dir.data).1.unwrap();
    assert_eq!(status["worker"]["state"], "ready", "the worker serves on");
    // A clean stop of the real supervisor ends strace too.
    let pid = kill_real.0.take().expect("the supervisor's pid");
    nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid as i32), Signal::SIGTERM).unwrap();
    assert!(sup.wait_exit().success());
    (status, err)
}

#[track_caller]
fn assert_names_privacy_protection(status: &Value, path: &Path) {
    let last = status["update"]["last_error"].as_str().unwrap_or_default();
    for words in [
        "Operation not permitted",
        "privacy protection",
        "Full Disk Access",
        path.to_str().unwrap(),
    ] {
        assert!(last.contains(words), "{words:?} missing from {last:?}");
    }
}

#[test]
fn git_refused_by_the_system_names_privacy_protection_and_the_path() {
    let dir = TestDir::new();
    let checkout = tiny_checkout(&dir);
    let staging = dir.root().join("staging");
    let (status, err) = update_refused(&dir, &checkout, &staging, None);
    assert_names_privacy_protection(&status, &checkout);
    assert!(status["update"]["last_error"]
        .as_str()
        .unwrap()
        .starts_with("fetch failed"));
    assert!(err.contains("privacy protection"), "{err}");
    assert!(!staging.exists(), "nothing staged");

    // Refused in the staging clone only: the fetch works, staging fails,
    // and the commit is not held (it is not the commit's fault).
    let dir = TestDir::new();
    let checkout = tiny_checkout(&dir);
    let staging = dir.root().join("staging");
    let (status, _) = update_refused(&dir, &checkout, &staging, Some(&staging.join("src")));
    assert_names_privacy_protection(&status, &staging.join("src"));
    assert_eq!(status["update"]["held_commits"], json!([]), "{status}");
}

/// What cargo 1.95 prints when it cannot reach the registry (measured
/// with a proxy on a closed port), before it exits with status 101.
const CARGO_OFFLINE: &str = "    Updating crates.io index
error: failed to get `itoa` as a dependency of package `worker v0.1.0 (/src/worker)`

Caused by:
  download of config.json failed

Caused by:
  failed to download from `https://index.crates.io/config.json`

Caused by:
  [7] Could not connect to server (Failed to connect to 127.0.0.1 port 9 after 0 ms: Could not connect to server)";

/// A `cargo` for the front of PATH: its first `cargo build` fails as
/// cargo does offline; everything else runs the real cargo. Each build
/// it sees is a line in the returned file.
fn cargo_offline_once(dir: &Path) -> (PathBuf, PathBuf) {
    let bin = dir.join("fake-bin");
    fs::create_dir(&bin).unwrap();
    let builds = dir.join("cargo-builds");
    let script = format!(
        "#!/bin/sh\n\
         if [ \"$1\" = build ]; then\n\
         \x20 echo build >> '{builds}'\n\
         \x20 if [ \"$(wc -l < '{builds}')\" -eq 1 ]; then\n\
         \x20   cat >&2 <<'EOF'\n{CARGO_OFFLINE}\nEOF\n\
         \x20   exit 101\n\
         \x20 fi\n\
         fi\n\
         exec '{real}' \"$@\"\n",
        builds = builds.display(),
        real = env!("CARGO"),
    );
    let cargo = bin.join("cargo");
    fs::write(&cargo, script).unwrap();
    fs::set_permissions(&cargo, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    (bin, builds)
}

#[test]
fn a_download_failure_is_retried_not_held_and_a_compile_error_is_held() {
    let p = Project::new();
    let (bin, builds) = cargo_offline_once(p.dir.root());
    let path = std::env::join_paths(
        std::iter::once(bin).chain(std::env::split_paths(&std::env::var_os("PATH").unwrap())),
    )
    .unwrap();
    let _sup = p.start_env(&["--poll-interval-ms", "300"], &[("PATH", &path)]);
    let seed = p.head();

    // The failed download: shown as a retry, nothing held.
    let s = wait_until(Duration::from_secs(300), "a retry or a hold", || {
        let s = p.status();
        let u = &s["update"];
        (!u["retry"].is_null() || u["held_commits"] != json!([])).then_some(s)
    });
    assert_eq!(s["update"]["held_commits"], json!([]), "{s}");
    let retry = &s["update"]["retry"];
    assert!(
        retry["reason"]
            .as_str()
            .unwrap()
            .contains("cannot download dependencies"),
        "{s}"
    );
    assert_eq!(retry["attempts"], 1, "{s}");
    assert!(retry["next_at"].is_string(), "{s}");
    assert_eq!(s["worker"]["state"], "ready");

    // A later poll builds it with the real cargo and deploys it.
    let s = wait_until(BUILD_DEADLINE, "the seed deployed at a later poll", || {
        let s = p.status();
        let u = &s["update"];
        (u["deployed_commit"] == seed.as_str() && u["state"] == "idle").then_some(s)
    });
    assert_eq!(p.ping()["commit"], seed.as_str());
    assert!(s["update"]["retry"].is_null(), "{s}");
    assert_eq!(s["update"]["held_commits"], json!([]), "{s}");
    let tried = fs::read_to_string(&builds).unwrap().lines().count();
    assert_eq!(tried, 2, "one failed build, one real one");

    // A real compile error in our crates is still held.
    let broken = p.push(
        "worker/src/lib.rs",
        append("compile_error!(\"held on purpose\");"),
        "broken",
    );
    let s = wait_until(BUILD_DEADLINE, "the broken commit held or retried", || {
        let s = p.status();
        let u = &s["update"];
        let held = u["held_commits"]
            .as_array()
            .unwrap()
            .contains(&json!(broken));
        let retried = u["retry"]["reason"]
            .as_str()
            .is_some_and(|r| r.contains(&broken[..12]));
        (held || retried).then_some(s)
    });
    assert!(s["update"]["retry"].is_null(), "not held: {s}");
    let last = s["update"]["last_error"].as_str().unwrap();
    assert!(last.contains("held on purpose"), "{last}");
    assert_eq!(p.ping()["commit"], seed.as_str());
}

#[test]
fn the_persons_ssh_command_is_used_and_their_index_is_never_rewritten() {
    let p = Project::new();
    // The origin is reachable only through an ssh command set in the
    // watched checkout: a stand-in that runs the remote command here
    // (`-G`, git asking whether it is OpenSSH, is refused).
    let calls = p.dir.root().join("ssh-calls");
    let fake = p.dir.root().join("fake-ssh");
    fs::write(
        &fake,
        format!(
            "#!/bin/sh\n[ \"$1\" = \"-G\" ] && exit 1\necho \"$@\" >> '{}'\nshift\nexec sh -c \"$*\"\n",
            calls.display()
        ),
    )
    .unwrap();
    fs::set_permissions(&fake, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    let url = format!("brain-origin:{}", p.origin.display());
    git(&p.checkout, &["remote", "set-url", "origin", &url]);
    git(
        &p.checkout,
        &["config", "core.sshCommand", fake.to_str().unwrap()],
    );
    let _sup = p.start(&[]);
    p.deploy();
    let seed = p.head();
    assert_eq!(p.ping()["commit"], seed.as_str());
    let said = fs::read_to_string(&calls).expect("the person's ssh command ran");
    assert!(said.contains("brain-origin git-upload-pack"), "{said}");

    // The person committed locally and touched a file without changing
    // it: `status` must look, and a git that may take optional locks
    // would write the refreshed index back.
    fs::write(p.checkout.join("mine.txt"), "local work\n").unwrap();
    commit_all(&p.checkout, "mine");
    let touched = fs::File::options()
        .write(true)
        .open(p.checkout.join("README.md"))
        .unwrap();
    touched
        .set_modified(std::time::SystemTime::UNIX_EPOCH + Duration::from_secs(1_600_000_000))
        .unwrap();
    drop(touched);
    let index = p.checkout.join(".git/index");
    let state = || {
        use std::os::unix::fs::MetadataExt;
        let m = fs::metadata(&index).unwrap();
        (m.ino(), m.modified().unwrap(), fs::read(&index).unwrap())
    };
    let before = state();
    p.deploy();
    let why = p.status()["update"]["checkout"]
        .as_str()
        .unwrap_or("")
        .to_string();
    assert!(why.contains("not behind"), "{why}");
    assert!(state() == before, "the person's index was rewritten");
}

#[test]
fn a_full_disk_while_installing_a_release_is_retried_not_held() {
    harness::strace::require_strace();
    let p = Project::new();
    let seed = p.head();
    // The new file the worker release is copied into fails with ENOSPC
    // the first time each supervisor thread creates it.
    let tmp_worker = p.release(&seed).join(".tmp-worker");
    let wrapper = [
        "strace",
        "-f",
        "--seccomp-bpf",
        "-qq",
        "-o",
        "/dev/null",
        "-P",
        tmp_worker.to_str().unwrap(),
        "-e",
        "trace=openat",
        "-e",
        "inject=openat:error=ENOSPC:when=1",
    ];
    let args = p.args(&[]);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let mut sup = Supervisor::spawn_under(&p.dir, &wrapper, None, &args);
    let ready = sup.wait_ready();
    let _kill_real = KillOnDrop(ready["supervisor"]["pid"].as_u64().map(|p| p as u32));

    let (ok, out) = p.update();
    assert!(!ok, "{out}");
    assert!(out.contains("No space left on device"), "{out}");
    let s = p.status();
    assert_eq!(s["update"]["held_commits"], json!([]), "{s}");
    let reason = s["update"]["retry"]["reason"].as_str().unwrap_or_default();
    assert!(reason.contains("cannot install the worker release"), "{s}");
    assert_eq!(s["worker"]["state"], "ready");

    // Tried again (once per thread that has not failed yet), it deploys.
    let mut tries = 1;
    loop {
        let (ok, out) = p.update();
        tries += 1;
        if ok {
            break;
        }
        assert!(out.contains("No space left on device"), "{out}");
        assert!(tries < 6, "still failing after {tries} tries: {out}");
    }
    eprintln!("deployed at try {tries}");
    let s = p.status();
    assert_eq!(s["update"]["deployed_commit"], seed.as_str(), "{s}");
    assert_eq!(s["update"]["held_commits"], json!([]), "{s}");
    assert!(s["update"]["retry"].is_null(), "{s}");
    assert_eq!(p.ping()["commit"], seed.as_str());
}
