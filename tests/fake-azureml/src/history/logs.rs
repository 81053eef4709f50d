//! The run's log files. Not recorded: no recording shows `runs/{id}/details` or a log blob
//! (azure-recordings/SOURCE.md says so), so their content is the fake's own. What a client may
//! rely on, and what the fake guarantees:
//!
//! - the content is a pure function of the run's state at the moment it is read;
//! - it only grows: every line has a time (an offset from the job's creation) and a read shows
//!   the lines whose time has come, so earlier bytes never change and a reader can resume from a
//!   byte offset (a cancel drops only lines that were not yet due);
//! - `user_logs/std_log.txt` (the script's output) prints a start line and three
//!   `epoch k/3 loss=...` lines during `Running`; a Failed run ends with a Python traceback and
//!   an error line, a Completed one with a normal final line, a cancelled one with a stop line;
//! - `system_logs/lifecycler/execution-wrapper.log` logs each status change with a timestamp.

use super::view::{RunView, time};
use crate::lifecycle::{JOB_PHASES, JobOutcome, RUNNING_PHASE};
use std::time::Duration;

/// The log files of a run, by the name run history lists them under.
pub const LOG_FILES: [&str; 2] = [
    "user_logs/std_log.txt",
    "system_logs/lifecycler/execution-wrapper.log",
];

const EPOCHS: u32 = 3;
const STOP_LINE: &str = "Received SIGTERM: the run is being canceled, stopping";

/// Lines with the time they appear at; `cancel` lines replace those due after a cancel.
type Schedule = Vec<(Duration, String)>;

/// The content of log `name` as of the view's moment (empty for an unknown name).
pub fn content(view: &RunView, name: &str) -> String {
    let schedule = match name {
        "user_logs/std_log.txt" => std_log(view),
        "system_logs/lifecycler/execution-wrapper.log" => lifecycle_log(view),
        _ => Vec::new(),
    };
    schedule
        .into_iter()
        .filter(|(at, _)| *at <= view.elapsed)
        .map(|(_, line)| line + "\n")
        .collect()
}

/// Keeps the lines due before a cancel at `c` and appends `on_cancel` lines.
fn cut_at_cancel(view: &RunView, mut lines: Schedule, on_cancel: Schedule) -> Schedule {
    if let Some(c) = view.timeline.cancelled_after {
        lines.retain(|(at, _)| *at <= c);
        lines.extend(on_cancel);
    }
    lines
}

fn std_log(view: &RunView) -> Schedule {
    let t = view.timeline;
    let start = t.running_from();
    let script_end = start + t.phase;
    let mut lines = vec![(
        start,
        "Training started: loading data and model".to_string(),
    )];
    for k in 1..=EPOCHS {
        let loss = 0.9 / f64::from(k);
        lines.push((
            start + t.phase * k / (EPOCHS + 1),
            format!("epoch {k}/{EPOCHS} loss={loss:.4}"),
        ));
    }
    let ending = match t.outcome {
        JobOutcome::Completed => vec![format!(
            "Training finished: {EPOCHS} epochs, final loss=0.3000"
        )],
        JobOutcome::Failed => traceback(),
        JobOutcome::Canceled => vec![STOP_LINE.to_string()],
        // The script of a run that never ends is still running.
        JobOutcome::Running
        | JobOutcome::Paused
        | JobOutcome::NotResponding
        | JobOutcome::Unknown => Vec::new(),
    };
    let script_ends = !ending.is_empty();
    lines.extend(ending.into_iter().map(|l| (script_end, l)));
    let on_cancel = match t.cancelled_after {
        // A cancel stops the script if it had started and not yet ended.
        Some(c) if c >= start && (!script_ends || c < script_end) => {
            vec![(c, STOP_LINE.to_string())]
        }
        _ => Vec::new(),
    };
    cut_at_cancel(view, lines, on_cancel)
}

/// The failure the run history error describes (`ScriptExecution.StreamAccess.NotFound`).
fn traceback() -> Vec<String> {
    [
        "Traceback (most recent call last):",
        "  File \"/mnt/azureml/cr/j/0/exe/wd/train.py\", line 42, in <module>",
        "    main()",
        "  File \"/mnt/azureml/cr/j/0/exe/wd/train.py\", line 31, in main",
        "    frame = load_dataset(args.data)",
        "FileNotFoundError: [Errno 2] No such file or directory: '/mnt/azureml/cr/j/0/cap/data-capability/wd/INPUT_data/train.csv'",
        "Error: the script exited with code 1",
    ]
    .map(str::to_string)
    .to_vec()
}

