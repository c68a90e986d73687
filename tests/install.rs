//! `supervisor install` and `uninstall` for real against a temporary HOME:
//! real files, real binaries, a real plist parser and `systemd-analyze`.
//! Only `launchctl` and `systemctl` are replaced, by scripts on PATH that
//! append their arguments to a file (the launchctl one also remembers
//! whether the agent is loaded, as launchd would, and can be told to fail
//! `bootstrap` with error 5). The stand-in `git` of one test is the
//! macOS stub that only prints an error.

use std::fs;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};

use harness::service::{
    assert_ok, have, parse_plist, systemd_verify, text, toolchain_env, Manager, Setup, LABEL,
};
use harness::{wait_until, worker_bin, DEADLINE};
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use serde_json::Value;

const SUPERVISOR: &str = env!("CARGO_BIN_EXE_supervisor");

/// A dry run's output: the files (`# file: PATH` and their exact
/// contents), the copies and the commands (`$ …`).
#[derive(Debug, Default)]
struct DryRun {
    files: Vec<(PathBuf, String)>,
    copies: Vec<String>,
    commands: Vec<String>,
}

fn parse_dry_run(out: &str) -> DryRun {
    let mut dry = DryRun::default();
    let mut current: Option<(PathBuf, String)> = None;
    for line in out.split_inclusive('\n') {
        let header = line.starts_with("# file: ") || line.starts_with("# copy: ");
        if header || line.starts_with("$ ") {
            dry.files.extend(current.take());
        }
        if let Some(path) = line.strip_prefix("# file: ") {
            current = Some((PathBuf::from(path.trim_end()), String::new()));
        } else if let Some(copy) = line.strip_prefix("# copy: ") {
            dry.copies.push(copy.trim_end().to_string());
        } else if let Some(cmd) = line.strip_prefix("$ ") {
            dry.commands.push(cmd.trim_end().to_string());
        } else if let Some((_, contents)) = &mut current {
            contents.push_str(line);
        } else {
            panic!("a dry run line outside any file: {line:?}");
        }
    }
    dry.files.extend(current);
    dry
}

/// Every file under `dir`, recursively.
fn tree(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    if let Ok(entries) = fs::read_dir(dir) {
        for e in entries {
            let p = e.unwrap().path();
            out.push(p.clone());
            if p.is_dir() {
                out.extend(tree(&p));
            }
        }
    }
    out
}

/// Mode 0644 or tighter: no one else may write it, and it is not executable.
#[track_caller]
fn assert_service_file_mode(path: &Path) {
    let mode = fs::metadata(path).unwrap().mode() & 0o777;
    assert_eq!(mode & 0o133, 0, "{} has mode {mode:o}", path.display());
}

fn uid() -> u32 {
    nix::unistd::getuid().as_raw()
}

/// The directories of PATH-like text.
fn dirs_of(path: &str) -> Vec<&str> {
    path.split(':').collect()
}

