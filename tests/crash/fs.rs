//! A small model of a file system: inodes (files and directories) and the
//! operations a traced process made on them. Used twice: as the page cache
//! (every operation applied) and as what a power cut leaves (only some).

use std::collections::BTreeMap;
use std::io;
use std::path::Path;
use std::sync::Arc;

/// An inode number of the model (not the real one).
pub type Ino = u64;

/// The directory the trace is rooted at (the parent of the data dir).
pub const ROOT: Ino = 0;

/// File bytes: `bytes`, then zeros up to `len` (preallocated journal space
/// costs nothing).
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub struct Content {
    pub bytes: Vec<u8>,
    pub len: u64,
}

impl Content {
    pub fn from_bytes(bytes: &[u8]) -> Content {
        Content {
            bytes: bytes.to_vec(),
            len: bytes.len() as u64,
        }
    }

    /// Writes `data` at `offset`, growing the file if it ends beyond it.
    pub fn write(&mut self, offset: u64, data: &[u8]) {
        let end = offset + data.len() as u64;
        self.len = self.len.max(end);
        let nonzero_end = data
            .iter()
            .rposition(|b| *b != 0)
            .map(|i| offset + i as u64 + 1);
        let need = (end.min(self.bytes.len() as u64)).max(nonzero_end.unwrap_or(0));
        if need > self.bytes.len() as u64 {
            self.bytes.resize(need as usize, 0);
        }
        if need > offset {
            let n = (need - offset) as usize;
            self.bytes[offset as usize..need as usize].copy_from_slice(&data[..n]);
        }
    }

    pub fn set_len(&mut self, len: u64) {
        self.bytes.truncate(len as usize);
        self.len = len;
    }

    /// All the bytes, zeros included.
    pub fn to_vec(&self) -> Vec<u8> {
        let mut v = self.bytes.clone();
        v.resize(self.len as usize, 0);
        v
    }
}

/// A file's content is shared between the many states built from it and
/// copied only when one of them changes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Node {
    File(Arc<Content>),
    Dir(BTreeMap<String, Ino>),
}

/// One operation on the model, as the traced process made it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FsOp {
    /// A new, empty file or directory named `name` in `parent`.
    Create {
        parent: Ino,
        name: String,
        ino: Ino,
        dir: bool,
    },
    Write {
        ino: Ino,
        offset: u64,
        data: Vec<u8>,
    },
    SetLen {
        ino: Ino,
        len: u64,
    },
    /// `from/from_name` becomes `to/to_name` (replacing what was there).
    Rename {
        from: Ino,
        from_name: String,
        to: Ino,
        to_name: String,
        ino: Ino,
    },
    Unlink {
        parent: Ino,
        name: String,
    },
    /// A successful fsync/fdatasync: the file's data, or the directory's
    /// entries, are durable as they are now.
    Sync {
        ino: Ino,
    },
}

/// A tree of inodes rooted at [`ROOT`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fs {
    pub nodes: BTreeMap<Ino, Node>,
}

impl Default for Fs {
    fn default() -> Self {
        Fs::new()
    }
}

impl Fs {
    /// An empty root directory.
    pub fn new() -> Fs {
        Fs {
            nodes: BTreeMap::from([(ROOT, Node::Dir(BTreeMap::new()))]),
        }
    }

    pub fn entries(&self, dir: Ino) -> Option<&BTreeMap<String, Ino>> {
        match self.nodes.get(&dir)? {
            Node::Dir(e) => Some(e),
            Node::File(_) => None,
        }
    }

    fn entries_mut(&mut self, dir: Ino) -> &mut BTreeMap<String, Ino> {
        match self
            .nodes
            .entry(dir)
            .or_insert_with(|| Node::Dir(BTreeMap::new()))
        {
            Node::Dir(e) => e,
            Node::File(_) => panic!("inode {dir} is a file, used as a directory"),
        }
    }

    pub fn content(&self, ino: Ino) -> Option<&Content> {
        match self.nodes.get(&ino)? {
            Node::File(c) => Some(c),
            Node::Dir(_) => None,
        }
    }

    fn content_mut(&mut self, ino: Ino) -> &mut Content {
        match self
            .nodes
            .entry(ino)
            .or_insert_with(|| Node::File(Arc::default()))
        {
            Node::File(c) => Arc::make_mut(c),
            Node::Dir(_) => panic!("inode {ino} is a directory, written as a file"),
        }
    }

