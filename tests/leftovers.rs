//! A supervisor killed in the middle of a build leaves its cargo process
//! group running; the next supervisor to start on the staging area kills
//! it, and leaves alone what a live supervisor runs there. A fake `cargo`
//! that sleeps stands in for the build: no real cargo runs here.

mod support;

use std::ffi::OsString;
use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::PathBuf;
use std::process::Stdio;

use nix::sys::signal::{killpg, Signal};
use nix::unistd::Pid;
use support::supervisor::{alive, supervisor_cmd, Supervisor};
use support::{git, names_number, wait_until, worker_bin, TestDir, DEADLINE};

/// A bare origin with one commit and the watched clone of it, a fake
/// `cargo` that records its pid and its child's and sleeps, and the
/// staging area, all in `dir`.
struct Setup {
    checkout: PathBuf,
    staging: PathBuf,
    path: OsString,
    pids: PathBuf,
}

impl Setup {
    fn new(dir: &TestDir) -> Setup {
        let root = dir.root();
        let seed = root.join("seed");
        fs::create_dir(&seed).unwrap();
        fs::write(seed.join("README"), "a project\n").unwrap();
        git(&seed, &["init", "-q", "-b", "main"]);
        git(&seed, &["add", "-A"]);
        git(&seed, &["commit", "-q", "-m", "seed"]);
        let origin = root.join("origin.git");
        let checkout = root.join("checkout");
        git(root, &["clone", "-q", "--bare", "seed", "origin.git"]);
        git(root, &["clone", "-q", origin.to_str().unwrap(), "checkout"]);

        let bin = root.join("fake-bin");
        fs::create_dir(&bin).unwrap();
        let pids = root.join("cargo.pids");
        // It answers `--version` (the supervisor checks that cargo runs)
        // and otherwise must not exec: its pid leads the group, running
        // `cargo`.
        let script = format!(
            "#!/bin/sh\n[ \"$1\" = --version ] && {{ echo 'cargo 1.0.0 (fake)'; exit 0; }}\n\
             sleep 600 &\necho \"$$ $!\" > {p}.tmp && mv {p}.tmp {p}\nwait\n",
            p = pids.display()
        );
        fs::write(bin.join("cargo"), script).unwrap();
        fs::set_permissions(bin.join("cargo"), fs::Permissions::from_mode(0o755)).unwrap();
        let mut path = bin.into_os_string();
        path.push(":");
        path.push(std::env::var_os("PATH").unwrap_or_default());
        Setup {
            checkout,
            staging: root.join("staging"),
            path,
            pids,
        }
    }

    fn start(&self, dir: &TestDir) -> Supervisor {
        let args = [
            "--repo",
            self.checkout.to_str().unwrap(),
            "--staging-dir",
            self.staging.to_str().unwrap(),
            "--build-profile",
            "dev",
        ];
        let env = [("PATH", self.path.as_os_str())];
        let mut sup = Supervisor::spawn_env(dir, Some(&worker_bin()), &args, &env);
        sup.wait_ready();
        sup
    }

    /// The fake cargo's pid (its group's id) and its sleeping child's.
    fn cargo_pids(&self) -> Option<(u32, u32)> {
        let text = fs::read_to_string(&self.pids).ok()?;
        let mut it = text.split_whitespace().map(|w| w.parse().ok());
        Some((it.next()??, it.next()??))
    }
}

/// Kills the fake cargo's group if the test ends before the product did.
struct Group(u32);

impl Drop for Group {
    fn drop(&mut self) {
        let _ = killpg(Pid::from_raw(self.0 as i32), Signal::SIGKILL);
    }
}

#[test]
fn a_build_left_by_a_killed_supervisor_is_killed_at_the_next_start() {
    let dir = TestDir::new();
    let setup = Setup::new(&dir);
    let mut first = setup.start(&dir);
    // The new commit gets built: the fake cargo starts, and sleeps.
    let mut update = supervisor_cmd(&dir.data, &["update"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let (cargo, sleeper) = wait_until(DEADLINE, "the fake cargo to start", || setup.cargo_pids());
    let _group = Group(cargo);
    let record = setup.staging.join("running").join(cargo.to_string());
    wait_until(DEADLINE, "the fake cargo's record", || {
        record.is_file().then_some(())
    });

    // A supervisor sharing the staging area leaves a live one's build alone.
    let other_dir = TestDir::new();
    let other = setup.start(&other_dir);
    wait_until(
        DEADLINE,
        "the other supervisor to check the records",
        || {
            other
                .log_text("supervisor")
                .contains("checked the records of running commands")
                .then_some(())
        },
    );
    assert!(alive(cargo), "a live supervisor's build was killed");
    assert!(record.is_file(), "a live supervisor's record was removed");
    drop(other);

    // The supervisor dies without cleaning up: the build runs on.
    first.signal(Signal::SIGKILL);
    first.wait_exit();
    update.wait().unwrap();
    assert!(
        alive(cargo) && alive(sleeper),
        "the fake cargo died with its supervisor: nothing left to clean up"
    );

    // The next start on the staging area kills the whole group.
    let again = setup.start(&dir);
    wait_until(DEADLINE, "the leftover build to be killed", || {
        (!alive(cargo) && !alive(sleeper)).then_some(())
    });
    assert!(!record.exists(), "the record of a killed group was kept");
    let log = again.log_text("supervisor");
    let line = log
        .lines()
        .find(|l| l.contains("killed a process group left running"))
        .unwrap_or_else(|| panic!("nothing logged about the kill:\n{log}"));
    assert!(names_number(line, cargo as u64), "{line}");
    assert!(line.contains("cargo"), "{line}");
}