#[test]
fn launchd_dry_run_prints_a_valid_plist_and_changes_nothing() {
    let mut s = Setup::new(Manager::Working);
    // Escaping meets a real plist parser.
    s.data = s.home.join("brain & <data> 'q'");
    let out = s.run(&["install", "--dry-run", "--manager", "launchd"]);
    let dry = parse_dry_run(&assert_ok(&out));
    assert!(
        tree(&s.home).is_empty(),
        "a dry run wrote {:?}",
        tree(&s.home)
    );
    assert!(!s.logs.exists());
    assert!(s.calls().is_empty(), "a dry run ran {:?}", s.calls());

    assert_eq!(dry.files.len(), 1, "{dry:?}");
    let (path, plist_text) = &dry.files[0];
    assert_eq!(path, &s.plist());
    let target = format!("gui/{}/{LABEL}", uid());
    assert_eq!(
        dry.commands,
        [
            format!("launchctl bootout {target}"),
            format!("launchctl enable {target}"),
            format!("launchctl bootstrap gui/{} {}", uid(), s.plist().display()),
        ]
    );
    assert_eq!(
        dry.copies,
        [
            format!(
                "{} -> {}",
                worker_bin().display(),
                s.bin("worker").display()
            ),
            format!("{SUPERVISOR} -> {}", s.bin("supervisor").display()),
        ]
    );

    if !have("python3") {
        return;
    }
    let copy = s.root.join("dry-run.plist");
    fs::write(&copy, plist_text).unwrap();
    let p = parse_plist(&copy);
    assert_eq!(p["Label"], LABEL);
    let supervisor = s.bin("supervisor");
    assert_eq!(
        p["ProgramArguments"],
        serde_json::json!([supervisor.to_str().unwrap(), "run"])
    );
    assert_eq!(p["RunAtLoad"], true);
    assert_eq!(p["KeepAlive"], true);
    let exit_timeout = p["ExitTimeOut"]
        .as_u64()
        .expect("ExitTimeOut is an integer");
    assert!(
        exit_timeout > 10,
        "ExitTimeOut {exit_timeout} must exceed the 10 s stop budget"
    );
    assert!(matches!(
        p["ProcessType"].as_str(),
        Some("Standard" | "Background")
    ));
    assert!(
        p["AbandonProcessGroup"].is_boolean(),
        "stated, not left to the default"
    );
    // Places launchd can always open: the root, and a file directly in
    // ~/Library/Logs, not in a log directory that may be gone.
    for key in ["StandardOutPath", "StandardErrorPath"] {
        assert_eq!(p[key], s.launchd_output().to_str().unwrap(), "{key}");
    }
    assert_eq!(p["WorkingDirectory"], "/");
    assert_eq!(
        p["SoftResourceLimits"]["NumberOfFiles"],
        shared::fdlimit::WANTED_OPEN_FILES
    );

    let env = p["EnvironmentVariables"].as_object().expect("a dict");
    let mut keys: Vec<&str> = env.keys().map(String::as_str).collect();
    keys.sort();
    assert_eq!(
        keys,
        [
            "CARGO_HOME",
            "GIT_POLL_INTERVAL_MS",
            "LOG_FILE_PATH",
            "PATH",
            "RUSTUP_HOME",
            "RUST_LOG",
            "SECOND_BRAIN_BRANCH",
            "SECOND_BRAIN_DATA_DIR"
        ],
        "exactly the settings that are set, plus PATH and the data dir"
    );
    for (name, value) in toolchain_env() {
        assert_eq!(env[name], value.to_str().unwrap(), "{name}");
    }
    assert_eq!(env["SECOND_BRAIN_DATA_DIR"], s.data.to_str().unwrap());
    assert_eq!(env["LOG_FILE_PATH"], s.logs.to_str().unwrap());
    assert_eq!(env["GIT_POLL_INTERVAL_MS"], "0");
    assert_eq!(env["RUST_LOG"], "info,worker=debug");
    let path = env["PATH"].as_str().unwrap();
    let dirs = dirs_of(path);
    assert!(
        dirs.contains(&s.home.join(".cargo/bin").to_str().unwrap()),
        "{path}"
    );
    assert!(dirs.iter().all(|d| Path::new(d).is_absolute()), "{path}");
    for tool in ["git", "cargo"] {
        if let Ok(found) = which::which_in(tool, Some(s.path()), "/") {
            let dir = found.parent().unwrap().to_str().unwrap();
            assert!(dirs.contains(&dir), "PATH {path} lacks {tool} in {dir}");
        }
    }
}

