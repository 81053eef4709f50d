//! One run as run history sees it: a snapshot of the job taken at one instant, so the run's
//! status, times and log contents all describe the same moment.

use crate::arm::jobs;
use crate::lifecycle::Timeline;
use crate::server::Shared;
use jiff::{SignedDuration, Timestamp};
use serde_json::{Map, Value};
use std::time::{Duration, Instant};

/// The run of job `name` in workspace `workspace_id`, at `elapsed` after its creation.
#[derive(Debug, Clone)]
pub struct RunView {
    pub name: String,
    /// `/subscriptions/../workspaces/{ws}` as addressed.
    pub workspace_id: String,
    /// The job as PUT.
    pub body: Value,
    pub server_properties: Map<String, Value>,
    pub created_wall: Timestamp,
    pub timeline: Timeline,
    pub elapsed: Duration,
}

impl RunView {
    /// The run of job `name` now, if the job exists.
    pub fn take(shared: &Shared, workspace_id: &str, name: &str) -> Option<RunView> {
        let key = format!("{workspace_id}/jobs/{name}").to_ascii_lowercase();
        let store = shared.store.lock().ok()?;
        let job = store.jobs.get(&key)?;
        Some(RunView {
            name: job.name.clone(),
            workspace_id: workspace_id.to_string(),
            body: job.body.clone(),
            server_properties: job.server_properties.clone(),
            created_wall: job.created_wall,
            timeline: jobs::timeline(shared, job),
            elapsed: Instant::now().saturating_duration_since(job.created),
        })
    }

    pub fn status(&self) -> &'static str {
        self.timeline.status(self.elapsed)
    }

    /// Wall-clock time at `offset` after creation.
    pub fn at(&self, offset: Duration) -> Timestamp {
        let offset = SignedDuration::try_from(offset).unwrap_or(SignedDuration::ZERO);
        self.created_wall
            .saturating_add(offset)
            .unwrap_or(self.created_wall)
    }

    pub fn started(&self) -> Option<Timestamp> {
        self.timeline.started(self.elapsed).map(|o| self.at(o))
    }

    pub fn ended(&self) -> Option<Timestamp> {
        self.timeline.ended(self.elapsed).map(|o| self.at(o))
    }

    /// `end - start`, once the run has both.
    pub fn duration(&self) -> Option<Duration> {
        let start = self.timeline.started(self.elapsed)?;
        let end = self.timeline.ended(self.elapsed)?;
        Some(end.saturating_sub(start))
    }

    /// A `properties.*` string of the job.
    pub fn job_field(&self, field: &str) -> Option<&str> {
        self.body
            .pointer(&format!("/properties/{field}"))
            .and_then(Value::as_str)
    }

    /// The compute the run runs on (the last segment of `computeId`).
    pub fn target(&self) -> Option<&str> {
        self.job_field("computeId")
            .map(|id| id.rsplit('/').next().unwrap_or(id))
    }
}

/// Run history's time format (history/…child_run_download.json #25):
/// `2026-02-27T20:40:16.3346637+00:00`.
pub fn time(at: Timestamp) -> String {
    let text = at.to_string();
    match text.strip_suffix('Z') {
        Some(base) => format!("{base}+00:00"),
        None => text,
    }
}

/// A .NET `TimeSpan` as run history writes `duration` (#25: `00:00:13.4055238`), with a
/// `d.` day prefix past 24 h and no fraction when it is zero.
pub fn timespan(d: Duration) -> String {
    let secs = d.as_secs();
    let (days, h, m, s) = (secs / 86_400, secs / 3600 % 24, secs / 60 % 60, secs % 60);
    let ticks = d.subsec_nanos() / 100;
    let day = if days > 0 {
        format!("{days}.")
    } else {
        String::new()
    };
    let fraction = if ticks > 0 {
        format!(".{ticks:07}")
    } else {
        String::new()
    };
    format!("{day}{h:02}:{m:02}:{s:02}{fraction}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timespans_read_like_dotnet() {
        assert_eq!(
            timespan(Duration::from_nanos(13_405_523_800)),
            "00:00:13.4055238"
        );
        assert_eq!(timespan(Duration::from_secs(3600 * 25 + 61)), "1.01:01:01");
    }

    #[test]
    fn times_use_an_explicit_utc_offset() {
        let at: Timestamp = "2026-02-27T20:40:16.3346637Z".parse().unwrap();
        assert_eq!(time(at), "2026-02-27T20:40:16.3346637+00:00");
    }
}
