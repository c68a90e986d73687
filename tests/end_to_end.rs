//! The service's end-to-end checklist, automated: one data directory, one
//! watched project (a bare origin and clones), the real supervisor and
//! worker, real git and cargo, and the recording fake `launchctl` and
//! `systemctl` for the install step. The checkpoints run in order, and a
//! failure names the checkpoint it happened in.

use std::fs;
use std::path::Path;
use std::process::Output;
use std::time::{Duration, Instant, SystemTime};

use harness::project::{append, Project, BUILD_DEADLINE};
use harness::service::{assert_ok, have, parse_plist, systemd_verify, text, Manager, Setup, LABEL};
use harness::supervisor::{supervisor_cmd, worker_pid, Supervisor};
use harness::{ids, put_id, wait_until, Conn, DEADLINE};
use nix::sys::signal::Signal;
use serde_json::{json, Value};

/// Polling interval of the service under test.
const POLL_MS: u64 = 1000;

/// Names the checkpoint a failure happens in, whatever fails (an assert
/// here or a deadline in the harness).
struct Checkpoint(&'static str);

impl Checkpoint {
    fn enter(name: &'static str) -> Checkpoint {
        eprintln!("== checkpoint {name}");
        Checkpoint(name)
    }
}

impl Drop for Checkpoint {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!("FAILED at checkpoint {}", self.0);
        } else {
            eprintln!("== passed {}", self.0);
        }
    }
}

fn start(p: &Project) -> Supervisor {
    p.start(&[
        "--poll-interval-ms",
        &POLL_MS.to_string(),
        "--log-retention-days",
        "7",
    ])
}

fn status(p: &Project) -> Value {
    p.status()
}

/// `supervisor ARGS` on the project's data directory, in `s`'s HOME with
/// the fake managers, watching the project's checkout.
fn service_cmd(s: &Setup, p: &Project, args: &[&str]) -> Output {
    s.command(args)
        .arg("--data-dir")
        .arg(&p.dir.data)
        .env("SECOND_BRAIN_REPO", &p.checkout)
        .env("LOG_FILE_PATH", p.dir.root().join("logs"))
        .output()
        .expect("run the supervisor")
}

fn log_file_aged(dir: &Path, name: &str, days: u64) -> std::path::PathBuf {
    let path = dir.join(name);
    fs::write(&path, "an old line\n").unwrap();
    let f = fs::File::options().write(true).open(&path).unwrap();
    f.set_modified(SystemTime::now() - Duration::from_secs(days * 86_400))
        .unwrap();
    path
}