#[test]
fn launchd_install_and_uninstall_twice() {
    let s = Setup::new(Manager::Working);
    let dry = parse_dry_run(&assert_ok(&s.run(&[
        "install",
        "--dry-run",
        "--manager",
        "launchd",
    ])));
    let target = format!("gui/{}/{LABEL}", uid());
    let domain = format!("gui/{}", uid());
    let plist = s.plist().to_str().unwrap().to_string();

    let out = assert_ok(&s.run(&["install", "--manager", "launchd"]));
    assert!(out.contains("Background Items Added"), "{out}");
    assert_eq!(
        fs::read_to_string(s.plist()).unwrap(),
        dry.files[0].1,
        "as the dry run said"
    );
    assert_service_file_mode(&s.plist());
    for bin in ["supervisor", "worker"] {
        let meta = fs::metadata(s.bin(bin)).unwrap();
        assert_eq!(meta.mode() & 0o777, 0o700, "{bin}");
        assert_eq!(
            meta.len(),
            fs::metadata(if bin == "worker" {
                worker_bin()
            } else {
                SUPERVISOR.into()
            })
            .unwrap()
            .len()
        );
    }
    assert!(
        s.logs.is_dir(),
        "the log directory exists for StandardOutPath"
    );
    if have("python3") {
        let p = parse_plist(&s.plist());
        assert!(Path::new(p["ProgramArguments"][0].as_str().unwrap()).is_file());
        assert!(Path::new(p["WorkingDirectory"].as_str().unwrap()).is_dir());
        for key in ["StandardOutPath", "StandardErrorPath"] {
            assert!(Path::new(p[key].as_str().unwrap()).is_file(), "{key}");
        }
    }
    // Made by install, private: launchd would create it readable by all.
    let output = fs::metadata(s.launchd_output()).unwrap();
    assert_eq!(output.mode() & 0o777, 0o600);
    assert_eq!(output.len(), 0);
    let first = [
        format!("launchctl bootout {target}"),
        format!("launchctl print {target}"),
        format!("launchctl enable {target}"),
        format!("launchctl bootstrap {domain} {plist}"),
    ];
    assert_eq!(s.calls(), first);

    // Again: the loaded agent is booted out before the bootstrap (the fake
    // refuses a bootstrap while loaded, as launchd does).
    let old_inode = fs::metadata(s.bin("supervisor")).unwrap().ino();
    assert_ok(&s.run(&["install", "--manager", "launchd"]));
    assert_eq!(s.calls()[4..], first);
    assert_ne!(
        fs::metadata(s.bin("supervisor")).unwrap().ino(),
        old_inode,
        "replaced, not rewritten"
    );
    assert_eq!(fs::read_to_string(s.plist()).unwrap(), dry.files[0].1);

    let out = assert_ok(&s.run(&["uninstall", "--manager", "launchd"]));
    assert!(out.contains("Kept"), "{out}");
    assert!(!s.plist().exists());
    assert_eq!(s.calls()[8..], [format!("launchctl bootout {target}")]);
    assert!(s.bin("supervisor").is_file() && s.data.is_dir() && s.logs.is_dir());

    let out = assert_ok(&s.run(&["uninstall", "--manager", "launchd"]));
    assert!(out.contains("not installed"), "{out}");
    assert_eq!(s.calls().len(), 9, "nothing left to run: {:?}", s.calls());
}

/// `systemd-analyze verify --user` on `unit`, with a private runtime dir.
#[test]
fn systemd_unit_passes_systemd_analyze_verify() {
    if !have("systemd-analyze") {
        return;
    }
    let mut s = Setup::new(Manager::Working);
    // Quoting and specifier escaping meet systemd's own parser: an
    // unescaped `%h` would become the home directory.
    s.data = s.home.join("brain data %h 100%");
    let dry = parse_dry_run(&assert_ok(&s.run(&[
        "install",
        "--dry-run",
        "--manager",
        "systemd",
    ])));
    let (path, unit) = &dry.files[0];
    assert_eq!(path, &s.unit());
    // Before the install its ExecStart binary does not exist: verify says so.
    let early = s.root.join("second-brain.service");
    fs::write(&early, unit).unwrap();
    let out = systemd_verify(&s, &early);
    assert!(
        !out.status.success(),
        "verify must check ExecStart: {out:?}"
    );
    assert!(
        text(&out.stderr).contains("not executable"),
        "{}",
        text(&out.stderr)
    );

    assert_ok(&s.run(&["install", "--manager", "systemd"]));
    assert_eq!(&fs::read_to_string(s.unit()).unwrap(), unit);
    let out = systemd_verify(&s, &s.unit());
    let complaints: Vec<String> = text(&out.stderr)
        .lines()
        .filter(|l| l.contains("second-brain"))
        .map(String::from)
        .collect();
    assert!(out.status.success() && complaints.is_empty(), "{out:?}");
}

