//! Experiment: one run per spec generation (or `amlops.io/rerun` value), exactly once.
//!
//! The run id is derived from the object's uid, generation and rerun token, so a crash between
//! submitting and writing status can never submit twice: the frontend always observes the
//! backend by the desired id first, and adopts a run it finds.

use std::time::Duration;

use jiff::Timestamp;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

use super::{
    Decision, Event, ObjectInfo, mark_progressing, mark_ready, mark_stalled, refusal_hold,
};
use crate::api::conditions::{self, FAILED, Observation, RUNNING, SUBMITTED, SUCCEEDED};
use crate::api::{ErrorInfo, ExperimentSpec, ExperimentStatus, GitProvenance, RunStatus};

/// Run states as Azure ML names them (every documented job status, in lifecycle order);
/// local runs map onto the same set. Only Completed, Failed and Canceled are over:
/// `NotResponding` and `Paused` may resume, `Unknown` is polled until Azure says more.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RunState {
    NotStarted,
    Starting,
    Provisioning,
    Preparing,
    Queued,
    Running,
    Finalizing,
    CancelRequested,
    Completed,
    Failed,
    Canceled,
    NotResponding,
    Paused,
    Unknown,
}

impl RunState {
    const ALL: [RunState; 14] = [
        Self::NotStarted,
        Self::Starting,
        Self::Provisioning,
        Self::Preparing,
        Self::Queued,
        Self::Running,
        Self::Finalizing,
        Self::CancelRequested,
        Self::Completed,
        Self::Failed,
        Self::Canceled,
        Self::NotResponding,
        Self::Paused,
        Self::Unknown,
    ];

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|state| state.as_str() == s)
    }
    pub fn as_str(self) -> &'static str {
        match self {
            Self::NotStarted => "NotStarted",
            Self::Starting => "Starting",
            Self::Provisioning => "Provisioning",
            Self::Preparing => "Preparing",
            Self::Queued => "Queued",
            Self::Running => "Running",
            Self::Finalizing => "Finalizing",
            Self::CancelRequested => "CancelRequested",
            Self::Completed => "Completed",
            Self::Failed => "Failed",
            Self::Canceled => "Canceled",
            Self::NotResponding => "NotResponding",
            Self::Paused => "Paused",
            Self::Unknown => "Unknown",
        }
    }
    pub fn is_terminal(self) -> bool {
        matches!(self, Self::Completed | Self::Failed | Self::Canceled)
    }
}

/// The [`refusal_hold`] of this generation's run when Azure refused its submission (the run
/// is still `NotStarted` and carries the refusal as its error).
fn refused_submission_hold(input: &Input<'_>, desired_id: &str) -> Option<Duration> {
    let status = input.status?;
    let run = status.current_run.as_ref().filter(|r| {
        r.id == desired_id && RunState::parse(&r.state) == Some(RunState::NotStarted)
    })?;
    refusal_hold(
        &status.conditions,
        &run.error.as_ref()?.code,
        status.observed_generation,
        input.info.generation,
        input.retry_after_stall,
        input.now,
    )
}

/// Records on the run that Azure refused its submission, so a later reconcile holds it back
/// ([`refusal_hold`]) instead of repeating it; a retryable failure is not recorded.
pub fn record_refusal(status: &mut ExperimentStatus, run_id: &str, failure: &super::ActionFailure) {
    if let Some(run) = status
        .current_run
        .as_mut()
        .filter(|r| r.id == run_id && !failure.retryable())
    {
        run.error = Some(ErrorInfo {
            code: failure.reason.clone(),
            message: failure.message.clone(),
        });
    }
}

/// Whether a recorded run is over (an unknown state counts as not over).
pub fn is_over(run: &RunStatus) -> bool {
    RunState::parse(&run.state).is_some_and(RunState::is_terminal)
}

/// Recorded runs that may still be going, or whose run-based cluster may still exist: what
/// a deletion has to clean up.
pub fn unfinished_runs(status: &ExperimentStatus) -> impl Iterator<Item = &RunStatus> {
    status
        .current_run
        .iter()
        .chain(status.runs.iter())
        .filter(|r| r.run_based_compute.is_some() || !is_over(r))
}

