//! The records and the checks before a kill, with real process groups.

use super::*;
use std::os::unix::process::CommandExt;
use std::process::{Child, Command};
use std::time::{Duration, Instant};

/// `sleep 600` leading a process group of its own.
fn group() -> Child {
    Command::new("sleep")
        .arg("600")
        .process_group(0)
        .spawn()
        .expect("start sleep")
}

fn write(dir: &Path, pgid: u32, owner: u32, owner_program: &str, program: &str) -> PathBuf {
    fs::create_dir_all(dir).unwrap();
    let path = dir.join(pgid.to_string());
    let text =
        format!("supervisor={owner}\nsupervisor_program={owner_program}\nprogram={program}\n");
    fs::write(&path, text).unwrap();
    path
}

fn reaped(child: &mut Child) -> bool {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if child.try_wait().unwrap().is_some() {
            return true;
        }
        if Instant::now() > deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
}

#[test]
fn only_groups_of_a_gone_supervisor_still_led_by_their_program_are_killed() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("running");
    let me = std::process::id();
    let owner = group();
    let (mut ours, mut live_owners, mut reused) = (group(), group(), group());
    let ours_rec = write(&dir, ours.id(), 999_999_999, "supervisor", "sleep");
    // Its supervisor (here `owner`, a live `sleep`) still runs.
    let live_rec = write(&dir, live_owners.id(), owner.id(), "sleep", "sleep");
    // The pid now leads another program: it is not the recorded group.
    let reused_rec = write(&dir, reused.id(), me, "supervisor", "cargo");
    let junk = dir.join("not-a-pid");
    fs::write(&junk, "garbage").unwrap();
    // Being written by another supervisor (or damaged): left alone
    // while its group exists, removed once it does not.
    let mut unknown = group();
    let unknown_rec = dir.join(unknown.id().to_string());
    fs::write(&unknown_rec, "").unwrap();

    let checked = kill_leftovers(&dir, me);
    assert_eq!(checked.records, 5);
    assert_eq!(
        checked.killed,
        vec![Killed {
            pgid: ours.id(),
            program: "sleep".into(),
            owner: 999_999_999
        }]
    );
    assert!(reaped(&mut ours), "the leftover group was not killed");
    assert!(!ours_rec.exists());
    assert!(
        live_owners.try_wait().unwrap().is_none(),
        "a live supervisor's group was killed"
    );
    assert!(live_rec.exists(), "a live supervisor's record was removed");
    assert!(
        reused.try_wait().unwrap().is_none(),
        "another program's group was killed"
    );
    assert!(!reused_rec.exists() && !junk.exists());
    assert!(
        unknown.try_wait().unwrap().is_none(),
        "an unknown group was killed"
    );
    assert!(unknown_rec.exists());
    unknown.kill().unwrap();
    unknown.wait().unwrap();
    assert_eq!(kill_leftovers(&dir, me).killed, vec![]);
    assert!(!unknown_rec.exists(), "a record of no group was kept");

    // The owner's pid reused by another program: its groups are leftovers.
    write(&dir, live_owners.id(), owner.id(), "supervisor", "sleep");
    assert_eq!(kill_leftovers(&dir, me).killed.len(), 1);
    assert!(reaped(&mut live_owners));
    for mut c in [owner, reused] {
        c.kill().unwrap();
        c.wait().unwrap();
    }
    assert_eq!(kill_leftovers(&dir, me).records, 0);
}
