//! The supervisor's logs: its own tracing lines and the worker's stdout and
//! stderr (read through pipes, so a panic message is kept), each in a daily
//! file in the log directory. Echoed to the terminal when there is one.
//! `supervisor logs` reads them back (`view.rs`).

pub mod daily;
pub mod follow;
pub mod line;
pub mod tail;
pub mod view;

use std::io::{IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use tracing::{info, warn};
use tracing_subscriber::fmt::MakeWriter;

use daily::DailyFile;

/// A daily file shared by the tasks that write to it.
#[derive(Clone)]
pub struct Sink {
    file: Arc<Mutex<DailyFile>>,
    echo: bool,
}

impl Sink {
    pub fn new(dir: &Path, prefix: &'static str, echo: bool) -> Self {
        Sink {
            file: Arc::new(Mutex::new(DailyFile::new(dir, prefix, SystemTime::now))),
            echo,
        }
    }

    /// Writes whole lines; a failing log file never stops the service.
    pub fn write_all(&self, bytes: &[u8]) {
        if let Ok(mut f) = self.file.lock() {
            let _ = f.write_all(bytes);
        }
        if self.echo {
            let _ = std::io::stderr().write_all(bytes);
        }
    }
}

/// The `io::Write` tracing writes each event through.
pub struct SinkWriter(Sink);

impl Write for SinkWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.write_all(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> MakeWriter<'a> for Sink {
    type Writer = SinkWriter;
    fn make_writer(&'a self) -> SinkWriter {
        SinkWriter(self.clone())
    }
}

/// The two sinks of a running supervisor.
pub struct Logs {
    pub dir: PathBuf,
    pub worker: Sink,
}

/// Creates the log directory (0700), installs tracing into
/// `supervisor.<day>.log`, and returns the sink for the worker's output.
pub fn init(dir: &Path, filter: &str) -> std::io::Result<Logs> {
    shared::paths::ensure_private_dir(dir)?;
    let echo = std::io::stderr().is_terminal();
    let own = Sink::new(dir, daily::SUPERVISOR, echo);
    shared::logging::init(filter, own, false);
    Ok(Logs {
        dir: dir.to_path_buf(),
        worker: Sink::new(dir, daily::WORKER, echo),
    })
}

/// Deletes log files older than `days`, now and then once an hour.
pub fn spawn_retention(dir: PathBuf, days: u32) {
    tokio::spawn(async move {
        loop {
            match daily::prune(&dir, days, SystemTime::now()) {
                Ok(removed) => {
                    for path in removed {
                        info!(file = %path.display(), days, "deleted an old log file");
                    }
                }
                Err(e) => warn!(error = %e, dir = %dir.display(), "cannot prune old logs"),
            }
            tokio::time::sleep(Duration::from_secs(3600)).await;
        }
    });
}

/// Copies one of the worker's output streams into the worker log, line by
/// line, until the stream closes (a thread: the fd may have been inherited
/// across a re-exec). Long lines are cut into 64 KiB pieces.
pub fn pump(stream: std::os::fd::OwnedFd, sink: Sink) {
    use std::io::BufRead;
    let spawned = std::thread::Builder::new()
        .name("worker-output".into())
        .spawn(move || {
            let mut reader =
                std::io::BufReader::with_capacity(16 * 1024, std::fs::File::from(stream));
            let mut line = Vec::with_capacity(256);
            loop {
                line.clear();
                match std::io::Read::take(&mut reader, 64 * 1024).read_until(b'\n', &mut line) {
                    Ok(0) | Err(_) => break,
                    Ok(_) => {
                        if !line.ends_with(b"\n") {
                            line.push(b'\n');
                        }
                        sink.write_all(&line);
                    }
                }
            }
        });
    if let Err(e) = spawned {
        warn!(error = %e, "cannot start a thread for the worker's output");
    }
}
