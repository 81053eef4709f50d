//! Pure, time-driven lifecycles: the state of a compute or a job is a function of how long
//! ago it was created (or cancelled), so nothing needs a background task.

use std::time::Duration;

/// How a job ends when left alone.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Deserialize, serde::Serialize)]
pub enum JobOutcome {
    Completed,
    Failed,
    Canceled,
    /// Stays `Running` until cancelled (for cancel tests).
    Running,
}

impl JobOutcome {
    pub fn parse(s: &str) -> Option<JobOutcome> {
        match s {
            "Completed" => Some(JobOutcome::Completed),
            "Failed" => Some(JobOutcome::Failed),
            "Canceled" => Some(JobOutcome::Canceled),
            "Running" => Some(JobOutcome::Running),
            _ => None,
        }
    }
}

/// Phases a job walks through before its outcome, one `phase` each.
pub const JOB_PHASES: [&str; 5] = ["NotStarted", "Queued", "Preparing", "Running", "Finalizing"];
const RUNNING_PHASE: u32 = 3;

/// A job's status at `elapsed` after creation; `cancelled` is the time since a cancel request.
pub fn job_status(
    elapsed: Duration,
    phase: Duration,
    outcome: JobOutcome,
    cancelled: Option<Duration>,
) -> &'static str {
    if let Some(since) = cancelled {
        return if since < phase {
            "CancelRequested"
        } else {
            "Canceled"
        };
    }
    let index = phase_index(elapsed, phase);
    match (JOB_PHASES.get(index as usize), outcome) {
        (Some(_), JobOutcome::Running) if index >= RUNNING_PHASE => "Running",
        (Some(p), _) => p,
        (None, JobOutcome::Running) => "Running",
        (None, JobOutcome::Completed) => "Completed",
        (None, JobOutcome::Failed) => "Failed",
        (None, JobOutcome::Canceled) => "Canceled",
    }
}

fn phase_index(elapsed: Duration, phase: Duration) -> u32 {
    if phase.is_zero() {
        return JOB_PHASES.len() as u32;
    }
    u32::try_from(elapsed.as_nanos() / phase.as_nanos()).unwrap_or(u32::MAX)
}

/// Offsets from creation of the start of `Running` and of the terminal state (if reached).
pub fn job_times(
    phase: Duration,
    status: &str,
    cancelled_after: Option<Duration>,
) -> (Option<Duration>, Option<Duration>) {
    let start = phase * RUNNING_PHASE;
    // A job cancelled by request started if the request came after Running began; one that
    // ended Canceled by its outcome went through Running.
    let started = matches!(status, "Running" | "Finalizing" | "Completed" | "Failed")
        || (matches!(status, "Canceled" | "CancelRequested")
            && cancelled_after.is_none_or(|c| c >= start));
    let end = match status {
        "Completed" | "Failed" => Some(phase * JOB_PHASES.len() as u32),
        "Canceled" => Some(
            cancelled_after
                .map(|c| c + phase)
                .unwrap_or(phase * JOB_PHASES.len() as u32),
        ),
        _ => None,
    };
    (started.then_some(start), end)
}

/// Whether a job status is terminal.
pub fn is_terminal(status: &str) -> bool {
    matches!(status, "Completed" | "Failed" | "Canceled")
}

#[cfg(test)]
mod tests {
    use super::*;

    const P: Duration = Duration::from_millis(100);

    #[test]
    fn job_walks_all_phases_then_its_outcome() {
        let at = |ms| job_status(Duration::from_millis(ms), P, JobOutcome::Completed, None);
        assert_eq!(
            [at(0), at(150), at(250), at(350), at(450), at(550)],
            [
                "NotStarted",
                "Queued",
                "Preparing",
                "Running",
                "Finalizing",
                "Completed"
            ]
        );
        assert_eq!(
            job_status(Duration::from_secs(9), P, JobOutcome::Failed, None),
            "Failed"
        );
        assert_eq!(
            job_status(Duration::from_secs(9), P, JobOutcome::Running, None),
            "Running"
        );
        assert_eq!(
            job_status(Duration::from_millis(50), P, JobOutcome::Running, None),
            "NotStarted"
        );
    }

    #[test]
    fn cancel_goes_through_cancel_requested() {
        assert_eq!(
            job_status(
                Duration::from_secs(9),
                P,
                JobOutcome::Running,
                Some(Duration::from_millis(10))
            ),
            "CancelRequested"
        );
        assert_eq!(
            job_status(Duration::from_secs(9), P, JobOutcome::Running, Some(P)),
            "Canceled"
        );
    }

    #[test]
    fn times_follow_status() {
        assert_eq!(job_times(P, "Queued", None), (None, None));
        assert_eq!(job_times(P, "Running", None), (Some(P * 3), None));
        assert_eq!(job_times(P, "Completed", None), (Some(P * 3), Some(P * 5)));
        assert_eq!(job_times(P, "Canceled", Some(P)), (None, Some(P * 2)));
        assert_eq!(job_times(P, "Canceled", None), (Some(P * 3), Some(P * 5)));
    }
}