/// What the backend (Azure ML or the local executor) reports about one run.
#[derive(Clone, Debug, PartialEq, Default)]
pub struct ObservedRun {
    pub state: Option<RunState>,
    pub started_at: Option<Timestamp>,
    pub finished_at: Option<Timestamp>,
    pub error: Option<ErrorInfo>,
    /// Warnings the backend attached to the run (Azure ML run history).
    pub warnings: Vec<String>,
    pub studio_url: Option<String>,
    pub logs: Option<String>,
    pub outputs: Option<String>,
    /// Content hash of the source snapshot the run was started from.
    pub snapshot_id: Option<String>,
    pub git: Option<GitProvenance>,
}

/// Whether the RunConfiguration the Experiment references can take runs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RunConfigurationState {
    Missing,
    NotReady { reason: String, message: String },
    Ready,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ExperimentAction {
    /// Snapshot the source, then start the run with this id (idempotent by id).
    Submit { run_id: String },
    /// Ask the backend to cancel this run.
    Cancel { run_id: String },
    /// Cleanup is done: the finalizer may go.
    ReleaseFinalizer,
}

pub struct Input<'a> {
    pub info: &'a ObjectInfo,
    pub spec: &'a ExperimentSpec,
    pub status: Option<&'a ExperimentStatus>,
    pub run_configuration: RunConfigurationState,
    /// The backend's view of the desired run (None: it does not exist).
    pub desired: Option<&'a ObservedRun>,
    /// The backend's view of `status.currentRun` when that is an older run than the desired one.
    pub previous: Option<&'a ObservedRun>,
    /// How long a submission Azure refused with a needs-a-human error waits before it is
    /// tried again for the same generation (see [`refusal_hold`]): the resync period.
    pub retry_after_stall: Duration,
    pub now: Timestamp,
}

/// The run id for the current generation and rerun token: stable across restarts, unique per
/// (object, generation, rerun). Azure job names allow letters, digits, `-` and `_`.
pub fn run_id(info: &ObjectInfo) -> String {
    let mut h = blake3::Hasher::new();
    h.update(info.uid.as_bytes());
    h.update(&info.generation.unwrap_or(0).to_le_bytes());
    h.update(info.rerun.as_deref().unwrap_or("").as_bytes());
    let digest = h.finalize().to_hex();
    let name: String = info
        .name
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
        .take(40)
        .collect();
    format!("{name}-{}-{}", info.generation.unwrap_or(0), &digest[..10])
}

/// Polling interval while a run is active: 10 s, growing with its age up to 60 s.
pub fn poll_interval(age: Duration) -> Duration {
    Duration::from_secs((10 + age.as_secs() / 10).min(60))
}

