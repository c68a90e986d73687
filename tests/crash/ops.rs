//! Turns traced system calls into an ordered list of file system operations
//! below one root directory, plus the bytes exchanged with clients.
//!
//! Each traced run is one process (its threads share one fd table): fds
//! are followed through open, dup, fcntl(F_DUPFD), accept and close, with
//! file offsets shared between duplicates. Paths outside the root are
//! ignored. Ordering: a file operation counts where its call returned; a
//! send to a client counts where its call started (the client may read
//! the answer from then on), so an answer is never placed after the sync
//! that should have preceded it.

use std::cell::Cell;
use std::collections::HashMap;
use std::os::unix::ffi::OsStrExt;
use std::path::{Component, Path, PathBuf};
use std::rc::Rc;

use super::fs::{Fs, FsOp, Ino, ROOT};
use super::trace::{fd_arg, string_arg, strings_in, Call};

/// A place in the recorded history: which traced run, which trace line.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Pos {
    pub run: u16,
    pub line: u32,
}

impl std::fmt::Display for Pos {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "run {} line {}", self.run + 1, self.line)
    }
}

/// One file system operation, where it happened and what it was.
#[derive(Debug, Clone)]
pub struct TimedOp {
    pub pos: Pos,
    pub op: FsOp,
    /// For reports: the call and the path, e.g. `fsync d/journal`.
    pub what: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dir {
    /// The worker read these bytes from the client.
    Recv,
    /// The worker sent these bytes to the client.
    Send,
}

/// Bytes on one client connection.
#[derive(Debug, Clone)]
pub struct ClientIo {
    pub pos: Pos,
    pub conn: u32,
    pub dir: Dir,
    pub data: Vec<u8>,
}

#[derive(Clone)]
enum Target {
    File(Ino),
    Conn(u32),
}

#[derive(Clone)]
struct Open {
    target: Target,
    offset: Rc<Cell<u64>>,
    append: bool,
}

/// The recorded history of every run, in order.
pub struct Timeline {
    root: PathBuf,
    /// The root's state before the first run (all of it durable).
    pub initial: Fs,
    pub ops: Vec<TimedOp>,
    pub io: Vec<ClientIo>,
    /// The page cache's view after the last run.
    pub fs: Fs,
    names: HashMap<Ino, String>,
    next_ino: Ino,
    next_conn: u32,
    runs: u16,
}

impl Timeline {
    /// A history rooted at `root`, whose durable state is `initial`.
    pub fn new(root: &Path, initial: Fs) -> Timeline {
        let next_ino = initial.nodes.keys().max().copied().unwrap_or(ROOT) + 1;
        Timeline {
            root: root.to_path_buf(),
            fs: initial.clone(),
            initial,
            ops: Vec::new(),
            io: Vec::new(),
            names: HashMap::from([(ROOT, String::new())]),
            next_ino,
            next_conn: 0,
            runs: 0,
        }
    }

    /// Appends one traced run (a process with a fresh fd table).
    pub fn add_run(&mut self, calls: &[Call]) -> Result<(), String> {
        let mut run = Run {
            t: self,
            fds: HashMap::new(),
        };
        for call in calls {
            run.call(call)
                .map_err(|e| format!("trace line {}: {}: {e}", call.exit, call.name))?;
        }
        self.io.sort_by_key(|io| io.pos);
        self.runs += 1;
        Ok(())
    }

    fn emit(&mut self, line: u32, op: FsOp, what: String) {
        let pos = Pos {
            run: self.runs,
            line,
        };
        match &op {
            FsOp::Create {
                parent, name, ino, ..
            } => {
                let path = self.child_path(*parent, name);
                self.names.insert(*ino, path);
            }
            FsOp::Rename {
                to, to_name, ino, ..
            } => {
                let path = self.child_path(*to, to_name);
                self.names.insert(*ino, path);
            }
            _ => {}
        }
        self.fs.apply(&op);
        self.ops.push(TimedOp { pos, op, what });
    }

    fn child_path(&self, parent: Ino, name: &str) -> String {
        match self.names.get(&parent).map(String::as_str) {
            None | Some("") => name.to_string(),
            Some(p) => format!("{p}/{name}"),
        }
    }

