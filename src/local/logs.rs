//! Where a run's logs are, and following them (`amlops logs -f`).

use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::path::PathBuf;
use std::time::Duration;

use jiff::Timestamp;

use super::error::LocalError;
use super::run::{RunLayout, RunRecord};
use super::status::{RunStatus, poll_run};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogPaths {
    pub stdout: PathBuf,
    pub stderr: PathBuf,
}

pub fn logs(record: &RunRecord) -> LogPaths {
    let layout = RunLayout(&record.run_dir);
    LogPaths {
        stdout: layout.stdout(),
        stderr: layout.stderr(),
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogStream {
    Stdout,
    Stderr,
}

/// Reads what was appended to a run's logs since the last call.
pub struct LogFollower {
    paths: LogPaths,
    offsets: [u64; 2],
}

impl LogFollower {
    /// Starts at the beginning of both logs.
    pub fn new(record: &RunRecord) -> Self {
        LogFollower {
            paths: logs(record),
            offsets: [0, 0],
        }
    }

    /// New bytes of stdout, then of stderr (a log not created yet has none).
    pub fn read_new(&mut self) -> Result<Vec<(LogStream, Vec<u8>)>, LocalError> {
        let mut chunks = Vec::new();
        for (i, (stream, path)) in [
            (LogStream::Stdout, &self.paths.stdout),
            (LogStream::Stderr, &self.paths.stderr),
        ]
        .into_iter()
        .enumerate()
        {
            let mut file = match File::open(path) {
                Ok(f) => f,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
                Err(e) => return Err(LocalError::io("cannot open log", path)(e)),
            };
            let mut bytes = Vec::new();
            file.seek(SeekFrom::Start(self.offsets[i]))
                .and_then(|_| file.read_to_end(&mut bytes))
                .map_err(LocalError::io("cannot read log", path))?;
            if !bytes.is_empty() {
                self.offsets[i] += bytes.len() as u64;
                chunks.push((stream, bytes));
            }
        }
        Ok(chunks)
    }
}

/// Hands every new log chunk to `sink` until the run is terminal (polling it, so the
/// deadline is enforced while following), then drains the logs and returns the status.
pub fn follow_logs(
    record: &RunRecord,
    interval: Duration,
    sink: &mut dyn FnMut(LogStream, &[u8]),
) -> Result<RunStatus, LocalError> {
    let mut follower = LogFollower::new(record);
    loop {
        let status = poll_run(record, Timestamp::now())?;
        for (stream, bytes) in follower.read_new()? {
            sink(stream, &bytes);
        }
        if status.is_terminal() {
            return Ok(status);
        }
        std::thread::sleep(interval);
    }
}