pub fn reconcile(input: Input<'_>) -> Decision<ExperimentStatus, ExperimentAction> {
    let Input {
        info,
        spec,
        status,
        now,
        ..
    } = input;
    let generation = info.generation;
    let old = status.cloned().unwrap_or_default();
    let mut d = Decision::new(old.clone());
    d.status.observed_generation = generation;
    let desired_id = run_id(info);
    let current_is_desired = old.current_run.as_ref().is_some_and(|r| r.id == desired_id);

    let active =
        |r: Option<&ObservedRun>| r.and_then(|r| r.state).is_some_and(|s| !s.is_terminal());
    let superseded = old.current_run.as_ref().filter(|_| !current_is_desired);
    let hold = refused_submission_hold(&input, &desired_id);

    if info.deleting {
        if active(input.desired) {
            d.actions
                .push(ExperimentAction::Cancel { run_id: desired_id });
        }
        if let Some(cur) = superseded.filter(|_| active(input.previous)) {
            d.actions.push(ExperimentAction::Cancel {
                run_id: cur.id.clone(),
            });
        }
        if d.actions.is_empty() {
            d.actions.push(ExperimentAction::ReleaseFinalizer);
        } else {
            d.requeue_after = Some(Duration::from_secs(5));
        }
        return d;
    }
    if info.paused {
        // Nothing is written to the backend; the status still says why nothing happens.
        let msg = "reconciliation is paused by the amlops.io/reconcile annotation";
        mark_progressing(&mut d.status.conditions, "Paused", msg, generation, now);
        return d;
    }
    // A run of an older generation that is still active is cancelled before a new one starts,
    // so two generations never compete for the same compute and the history stays truthful.
    if let Some(cur) = superseded.filter(|_| active(input.previous)) {
        d.actions.push(ExperimentAction::Cancel {
            run_id: cur.id.clone(),
        });
        let msg = format!(
            "cancelling run {} of an older spec before starting a new one",
            cur.id
        );
        mark_progressing(
            &mut d.status.conditions,
            "CancellingSupersededRun",
            &msg,
            generation,
            now,
        );
        d.requeue_after = Some(Duration::from_secs(5));
        return d;
    }

    // The run of an older generation moves to the history once a new one starts.
    if let Some(cur) = superseded
        && (input.desired.is_some()
            || (!spec.suspend && input.run_configuration == RunConfigurationState::Ready))
    {
        let mut finished = cur.clone();
        if let Some(prev) = input.previous {
            apply_observed(&mut finished, prev);
        }
        push_history(&mut d.status, finished, spec.history_limit);
        d.status.current_run = None;
    }

    match input.desired {
        None if spec.suspend => {
            mark_ready(
                &mut d.status.conditions,
                "Suspended",
                "spec.suspend is true: no run is started",
                generation,
                now,
            );
            conditions::set(
                &mut d.status.conditions,
                Observation::new(RUNNING, false, "Suspended", "suspended"),
                generation,
                now,
            );
        }
        None => match &input.run_configuration {
            RunConfigurationState::Missing => {
                let msg = format!(
                    "RunConfiguration {:?} not found",
                    spec.run_configuration_ref.name
                );
                mark_progressing(
                    &mut d.status.conditions,
                    "RunConfigurationNotFound",
                    &msg,
                    generation,
                    now,
                );
                d.requeue_after = Some(Duration::from_secs(30));
            }
            RunConfigurationState::NotReady { reason, message } => {
                let msg = format!(
                    "waiting for RunConfiguration {:?}: {reason}: {message}",
                    spec.run_configuration_ref.name
                );
                mark_progressing(
                    &mut d.status.conditions,
                    "WaitingForRunConfiguration",
                    &msg,
                    generation,
                    now,
                );
                d.requeue_after = Some(Duration::from_secs(15));
                d.waiting_for = Some(format!(
                    "RunConfiguration {:?}",
                    spec.run_configuration_ref.name
                ));
            }
            RunConfigurationState::Ready if hold.is_some() => d.requeue_after = hold,
            RunConfigurationState::Ready => {
                d.actions.push(ExperimentAction::Submit {
                    run_id: desired_id.clone(),
                });
                d.status.current_run = Some(RunStatus {
                    id: desired_id.clone(),
                    state: RunState::NotStarted.as_str().to_string(),
                    generation,
                    submitted_at: Some(Time(now)),
                    ..RunStatus::default()
                });
                mark_progressing(
                    &mut d.status.conditions,
                    "Submitting",
                    &format!("submitting run {desired_id}"),
                    generation,
                    now,
                );
                d.status.rerun_token = info.rerun.clone();
                d.requeue_after = Some(Duration::from_secs(1));
            }
        },
        Some(observed) => {
            let mut run = d
                .status
                .current_run
                .clone()
                .filter(|r| r.id == desired_id)
                .unwrap_or_else(|| RunStatus {
                    id: desired_id.clone(),
                    generation,
                    submitted_at: Some(Time(now)),
                    ..RunStatus::default()
                });
            let before = old
                .current_run
                .as_ref()
                .filter(|r| r.id == desired_id)
                .and_then(|r| RunState::parse(&r.state));
            apply_observed(&mut run, observed);
            let state = observed.state.unwrap_or(RunState::NotStarted);
            d.events.extend(transition_events(
                &run.id,
                before,
                state,
                observed.error.as_ref(),
            ));
            if spec.suspend && !state.is_terminal() {
                d.actions.push(ExperimentAction::Cancel {
                    run_id: run.id.clone(),
                });
            }
            set_run_conditions(&mut d.status.conditions, &run, state, generation, now);
            d.requeue_after = (!state.is_terminal()).then(|| {
                let since = run
                    .started_at
                    .as_ref()
                    .or(run.submitted_at.as_ref())
                    .map(|t| t.0)
                    .unwrap_or(now);
                poll_interval(now.duration_since(since).unsigned_abs())
            });
            d.status.rerun_token = info.rerun.clone();
            d.status.current_run = Some(run);
        }
    }
    d
}

