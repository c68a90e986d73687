//! `worker call …`: every session op from a shell, printed as JSON.

use std::io::Read;
use std::path::Path;
use std::time::Duration;

use clap::Subcommand;
use serde_json::value::RawValue;
use shared::client::Client;
use shared::protocol::Request;

/// Exit status when no worker answers on the socket.
pub const EXIT_NOT_RUNNING: i32 = 3;

/// One op of the session API.
#[derive(Debug, Subcommand)]
pub enum CallOp {
    /// Is the worker up? Prints its pid, version and commit.
    Ping,
    /// Create or replace a session. DATA is JSON; `-` reads it from stdin.
    Put { id: String, data: String },
    /// Print one session.
    Get { id: String },
    /// Delete one session.
    Delete { id: String },
    /// List sessions (id and timestamps), sorted by id.
    List {
        #[arg(long)]
        prefix: Option<String>,
        #[arg(long)]
        limit: Option<usize>,
    },
    /// Print the store's counters and how writes are synced.
    Stats,
    /// Send one raw request line as is (for experiments).
    Raw { line: String },
}

/// Runs one op against the socket; returns the exit status.
pub fn call(socket: &Path, op: CallOp) -> i32 {
    let line = match request_line(op) {
        Ok(line) => line,
        Err(e) => {
            eprintln!("worker call: {e}");
            return 2;
        }
    };
    let mut client = match Client::connect(socket, Duration::from_secs(30)) {
        Ok(c) => c,
        Err(e) => {
            eprintln!(
                "worker call: no worker answers on {}: {e}\n\
                 Start one with `worker` (or `supervisor run`).",
                socket.display()
            );
            return EXIT_NOT_RUNNING;
        }
    };
    match client.call_line(&line) {
        Ok(answer) => {
            println!("{answer}");
            let ok = serde_json::from_str::<serde_json::Value>(&answer)
                .map(|v| v["ok"] == true)
                .unwrap_or(false);
            if ok {
                0
            } else {
                1
            }
        }
        Err(e) => {
            eprintln!("worker call: {e}");
            1
        }
    }
}

fn request_line(op: CallOp) -> Result<String, String> {
    let request = match op {
        CallOp::Ping => Request::Ping,
        CallOp::Put { id, data } => {
            let data = if data == "-" {
                let mut s = String::new();
                std::io::stdin()
                    .read_to_string(&mut s)
                    .map_err(|e| format!("cannot read DATA from stdin: {e}"))?;
                s
            } else {
                data
            };
            let data = RawValue::from_string(data.trim().to_string())
                .map_err(|e| format!("DATA is not valid JSON: {e}"))?;
            Request::Put { id, data }
        }
        CallOp::Get { id } => Request::Get { id },
        CallOp::Delete { id } => Request::Delete { id },
        CallOp::List { prefix, limit } => Request::List { prefix, limit },
        CallOp::Stats => Request::Stats,
        CallOp::Raw { line } => return Ok(line),
    };
    Ok(request.to_line())
}