#[test]
fn systemd_install_and_uninstall_twice() {
    let s = Setup::new(Manager::Working);
    let out = assert_ok(&s.run(&["install", "--manager", "systemd"]));
    assert!(out.contains("loginctl enable-linger"), "{out}");
    assert_service_file_mode(&s.unit());
    let unit = fs::read_to_string(s.unit()).unwrap();
    let supervisor = s.bin("supervisor");
    assert!(unit.contains(&format!("\nExecStart=\"{}\" run\n", supervisor.display())));
    assert!(unit.contains(&format!(
        "\nEnvironment=\"SECOND_BRAIN_DATA_DIR={}\"\n",
        s.data.display()
    )));
    for key in [
        "Restart=always",
        "RestartSec=",
        "TimeoutStopSec=30",
        "KillMode=",
        "WantedBy=default.target",
    ] {
        assert!(unit.contains(&format!("\n{key}")), "{key} missing:\n{unit}");
    }
    assert!(supervisor.is_file() && s.bin("worker").is_file());
    let install = [
        "systemctl --user daemon-reload",
        "systemctl --user enable second-brain.service",
        "systemctl --user restart second-brain.service",
    ];
    assert_eq!(s.calls(), install);

    assert_ok(&s.run(&["install", "--manager", "systemd"]));
    assert_eq!(s.calls()[3..], install);
    assert_eq!(
        fs::read_to_string(s.unit()).unwrap(),
        unit,
        "the same result"
    );

    assert_ok(&s.run(&["uninstall", "--manager", "systemd"]));
    assert!(!s.unit().exists());
    assert_eq!(
        s.calls()[6..],
        [
            "systemctl --user disable --now second-brain.service",
            "systemctl --user daemon-reload"
        ]
    );
    assert!(
        supervisor.is_file() && s.data.is_dir(),
        "binaries and data stay"
    );
    let out = assert_ok(&s.run(&["uninstall", "--manager", "systemd"]));
    assert!(out.contains("not installed"), "{out}");
    assert_eq!(s.calls().len(), 8);
}