fn lifecycle_log(view: &RunView) -> Schedule {
    let t = view.timeline;
    let entry = |offset: Duration, message: String| {
        (
            offset,
            format!("{} | INFO | {message}", time(view.at(offset))),
        )
    };
    let held_from = t.phase * (RUNNING_PHASE + 1);
    let mut lines: Schedule = JOB_PHASES
        .iter()
        .zip(0u32..)
        .map(|(phase, i)| (t.phase * i, *phase))
        .map(|(at, phase)| entry(at, format!("Run status: {phase}")))
        .collect();
    match t.outcome {
        JobOutcome::Completed | JobOutcome::Failed | JobOutcome::Canceled => {
            let end = t.outcome_at();
            let status = t.status(end);
            lines.push(entry(end, format!("Run status: {status}")));
        }
        JobOutcome::Running
        | JobOutcome::Paused
        | JobOutcome::NotResponding
        | JobOutcome::Unknown => {
            // A run that never ends holds its status instead of Finalizing.
            lines.retain(|(at, _)| *at < held_from);
            let status = t.status(held_from);
            if status != "Running" {
                lines.push(entry(held_from, format!("Run status: {status}")));
            }
        }
    }
    let on_cancel = match t.cancelled_after {
        Some(c) => vec![
            entry(c, "Run status: CancelRequested".to_string()),
            entry(c + t.phase, "Run status: Canceled".to_string()),
        ],
        None => Vec::new(),
    };
    cut_at_cancel(view, lines, on_cancel)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::lifecycle::Timeline;
    use serde_json::json;

    const P: Duration = Duration::from_millis(100);

    fn view(outcome: JobOutcome, cancelled_ms: Option<u64>, elapsed_ms: u64) -> RunView {
        RunView {
            name: "run".into(),
            workspace_id: "/subscriptions/s/resourceGroups/rg/providers/Microsoft.MachineLearningServices/workspaces/ws".into(),
            body: json!({"properties": {}}),
            server_properties: Default::default(),
            created_wall: "2026-01-01T00:00:00Z".parse().unwrap(),
            timeline: Timeline {
                phase: P,
                outcome,
                cancelled_after: cancelled_ms.map(Duration::from_millis),
            },
            elapsed: Duration::from_millis(elapsed_ms),
        }
    }

    fn std(outcome: JobOutcome, cancelled: Option<u64>, at: u64) -> String {
        content(&view(outcome, cancelled, at), LOG_FILES[0])
    }

    #[test]
    fn the_log_grows_and_never_rewrites_its_past() {
        for outcome in [
            JobOutcome::Completed,
            JobOutcome::Failed,
            JobOutcome::Running,
        ] {
            let reads: Vec<String> = (0..80).map(|i| std(outcome, None, i * 10)).collect();
            for pair in reads.windows(2) {
                assert!(pair[1].starts_with(&pair[0]), "{outcome:?}: {pair:?}");
            }
        }
        assert_eq!(
            std(JobOutcome::Completed, None, 350),
            "",
            "nothing before Running"
        );
        let running = std(JobOutcome::Completed, None, 430);
        assert!(
            running.contains("epoch 1/3 loss=0.9000") && !running.contains("epoch 3/3"),
            "{running}"
        );
    }

    #[test]
    fn outcomes_end_the_log_differently() {
        let done = std(JobOutcome::Completed, None, 900);
        assert!(
            done.ends_with("Training finished: 3 epochs, final loss=0.3000\n"),
            "{done}"
        );
        let failed = std(JobOutcome::Failed, None, 900);
        assert!(
            failed.contains("Traceback (most recent call last):\n"),
            "{failed}"
        );
        assert!(
            failed.ends_with("Error: the script exited with code 1\n"),
            "{failed}"
        );
    }

    #[test]
    fn a_cancel_keeps_what_was_printed_and_adds_a_stop_line() {
        let before = std(JobOutcome::Running, None, 430);
        let after = std(JobOutcome::Running, Some(430), 2000);
        assert!(after.starts_with(&before), "{before:?} / {after:?}");
        assert!(
            after.ends_with("stopping\n") && !after.contains("epoch 2/3"),
            "{after}"
        );
        assert_eq!(
            std(JobOutcome::Running, Some(100), 2000),
            "",
            "never started"
        );
        let system = content(&view(JobOutcome::Running, Some(430), 2000), LOG_FILES[1]);
        assert!(
            system.ends_with("| INFO | Run status: Canceled\n"),
            "{system}"
        );
    }

    #[test]
    fn the_lifecycle_log_names_each_status() {
        let log = content(&view(JobOutcome::Completed, None, 900), LOG_FILES[1]);
        let statuses: Vec<&str> = log
            .lines()
            .filter_map(|l| l.split("Run status: ").nth(1))
            .collect();
        assert_eq!(
            statuses,
            [
                "Starting",
                "Provisioning",
                "Preparing",
                "Queued",
                "Running",
                "Finalizing",
                "Completed"
            ]
        );
        assert!(
            log.starts_with("2026-01-01T00:00:00+00:00 | INFO | "),
            "{log}"
        );
        let paused = content(&view(JobOutcome::Paused, None, 900), LOG_FILES[1]);
        assert!(paused.ends_with("Run status: Paused\n"), "{paused}");
    }
}