/// Folds the first observation of a just-submitted run into `d`, so the status says
/// Submitted (and Queued/Running) in the same reconcile that submitted it.
pub fn fold_submitted(
    d: &mut Decision<ExperimentStatus, ExperimentAction>,
    info: &ObjectInfo,
    spec: &ExperimentSpec,
    observed: &ObservedRun,
    now: Timestamp,
) {
    if let Some(run) = &mut d.status.current_run {
        // A refusal of an earlier attempt is not this run's error.
        run.error = None;
        d.events.push(Event::normal(
            "Submitted",
            format!("run {} submitted", run.id),
        ));
    }
    let next = reconcile(Input {
        info,
        spec,
        status: Some(&d.status),
        run_configuration: RunConfigurationState::Ready,
        desired: Some(observed),
        previous: None,
        retry_after_stall: Duration::ZERO,
        now,
    });
    d.status = next.status;
    d.events.extend(next.events);
    d.requeue_after = next.requeue_after;
}

fn apply_observed(run: &mut RunStatus, observed: &ObservedRun) {
    if let Some(state) = observed.state {
        run.state = state.as_str().to_string();
    }
    // Whole seconds, as the status holds them once written: a duration computed from the
    // stored times must equal the one computed from a fresh observation, or every resync
    // would rewrite it.
    let whole = |t: Timestamp| Time(Timestamp::from_second(t.as_second()).unwrap_or(t));
    run.started_at = observed.started_at.map(whole).or(run.started_at.take());
    run.finished_at = observed.finished_at.map(whole).or(run.finished_at.take());
    if let (Some(start), Some(end)) = (&run.started_at, &run.finished_at) {
        run.duration = Some(format_duration(
            end.0.duration_since(start.0).unsigned_abs(),
        ));
    }
    run.error = observed.error.clone().or(run.error.take());
    if !observed.warnings.is_empty() {
        run.warnings = observed.warnings.clone();
    }
    run.studio_url = observed.studio_url.clone().or(run.studio_url.take());
    run.logs = observed.logs.clone().or(run.logs.take());
    run.outputs = observed.outputs.clone().or(run.outputs.take());
    run.snapshot_id = observed.snapshot_id.clone().or(run.snapshot_id.take());
    run.git = observed.git.clone().or(run.git.take());
}

fn set_run_conditions(
    c: &mut Vec<crate::api::Condition>,
    run: &RunStatus,
    state: RunState,
    generation: Option<i64>,
    now: Timestamp,
) {
    let id = &run.id;
    let set = |c: &mut Vec<_>, t, v, reason, msg: String| {
        conditions::set(c, Observation::new(t, v, reason, msg), generation, now)
    };
    set(
        c,
        SUBMITTED,
        true,
        "Submitted",
        format!("run {id} submitted"),
    );
    let running = matches!(state, RunState::Running | RunState::Finalizing);
    set(
        c,
        RUNNING,
        running,
        state.as_str(),
        format!("run {id} is {}", state.as_str()),
    );
    match state {
        RunState::Completed => {
            set(
                c,
                SUCCEEDED,
                true,
                "Completed",
                format!("run {id} completed"),
            );
            set(c, FAILED, false, "Completed", format!("run {id} completed"));
            mark_ready(
                c,
                "Succeeded",
                &format!("run {id} completed"),
                generation,
                now,
            );
        }
        RunState::Failed | RunState::Canceled => {
            let (reason, detail) = match (&run.error, state) {
                (Some(e), _) => (e.code.as_str(), e.message.as_str()),
                (None, RunState::Canceled) => ("Canceled", "the run was cancelled"),
                (None, _) => ("RunFailed", "the run failed"),
            };
            let message = format!("run {id}: {detail}");
            set(c, SUCCEEDED, false, reason, message.clone());
            set(c, FAILED, true, reason, message.clone());
            // Terminal and not successful: a person has to look (kstatus Failed, not InProgress).
            mark_stalled(c, reason, &message, generation, now);
        }
        _ => {
            conditions::remove(c, SUCCEEDED);
            conditions::remove(c, FAILED);
            mark_progressing(
                c,
                state.as_str(),
                &format!("run {id} is {}", state.as_str()),
                generation,
                now,
            );
        }
    }
}

