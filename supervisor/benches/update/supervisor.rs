use super::*;

pub(crate) struct Supervisor {
    child: Child,
    pub(crate) data: PathBuf,
    pub(crate) ctl: PathBuf,
    logs: PathBuf,
    stderr: PathBuf,
    pub(crate) bin: PathBuf,
}

impl Supervisor {
    pub(crate) fn spawn(bins: &Bins, p: &Project, staging: &Path, probation_ms: u64) -> Supervisor {
        let stderr = p.root.join("supervisor.stderr");
        let child = clean_env(&mut Command::new(&bins.supervisor))
            .arg("--data-dir")
            .arg(&p.data)
            .arg("run")
            .arg("--log-dir")
            .arg(&p.logs)
            .args(["--poll-interval-ms", "0", "--repo"])
            .arg(&p.checkout)
            .arg("--staging-dir")
            .arg(staging)
            .args(["--build-profile", "release", "--probation-ms"])
            .arg(probation_ms.to_string())
            .env("RUST_LOG", "info")
            .stdout(Stdio::null())
            .stderr(fs::File::create(&stderr).expect("create the stderr file"))
            .spawn()
            .expect("start the supervisor");
        let sup = Supervisor {
            child,
            data: p.data.clone(),
            ctl: p.data.join("supervisor.sock"),
            logs: p.logs.clone(),
            stderr,
            bin: bins.supervisor.clone(),
        };
        sup.wait_ready(|_| true);
        sup
    }

    pub(crate) fn pid(&self) -> u32 {
        self.child.id()
    }

    pub(crate) fn sock(&self) -> PathBuf {
        self.data.join("worker.sock")
    }

    /// `{"op":"status"}` on the control socket, as `status --json` asks it.
    pub(crate) fn status(&self) -> Option<Value> {
        let mut stream = UnixStream::connect(&self.ctl).ok()?;
        stream
            .set_read_timeout(Some(Duration::from_secs(10)))
            .ok()?;
        stream.write_all(b"{\"op\":\"status\"}\n").ok()?;
        let mut line = String::new();
        BufReader::new(stream).read_line(&mut line).ok()?;
        serde_json::from_str(&line).ok()
    }

    pub(crate) fn wait_ready(&self, pred: impl Fn(&Value) -> bool) -> Value {
        wait_until(Duration::from_secs(120), "a ready worker", || {
            let s = self.status()?;
            (s["worker"]["state"] == "ready" && pred(&s)).then_some(s)
        })
    }

    /// `supervisor --data-dir <data> ARGS…`: its output and wall time.
    pub(crate) fn cli(&self, args: &[&str]) -> (Output, Duration) {
        let t = Instant::now();
        let out = clean_env(&mut Command::new(&self.bin))
            .arg("--data-dir")
            .arg(&self.data)
            .args(args)
            .output()
            .expect("run the supervisor CLI");
        (out, t.elapsed())
    }

    /// Every line of the supervisor's log files so far, oldest first.
    pub(crate) fn log_lines(&self) -> Vec<String> {
        let mut files: Vec<PathBuf> = fs::read_dir(&self.logs)
            .into_iter()
            .flatten()
            .flatten()
            .map(|e| e.path())
            .filter(|p| {
                p.file_name()
                    .is_some_and(|n| n.to_string_lossy().starts_with("supervisor."))
            })
            .collect();
        files.sort();
        files
            .iter()
            .flat_map(|f| {
                fs::read_to_string(f)
                    .unwrap_or_default()
                    .lines()
                    .map(String::from)
                    .collect::<Vec<_>>()
            })
            .collect()
    }

    pub(crate) fn stderr_text(&self) -> String {
        fs::read_to_string(&self.stderr).unwrap_or_default()
    }
}

impl Drop for Supervisor {
    fn drop(&mut self) {
        common::stop_child(&mut self.child);
    }
}
