//! A small trace, and what becomes of it.

use std::path::Path;

use super::super::fs::Fs;
use super::super::trace::parse;
use super::*;

const TRACE: &str = r#"
1 openat(AT_FDCWD</x>, "/lib/libc.so", O_RDONLY) = 3</lib/libc.so>
1 close(3</lib/libc.so>) = 0
1 mkdir("/r/d", 0700) = 0
1 mkdir("/r/d", 0700) = -1 EEXIST (File exists)
1 openat(AT_FDCWD</x>, "/r/d/j", O_RDWR|O_CREAT|O_EXCL, 0600) = 3</r/d/j>
1 pwrite64(3</r/d/j>, "HDR", 3, 0) = 3
1 fcntl(3</r/d/j>, F_DUPFD_CLOEXEC, 3) = 4</r/d/j>
1 write(4</r/d/j>, "ab", 2) = 2
1 write(3</r/d/j>, "cd", 2) = 1
1 fdatasync(4</r/d/j>) = 0
1 openat(5</r/d>, "t", O_WRONLY|O_CREAT|O_TRUNC, 0600) = 6</r/d/t>
1 rename("/r/d/t", "/r/d/s") = 0
1 unlink("/r/d/j") = 0
1 openat(AT_FDCWD</x>, "/r/d", O_RDONLY|O_DIRECTORY) = 7</r/d>
1 fsync(7</r/d>) = 0
1 accept4(9<socket:[5]>, NULL, NULL, SOCK_CLOEXEC) = 10<socket:[6]>
1 recvfrom(10<socket:[6]>, "req\n", 65536, 0, NULL, NULL) = 4
1 sendto(10<socket:[6]>, "ans\n", 4, MSG_NOSIGNAL, NULL, 0) = 4
1 write(2</x/log>, "log line\nand more", 17) = 17
1 --- SIGUSR1 {si_signo=SIGUSR1} ---
"#;

#[test]
fn a_small_trace_becomes_ops_and_client_bytes() {
    let calls = parse(TRACE.trim_start()).unwrap();
    let mut t = Timeline::new(Path::new("/r"), Fs::new());
    t.add_run(&calls).unwrap();
    let what: Vec<&str> = t.ops.iter().map(|o| o.what.as_str()).collect();
    assert_eq!(
        what,
        [
            "mkdir d",
            "create d/j",
            "pwrite64 of 3 B at 0 to d/j",
            "write of 2 B at 0 to d/j",
            "write of 1 B at 2 to d/j",
            "fdatasync d/j",
            "create d/t",
            "rename d/t to d/s",
            "unlink d/j",
            "fsync d",
        ]
    );
    assert_eq!(t.ops[1].pos, Pos { run: 0, line: 5 });
    // The fcntl duplicate shares the offset: "ab" over "HD", then "c".
    assert_eq!(t.fs.lookup(["d", "j"]), None);
    assert_eq!(t.fs.content(2).unwrap().to_vec(), b"abc");
    let s = t.fs.lookup(["d", "s"]).unwrap();
    assert_eq!(t.fs.content(s).unwrap().len, 0);
    assert_eq!(t.io.len(), 2);
    assert_eq!(t.log.len(), 2);
    assert_eq!((t.log[1].0.line, t.log[1].1.as_str()), (19, "and more"));
    assert_eq!(
        (t.signals[0].0.line, t.signals[0].1.as_str()),
        (20, "SIGUSR1")
    );
    assert_eq!(
        (t.io[0].dir, t.io[0].data.as_slice()),
        (Dir::Recv, &b"req\n"[..])
    );
    assert_eq!(
        (t.io[1].dir, t.io[1].data.as_slice()),
        (Dir::Send, &b"ans\n"[..])
    );
    let mut replay = Fs::new();
    t.ops.iter().for_each(|o| replay.apply(&o.op));
    assert_eq!(replay, t.fs);
}

#[test]
fn unknown_fds_below_the_root_and_short_buffers_are_errors() {
    let mut t = Timeline::new(Path::new("/r"), Fs::new());
    let calls = parse("1 write(5</r/f>, \"x\", 1) = 1\n").unwrap();
    assert!(t.add_run(&calls).unwrap_err().contains("never seen opened"));
    let mut t = Timeline::new(Path::new("/r"), Fs::new());
    let calls = parse(
        "1 openat(AT_FDCWD</>, \"/r/f\", O_RDWR|O_CREAT, 0600) = 3</r/f>\n\
         1 write(3</r/f>, \"x\"..., 5) = 5\n",
    )
    .unwrap();
    assert!(t.add_run(&calls).unwrap_err().contains("raise -s"));
}

#[test]
fn a_close_frees_its_fd_where_it_starts() {
    // Thread 1's close of fd 9 is still running when thread 2's accept4
    // gets fd 9 for a new client.
    let text = r#"1 close(9<socket:[5]> <unfinished ...>
2 accept4(3<socket:[1]>, NULL, NULL, SOCK_CLOEXEC) = 9<socket:[7]>
1 <... close resumed>) = 0
2 recvfrom(9<socket:[7]>, "req\n", 65536, 0, NULL, NULL) = 4
"#;
    let mut t = Timeline::new(Path::new("/r"), Fs::new());
    t.add_run(&parse(text).unwrap()).unwrap();
    assert_eq!(t.io.len(), 1, "the new client's request was kept");
    assert_eq!(t.io[0].data, b"req\n");
}
