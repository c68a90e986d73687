//! A temporary HOME with stand-ins for the service managers: `launchctl`
//! and `systemctl` scripts on PATH that append their arguments to a file.
//! The launchctl one also remembers whether the agent is loaded, as launchd
//! would, and can be told to fail `bootstrap` with error 5; the systemctl
//! one remembers whether the unit is enabled (`is-enabled`). When a test
//! names the pid of a supervisor it started (`serve_as`), `launchctl
//! bootout` and `systemctl --user stop` send it SIGTERM, as the real
//! managers do.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use serde_json::Value;

use crate::supervisor::supervisor_bin;
use crate::worker_bin;

/// The launchd label and the systemd unit the service is installed as.
pub const LABEL: &str = "dev.second-brain.supervisor";

/// How the fake service manager behaves.
#[derive(Clone, Copy, PartialEq)]
pub enum Manager {
    /// Records its arguments and succeeds.
    Working,
    /// Fails as without a user bus / GUI session.
    Unreachable,
    /// Not on PATH at all.
    Missing,
}

/// A temp dir holding HOME, the data and log directories, and a bin dir
/// with the fake `launchctl` and `systemctl`.
pub struct Setup {
    _tmp: tempfile::TempDir,
    pub root: PathBuf,
    pub home: PathBuf,
    pub data: PathBuf,
    pub logs: PathBuf,
    pub fake_bin: PathBuf,
    pub state: PathBuf,
    pub calls: PathBuf,
    missing: bool,
}

const LAUNCHCTL: &str = r#"#!/bin/sh
echo "launchctl $*" >> "@CALLS@"
loaded="@STATE@/launchd-loaded"
fails="@STATE@/bootstrap-fails"
case "$1" in
  bootstrap)
    if [ -e "$fails" ]; then
      [ "$(cat "$fails")" = always ] || rm "$fails"
      echo "Bootstrap failed: 5: Input/output error" >&2; exit 5
    fi
    if [ -e "$loaded" ]; then echo "Bootstrap failed: 5: Input/output error" >&2; exit 5; fi
    [ -f "$3" ] || { echo "Bootstrap failed: 2: No such file or directory" >&2; exit 2; }
    touch "$loaded"
    @START@ ;;
  kickstart)
    [ -e "$loaded" ] || { echo "Could not find service" >&2; exit 113; } ;;
  bootout)
    if [ ! -e "$loaded" ]; then echo "Boot-out failed: 3: No such process" >&2; exit 3; fi
    rm "$loaded"
    [ -e "@STATE@/service-pid" ] && kill -TERM "$(cat "@STATE@/service-pid")" ;;
  print)
    [ -e "$loaded" ] || { echo "Could not find service" >&2; exit 113; } ;;
esac
exit 0
"#;

const SYSTEMCTL: &str = r#"#!/bin/sh
echo "systemctl $*" >> "@CALLS@"
pid="@STATE@/service-pid"
enabled="@STATE@/systemd-enabled"
case "$2" in
  start)
    @START@ ;;
  stop)
    [ -e "$pid" ] && kill -TERM "$(cat "$pid")" ;;
  enable)
    touch "$enabled" ;;
  disable)
    rm -f "$enabled" ;;
  is-enabled)
    if [ -e "$enabled" ]; then echo enabled; else echo disabled; exit 1; fi ;;
esac
exit 0
"#;

/// Starting the service runs the test's `start-cmd`, if it wrote one,
/// detached, and remembers its pid.
const START: &str = r#"[ -e "@STATE@/start-cmd" ] && {
      sh "@STATE@/start-cmd" </dev/null >"@STATE@/start.out" 2>&1 &
      echo $! > "@STATE@/service-pid"
    }"#;

const UNREACHABLE: &str = r#"#!/bin/sh
echo "@NAME@ $*" >> "@CALLS@"
echo "Failed to connect to bus: No medium found" >&2
exit 1
"#;

impl Setup {
    pub fn new(manager: Manager) -> Setup {
        let tmp = crate::temp_dir();
        let root = tmp.path().to_path_buf();
        let home = root.join("home");
        let fake_bin = root.join("fake-bin");
        let state = root.join("fake-state");
        for d in [&home, &fake_bin, &state] {
            fs::create_dir(d).unwrap();
        }
        let calls = root.join("calls.log");
        fs::write(&calls, "").unwrap();
        let fill = |script: &str, name: &str| {
            script
                .replace("@START@", START)
                .replace("@CALLS@", calls.to_str().unwrap())
                .replace("@STATE@", state.to_str().unwrap())
                .replace("@NAME@", name)
        };
        if manager != Manager::Missing {
            for (name, working) in [("launchctl", LAUNCHCTL), ("systemctl", SYSTEMCTL)] {
                let script = match manager {
                    Manager::Working => fill(working, name),
                    _ => fill(UNREACHABLE, name),
                };
                let path = fake_bin.join(name);
                fs::write(&path, script).unwrap();
                fs::set_permissions(&path, fs::Permissions::from_mode(0o755)).unwrap();
            }
        }
        Setup {
            data: home.join("brain-data"),
            logs: root.join("logs"),
            _tmp: tmp,
            root,
            home,
            fake_bin,
            state,
            calls,
            missing: manager == Manager::Missing,
        }
    }

    /// PATH for the supervisor: the fakes first. Without a manager, only
    /// the (empty) fake dir, so no real launchctl or systemctl is found.
    pub fn path(&self) -> String {
        let fake = self.fake_bin.to_str().unwrap().to_string();
        if self.missing {
            return fake;
        }
        match std::env::var("PATH") {
            Ok(p) => format!("{fake}:{p}"),
            Err(_) => fake,
        }
    }