fn transition_events(
    id: &str,
    before: Option<RunState>,
    now: RunState,
    error: Option<&ErrorInfo>,
) -> Vec<Event> {
    if before == Some(now) {
        return Vec::new();
    }
    let was = |f: fn(RunState) -> bool| before.is_some_and(f);
    let mut events = Vec::new();
    if before.is_none() {
        events.push(Event::normal("Submitted", format!("run {id} submitted")));
    }
    let started =
        |s: RunState| matches!(s, RunState::Running | RunState::Finalizing) || s.is_terminal();
    if started(now) && !was(started) && now != RunState::Canceled {
        events.push(Event::normal("Started", format!("run {id} started")));
    }
    match now {
        RunState::Completed => {
            events.push(Event::normal("Completed", format!("run {id} completed")))
        }
        RunState::Failed => {
            let detail = error
                .map(|e| format!("{}: {}", e.code, e.message))
                .unwrap_or_else(|| "no error reported".into());
            events.push(Event::warning(
                "Failed",
                format!("run {id} failed: {detail}"),
            ));
        }
        RunState::Canceled => {
            events.push(Event::normal("Cancelled", format!("run {id} cancelled")))
        }
        _ => {}
    }
    events
}

fn push_history(status: &mut ExperimentStatus, run: RunStatus, limit: i32) {
    status.runs.retain(|r| r.id != run.id);
    status.runs.insert(0, run);
    status.runs.truncate(limit.max(1) as usize);
}

