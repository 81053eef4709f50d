//! Pure, time-driven lifecycles: the state of a job is a function of how long ago it was
//! created (or cancelled), so nothing needs a background task.
//!
//! The phase order is the documented one (spec `JobStatus` enum and its descriptions):
//! Starting -> Provisioning -> Preparing -> Queued -> Running -> Finalizing -> Completed |
//! Failed | Canceled. A new command job answers `Starting` (job/…dependency_label_resolution.json
//! #17), so the fake never reports `NotStarted`.

use std::time::Duration;

/// How a job ends when left alone.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Deserialize, serde::Serialize)]
pub enum JobOutcome {
    Completed,
    Failed,
    Canceled,
    /// Stays `Running` until cancelled (for cancel tests).
    Running,
    /// Reaches `Running`, then reports `Paused` until cancelled (spec `JobStatus`: paused by
    /// users). Not recorded: no recording shows a paused job.
    Paused,
    /// Reaches `Running`, then reports `NotResponding` until cancelled (spec `JobStatus`:
    /// heartbeat lost). Not recorded.
    NotResponding,
    /// Reaches `Running`, then reports `Unknown` until cancelled (spec `JobStatus`: unmapped
    /// status). Not recorded.
    Unknown,
}

impl JobOutcome {
    /// Parses the name used by the `fake.outcome` tag and the control endpoint.
    pub fn parse(s: &str) -> Option<JobOutcome> {
        match s {
            "Completed" => Some(JobOutcome::Completed),
            "Failed" => Some(JobOutcome::Failed),
            "Canceled" => Some(JobOutcome::Canceled),
            "Running" => Some(JobOutcome::Running),
            "Paused" => Some(JobOutcome::Paused),
            "NotResponding" => Some(JobOutcome::NotResponding),
            "Unknown" => Some(JobOutcome::Unknown),
            _ => None,
        }
    }

    /// The terminal status this outcome ends in, or `None` if the job never ends by itself.
    fn terminal(self) -> Option<&'static str> {
        match self {
            JobOutcome::Completed => Some("Completed"),
            JobOutcome::Failed => Some("Failed"),
            JobOutcome::Canceled => Some("Canceled"),
            JobOutcome::Running
            | JobOutcome::Paused
            | JobOutcome::NotResponding
            | JobOutcome::Unknown => None,
        }
    }

    /// The status a never-ending outcome holds after the Running phase.
    fn held(self) -> &'static str {
        match self {
            JobOutcome::Paused => "Paused",
            JobOutcome::NotResponding => "NotResponding",
            JobOutcome::Unknown => "Unknown",
            _ => "Running",
        }
    }
}

/// Phases a job walks through before its outcome, one `phase` each.
pub const JOB_PHASES: [&str; 6] = [
    "Starting",
    "Provisioning",
    "Preparing",
    "Queued",
    "Running",
    "Finalizing",
];
/// Index of `Running` in [`JOB_PHASES`]: the run's start time is the start of this phase.
pub const RUNNING_PHASE: u32 = 4;

/// Everything a job's history depends on: the phase length, how it ends, and when (after
/// creation) a cancel was requested.
#[derive(Debug, Clone, Copy)]
pub struct Timeline {
    pub phase: Duration,
    pub outcome: JobOutcome,
    pub cancelled_after: Option<Duration>,
}

impl Timeline {
    /// When the `Running` phase begins, as an offset from creation.
    pub fn running_from(&self) -> Duration {
        self.phase * RUNNING_PHASE
    }

    /// When a job left alone reaches its outcome.
    pub fn outcome_at(&self) -> Duration {
        self.phase * JOB_PHASES.len() as u32
    }