    /// The inode at `names` below the root, if every step exists.
    pub fn lookup<'a>(&self, names: impl IntoIterator<Item = &'a str>) -> Option<Ino> {
        let mut at = ROOT;
        for name in names {
            at = *self.entries(at)?.get(name)?;
        }
        Some(at)
    }

    pub fn apply(&mut self, op: &FsOp) {
        match op {
            FsOp::Create {
                parent,
                name,
                ino,
                dir,
            } => {
                let node = if *dir {
                    Node::Dir(BTreeMap::new())
                } else {
                    Node::File(Arc::default())
                };
                self.nodes.entry(*ino).or_insert(node);
                self.entries_mut(*parent).insert(name.clone(), *ino);
            }
            FsOp::Write { ino, offset, data } => self.content_mut(*ino).write(*offset, data),
            FsOp::SetLen { ino, len } => self.content_mut(*ino).set_len(*len),
            FsOp::Rename {
                from,
                from_name,
                to,
                to_name,
                ino,
            } => {
                self.entries_mut(*from).remove(from_name);
                self.entries_mut(*to).insert(to_name.clone(), *ino);
            }
            FsOp::Unlink { parent, name } => {
                self.entries_mut(*parent).remove(name);
            }
            FsOp::Sync { .. } => {}
        }
    }

    /// What is reachable from the root, by relative path, directories
    /// before what they hold.
    pub fn view(&self) -> View {
        let mut out = Vec::new();
        self.walk(ROOT, "", 0, &mut |path, content| {
            out.push((path.to_string(), content.cloned()));
        });
        View(out)
    }

    /// A fingerprint of [`view`](Self::view), without copying it.
    pub fn view_hash(&self) -> u64 {
        use std::hash::{Hash, Hasher};
        let mut h = std::collections::hash_map::DefaultHasher::new();
        self.walk(ROOT, "", 0, &mut |path, content| {
            (path, content).hash(&mut h)
        });
        h.finish()
    }

    fn walk(
        &self,
        dir: Ino,
        prefix: &str,
        depth: u32,
        visit: &mut dyn FnMut(&str, Option<&Content>),
    ) {
        assert!(depth < 32, "directory cycle in the model at {prefix}");
        let Some(entries) = self.entries(dir) else {
            return;
        };
        let empty = Content::default();
        for (name, ino) in entries {
            let path = format!("{prefix}{name}");
            match self.nodes.get(ino) {
                Some(Node::Dir(_)) => {
                    visit(&path, None);
                    self.walk(*ino, &format!("{path}/"), depth + 1, visit);
                }
                Some(Node::File(c)) => visit(&path, Some(c)),
                None => visit(&path, Some(&empty)),
            }
        }
    }
}

/// A disk state to write out: relative paths, `None` for a directory.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct View(pub Vec<(String, Option<Content>)>);

impl View {
    /// Writes the state below `root` (which exists): directories 0700,
    /// files 0600, zero tails as holes.
    pub fn write_to(&self, root: &Path) -> io::Result<()> {
        use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
        for (path, node) in &self.0 {
            let at = root.join(path);
            match node {
                None => std::fs::DirBuilder::new().mode(0o700).create(&at)?,
                Some(c) => {
                    let mut f = std::fs::OpenOptions::new()
                        .write(true)
                        .create_new(true)
                        .mode(0o600)
                        .open(&at)?;
                    std::io::Write::write_all(&mut f, &c.bytes)?;
                    f.set_len(c.len)?;
                }
            }
        }
        Ok(())
    }

    /// One line per entry: path and size (for reports).
    pub fn summary(&self) -> String {
        let parts: Vec<String> = self
            .0
            .iter()
            .map(|(p, n)| match n {
                None => format!("{p}/"),
                Some(c) if c.len as usize == c.bytes.len() => format!("{p} ({} B)", c.len),
                Some(c) => format!("{p} ({} B, zeros to {})", c.bytes.len(), c.len),
            })
            .collect();
        if parts.is_empty() {
            "(nothing)".into()
        } else {
            parts.join(", ")
        }
    }
}

#[cfg(test)]
mod tests;
