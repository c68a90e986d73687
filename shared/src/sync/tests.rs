//! The fallback decision, with a fake system call: runs on every platform.

use super::*;

const APPLE: &[Method] = &[Method::FullFsync, Method::BarrierFsync, Method::Fsync];

fn errno(code: i32) -> io::Error {
    io::Error::from_raw_os_error(code)
}

/// A fake system call: each call takes the next scripted answer and is
/// recorded. Panics when called more often than scripted.
struct Script {
    answers: Vec<io::Result<()>>,
    calls: Vec<Method>,
}

impl Script {
    fn new(answers: Vec<io::Result<()>>) -> Script {
        Script {
            answers: answers.into_iter().rev().collect(),
            calls: Vec::new(),
        }
    }

    fn run(&mut self, ladder: &Ladder) -> io::Result<Method> {
        ladder.sync_with(|m| {
            self.calls.push(m);
            self.answers.pop().expect("called more often than scripted")
        })
    }
}

#[test]
fn only_not_supported_errnos_count_as_unsupported() {
    for code in [libc::ENOTSUP, libc::EOPNOTSUPP, libc::EINVAL, libc::ENOTTY] {
        assert!(unsupported(&errno(code)), "errno {code}");
    }
    for code in [
        libc::EIO,
        libc::ENOSPC,
        libc::EDQUOT,
        libc::EROFS,
        libc::EBADF,
        libc::EINTR,
        libc::ENOSYS,
    ] {
        assert!(!unsupported(&errno(code)), "errno {code}");
    }
    assert!(!unsupported(&io::Error::other("no errno")));
}

#[test]
fn each_unsupported_errno_moves_on_and_is_remembered() {
    for code in [libc::ENOTSUP, libc::EOPNOTSUPP, libc::EINVAL, libc::ENOTTY] {
        let ladder = Ladder::new("test syncs", APPLE);
        assert_eq!(ladder.method(), None);
        let mut s = Script::new(vec![Err(errno(code)), Ok(())]);
        assert_eq!(
            s.run(&ladder).unwrap(),
            Method::BarrierFsync,
            "errno {code}"
        );
        assert_eq!(s.calls, [Method::FullFsync, Method::BarrierFsync]);
        assert_eq!(ladder.method(), Some(Method::BarrierFsync));
        // Later syncs go straight to the method that worked.
        let mut s = Script::new(vec![Ok(())]);
        assert_eq!(s.run(&ladder).unwrap(), Method::BarrierFsync);
        assert_eq!(s.calls, [Method::BarrierFsync]);
    }
}

#[test]
fn a_failed_sync_is_never_retried_with_another_method() {
    for code in [
        libc::EIO,
        libc::ENOSPC,
        libc::EDQUOT,
        libc::EROFS,
        libc::EBADF,
    ] {
        let ladder = Ladder::new("test syncs", APPLE);
        let mut s = Script::new(vec![Err(errno(code))]);
        let err = s.run(&ladder).unwrap_err();
        assert_eq!(
            err.raw_os_error(),
            Some(code),
            "the error is returned as is"
        );
        assert_eq!(s.calls, [Method::FullFsync]);
        assert_eq!(ladder.method(), None, "nothing settled after errno {code}");
    }
}

#[test]
fn a_failure_after_a_fallback_stops_there_and_names_both() {
    let ladder = Ladder::new("test syncs", APPLE);
    let mut s = Script::new(vec![Err(errno(libc::ENOTSUP)), Err(errno(libc::EIO))]);
    let err = s.run(&ladder).unwrap_err();
    assert_eq!(s.calls, [Method::FullFsync, Method::BarrierFsync]);
    assert_eq!(err.kind(), errno(libc::EIO).kind());
    let msg = err.to_string();
    assert!(msg.contains("F_FULLFSYNC is not supported"), "{msg}");
    assert!(msg.contains("F_BARRIERFSYNC failed"), "{msg}");
    assert_eq!(ladder.method(), None);
    // The next sync starts from the top again.
    let mut s = Script::new(vec![Ok(())]);
    assert_eq!(s.run(&ladder).unwrap(), Method::FullFsync);
    assert_eq!(ladder.method(), Some(Method::FullFsync));
}

#[test]
fn the_whole_ladder_is_walked_and_never_climbed_back() {
    let ladder = Ladder::new("test syncs", APPLE);
    let mut s = Script::new(vec![
        Err(errno(libc::ENOTTY)),
        Err(errno(libc::EINVAL)),
        Ok(()),
    ]);
    assert_eq!(s.run(&ladder).unwrap(), Method::Fsync);
    assert_eq!(s.calls, APPLE);
    let mut s = Script::new(vec![Ok(())]);
    assert_eq!(s.run(&ladder).unwrap(), Method::Fsync);
    assert_eq!(
        s.calls,
        [Method::Fsync],
        "no stronger method is tried again"
    );
}

#[test]
fn a_settled_method_that_becomes_unsupported_steps_down() {
    let ladder = Ladder::new("test syncs", &[Method::Fdatasync, Method::Fsync]);
    Script::new(vec![Ok(())]).run(&ladder).unwrap();
    assert_eq!(ladder.method(), Some(Method::Fdatasync));
    let mut s = Script::new(vec![Err(errno(libc::EINVAL)), Ok(())]);
    assert_eq!(s.run(&ladder).unwrap(), Method::Fsync);
    assert_eq!(ladder.method(), Some(Method::Fsync));
}

#[test]
fn unsupported_on_the_last_step_is_an_error() {
    let ladder = Ladder::new("test syncs", &[Method::Fdatasync, Method::Fsync]);
    let mut s = Script::new(vec![Err(errno(libc::EINVAL)), Err(errno(libc::EINVAL))]);
    let err = s.run(&ladder).unwrap_err();
    assert_eq!(s.calls, [Method::Fdatasync, Method::Fsync]);
    assert!(
        err.to_string().contains("fdatasync is not supported"),
        "{err}"
    );
    assert_eq!(ladder.method(), None);
}

#[test]
fn an_interrupted_call_is_repeated_with_the_same_method() {
    let ladder = Ladder::new("test syncs", APPLE);
    let mut s = Script::new(vec![Err(errno(libc::EINTR)), Ok(())]);
    assert_eq!(s.run(&ladder).unwrap(), Method::FullFsync);
    assert_eq!(s.calls, [Method::FullFsync, Method::FullFsync]);
}

#[test]
fn real_files_sync_and_the_method_is_reported() {
    let dir = tempfile::tempdir().unwrap();
    let file = File::create(dir.path().join("f")).unwrap();
    full_sync(&file).unwrap();
    data_sync(&file).unwrap();
    let method = data_sync_method().expect("a data sync succeeded");
    assert!(data_ladder().steps.iter().any(|m| m.name() == method));
}
