//! Commits that failed to build, to become ready or to stay up. They are
//! not tried again until a person asks (`supervisor update --retry`).
//! Kept in `held-commits.json` so a restart remembers them.

use std::collections::BTreeMap;
use std::path::PathBuf;

use shared::fsutil::atomic_write;
use tracing::warn;

pub struct Held {
    path: PathBuf,
    commits: BTreeMap<String, String>,
}

impl Held {
    /// Loads the file; an unreadable one is kept aside, not overwritten.
    pub fn load(path: PathBuf) -> Held {
        let commits = match std::fs::read(&path) {
            Ok(bytes) => match serde_json::from_slice(&bytes) {
                Ok(c) => c,
                Err(e) => {
                    let aside = path.with_extension("json.unreadable");
                    warn!(error = %e, file = %path.display(), aside = %aside.display(), "held commits unreadable; set aside");
                    let _ = std::fs::rename(&path, aside);
                    BTreeMap::new()
                }
            },
            Err(_) => BTreeMap::new(),
        };
        Held { path, commits }
    }

    pub fn reason(&self, sha: &str) -> Option<&str> {
        self.commits.get(sha).map(String::as_str)
    }

    pub fn commits(&self) -> Vec<String> {
        self.commits.keys().cloned().collect()
    }

    pub fn add(&mut self, sha: &str, why: &str) -> std::io::Result<()> {
        self.commits.insert(sha.to_string(), why.to_string());
        self.save()
    }

    pub fn clear(&mut self) {
        self.commits.clear();
        if let Err(e) = self.save() {
            warn!(error = %e, "cannot save the held commits");
        }
    }

    fn save(&self) -> std::io::Result<()> {
        atomic_write(&self.path, |w| {
            serde_json::to_writer_pretty(&mut *w, &self.commits)?;
            Ok(())
        })
        .map(|_| ())
    }
}