/// `1h2m3s` style, the way kubectl prints ages.
pub fn format_duration(d: Duration) -> String {
    let s = d.as_secs();
    match (s / 3600, (s % 3600) / 60, s % 60) {
        (0, 0, sec) => format!("{sec}s"),
        (0, m, sec) => format!("{m}m{sec}s"),
        (h, m, sec) => format!("{h}h{m}m{sec}s"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::conditions::{READY, RECONCILING, STALLED, find, is_true};
    use crate::api::{ObjectRef, Source};
    use crate::reconcile::FailureKind;

    fn info(generation: i64) -> ObjectInfo {
        ObjectInfo {
            name: "train".into(),
            namespace: "ml".into(),
            uid: "u-1".into(),
            generation: Some(generation),
            ..Default::default()
        }
    }
    fn spec() -> ExperimentSpec {
        ExperimentSpec {
            experiment_name: None,
            run_configuration_ref: ObjectRef { name: "rc".into() },
            source: Source {
                local_path: Some("src".into()),
                ..Default::default()
            },
            script: Some("train.py".into()),
            arguments: vec![],
            command: None,
            tags: Default::default(),
            suspend: false,
            history_limit: 2,
            snapshot_limits: None,
        }
    }
    fn t(s: i64) -> Timestamp {
        Timestamp::from_second(1_800_000_000 + s).unwrap()
    }
    fn observed(state: RunState) -> ObservedRun {
        ObservedRun {
            state: Some(state),
            started_at: Some(t(1)),
            finished_at: state.is_terminal().then(|| t(73)),
            ..Default::default()
        }
    }
    fn run<'a>(
        info: &'a ObjectInfo,
        spec: &'a ExperimentSpec,
        status: Option<&'a ExperimentStatus>,
        desired: Option<&'a ObservedRun>,
        previous: Option<&'a ObservedRun>,
    ) -> Decision<ExperimentStatus, ExperimentAction> {
        reconcile(Input {
            info,
            spec,
            status,
            run_configuration: RunConfigurationState::Ready,
            desired,
            previous,
            retry_after_stall: Duration::from_secs(3600),
            now: t(100),
        })
    }

    #[test]
    fn a_refused_submission_is_held_back_until_the_resync_period_a_new_generation_or_a_rerun() {
        let (i, s) = (info(1), spec());
        let mut d = run(&i, &s, None, None, None);
        let quota = crate::reconcile::ActionFailure {
            kind: FailureKind::NeedsHuman,
            reason: "QuotaExceeded".into(),
            message: "cores".into(),
        };
        record_refusal(&mut d.status, &run_id(&i), &quota);
        crate::reconcile::record_failure(&mut d.status.conditions, &quota, Some(1), t(100));
        let decide = |status: &ExperimentStatus, info: &ObjectInfo, now: Timestamp| {
            reconcile(Input {
                info,
                spec: &s,
                status: Some(status),
                run_configuration: RunConfigurationState::Ready,
                desired: None,
                previous: None,
                retry_after_stall: Duration::from_secs(3600),
                now,
            })
        };
        let held = |info: &ObjectInfo, now: Timestamp| decide(&d.status, info, now);
        let again = held(&i, t(160));
        assert!(again.actions.is_empty(), "{:?}", again.actions);
        assert_eq!(again.requeue_after, Some(Duration::from_secs(3600 - 60)));
        assert_eq!(again.status, d.status, "the status is left as it is");
        assert_eq!(
            again
                .status
                .current_run
                .as_ref()
                .unwrap()
                .error
                .as_ref()
                .unwrap()
                .code,
            "QuotaExceeded"
        );
        let submit = |d: &Decision<ExperimentStatus, ExperimentAction>| {
            matches!(d.actions[..], [ExperimentAction::Submit { .. }])
        };
        assert!(submit(&held(&i, t(100 + 3600))), "the period is over");
        assert!(submit(&held(&info(2), t(160))), "a new generation");
        let rerun = ObjectInfo {
            rerun: Some("again".into()),
            ..info(1)
        };
        assert!(submit(&held(&rerun, t(160))), "amlops.io/rerun");
        // A missing ConfigMap is not held: its watch brings the reconcile when it appears.
        let mut waiting = run(&i, &s, None, None, None);
        let missing = crate::reconcile::ActionFailure {
            reason: crate::reconcile::CONFIG_MAP_NOT_FOUND.into(),
            ..quota
        };
        record_refusal(&mut waiting.status, &run_id(&i), &missing);
        crate::reconcile::record_failure(&mut waiting.status.conditions, &missing, Some(1), t(100));
        assert!(submit(&decide(&waiting.status, &i, t(160))));
    }

    #[test]
    fn run_id_is_stable_and_changes_with_generation_and_rerun() {
        let a = run_id(&info(1));
        assert_eq!(a, run_id(&info(1)));
        assert!(a.starts_with("train-1-"));
        assert_ne!(a, run_id(&info(2)));
        let rerun = ObjectInfo {
            rerun: Some("x".into()),
            ..info(1)
        };
        assert_ne!(a, run_id(&rerun));
        assert!(a.chars().all(|c| c.is_ascii_alphanumeric() || c == '-'));
    }

    #[test]
    fn submits_once_then_adopts_the_run_it_finds() {
        let (i, s) = (info(1), spec());
        let d = run(&i, &s, None, None, None);
        assert_eq!(
            d.actions,
            vec![ExperimentAction::Submit { run_id: run_id(&i) }]
        );
        assert_eq!(
            find(&d.status.conditions, RECONCILING).unwrap().reason,
            "Submitting"
        );
        // A crash lost the status write: the backend already has the run, so nothing is submitted again.
        let queued = observed(RunState::Queued);
        let d = run(&i, &s, None, Some(&queued), None);
        assert!(d.actions.is_empty());
        assert_eq!(d.status.current_run.as_ref().unwrap().state, "Queued");
        assert!(is_true(&d.status.conditions, SUBMITTED));
        assert_eq!(d.requeue_after, Some(Duration::from_secs(19)));
    }

    #[test]
    fn completed_run_is_ready_and_succeeded_with_duration_and_events() {
        let (i, s) = (info(1), spec());
        let running = run(&i, &s, None, Some(&observed(RunState::Running)), None);
        assert!(is_true(&running.status.conditions, RUNNING));
        assert!(running.events.iter().any(|e| e.reason == "Started"));
        let done = observed(RunState::Completed);
        let d = run(&i, &s, Some(&running.status), Some(&done), None);
        assert!(is_true(&d.status.conditions, SUCCEEDED) && is_true(&d.status.conditions, READY));
        assert!(!is_true(&d.status.conditions, RUNNING));
        assert!(find(&d.status.conditions, RECONCILING).is_none());
        assert_eq!(
            d.status.current_run.as_ref().unwrap().duration.as_deref(),
            Some("1m12s")
        );
        assert_eq!(
            d.events
                .iter()
                .map(|e| e.reason.as_str())
                .collect::<Vec<_>>(),
            ["Completed"]
        );
        assert_eq!(d.requeue_after, None);
        // A resync of the finished run changes nothing and tells nobody anything.
        let again = run(&i, &s, Some(&d.status), Some(&done), None);
        assert_eq!(again.status, d.status);
        assert!(again.events.is_empty() && again.actions.is_empty());
    }

    #[test]
    fn a_finished_run_read_again_from_its_stored_times_keeps_its_duration() {
        let (i, s) = (info(1), spec());
        // Run history reports sub-second times; the status keeps whole seconds.
        let ms = |sec: i64, milli: i64| Timestamp::from_millisecond(sec * 1000 + milli).unwrap();
        let done = ObservedRun {
            started_at: Some(ms(55, 900)),
            finished_at: Some(ms(56, 300)),
            ..observed(RunState::Completed)
        };
        let d = run(&i, &s, None, Some(&done), None);
        let first = d.status.current_run.clone().unwrap();
        assert_eq!(first.duration.as_deref(), Some("1s"));
        // Stored by the apiserver (times in whole seconds), then reconciled again reading only
        // the job (no times): nothing changes, so nothing is written.
        let stored: ExperimentStatus =
            serde_json::from_value(serde_json::to_value(&d.status).unwrap()).unwrap();
        let again_seen = ObservedRun {
            started_at: None,
            finished_at: None,
            ..observed(RunState::Completed)
        };
        let again = run(&i, &s, Some(&stored), Some(&again_seen), None);
        assert_eq!(again.status, stored);
    }

    #[test]
    fn failed_run_is_stalled_with_the_error_code() {
        let (i, s) = (info(1), spec());
        let failed = ObservedRun {
            error: Some(ErrorInfo {
                code: "Timeout".into(),
                message: "ran longer than 300s".into(),
            }),
            ..observed(RunState::Failed)
        };
        let d = run(&i, &s, None, Some(&failed), None);
        assert!(is_true(&d.status.conditions, FAILED));
        let stalled = find(&d.status.conditions, STALLED).unwrap();
        assert_eq!(stalled.reason, "Timeout");
        assert!(stalled.message.contains("ran longer than 300s"));
        assert!(d.events.iter().any(|e| e.warning && e.reason == "Failed"));
    }

    #[test]
    fn paused_not_responding_and_unknown_runs_are_shown_as_such_and_polled_not_ended() {
        let (i, s) = (info(1), spec());
        let running = run(&i, &s, None, Some(&observed(RunState::Running)), None);
        for state in [RunState::Paused, RunState::NotResponding, RunState::Unknown] {
            let d = run(&i, &s, Some(&running.status), Some(&observed(state)), None);
            let current = d.status.current_run.as_ref().unwrap();
            assert_eq!(current.state, state.as_str());
            assert!(!is_over(current), "{state:?} is not over");
            assert!(find(&d.status.conditions, SUCCEEDED).is_none());
            assert!(find(&d.status.conditions, FAILED).is_none());
            assert_eq!(
                find(&d.status.conditions, RECONCILING).unwrap().reason,
                state.as_str()
            );
            assert!(d.requeue_after.is_some(), "{state:?} is polled again");
            assert!(
                !d.events.iter().any(|e| e.warning),
                "{state:?} warns nobody yet"
            );
        }
    }

    #[test]
    fn run_history_warnings_are_kept_on_the_run() {
        let (i, s) = (info(1), spec());
        let warned = ObservedRun {
            warnings: vec!["AzureMLCompute job failed".into()],
            ..observed(RunState::Running)
        };
        let d = run(&i, &s, None, Some(&warned), None);
        assert_eq!(
            d.status.current_run.as_ref().unwrap().warnings,
            ["AzureMLCompute job failed"]
        );
        // A later observation without warnings keeps what was reported.
        let later = run(
            &i,
            &s,
            Some(&d.status),
            Some(&observed(RunState::Running)),
            None,
        );
        assert_eq!(later.status.current_run.unwrap().warnings.len(), 1);
    }

    #[test]
    fn new_generation_cancels_the_active_old_run_then_starts_and_keeps_history() {
        let s = spec();
        let old = run(&info(1), &s, None, Some(&observed(RunState::Running)), None);
        let old_id = run_id(&info(1));
        let i2 = info(2);
        let d = run(
            &i2,
            &s,
            Some(&old.status),
            None,
            Some(&observed(RunState::Running)),
        );
        assert_eq!(
            d.actions,
            vec![ExperimentAction::Cancel {
                run_id: old_id.clone()
            }]
        );
        let d = run(
            &i2,
            &s,
            Some(&old.status),
            None,
            Some(&observed(RunState::Canceled)),
        );
        assert_eq!(
            d.actions,
            vec![ExperimentAction::Submit {
                run_id: run_id(&i2)
            }]
        );
        assert_eq!(d.status.runs.len(), 1);
        assert_eq!(d.status.runs[0].id, old_id);
        assert_eq!(d.status.runs[0].state, "Canceled");
    }

    #[test]
    fn history_is_bounded_by_history_limit() {
        let s = spec();
        let mut status = ExperimentStatus::default();
        for g in 1..=4 {
            let prev = observed(RunState::Completed);
            let d = run(&info(g), &s, Some(&status), None, (g > 1).then_some(&prev));
            let d = run(&info(g), &s, Some(&d.status), Some(&prev), None);
            status = d.status;
        }
        assert_eq!(status.runs.len(), 2);
        assert_eq!(status.runs[0].id, run_id(&info(3)));
        assert_eq!(status.current_run.unwrap().id, run_id(&info(4)));
    }

    #[test]
    fn suspend_cancels_and_deletion_cancels_then_releases() {
        let i = info(1);
        let s = ExperimentSpec {
            suspend: true,
            ..spec()
        };
        let d = run(&i, &s, None, Some(&observed(RunState::Running)), None);
        assert_eq!(
            d.actions,
            vec![ExperimentAction::Cancel { run_id: run_id(&i) }]
        );
        let d = run(&i, &s, None, None, None);
        assert!(d.actions.is_empty());
        assert_eq!(
            find(&d.status.conditions, READY).unwrap().reason,
            "Suspended"
        );

        let deleting = ObjectInfo {
            deleting: true,
            ..info(1)
        };
        let d = run(
            &deleting,
            &spec(),
            None,
            Some(&observed(RunState::Running)),
            None,
        );
        assert_eq!(
            d.actions,
            vec![ExperimentAction::Cancel {
                run_id: run_id(&deleting)
            }]
        );
        let d = run(
            &deleting,
            &spec(),
            None,
            Some(&observed(RunState::Canceled)),
            None,
        );
        assert_eq!(d.actions, vec![ExperimentAction::ReleaseFinalizer]);
    }

    #[test]
    fn waits_for_the_run_configuration_and_pause_writes_nothing() {
        let (i, s) = (info(1), spec());
        let d = reconcile(Input {
            info: &i,
            spec: &s,
            status: None,
            run_configuration: RunConfigurationState::Missing,
            desired: None,
            previous: None,
            retry_after_stall: Duration::from_secs(3600),
            now: t(0),
        });
        assert!(d.actions.is_empty());
        assert_eq!(
            find(&d.status.conditions, READY).unwrap().reason,
            "RunConfigurationNotFound"
        );
        let paused = ObjectInfo {
            paused: true,
            ..info(1)
        };
        let d = run(&paused, &s, None, None, None);
        assert!(d.actions.is_empty());
        assert_eq!(
            find(&d.status.conditions, RECONCILING).unwrap().reason,
            "Paused"
        );
    }

    #[test]
    fn poll_interval_backs_off_to_a_minute() {
        assert_eq!(poll_interval(Duration::ZERO), Duration::from_secs(10));
        assert_eq!(
            poll_interval(Duration::from_secs(200)),
            Duration::from_secs(30)
        );
        assert_eq!(
            poll_interval(Duration::from_secs(3600)),
            Duration::from_secs(60)
        );
    }
}
