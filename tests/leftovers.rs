//! A supervisor killed in the middle of a build leaves its cargo process
//! group running; the next supervisor to start on the staging area kills
//! it, and leaves alone what a live supervisor runs there. The build is a
//! real `cargo build` of a tiny project whose build script records its
//! pids and then takes its time, as a slow build does.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use harness::supervisor::{alive, supervisor_cmd, Supervisor};
use harness::{git, names_number, wait_until, worker_bin, TestDir, DEADLINE};
use nix::sys::signal::{killpg, Signal};
use nix::unistd::Pid;

/// A bare origin with one commit and the watched clone of it, and the
/// staging area, all in `dir`. The commit is a workspace with the two
/// packages the supervisor builds, `worker` and `supervisor`; the worker's
/// build script writes cargo's pid and its own to `pids`, then sleeps.
struct Setup {
    checkout: PathBuf,
    staging: PathBuf,
    pids: PathBuf,
}

fn write(path: &Path, text: &str) {
    fs::create_dir_all(path.parent().unwrap()).unwrap();
    fs::write(path, text).unwrap();
}

impl Setup {
    fn new(dir: &TestDir) -> Setup {
        let root = dir.root();
        let seed = root.join("seed");
        let pids = root.join("cargo.pids");
        write(
            &seed.join("Cargo.toml"),
            "[workspace]\nmembers = [\"worker\", \"supervisor\"]\nresolver = \"2\"\n",
        );
        write(
            &seed.join("supervisor/Cargo.toml"),
            "[package]\nname = \"supervisor\"\nversion = \"0.1.0\"\nedition = \"2021\"\n",
        );
        write(&seed.join("supervisor/src/main.rs"), "fn main() {}\n");
        write(
            &seed.join("worker/Cargo.toml"),
            "[package]\nname = \"worker\"\nversion = \"0.1.0\"\nedition = \"2021\"\n",
        );
        write(&seed.join("worker/src/main.rs"), "fn main() {}\n");
        // cargo runs the build script as its own child, in its group.
        write(
            &seed.join("worker/build.rs"),
            &format!(
                "fn main() {{\n    let p = {p:?};\n    let ids = format!(\"{{}} {{}}\", \
                 std::os::unix::process::parent_id(), std::process::id());\n    \
                 std::fs::write(format!(\"{{p}}.tmp\"), ids).unwrap();\n    \
                 std::fs::rename(format!(\"{{p}}.tmp\"), p).unwrap();\n    \
                 std::thread::sleep(std::time::Duration::from_secs(600));\n}}\n",
                p = pids.to_str().unwrap()
            ),
        );
        let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
        let lock = Command::new(cargo)
            .args(["generate-lockfile", "--offline", "-q"])
            .current_dir(&seed)
            .status()
            .unwrap();
        assert!(lock.success(), "cargo generate-lockfile failed");
        git(&seed, &["init", "-q", "-b", "main"]);
        git(&seed, &["add", "-A"]);
        git(&seed, &["commit", "-q", "-m", "seed"]);
        let origin = root.join("origin.git");
        let checkout = root.join("checkout");
        git(root, &["clone", "-q", "--bare", "seed", "origin.git"]);
        git(root, &["clone", "-q", origin.to_str().unwrap(), "checkout"]);
        Setup {
            checkout,
            staging: root.join("staging"),
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
        let mut sup = Supervisor::spawn_env(dir, Some(&worker_bin()), &args, &[]);
        sup.wait_ready();
        sup
    }

    /// cargo's pid (its group's id) and its build script's.
    fn cargo_pids(&self) -> Option<(u32, u32)> {
        let text = fs::read_to_string(&self.pids).ok()?;
        let mut it = text.split_whitespace().map(|w| w.parse().ok());
        Some((it.next()??, it.next()??))
    }
}

/// Kills the build's group if the test ends before the product did.
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
    // The new commit gets built: cargo starts, and the build script sleeps.
    let mut update = supervisor_cmd(&dir.data, &["update"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let (cargo, sleeper) = wait_until(DEADLINE, "the build script to start", || setup.cargo_pids());
    let _group = Group(cargo);
    let record = setup.staging.join("running").join(cargo.to_string());
    wait_until(DEADLINE, "the build's record", || {
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
        "the build died with its supervisor: nothing left to clean up"
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
