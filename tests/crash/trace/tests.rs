//! Lines of strace output, and the calls they make.

use super::*;

#[test]
fn whole_lines_with_hex_strings_and_fd_paths() {
    let text = "\
12 openat(AT_FDCWD<\\x2f\\x72>, \"\\x2f\\x72\\x2f\\x66\", O_RDWR|O_CREAT|O_CLOEXEC, 0600) = 3<\\x2f\\x72\\x2f\\x66>
12 pwrite64(3<\\x2f\\x72\\x2f\\x66>, \"\\x61\\x2c\\x29\", 3, 24) = 3
12 fsync(3</r/f>) = -1 EIO (Input/output error) (INJECTED)
12 --- SIGUSR1 {si_signo=SIGUSR1, si_code=SI_USER} ---
12 fcntl(3</r/f>, F_GETFD) = 0x1 (flags FD_CLOEXEC)
";
    let mut calls = parse(text).unwrap();
    assert_eq!(calls.len(), 5);
    assert_eq!(
        (calls[3].name.as_str(), calls[3].args[0].as_str()),
        ("signal", "SIGUSR1")
    );
    calls.remove(3);
    assert_eq!(calls[0].name, "openat");
    assert_eq!(
        fd_arg(&calls[0].args[0]),
        Some((-100, Some(b"/r".to_vec())))
    );
    assert_eq!(string_arg(&calls[0].args[1]).unwrap(), b"/r/f");
    assert_eq!(calls[0].args[2], "O_RDWR|O_CREAT|O_CLOEXEC");
    assert_eq!(calls[0].ret, Ret::Ok(3, Some(b"/r/f".to_vec())));
    assert_eq!(string_arg(&calls[1].args[1]).unwrap(), b"a,)");
    assert_eq!(calls[1].args[3], "24");
    assert_eq!(calls[2].ret, Ret::Err("EIO".into()));
    assert_eq!(calls[3].ret.ok(), Some(1));
    assert_eq!((calls[3].entry, calls[3].exit), (5, 5));
}

#[test]
fn unfinished_calls_are_joined_and_keep_both_lines() {
    let text = "\
7 recvfrom(9<socket:[1]>,  <unfinished ...>
8 fdatasync(3</r/j>) = 0
7 <... recvfrom resumed>\"ab\\n\", 65536, 0, NULL, NULL) = 3
8 sendto(9<socket:[1]>, \"ok\\n\", 3, MSG_NOSIGNAL, NULL, 0 <unfinished ...>
7 close(4) = 0
8 <... sendto resumed>) = 3
";
    let calls = parse(text).unwrap();
    let names: Vec<_> = calls.iter().map(|c| c.name.as_str()).collect();
    assert_eq!(names, ["fdatasync", "recvfrom", "close", "sendto"]);
    let recv = &calls[1];
    assert_eq!((recv.entry, recv.exit, recv.tid), (1, 3, 7));
    assert_eq!(string_arg(&recv.args[1]).unwrap(), b"ab\n");
    let send = &calls[3];
    assert_eq!((send.entry, send.exit), (4, 6));
    assert_eq!(send.args.len(), 6);
    assert_eq!(send.ret.ok(), Some(3));
}

#[test]
fn iovecs_escapes_and_odd_returns() {
    let args = split_args("5, [{iov_base=\"ab\", iov_len=2}, {iov_base=\"\\x63\", iov_len=1}], 2");
    assert_eq!(args.len(), 3);
    assert_eq!(strings_in(&args[1]), b"abc");
    assert_eq!(decode_escaped("\\0\\12\\\\\\\"z"), b"\0\n\\\"z");
    let calls = parse("3 exit_group(0) = ?\n3 mmap(NULL, 8) = 0x7f00\n").unwrap();
    assert_eq!(calls[0].ret, Ret::Unknown);
    assert_eq!(calls[1].ret.ok(), Some(0x7f00));
    assert!(parse("3 <... write resumed>) = 1\n").is_err());
    assert!(parse("3 write(1, \"a\" = 1\n").is_err());
    let calls =
        parse("3 accept4(5<socket:[1]>, {sa_family=AF_UNIX}, [110 => 2], 0) = 6\n").unwrap();
    assert_eq!(calls[0].args.len(), 4);
    let calls = parse("3 close(4</r/x (deleted)>) = 0\n").unwrap();
    assert_eq!(
        fd_arg(&calls[0].args[0]).unwrap().1.unwrap(),
        b"/r/x (deleted)"
    );
}