    /// The status at `elapsed` after creation.
    pub fn status(&self, elapsed: Duration) -> &'static str {
        if let Some(c) = self.cancelled_after {
            return if elapsed < c + self.phase {
                "CancelRequested"
            } else {
                "Canceled"
            };
        }
        let index = self.phase_index(elapsed);
        let running_end = RUNNING_PHASE as usize + 1;
        match JOB_PHASES.get(index) {
            Some(p) if index < running_end => p,
            _ if self.outcome.terminal().is_none() => self.outcome.held(),
            Some(p) => p,
            None => self.outcome.terminal().unwrap_or("Running"),
        }
    }

    fn phase_index(&self, elapsed: Duration) -> usize {
        if self.phase.is_zero() {
            return JOB_PHASES.len();
        }
        usize::try_from(elapsed.as_nanos() / self.phase.as_nanos()).unwrap_or(usize::MAX)
    }

    /// Offset of the run's start (the start of `Running`) if it has started by `elapsed`; a
    /// run cancelled before `Running` never starts.
    pub fn started(&self, elapsed: Duration) -> Option<Duration> {
        let start = self.running_from();
        let cancelled_first = self.cancelled_after.is_some_and(|c| c < start);
        (elapsed >= start && !cancelled_first).then_some(start)
    }

    /// Offset of the run's end if it has ended by `elapsed`.
    pub fn ended(&self, elapsed: Duration) -> Option<Duration> {
        let end = match self.cancelled_after {
            Some(c) => c + self.phase,
            None if self.outcome.terminal().is_some() => self.outcome_at(),
            None => return None,
        };
        (elapsed >= end).then_some(end)
    }
}

/// Whether a job status is terminal.
pub fn is_terminal(status: &str) -> bool {
    matches!(status, "Completed" | "Failed" | "Canceled")
}

#[cfg(test)]
mod tests {
    use super::*;

    const P: Duration = Duration::from_millis(100);

    fn timeline(outcome: JobOutcome, cancelled_ms: Option<u64>) -> Timeline {
        Timeline {
            phase: P,
            outcome,
            cancelled_after: cancelled_ms.map(Duration::from_millis),
        }
    }

    #[test]
    fn job_walks_the_documented_phases_then_its_outcome() {
        let t = timeline(JobOutcome::Completed, None);
        let at = |ms| t.status(Duration::from_millis(ms));
        assert_eq!(
            [at(0), at(150), at(250), at(350), at(450), at(550), at(650)],
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
        let late = Duration::from_secs(9);
        assert_eq!(timeline(JobOutcome::Failed, None).status(late), "Failed");
        assert_eq!(timeline(JobOutcome::Running, None).status(late), "Running");
        assert_eq!(timeline(JobOutcome::Paused, None).status(late), "Paused");
        assert_eq!(
            timeline(JobOutcome::Paused, None).status(Duration::from_millis(450)),
            "Running",
            "a held status comes after Running"
        );
        assert_eq!(
            timeline(JobOutcome::Running, None).status(Duration::from_millis(50)),
            "Starting"
        );
    }

    #[test]
    fn cancel_goes_through_cancel_requested() {
        let t = timeline(JobOutcome::Running, Some(10));
        assert_eq!(t.status(Duration::from_millis(50)), "CancelRequested");
        assert_eq!(t.status(Duration::from_millis(110)), "Canceled");
    }

    #[test]
    fn times_follow_the_phases() {
        let done = timeline(JobOutcome::Completed, None);
        assert_eq!(done.started(Duration::from_millis(350)), None);
        assert_eq!(done.started(Duration::from_millis(450)), Some(P * 4));
        assert_eq!(done.ended(Duration::from_millis(550)), None);
        assert_eq!(done.ended(Duration::from_secs(1)), Some(P * 6));
        let early_cancel = timeline(JobOutcome::Completed, Some(100));
        assert_eq!(early_cancel.started(Duration::from_secs(1)), None);
        assert_eq!(early_cancel.ended(Duration::from_secs(1)), Some(P * 2));
        let late_cancel = timeline(JobOutcome::Running, Some(500));
        assert_eq!(late_cancel.started(Duration::from_secs(1)), Some(P * 4));
        assert_eq!(
            timeline(JobOutcome::Paused, None).ended(Duration::from_secs(9)),
            None
        );
    }
}
