//! The log of a run in Azure ML, for `amlops logs`: run history lists the run's log files
//! (each a blob behind a read SAS); amlops prints `user_logs/std_log.txt` and, when
//! following, polls it from the byte it had reached until the run is over. A dropped
//! connection or an expired SAS costs one more details call, never a byte printed twice.
//! Cancelling the command (Ctrl-C) leaves the run alone: nothing here writes to Azure.

use std::time::Duration;

use super::azure_failure;
use super::job::USER_LOG;
use crate::azure::WorkspaceClient;
use crate::reconcile::ActionFailure;
use crate::reconcile::experiment::RunState;

/// What the streamer tells the person watching.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LogEvent {
    /// Bytes of `user_logs/std_log.txt`, in order, each byte once.
    Output(bytes::Bytes),
    /// A line for the person (stderr): other log files, state changes, waits.
    Note(String),
}

/// How to stream.
#[derive(Debug, Clone)]
pub struct LogOptions {
    /// Keep reading until the run is over.
    pub follow: bool,
    /// Time between looks while following.
    pub poll: Duration,
    /// Consecutive failed looks tolerated while following before giving up.
    pub max_failures: u32,
}

impl Default for LogOptions {
    fn default() -> Self {
        Self {
            follow: false,
            poll: Duration::from_secs(3),
            max_failures: 10,
        }
    }
}

/// Where the streamer is: the byte reached, the state last reported and since when.
#[derive(Debug, Default)]
struct Cursor {
    offset: u64,
    state: Option<String>,
    state_since: Option<tokio::time::Instant>,
    named_others: bool,
    failures: u32,
}

/// Prints what run history has of `run_id`'s user log; with `follow`, keeps going until the
/// run is over and everything it wrote is printed.
pub async fn stream(
    client: &WorkspaceClient,
    run_id: &str,
    options: &LogOptions,
    sink: &mut (dyn FnMut(LogEvent) + Send),
) -> Result<(), ActionFailure> {
    let mut cursor = Cursor::default();
    loop {
        match look(client, run_id, &mut cursor, sink).await {
            Ok(over) if over || !options.follow => return Ok(()),
            Ok(_) => cursor.failures = 0,
            Err(f) if options.follow && f.retryable() && cursor.failures < options.max_failures => {
                cursor.failures += 1;
                sink(LogEvent::Note(format!(
                    "{}; trying again from byte {}",
                    f.message, cursor.offset
                )));
            }
            Err(f) => return Err(f),
        }
        tokio::time::sleep(options.poll).await;
    }
}

/// One look: details, new bytes of the user log, state. Returns whether the run is over and
/// its log fully printed.
async fn look(
    client: &WorkspaceClient,
    run_id: &str,
    cursor: &mut Cursor,
    sink: &mut (dyn FnMut(LogEvent) + Send),
) -> Result<bool, ActionFailure> {
    let Some(details) = client
        .run_details(run_id)
        .await
        .map_err(|e| azure_failure(&e))?
    else {
        note_state(cursor, "not in run history yet", sink);
        return Ok(false);
    };
    let state = details.status.clone().unwrap_or_else(|| "Unknown".into());
    note_state(cursor, &state, sink);
    if !cursor.named_others {
        let others: Vec<&str> = details
            .log_files
            .keys()
            .map(String::as_str)
            .filter(|n| *n != USER_LOG)
            .collect();
        if !others.is_empty() {
            sink(LogEvent::Note(format!("other logs: {}", others.join(", "))));
            cursor.named_others = true;
        }
    }
    let over = RunState::parse(&state).is_some_and(RunState::is_terminal);
    let Some(url) = details.log_files.get(USER_LOG) else {
        if over {
            sink(LogEvent::Note(format!("run {run_id} has no {USER_LOG}")));
        }
        return Ok(over);
    };
    // Read until nothing new: a finished run's log is complete once this returns empty.
    loop {
        let chunk = client
            .read_log(url, cursor.offset, None)
            .await
            .map_err(|e| azure_failure(&e))?;
        if chunk.bytes.is_empty() {
            return Ok(over);
        }
        cursor.offset += chunk.bytes.len() as u64;
        sink(LogEvent::Output(chunk.bytes));
    }
}

/// Says when the run's state changes, and how long it sat in the previous one.
fn note_state(cursor: &mut Cursor, state: &str, sink: &mut (dyn FnMut(LogEvent) + Send)) {
    if cursor.state.as_deref() == Some(state) {
        return;
    }
    let now = tokio::time::Instant::now();
    let after = match (&cursor.state, cursor.state_since) {
        (Some(previous), Some(since)) => format!(
            " (after {} {previous})",
            crate::reconcile::experiment::format_duration(now.duration_since(since))
        ),
        _ => String::new(),
    };
    sink(LogEvent::Note(format!("run is {state}{after}")));
    cursor.state = Some(state.to_string());
    cursor.state_since = Some(now);
}
