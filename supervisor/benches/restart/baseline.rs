use super::*;

/// A worker that binds its own socket, restarted by us like a naive
/// process manager would.
pub(crate) struct Naive {
    bin: PathBuf,
    data: PathBuf,
    pub(crate) sock: PathBuf,
    child: Option<Child>,
}

impl Naive {
    pub(crate) fn new(bins: &Bins, root: &Path) -> Naive {
        let data = root.join("data");
        let mut n = Naive {
            bin: bins.worker.clone(),
            sock: data.join("worker.sock"),
            data,
            child: None,
        };
        n.spawn();
        n.wait_serving();
        n
    }

    fn spawn(&mut self) {
        let child = clean_env(&mut Command::new(&self.bin))
            .arg("--data-dir")
            .arg(&self.data)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start the worker");
        self.child = Some(child);
    }

    pub(crate) fn pid(&self) -> u32 {
        self.child.as_ref().expect("a worker runs").id()
    }

    pub(crate) fn wait_serving(&self) {
        let pid = self.pid();
        harness::poll_until(POLL, Duration::from_secs(30), "the naive worker", || {
            matches!(ping(&self.sock), Ping::Pid(p) if p == pid).then_some(())
        });
    }

    /// Signal, `waitpid`, start again at once.
    pub(crate) fn cycle(&mut self, signal: Signal) {
        let mut child = self.child.take().expect("a worker runs");
        kill(Pid::from_raw(child.id() as i32), signal).expect("signal the worker");
        let status = child.wait().expect("wait for the worker");
        if signal == Signal::SIGTERM {
            assert!(status.success(), "the worker stopped with {status}");
        }
        self.spawn();
    }
}

impl Drop for Naive {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}
