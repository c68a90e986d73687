//! Paths: resolving them below the root, and the calls that change names.

use std::os::unix::ffi::OsStrExt;
use std::path::{Component, Path, PathBuf};

use super::super::fs::{FsOp, Ino, ROOT};
use super::super::trace::{fd_arg, string_arg, Call};
use super::run::{arg, open, Run, Target};

/// Where a path argument points.
pub(super) enum Resolved {
    Outside,
    /// The root directory itself (opened to be synced, never changed).
    Root,
    /// In the root: parent directory, last name, existing inode.
    Inside(Ino, String, Option<Ino>),
}

impl Run<'_> {
    /// Resolves a path argument (relative ones against the `-y` path of
    /// `dirfd`, or the current directory's).
    pub(super) fn resolve(&self, dirfd: Option<&str>, path_arg: &str) -> Result<Resolved, String> {
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

    pub(super) fn open(
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

    pub(super) fn open_path(
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

    pub(super) fn mkdir(
        &mut self,
        c: &Call,
        dirfd: Option<usize>,
        path: usize,
    ) -> Result<(), String> {
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

    pub(super) fn rename(
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

    pub(super) fn unlink(
        &mut self,
        c: &Call,
        dirfd: Option<usize>,
        path: usize,
    ) -> Result<(), String> {
        let dirfd = dirfd.map(|i| arg(c, i)).transpose()?;
        if let Resolved::Inside(parent, name, Some(ino)) = self.resolve(dirfd, arg(c, path)?)? {
            let what = format!("{} {}", c.name, self.t.name(ino));
            self.t.emit(c.exit, FsOp::Unlink { parent, name }, what);
        }
        Ok(())
    }
}