    /// `supervisor ARGS` in this setup's environment: a few §2 settings
    /// set, the others unset.
    pub fn command(&self, args: &[&str]) -> Command {
        self.command_for(&supervisor_bin(), args)
    }

    /// `program ARGS` (a supervisor binary) in this setup's environment.
    pub fn command_for(&self, program: &Path, args: &[&str]) -> Command {
        let mut cmd = Command::new(program);
        cmd.args(args)
            .env("HOME", &self.home)
            .env("PATH", self.path())
            .env("SECOND_BRAIN_DATA_DIR", &self.data)
            .env("LOG_FILE_PATH", &self.logs)
            .env("GIT_POLL_INTERVAL_MS", "0")
            .env("SECOND_BRAIN_BRANCH", "main")
            .env("RUST_LOG", "info,worker=debug")
            .env_remove("LOG_RETENTION_DAYS")
            .env_remove("SECOND_BRAIN_REPO")
            .env_remove("SECOND_BRAIN_WORKER_BIN")
            .env_remove("SECOND_BRAIN_STAGING_DIR")
            .env_remove("XDG_CONFIG_HOME")
            .env_remove("XDG_STATE_HOME")
            .stdin(Stdio::null());
        // The toolchain of the person running the tests, as theirs would
        // be with their own HOME (the temp HOME has none).
        for (name, value) in toolchain_env() {
            cmd.env(name, value);
        }
        cmd
    }

    /// Runs `supervisor ARGS --worker-bin <the built worker>`.
    pub fn run(&self, args: &[&str]) -> Output {
        let mut cmd = self.command(args);
        if args[0] == "install" {
            cmd.arg("--worker-bin").arg(worker_bin());
        }
        cmd.output().expect("run the supervisor")
    }

    pub fn calls(&self) -> Vec<String> {
        fs::read_to_string(&self.calls)
            .unwrap()
            .lines()
            .map(String::from)
            .collect()
    }

    pub fn plist(&self) -> PathBuf {
        self.home
            .join(format!("Library/LaunchAgents/{LABEL}.plist"))
    }

    pub fn unit(&self) -> PathBuf {
        self.home.join(".config/systemd/user/second-brain.service")
    }

    pub fn bin(&self, name: &str) -> PathBuf {
        self.data.join("bin").join(name)
    }

    /// Where the plist sends the supervisor's stdout and stderr.
    pub fn launchd_output(&self) -> PathBuf {
        self.home.join("Library/Logs/second-brain.launchd.log")
    }

    /// Makes the fake `launchctl bootstrap` fail with error 5 `once` or
    /// `always`.
    pub fn fail_bootstrap(&self, how: &str) {
        fs::write(self.state.join("bootstrap-fails"), how).unwrap();
    }

    /// From now on, starting the service through the fake manager runs
    /// `script` (`sh`), whose pid then counts as the service's: `exec` the
    /// supervisor in it. Returns where the pid will be written.
    pub fn start_with(&self, script: &str) -> PathBuf {
        fs::write(self.state.join("start-cmd"), script).unwrap();
        self.state.join("service-pid")
    }

    /// From now on, stopping the service through the fake manager sends
    /// SIGTERM to `pid` (a supervisor the test started itself).
    pub fn serve_as(&self, pid: u32) {
        fs::write(self.state.join("service-pid"), pid.to_string()).unwrap();
    }
}

/// `CARGO_HOME` and `RUSTUP_HOME` as rustup finds them for this test
/// process: set, or under the real HOME.
pub fn toolchain_env() -> [(&'static str, PathBuf); 2] {
    let home = PathBuf::from(std::env::var_os("HOME").expect("HOME is set"));
    let dir = |name: &str, default: &str| {
        std::env::var_os(name)
            .filter(|v| !v.is_empty())
            .map(PathBuf::from)
            .unwrap_or_else(|| home.join(default))
    };
    [
        ("CARGO_HOME", dir("CARGO_HOME", ".cargo")),
        ("RUSTUP_HOME", dir("RUSTUP_HOME", ".rustup")),
    ]
}

pub fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

#[track_caller]
pub fn assert_ok(out: &Output) -> String {
    assert!(
        out.status.success(),
        "failed: {}\nstdout:\n{}\nstderr:\n{}",
        out.status,
        text(&out.stdout),
        text(&out.stderr)
    );
    text(&out.stdout)
}

/// Whether `tool` is on the test's PATH; prints why a check is skipped.
pub fn have(tool: &str) -> bool {
    let found = which::which(tool).is_ok();
    if !found {
        eprintln!("NOTE: `{tool}` is not installed; skipping the checks that need it");
    }
    found
}

/// The plist parsed by Python's plistlib, as JSON.
pub fn parse_plist(path: &Path) -> Value {
    let out = Command::new("python3")
        .args([
            "-c",
            "import plistlib,sys,json; print(json.dumps(plistlib.load(open(sys.argv[1],'rb'))))",
        ])
        .arg(path)
        .output()
        .expect("run python3");
    serde_json::from_str(&assert_ok(&out)).expect("plistlib printed JSON")
}

/// `systemd-analyze verify --user UNIT` in `s`'s HOME.
pub fn systemd_verify(s: &Setup, unit: &Path) -> Output {
    let runtime = s.root.join("runtime");
    let _ = fs::create_dir(&runtime);
    fs::set_permissions(&runtime, fs::Permissions::from_mode(0o700)).unwrap();
    Command::new("systemd-analyze")
        .args(["verify", "--user"])
        .arg(unit)
        .env("HOME", &s.home)
        .env("XDG_RUNTIME_DIR", &runtime)
        .output()
        .expect("run systemd-analyze")
}