    /// The path of `ino` relative to the root, for reports.
    pub fn name(&self, ino: Ino) -> &str {
        self.names.get(&ino).map(String::as_str).unwrap_or("?")
    }
}

/// Where a path argument points.
enum Resolved {
    Outside,
    /// The root directory itself (opened to be synced, never changed).
    Root,
    /// In the root: parent directory, last name, existing inode.
    Inside(Ino, String, Option<Ino>),
}

struct Run<'a> {
    t: &'a mut Timeline,
    fds: HashMap<i32, Open>,
}

fn arg(call: &Call, i: usize) -> Result<&str, String> {
    call.args
        .get(i)
        .map(String::as_str)
        .ok_or_else(|| format!("argument {i} missing"))
}

fn num(call: &Call, i: usize) -> Result<u64, String> {
    let a = arg(call, i)?;
    a.parse()
        .map_err(|_| format!("argument {i} is not a number: {a}"))
}

impl Run<'_> {
    fn call(&mut self, c: &Call) -> Result<(), String> {
        let Some(ret) = c.ret.ok() else {
            return Ok(()); // failed or never returned: no effect
        };
        match c.name.as_str() {
            "openat" => self.open(c, Some(0), 1, 2, ret),
            "open" => self.open(c, None, 0, 1, ret),
            "creat" => self.open_path(c, None, 0, "O_WRONLY|O_CREAT|O_TRUNC", ret),
            "mkdir" => self.mkdir(c, None, 0),
            "mkdirat" => self.mkdir(c, Some(0), 1),
            "write" | "writev" => self.write(c, None, ret),
            "pwrite64" => self.write(c, Some(num(c, 3)?), ret),
            "pwritev" | "pwritev2" => self.write(c, Some(num(c, 3)?), ret),
            "sendto" | "sendmsg" => self.write(c, None, ret),
            "read" | "recvfrom" | "recvmsg" => self.read(c, ret),
            "lseek" => {
                if let Some(open) = self.fd(c, 0)? {
                    open.offset.set(ret as u64);
                }
                Ok(())
            }
            "ftruncate" => {
                if let Some(Target::File(ino)) = self.fd(c, 0)?.map(|o| o.target) {
                    let what = format!("ftruncate {} to {}", self.t.name(ino), num(c, 1)?);
                    self.t.emit(
                        c.exit,
                        FsOp::SetLen {
                            ino,
                            len: num(c, 1)?,
                        },
                        what,
                    );
                }
                Ok(())
            }
            "truncate" => match self.resolve(None, arg(c, 0)?)? {
                Resolved::Inside(_, _, Some(ino)) => {
                    let what = format!("truncate {} to {}", self.t.name(ino), num(c, 1)?);
                    self.t.emit(
                        c.exit,
                        FsOp::SetLen {
                            ino,
                            len: num(c, 1)?,
                        },
                        what,
                    );
                    Ok(())
                }
                _ => Ok(()),
            },
            "fallocate" => self.fallocate(c),
            "rename" => self.rename(c, None, 0, None, 1),
            "renameat" => self.rename(c, Some(0), 1, Some(2), 3),
            "renameat2" => {
                if arg(c, 4)?.contains("RENAME_EXCHANGE") {
                    return Err("RENAME_EXCHANGE is not modelled".into());
                }
                self.rename(c, Some(0), 1, Some(2), 3)
            }
            "unlink" | "rmdir" => self.unlink(c, None, 0),
            "unlinkat" => self.unlink(c, Some(0), 1),
            "fsync" | "fdatasync" => {
                if let Some(Target::File(ino)) = self.fd(c, 0)?.map(|o| o.target) {
                    let what = format!("{} {}", c.name, self.t.name(ino));
                    self.t.emit(c.exit, FsOp::Sync { ino }, what);
                }
                Ok(())
            }
            "sync" | "syncfs" => {
                let inos: Vec<Ino> = self.t.fs.nodes.keys().copied().collect();
                for ino in inos {
                    self.t.emit(c.exit, FsOp::Sync { ino }, c.name.clone());
                }
                Ok(())
            }
            "close" => {
                self.fds.remove(&(self.fd_num(c, 0)?));
                Ok(())
            }
            "close_range" => {
                if !arg(c, 2)?.contains("CLOEXEC") {
                    let (first, last) = (num(c, 0)? as i64, arg(c, 1)?);
                    let last = last.parse::<i64>().unwrap_or(i64::MAX);
                    self.fds
                        .retain(|fd, _| !(first..=last).contains(&(*fd as i64)));
                }
                Ok(())
            }
            "dup" | "dup2" | "dup3" => self.dup(c, ret),
            "fcntl" if arg(c, 1)?.starts_with("F_DUPFD") => self.dup(c, ret),
            "accept" | "accept4" => {
                let conn = self.t.next_conn;
                self.t.next_conn += 1;
                self.fds.insert(ret as i32, open(Target::Conn(conn), false));
                Ok(())
            }
            "mmap" => {
                let shared_write =
                    arg(c, 2)?.contains("PROT_WRITE") && arg(c, 3)?.contains("MAP_SHARED");
                if shared_write && self.file_fd(c, 4)?.is_some() {
                    return Err("a writable shared mapping of a traced file is not modelled".into());
                }
                Ok(())
            }
            "copy_file_range" | "sendfile" | "splice" => {
                let target = if c.name == "copy_file_range" { 2 } else { 0 };
                if self.file_fd(c, target)?.is_some() {
                    return Err("copies into a traced file are not modelled".into());
                }
                Ok(())
            }
            _ => Ok(()),
        }
    }

    fn fd_num(&self, c: &Call, i: usize) -> Result<i32, String> {
        let a = arg(c, i)?;
        fd_arg(a)
            .map(|(fd, _)| fd)
            .ok_or_else(|| format!("not an fd: {a}"))
    }

    /// The open file behind fd argument `i`; an error if `-y` says it is
    /// below the root but it was never seen opened.
    fn fd(&self, c: &Call, i: usize) -> Result<Option<Open>, String> {
        let a = arg(c, i)?;
        let (fd, annotation) = fd_arg(a).ok_or_else(|| format!("not an fd: {a}"))?;
        if let Some(open) = self.fds.get(&fd) {
            return Ok(Some(open.clone()));
        }
        if let Some(path) = annotation {
            let path = Path::new(std::ffi::OsStr::from_bytes(&path));
            if path.starts_with(&self.t.root) {
                return Err(format!(
                    "fd {fd} ({}) was never seen opened",
                    path.display()
                ));
            }
        }
        Ok(None)
    }

    fn file_fd(&self, c: &Call, i: usize) -> Result<Option<Ino>, String> {
        Ok(match self.fd(c, i)?.map(|o| o.target) {
            Some(Target::File(ino)) => Some(ino),
            _ => None,
        })
    }

    /// Resolves a path argument (relative ones against the `-y` path of
    /// `dirfd`, or the current directory's).
    fn resolve(&self, dirfd: Option<&str>, path_arg: &str) -> Result<Resolved, String> {
        let raw = string_arg(path_arg).ok_or_else(|| format!("not a path: {path_arg}"))?;
        let path = PathBuf::from(std::ffi::OsStr::from_bytes(&raw));
        let full = if path.is_absolute() {
            path
        } else {
            let (_, base) = dirfd
                .and_then(fd_arg)
                .ok_or_else(|| format!("relative path {} without a dirfd path", path.display()))?;
            let base = base.ok_or("relative path: run strace with -y")?;
            Path::new(std::ffi::OsStr::from_bytes(&base)).join(path)
        };
        let Ok(rel) = full.strip_prefix(&self.t.root) else {
            return Ok(Resolved::Outside);
        };
        let mut names = Vec::new();
        for comp in rel.components() {
            match comp {
                Component::Normal(n) => names.push(n.to_string_lossy().into_owned()),
                Component::CurDir => {}
                _ => return Err(format!("path {} is not modelled", full.display())),
            }
        }
        let Some(name) = names.pop() else {
            return Ok(Resolved::Root);
        };
        let parent = self
            .t
            .fs
            .lookup(names.iter().map(String::as_str))
            .ok_or_else(|| format!("{} exists but its parent is unknown", full.display()))?;
        let existing = self
            .t
            .fs
            .entries(parent)
            .and_then(|e| e.get(&name))
            .copied();
        Ok(Resolved::Inside(parent, name, existing))
    }

    fn open(
        &mut self,
        c: &Call,
        dirfd: Option<usize>,
        path: usize,
        flags: usize,
        ret: i64,
    ) -> Result<(), String> {
        let flags = arg(c, flags)?.to_string();
        self.open_path(c, dirfd, path, &flags, ret)
    }

    fn open_path(
        &mut self,
        c: &Call,
        dirfd: Option<usize>,
        path: usize,
        flags: &str,
        ret: i64,
    ) -> Result<(), String> {
        let dirfd = dirfd.map(|i| arg(c, i)).transpose()?;
        let fd = ret as i32;
        self.fds.remove(&fd);
        let (parent, name, existing) = match self.resolve(dirfd, arg(c, path)?)? {
            Resolved::Outside => return Ok(()),
            Resolved::Root => {
                self.fds.insert(fd, open(Target::File(ROOT), false));
                return Ok(());
            }
            Resolved::Inside(parent, name, existing) => (parent, name, existing),
        };
        let ino = match existing {
            Some(ino) => {
                let len = self.t.fs.content(ino).map_or(0, |c| c.len);
                if flags.contains("O_TRUNC") && len > 0 {
                    let what = format!("open {} with O_TRUNC", self.t.name(ino));
                    self.t.emit(c.exit, FsOp::SetLen { ino, len: 0 }, what);
                }
                ino
            }
            None => {
                let ino = self.new_ino();
                let op = FsOp::Create {
                    parent,
                    name,
                    ino,
                    dir: false,
                };
                self.t.emit(c.exit, op, String::new());
                self.t.ops.last_mut().expect("just pushed").what =
                    format!("create {}", self.t.name(ino));
                ino
            }
        };
        self.fds
            .insert(fd, open(Target::File(ino), flags.contains("O_APPEND")));
        Ok(())
    }

    fn new_ino(&mut self) -> Ino {
        let ino = self.t.next_ino;
        self.t.next_ino += 1;
        ino
    }

    fn mkdir(&mut self, c: &Call, dirfd: Option<usize>, path: usize) -> Result<(), String> {
        let dirfd = dirfd.map(|i| arg(c, i)).transpose()?;
        if let Resolved::Inside(parent, name, None) = self.resolve(dirfd, arg(c, path)?)? {
            let ino = self.new_ino();
            self.t.emit(
                c.exit,
                FsOp::Create {
                    parent,
                    name,
                    ino,
                    dir: true,
                },
                String::new(),
            );
            self.t.ops.last_mut().expect("just pushed").what =
                format!("mkdir {}", self.t.name(ino));
        }
        Ok(())
    }

    /// write, pwrite64, writev, pwritev, sendto, sendmsg.
    fn write(&mut self, c: &Call, at: Option<u64>, ret: i64) -> Result<(), String> {
        let Some(open) = self.fd(c, 0)? else {
            return Ok(());
        };
        let mut data = strings_in(arg(c, 1)?);
        if data.len() < ret as usize {
            return Err(format!(
                "{} bytes written but {} recorded: raise -s",
                ret,
                data.len()
            ));
        }
        data.truncate(ret as usize);
        match open.target {
            Target::Conn(conn) => {
                let pos = Pos {
                    run: self.t.runs,
                    line: c.entry,
                };
                self.t.io.push(ClientIo {
                    pos,
                    conn,
                    dir: Dir::Send,
                    data,
                });
            }
            Target::File(ino) if !data.is_empty() => {
                let offset = match at {
                    Some(o) => o,
                    None if open.append => self.t.fs.content(ino).map_or(0, |c| c.len),
                    None => open.offset.get(),
                };
                if at.is_none() {
                    open.offset.set(offset + data.len() as u64);
                }
                let what = format!(
                    "{} of {} B at {offset} to {}",
                    c.name,
                    data.len(),
                    self.t.name(ino)
                );
                self.t.emit(c.exit, FsOp::Write { ino, offset, data }, what);
            }
            Target::File(_) => {}
        }
        Ok(())
    }

    fn read(&mut self, c: &Call, ret: i64) -> Result<(), String> {
        let Some(open) = self.fd(c, 0)? else {
            return Ok(());
        };
        match open.target {
            Target::Conn(conn) => {
                let mut data = strings_in(arg(c, 1)?);
                data.truncate(ret as usize);
                let pos = Pos {
                    run: self.t.runs,
                    line: c.exit,
                };
                self.t.io.push(ClientIo {
                    pos,
                    conn,
                    dir: Dir::Recv,
                    data,
                });
            }
            Target::File(_) => open.offset.set(open.offset.get() + ret as u64),
        }
        Ok(())
    }

    fn fallocate(&mut self, c: &Call) -> Result<(), String> {
        let Some(ino) = self.file_fd(c, 0)? else {
            return Ok(());
        };
        let mode = arg(c, 1)?;
        if mode.contains("KEEP_SIZE") {
            return Ok(());
        }
        if mode != "0" {
            return Err(format!("fallocate mode {mode} is not modelled"));
        }
        let end = num(c, 2)? + num(c, 3)?;
        if end > self.t.fs.content(ino).map_or(0, |c| c.len) {
            let what = format!("fallocate {} to {end}", self.t.name(ino));
            self.t.emit(c.exit, FsOp::SetLen { ino, len: end }, what);
        }
        Ok(())
    }

    fn rename(
        &mut self,
        c: &Call,
        ofd: Option<usize>,
        old: usize,
        nfd: Option<usize>,
        new: usize,
    ) -> Result<(), String> {
        let ofd = ofd.map(|i| arg(c, i)).transpose()?;
        let nfd = nfd.map(|i| arg(c, i)).transpose()?;
        let from = self.resolve(ofd, arg(c, old)?)?;
        let to = self.resolve(nfd, arg(c, new)?)?;
        match (from, to) {
            (Resolved::Inside(from, from_name, Some(ino)), Resolved::Inside(to, to_name, _)) => {
                let what = format!(
                    "rename {} to {}",
                    self.t.name(ino),
                    self.t.child_path(to, &to_name)
                );
                let op = FsOp::Rename {
                    from,
                    from_name,
                    to,
                    to_name,
                    ino,
                };
                self.t.emit(c.exit, op, what);
                Ok(())
            }
            (Resolved::Inside(parent, name, Some(ino)), Resolved::Outside) => {
                let what = format!("rename {} out of the root", self.t.name(ino));
                self.t.emit(c.exit, FsOp::Unlink { parent, name }, what);
                Ok(())
            }
            (Resolved::Outside, Resolved::Inside(..))
            | (Resolved::Root, _)
            | (_, Resolved::Root) => {
                Err("a rename into the root from outside, or of the root, is not modelled".into())
            }
            _ => Ok(()),
        }
    }

    fn unlink(&mut self, c: &Call, dirfd: Option<usize>, path: usize) -> Result<(), String> {
        let dirfd = dirfd.map(|i| arg(c, i)).transpose()?;
        if let Resolved::Inside(parent, name, Some(ino)) = self.resolve(dirfd, arg(c, path)?)? {
            let what = format!("{} {}", c.name, self.t.name(ino));
            self.t.emit(c.exit, FsOp::Unlink { parent, name }, what);
        }
        Ok(())
    }

    fn dup(&mut self, c: &Call, ret: i64) -> Result<(), String> {
        let source = self.fds.get(&self.fd_num(c, 0)?).cloned();
        match source {
            Some(open) => self.fds.insert(ret as i32, open),
            None => self.fds.remove(&(ret as i32)),
        };
        Ok(())
    }
}

fn open(target: Target, append: bool) -> Open {
    Open {
        target,
        offset: Rc::new(Cell::new(0)),
        append,
    }
}

#[cfg(test)]
mod tests {
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
1 write(2</x/log>, "log line", 8) = 8
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
}