#[test]
fn the_service_checklist_in_order() {
    let p = Project::new();
    let logs = p.dir.root().join("logs");
    fs::create_dir_all(&logs).unwrap();
    let expired = log_file_aged(&logs, "worker.2020-01-01.log", 8);
    let kept = log_file_aged(&logs, "supervisor.2020-01-07.log", 6);
    let mut sup = start(&p);
    let seed = p.head();
    let ids_wanted: Vec<String> = (0..20).map(|i| format!("e2e-{i:02}")).collect();

    {
        let _cp = Checkpoint::enter("1: sessions survive a restart");
        let mut conn = Conn::connect(&p.dir.sock());
        for id in &ids_wanted {
            assert_eq!(put_id(&mut conn, id)["ok"], true, "put {id}");
        }
        let before = worker_pid(&status(&p));
        let out = supervisor_cmd(&p.dir.data, &["restart"]).output().unwrap();
        assert_ok(&out);
        let after = worker_pid(&status(&p));
        assert_ne!(before, after, "a new worker serves after the restart");
        assert_eq!(ids(&mut Conn::connect(&p.dir.sock())), ids_wanted);
        // And a worker killed outright is restarted with every session.
        nix::sys::signal::kill(nix::unistd::Pid::from_raw(after as i32), Signal::SIGKILL).unwrap();
        wait_until(DEADLINE, "a worker after the SIGKILL", || {
            let s = status(&p);
            (s["worker"]["state"] == "ready" && worker_pid(&s) != after).then_some(())
        });
        assert_eq!(ids(&mut Conn::connect(&p.dir.sock())), ids_wanted);
    }

    {
        let _cp = Checkpoint::enter("2: Ctrl-C saves and the next start restores");
        sup.signal(Signal::SIGINT);
        assert!(
            sup.wait_exit().success(),
            "the supervisor exits 0 on SIGINT"
        );
        let saved = p.dir.snapshot();
        assert_eq!(
            saved.keys().cloned().collect::<Vec<_>>(),
            ids_wanted,
            "sessions.json after Ctrl-C"
        );
        sup = start(&p);
        assert_eq!(ids(&mut Conn::connect(&p.dir.sock())), ids_wanted);
    }

    {
        let _cp = Checkpoint::enter("3: logs in the log dir, old files deleted");
        let today = &shared::time::rfc3339(SystemTime::now())[..10];
        for name in ["supervisor", "worker"] {
            let file = logs.join(format!("{name}.{today}.log"));
            wait_until(DEADLINE, "today's log files", || {
                fs::metadata(&file).ok().filter(|m| m.len() > 0)
            });
        }
        assert!(sup.log_text("supervisor").contains("worker ready"));
        // `supervisor logs` shows both processes, marked.
        let out = supervisor_cmd(&p.dir.data, &["logs", "-n", "400", "--log-dir"])
            .arg(&logs)
            .output()
            .unwrap();
        let shown = assert_ok(&out);
        assert!(
            shown.lines().any(|l| l.starts_with("supervisor | "))
                && shown.lines().any(|l| l.starts_with("worker     | ")),
            "{shown}"
        );
        assert!(!expired.exists(), "a log file past the retention is kept");
        assert!(kept.exists(), "a log file within the retention is deleted");
    }

    let s = Setup::new(Manager::Working);
    {
        let _cp = Checkpoint::enter("4: install and uninstall, files checked");
        assert_ok(&service_cmd(&s, &p, &["install", "--manager", "launchd"]));
        if have("python3") {
            let plist = parse_plist(&s.plist());
            assert_eq!(plist["Label"], LABEL);
            assert_eq!(
                plist["ProgramArguments"],
                json!([p.dir.data.join("bin/supervisor").to_str().unwrap(), "run"])
            );
        }
        assert_ok(&service_cmd(&s, &p, &["uninstall", "--manager", "launchd"]));
        assert!(!s.plist().exists(), "uninstall removes the plist");
        assert_ok(&service_cmd(&s, &p, &["install", "--manager", "systemd"]));
        if have("systemd-analyze") {
            let verify = systemd_verify(&s, &s.unit());
            assert!(verify.status.success(), "{verify:?}");
        }
        assert_ok(&service_cmd(&s, &p, &["uninstall", "--manager", "systemd"]));
        assert!(!s.unit().exists(), "uninstall removes the unit");
        let calls = s.calls();
        assert!(
            calls.iter().any(|c| c.starts_with("launchctl bootstrap"))
                && calls.iter().any(|c| c.starts_with("launchctl bootout"))
                && calls.iter().any(|c| c.contains("systemctl --user restart"))
                && calls
                    .iter()
                    .any(|c| c.contains("systemctl --user disable --now")),
            "{calls:?}"
        );
        // Installed again for the rest of the checklist (and doctor).
        assert_ok(&service_cmd(&s, &p, &["install", "--manager", "systemd"]));
        // The running service was not disturbed.
        assert_eq!(ids(&mut Conn::connect(&p.dir.sock())), ids_wanted);
    }

    let pushed;
    {
        let _cp = Checkpoint::enter("5: a push is pulled, built and served");
        // The seed first: the worker the test built is replaced by a
        // release built from the watched checkout.
        wait_until(BUILD_DEADLINE, "the seed deployed by polling", || {
            (status(&p)["update"]["deployed_commit"] == seed.as_str()).then_some(())
        });
        let pushed_at = Instant::now();
        pushed = p.push("worker/src/lib.rs", append("// end to end"), "e2e push");
        wait_until(BUILD_DEADLINE, "the push serving", || {
            let s = status(&p);
            (s["update"]["deployed_commit"] == pushed.as_str()
                && s["worker"]["commit"] == pushed.as_str()
                && s["update"]["state"] == "idle")
                .then_some(())
        });
        eprintln!(
            "the push served {:.1} s after it was pushed (poll every {} ms, plus the build)",
            pushed_at.elapsed().as_secs_f64(),
            POLL_MS
        );
        assert_eq!(p.ping()["commit"], pushed.as_str());
        assert_eq!(
            harness::git(&p.checkout, &["rev-parse", "HEAD"]),
            pushed,
            "the clean checkout was fast-forwarded: {}; git status: {}",
            status(&p)["update"],
            harness::git(&p.checkout, &["status", "--short"])
        );
        assert_eq!(ids(&mut Conn::connect(&p.dir.sock())), ids_wanted);
    }

    {
        let _cp = Checkpoint::enter("6: status and doctor report all of it");
        let st = status(&p);
        assert_eq!(st["worker"]["state"], "ready", "{st}");
        assert_eq!(st["sessions"]["count"], ids_wanted.len(), "{st}");
        assert_eq!(st["store"]["state"], "ok", "{st}");
        assert_eq!(st["update"]["deployed_commit"], pushed.as_str());
        assert_eq!(st["update"]["held_commits"], json!([]));
        assert!(st["update"]["last_error"].is_null(), "{st}");
        assert_eq!(st["paths"]["log_dir"], logs.to_str().unwrap());
        let human = supervisor_cmd(&p.dir.data, &["status"]).output().unwrap();
        let said = assert_ok(&human);
        assert!(said.contains(&pushed[..12]), "{said}");
        assert!(text(&human.stdout).contains("store      ok"), "{said}");
        let asked = Instant::now();
        let doctor = service_cmd(&s, &p, &["doctor"]);
        eprintln!(
            "doctor took {:.0} ms:\n{}",
            asked.elapsed().as_secs_f64() * 1000.0,
            text(&doctor.stdout)
        );
        let said = text(&doctor.stdout);
        assert_eq!(
            doctor.status.code(),
            Some(0),
            "{said}{}",
            text(&doctor.stderr)
        );
        let lines: Vec<&str> = said.lines().collect();
        assert!(
            lines.len() >= 14 && lines.iter().all(|l| l.starts_with("✓ ")),
            "{said}"
        );
        assert!(
            said.contains(&format!("{} sessions", ids_wanted.len())),
            "{said}"
        );
    }

    sup.signal(Signal::SIGTERM);
    assert!(sup.wait_exit().success());
}
