//! The system calls: fds, offsets, data written and client bytes.

use std::cell::Cell;
use std::collections::HashMap;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;
use std::rc::Rc;

use super::super::fs::{FsOp, Ino};
use super::super::trace::{fd_arg, strings_in, Call};
use super::namespace::Resolved;
use super::{ClientIo, Dir, Pos, Timeline};

#[derive(Clone)]
pub(super) enum Target {
    File(Ino),
    Conn(u32),
}

#[derive(Clone)]
pub(super) struct Open {
    pub(super) target: Target,
    pub(super) offset: Rc<Cell<u64>>,
    pub(super) append: bool,
}

/// One traced process: its fd table, writing into the timeline.
pub(super) struct Run<'a> {
    pub(super) t: &'a mut Timeline,
    pub(super) fds: HashMap<i32, Open>,
}

pub(super) fn arg(call: &Call, i: usize) -> Result<&str, String> {
    call.args
        .get(i)
        .map(String::as_str)
        .ok_or_else(|| format!("argument {i} missing"))
}

pub(super) fn num(call: &Call, i: usize) -> Result<u64, String> {
    let a = arg(call, i)?;
    a.parse()
        .map_err(|_| format!("argument {i} is not a number: {a}"))
}

impl<'a> Run<'a> {
    pub(super) fn new(t: &'a mut Timeline) -> Run<'a> {
        Run {
            t,
            fds: HashMap::new(),
        }
    }
}

impl Run<'_> {
    pub(super) fn call(&mut self, c: &Call) -> Result<(), String> {
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
            "signal" => {
                let pos = Pos {
                    run: self.t.runs,
                    line: c.exit,
                };
                self.t.signals.push((pos, arg(c, 0)?.to_string()));
                Ok(())
            }
            _ => Ok(()),
        }
    }

    pub(super) fn fd_num(&self, c: &Call, i: usize) -> Result<i32, String> {
        let a = arg(c, i)?;
        fd_arg(a)
            .map(|(fd, _)| fd)
            .ok_or_else(|| format!("not an fd: {a}"))
    }

    /// The open file behind fd argument `i`; an error if `-y` says it is
    /// below the root but it was never seen opened.
    pub(super) fn fd(&self, c: &Call, i: usize) -> Result<Option<Open>, String> {
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

    pub(super) fn file_fd(&self, c: &Call, i: usize) -> Result<Option<Ino>, String> {
        Ok(match self.fd(c, i)?.map(|o| o.target) {
            Some(Target::File(ino)) => Some(ino),
            _ => None,
        })
    }

    /// write, pwrite64, writev, pwritev, sendto, sendmsg.
    fn write(&mut self, c: &Call, at: Option<u64>, ret: i64) -> Result<(), String> {
        let Some(open) = self.fd(c, 0)? else {
            if self.fd_num(c, 0)? == 2 && c.name == "write" {
                let text = String::from_utf8_lossy(&strings_in(arg(c, 1)?)).into_owned();
                let pos = Pos {
                    run: self.t.runs,
                    line: c.entry,
                };
                self.t
                    .log
                    .extend(text.lines().map(|l| (pos, l.to_string())));
            }
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

    fn dup(&mut self, c: &Call, ret: i64) -> Result<(), String> {
        let source = self.fds.get(&self.fd_num(c, 0)?).cloned();
        match source {
            Some(open) => self.fds.insert(ret as i32, open),
            None => self.fds.remove(&(ret as i32)),
        };
        Ok(())
    }
}

pub(super) fn open(target: Target, append: bool) -> Open {
    Open {
        target,
        offset: Rc::new(Cell::new(0)),
        append,
    }
}