#[test]
fn an_unreachable_systemd_fails_clearly_and_leaves_a_valid_unit() {
    let s = Setup::new(Manager::Unreachable);
    let out = s.run(&["install", "--manager", "systemd"]);
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    let err = text(&out.stderr);
    assert!(err.contains("Failed to connect to bus"), "{err}");
    assert!(
        err.contains("loginctl enable-linger"),
        "says what to do: {err}"
    );
    assert!(
        err.contains(s.unit().to_str().unwrap()),
        "names the file: {err}"
    );
    assert_eq!(s.calls(), ["systemctl --user daemon-reload"]);
    // What was written is complete: the same as a dry run prints.
    let dry = parse_dry_run(&assert_ok(&s.run(&[
        "install",
        "--dry-run",
        "--manager",
        "systemd",
    ])));
    assert_eq!(fs::read_to_string(s.unit()).unwrap(), dry.files[0].1);
    assert!(s.bin("supervisor").is_file() && s.bin("worker").is_file());
    if have("systemd-analyze") {
        let verified = systemd_verify(&s, &s.unit());
        assert!(verified.status.success(), "{verified:?}");
    }
    // Uninstall cannot reach it either: it says so and keeps the unit.
    let out = s.run(&["uninstall", "--manager", "systemd"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(s.unit().exists());
}

#[test]
fn a_missing_launchctl_fails_clearly_and_leaves_a_valid_plist() {
    let s = Setup::new(Manager::Missing);
    let out = s.run(&["install", "--manager", "launchd"]);
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    let err = text(&out.stderr);
    assert!(err.contains("`launchctl` is not on PATH"), "{err}");
    assert!(err.contains("only on macOS"), "says what to do: {err}");
    let dry = parse_dry_run(&assert_ok(&s.run(&[
        "install",
        "--dry-run",
        "--manager",
        "launchd",
    ])));
    assert_eq!(fs::read_to_string(s.plist()).unwrap(), dry.files[0].1);
    if have("python3") {
        assert_eq!(parse_plist(&s.plist())["Label"], LABEL);
    }
}

#[test]
fn an_invalid_setting_is_refused_before_anything_is_written() {
    let s = Setup::new(Manager::Working);
    let out = s
        .command(&["install", "--manager", "systemd"])
        .env("GIT_POLL_INTERVAL_MS", "abc")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    assert!(text(&out.stderr).contains("GIT_POLL_INTERVAL_MS"));
    assert!(tree(&s.home).is_empty() && s.calls().is_empty());
}

/// A `supervisor run`, killed on drop if still running.
struct Running(Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn the_installed_supervisor_serves_and_reports_the_service() {
    let s = Setup::new(Manager::Working);
    assert_ok(&s.run(&["install", "--manager", "systemd"]));
    let unit = fs::read_to_string(s.unit()).unwrap();
    let service_path = unit
        .lines()
        .find_map(|l| l.strip_prefix("Environment=\"PATH=")?.strip_suffix('"'))
        .expect("the unit sets PATH")
        .to_string();

    // Start it as systemd would: the installed copy, the unit's PATH, in
    // the root directory.
    assert!(unit.contains("\nWorkingDirectory=/\n"), "{unit}");
    let mut run = Running(
        s.command_for(&s.bin("supervisor"), &["run"])
            .env("PATH", &service_path)
            .current_dir("/")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start the installed supervisor"),
    );
    let status = wait_until(
        DEADLINE,
        "the installed supervisor's worker to be ready",
        || {
            let out = s.command(&["status", "--json"]).output().unwrap();
            out.status
                .success()
                .then(|| serde_json::from_slice::<Value>(&out.stdout).unwrap())
        },
    );
    assert_eq!(
        status["worker"]["binary"],
        s.bin("worker").to_str().unwrap(),
        "its sibling"
    );
    let service = &status["service"];
    assert_eq!(service["manager"], "systemd");
    assert_eq!(service["installed"], true);
    assert_eq!(service["unit_path"], s.unit().to_str().unwrap());
    for tool in ["git", "cargo"] {
        let expected = which::which_in(tool, Some(&service_path), "/")
            .ok()
            .map(|p| p.to_string_lossy().into_owned());
        assert_eq!(service[tool].as_str().map(String::from), expected, "{tool}");
    }
    let human = assert_ok(&s.command(&["status"]).output().unwrap());
    assert!(human.contains("systemd installed"), "{human}");
    assert!(human.contains("git "), "{human}");

    // Uninstalled: the same supervisor now says so.
    assert_ok(&s.run(&["uninstall", "--manager", "systemd"]));
    let out = s.command(&["status", "--json"]).output().unwrap();
    let after: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(after["service"]["installed"], false);

    kill(Pid::from_raw(run.0.id() as i32), Signal::SIGTERM).unwrap();
    let exited = wait_until(DEADLINE, "the supervisor to exit", || {
        run.0.try_wait().unwrap()
    });
    assert!(exited.success(), "{exited}");
}

/// The launchd calls of one install whose bootstrap failed once.
fn install_calls_with_a_retry(s: &Setup) -> Vec<String> {
    let target = format!("gui/{}/{LABEL}", uid());
    let bootstrap = format!("launchctl bootstrap gui/{} {}", uid(), s.plist().display());
    vec![
        format!("launchctl bootout {target}"),
        format!("launchctl print {target}"),
        format!("launchctl enable {target}"),
        bootstrap.clone(),
        format!("launchctl print {target}"),
        bootstrap,
    ]
}

#[test]
fn a_bootstrap_failing_with_error_5_is_tried_once_more() {
    let s = Setup::new(Manager::Working);

    // Once: the second try loads it.
    s.fail_bootstrap("once");
    let out = assert_ok(&s.run(&["install", "--manager", "launchd"]));
    assert!(out.contains("trying once more"), "{out}");
    assert_eq!(s.calls(), install_calls_with_a_retry(&s));
    assert!(s.state.join("launchd-loaded").exists(), "loaded");

    // Always: a clear error, exit status 1, the plist in place.
    let s = Setup::new(Manager::Working);
    s.fail_bootstrap("always");
    let out = s.run(&["install", "--manager", "launchd"]);
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    let err = text(&out.stderr);
    for words in [
        "5: Input/output error",
        "twice",
        "System Settings > General > Login Items",
        &format!("launchctl print gui/{}/{LABEL}", uid()),
        &format!("{} is in place and complete", s.plist().display()),
    ] {
        assert!(err.contains(words), "{words:?} missing: {err}");
    }
    assert_eq!(
        s.calls(),
        install_calls_with_a_retry(&s),
        "two bootstraps, no more"
    );
    assert!(!s.state.join("launchd-loaded").exists());
}

#[test]
fn cargo_home_and_rustup_home_go_into_the_service_when_set() {
    let s = Setup::new(Manager::Working);
    let dry = |manager: &str| {
        let out = s
            .command(&["install", "--dry-run", "--manager", manager])
            .arg("--worker-bin")
            .arg(worker_bin())
            .env("CARGO_HOME", "/opt/rust/cargo")
            // Relative: written as rustup would read it, from here.
            .env("RUSTUP_HOME", "rustup-here")
            .env("SECOND_BRAIN_STAGING_DIR", "/var/build/sb-staging")
            .current_dir(&s.root)
            .output()
            .unwrap();
        parse_dry_run(&assert_ok(&out)).files.remove(0).1
    };
    let rustup_home = s.root.join("rustup-here");
    let unit = dry("systemd");
    assert!(
        unit.contains("\nEnvironment=\"CARGO_HOME=/opt/rust/cargo\"\n"),
        "{unit}"
    );
    let line = format!("\nEnvironment=\"RUSTUP_HOME={}\"\n", rustup_home.display());
    assert!(unit.contains(&line), "{unit}");
    assert!(unit.contains("/opt/rust/cargo/bin:"), "on PATH: {unit}");
    assert!(
        unit.contains("\nEnvironment=\"SECOND_BRAIN_STAGING_DIR=/var/build/sb-staging\"\n"),
        "the chosen staging dir: {unit}"
    );

    let plist = dry("launchd");
    if have("python3") {
        let copy = s.root.join("dry-run.plist");
        fs::write(&copy, &plist).unwrap();
        let env = parse_plist(&copy)["EnvironmentVariables"].clone();
        assert_eq!(env["CARGO_HOME"], "/opt/rust/cargo");
        assert_eq!(env["RUSTUP_HOME"], rustup_home.to_str().unwrap());
    } else {
        assert!(plist.contains("<key>CARGO_HOME</key>"), "{plist}");
    }
    // Unset or empty: not there (the other tests check the exact keys).
    let out = s
        .command(&["install", "--dry-run", "--manager", "systemd"])
        .arg("--worker-bin")
        .arg(worker_bin())
        .env("CARGO_HOME", "")
        .env_remove("RUSTUP_HOME")
        .output()
        .unwrap();
    let unit = parse_dry_run(&assert_ok(&out)).files.remove(0).1;
    assert!(
        !unit.contains("Environment=\"CARGO_HOME") && !unit.contains("Environment=\"RUSTUP_HOME")
    );
}

/// A `git` that behaves as macOS's `/usr/bin/git` without the Command Line
/// Tools: it prints the stub's message and exits 1, and counts its runs.
fn stub_git(s: &Setup) -> PathBuf {
    let runs = s.root.join("stub-git-runs");
    let script = format!(
        "#!/bin/sh\necho \"git $*\" >> '{}'\n\
         echo 'xcode-select: note: No developer tools were found, requesting install.' >&2\n\
         echo \"If developer tools are located at a non-default location on disk, use \
         \\`sudo xcode-select --switch path/to/Xcode.app\\` to specify the Xcode\" >&2\n\
         exit 1\n",
        runs.display()
    );
    let git = s.fake_bin.join("git");
    fs::write(&git, script).unwrap();
    fs::set_permissions(&git, fs::Permissions::from_mode(0o755)).unwrap();
    runs
}

fn lines_of(path: &Path) -> Vec<String> {
    fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .map(String::from)
        .collect()
}

#[test]
fn a_git_that_does_not_run_is_named_at_install_status_and_update() {
    let s = Setup::new(Manager::Working);
    let runs = stub_git(&s);
    let git = s.fake_bin.join("git");
    let out = s.run(&["install", "--manager", "systemd"]);
    let err = text(&out.stderr);
    assert!(out.status.success(), "only a warning: {out:?}");
    let warning = err
        .lines()
        .find(|l| l.starts_with("warning: `git` does not run"))
        .unwrap_or_else(|| panic!("no warning about git: {err}"));
    assert!(warning.contains(git.to_str().unwrap()), "{warning}");
    assert!(warning.contains("xcode-select --install"), "{warning}");
    assert!(!err.contains("`cargo` does not run"), "{err}");
    assert_eq!(lines_of(&runs), ["git --version"]);

    // The supervisor checks it once at start; `status` only reports that.
    let repo = s.root.join("repo");
    fs::create_dir(&repo).unwrap();
    let mut run = Running(
        s.command(&["run", "--worker-bin"])
            .arg(worker_bin())
            .env("SECOND_BRAIN_REPO", &repo)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start the supervisor"),
    );
    let status = wait_until(DEADLINE, "status to name the git that does not run", || {
        let out = s.command(&["status", "--json"]).output().unwrap();
        let v: Value = serde_json::from_slice(&out.stdout).ok()?;
        v["service"]["git_error"].is_string().then_some(v)
    });
    let service = &status["service"];
    assert_eq!(service["git"], git.to_str().unwrap());
    let e = service["git_error"].as_str().unwrap();
    assert!(e.contains("xcode-select --install"), "{e}");
    assert!(service["cargo_error"].is_null(), "{service}");
    let human = text(&s.command(&["status"]).output().unwrap().stdout);
    assert!(human.contains("(DOES NOT RUN)"), "{human}");
    for _ in 0..5 {
        s.command(&["status", "--json"]).output().unwrap();
    }
    assert_eq!(lines_of(&runs).len(), 2, "status runs nothing");

    // An update checks again (asked for: not from the cache) and says
    // why it cannot poll, instead of running `git fetch` with it.
    let out = s.command(&["update"]).output().unwrap();
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    let err = text(&out.stderr);
    assert!(
        err.contains("cannot poll") && err.contains("xcode-select --install"),
        "{err}"
    );
    assert_eq!(lines_of(&runs), ["git --version"; 3]);
    let v: Value =
        serde_json::from_slice(&s.command(&["status", "--json"]).output().unwrap().stdout).unwrap();
    let last = v["update"]["last_error"].as_str().unwrap();
    assert!(last.contains(git.to_str().unwrap()), "{last}");

    kill(Pid::from_raw(run.0.id() as i32), Signal::SIGTERM).unwrap();
    wait_until(DEADLINE, "the supervisor to exit", || {
        run.0.try_wait().unwrap()
    });
}

/// The privacy warnings of an install dry run watching `repo`.
fn privacy_warnings(s: &Setup, repo: &Path, manager: &str) -> Vec<String> {
    let out = s
        .command(&["install", "--dry-run", "--manager", manager])
        .arg("--worker-bin")
        .arg(worker_bin())
        .env("SECOND_BRAIN_REPO", repo)
        .output()
        .unwrap();
    assert_ok(&out);
    text(&out.stderr)
        .lines()
        .filter(|l| l.contains("privacy protection"))
        .map(String::from)
        .collect()
}

#[test]
fn install_warns_about_paths_under_macos_privacy_protection() {
    let s = Setup::new(Manager::Working);
    let documents = s.home.join("Documents/brain");
    fs::create_dir_all(&documents).unwrap();
    let elsewhere = s.home.join("src/brain");
    fs::create_dir_all(&elsewhere).unwrap();
    // A link from elsewhere into ~/Documents is found out.
    let link = s.home.join("brain-link");
    std::os::unix::fs::symlink(&documents, &link).unwrap();
    for repo in [&documents, &link] {
        let found = privacy_warnings(&s, repo, "launchd");
        assert_eq!(found.len(), 1, "{repo:?}: {found:?}");
        let w = &found[0];
        assert!(
            w.contains(&format!("watched repository {}", repo.display())),
            "{w}"
        );
        assert!(
            w.contains("~/Documents") && w.contains("Full Disk Access"),
            "{w}"
        );
    }
    assert!(privacy_warnings(&s, &elsewhere, "launchd").is_empty());
    assert!(
        privacy_warnings(&s, &documents, "systemd").is_empty(),
        "no TCC there"
    );

    // The data directory counts too.
    let mut s = s;
    s.data = s.home.join("Desktop/brain-data");
    let found = privacy_warnings(&s, &elsewhere, "launchd");
    assert_eq!(found.len(), 1, "{found:?}");
    assert!(found[0].contains("data directory") && found[0].contains("~/Desktop"));
}

#[test]
fn started_through_a_link_the_supervisor_uses_its_real_directory() {
    let s = Setup::new(Manager::Working);
    let link_dir = s.root.join("link-bin");
    fs::create_dir(&link_dir).unwrap();
    let link = link_dir.join("supervisor");
    std::os::unix::fs::symlink(SUPERVISOR, &link).unwrap();
    // No --worker-bin: the worker beside the real executable is the one.
    let out = s
        .command_for(&link, &["install", "--dry-run", "--manager", "launchd"])
        .output()
        .unwrap();
    let dry = parse_dry_run(&assert_ok(&out));
    let real = fs::canonicalize(SUPERVISOR).unwrap();
    assert_eq!(
        dry.copies,
        [
            format!(
                "{} -> {}",
                real.with_file_name("worker").display(),
                s.bin("worker").display()
            ),
            format!("{} -> {}", real.display(), s.bin("supervisor").display()),
        ],
        "found beside {}, not beside the link in {}",
        real.display(),
        link_dir.display()
    );
}
