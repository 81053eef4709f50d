//! One reconcile of an Experiment, the one run loop of both frontends whatever runs it
//! ([`RunBackend`]: Azure ML, a local process, a Kubernetes Job): observe the desired run (and
//! the superseded one) by id, decide with `reconcile::experiment`, execute submit / cancel,
//! let the backend clean up. Always observing by the deterministic run id first is what makes
//! submission exactly-once: a crash after the submit is adopted, a crash before it submits
//! once. The frontend writes the resulting status itself.

use std::time::Duration;

use super::run_backend::{RunBackend, Submitted};
use crate::api::{Experiment, ExperimentStatus, RunStatus};
use crate::reconcile::experiment::{
    self as decide_mod, ExperimentAction, ObservedRun, RunConfigurationState,
};
use crate::reconcile::{ActionFailure, Decision, Event, ObjectInfo, mark_progressing, record};

/// How soon to retry after a retryable failure.
const FAILURE_RETRY: Duration = Duration::from_secs(30);

pub type ExperimentDecision = Decision<ExperimentStatus, ExperimentAction>;

/// Everything one reconcile of an Experiment works with, loaded by the frontend.
pub struct RunWorld<'a, B> {
    pub exp: &'a Experiment,
    /// Whether the RunConfiguration is Ready, as the frontend sees it.
    pub run_configuration: RunConfigurationState,
    /// Where the Experiment's runs run. `None`: nothing is read (paused, or no
    /// RunConfiguration); `Some(Err)`: the backend is not usable (e.g. the Workspace), and why.
    pub backend: Option<Result<B, ActionFailure>>,
    /// See [`decide_mod::Input::retry_after_stall`].
    pub retry_after_stall: Duration,
    pub now: jiff::Timestamp,
}

pub type ConvergedRun = super::Converged<ExperimentStatus, ExperimentAction>;

/// Runs that had a run-based cluster keep it recorded until it is deleted, even when the
/// decision rebuilt the run's status (a resubmit after a failure).
fn carry_computes(old: Option<&ExperimentStatus>, new: &mut ExperimentStatus) {
    let Some(old) = old else { return };
    let recorded: Vec<&RunStatus> = old
        .current_run
        .iter()
        .chain(old.runs.iter())
        .filter(|r| r.run_based_compute.is_some())
        .collect();
    for run in new.current_run.iter_mut().chain(new.runs.iter_mut()) {
        if run.run_based_compute.is_none()
            && let Some(o) = recorded.iter().find(|o| o.id == run.id)
        {
            run.run_based_compute = o.run_based_compute.clone();
        }
    }
}

fn failed_decision(
    old: Option<&ExperimentStatus>,
    info: &ObjectInfo,
    failure: &ActionFailure,
    now: jiff::Timestamp,
) -> ExperimentDecision {
    let mut d = Decision::new(old.cloned().unwrap_or_default());
    if let Some(wait) = failure.retry_after() {
        // Azure asked to wait before looking: nothing was learned, the status stays as it is.
        d.requeue_after = Some(wait);
        return d;
    }
    d.status.observed_generation = info.generation;
    record(
        &mut d.status.conditions,
        &mut d.events,
        failure,
        info.generation,
        now,
    );
    d.requeue_after = failure.retryable().then_some(FAILURE_RETRY);
    d.waiting_for = failure.waiting_for().map(str::to_string);
    d
}

/// What `backend` knows of run `id`, with the status's record of it.
async fn observe<B: RunBackend>(
    backend: Option<&B>,
    id: &str,
    status: Option<&ExperimentStatus>,
) -> Result<Option<ObservedRun>, ActionFailure> {
    let recorded = status.and_then(|s| s.current_run.iter().chain(&s.runs).find(|r| r.id == id));
    match backend {
        Some(backend) => backend.observe(id, recorded).await,
        None => Ok(None),
    }
}

/// One reconcile of an Experiment: observe, decide, execute the actions in order, then let the
/// backend clean up after runs that are over. Writes nothing to the backend while paused; a
/// deletion still observes (it needs to know what runs).
pub async fn converge<B: RunBackend>(world: RunWorld<'_, B>) -> ConvergedRun {
    let RunWorld {
        exp,
        run_configuration,
        backend,
        retry_after_stall,
        now,
    } = world;
    let info = ObjectInfo::of(exp);
    let old = exp.status.as_ref();
    let (backend, mut failure) = match backend {
        Some(Ok(b)) => (Some(b), None),
        Some(Err(f)) => (None, Some(f)),
        None => (None, None),
    };
    let desired_id = decide_mod::run_id(&info);
    let previous_id = old
        .and_then(|s| s.current_run.as_ref())
        .map(|r| r.id.clone())
        .filter(|id| *id != desired_id);
    let observed = async {
        let desired = observe(backend.as_ref(), &desired_id, old).await?;
        let previous = match &previous_id {
            Some(id) => observe(backend.as_ref(), id, old).await?,
            None => None,
        };
        Ok::<_, ActionFailure>((desired, previous))
    }
    .await;
    let mut d = match (observed, &failure) {
        // The backend is not usable: say so rather than deciding on a view without it.
        (_, Some(f)) if !info.deleting => failed_decision(old, &info, f, now),
        (Ok((desired, previous)), _) => decide_mod::reconcile(decide_mod::Input {
            info: &info,
            spec: &exp.spec,
            status: old,
            run_configuration,
            desired: desired.as_ref(),
            previous: previous.as_ref(),
            retry_after_stall,
            now,
        }),
        (Err(f), _) => {
            let d = failed_decision(old, &info, &f, now);
            failure = Some(f);
            d
        }
    };
    carry_computes(old, &mut d.status);
    let mut release = false;
    let writes = backend.as_ref().filter(|_| !info.paused);
    for action in std::mem::take(&mut d.actions) {
        let Some(backend) = writes else {
            if action == ExperimentAction::ReleaseFinalizer
                && decide_mod::unfinished_runs(&d.status).next().is_none()
            {
                // Nothing was ever started (or all of it is over): nothing to clean up.
                release = true;
            } else if info.deleting {
                let why = failure
                    .as_ref()
                    .map(|f| f.message.clone())
                    .unwrap_or_else(|| {
                        "reconciliation is paused by the amlops.io/reconcile annotation".into()
                    });
                let msg = format!("deletion waits: cannot clean up the runs: {why}");
                mark_progressing(
                    &mut d.status.conditions,
                    "CleanupBlocked",
                    &msg,
                    info.generation,
                    now,
                );
                d.requeue_after = Some(FAILURE_RETRY);
            }
            break;
        };
        let result = match action {
            ExperimentAction::Submit { run_id } => match backend.submit(&run_id, &mut d).await {
                Ok(Submitted::Run(observed)) => {
                    decide_mod::fold_submitted(&mut d, &info, &exp.spec, &observed, now);
                    Ok(())
                }
                Ok(Submitted::Waiting) => Ok(()),
                Err(f) => {
                    d.requeue_after = None;
                    decide_mod::record_refusal(&mut d.status, &run_id, &f);
                    Err(f)
                }
            },
            ExperimentAction::Cancel { run_id } => backend.cancel(&run_id).await.map(|()| {
                d.events.push(Event::normal(
                    "Cancelling",
                    format!("cancelling run {run_id}"),
                ))
            }),
            ExperimentAction::ReleaseFinalizer => {
                release = true;
                Ok(())
            }
        };
        if let Err(f) = result {
            record_action_failure(&mut d, &info, &f, now);
            failure = Some(f);
        }
    }
    if let Some(backend) = writes {
        match backend.clean_up(&mut d, release).await {
            Ok(false) => {}
            Ok(true) => release = false,
            Err(f) => {
                release = false;
                record_action_failure(&mut d, &info, &f, now);
                failure = Some(f);
            }
        }
    }
    ConvergedRun {
        decision: d,
        // A wait Azure asked for is no failure: `requeue_after` carries it.
        failure: failure.filter(ActionFailure::is_failure),
        release_finalizer: release,
    }
}

/// Records an action that failed; one Azure asked to wait for is tried again after the wait.
fn record_action_failure(
    d: &mut ExperimentDecision,
    info: &ObjectInfo,
    f: &ActionFailure,
    now: jiff::Timestamp,
) {
    record(
        &mut d.status.conditions,
        &mut d.events,
        f,
        info.generation,
        now,
    );
    if let Some(wait) = f.retry_after() {
        d.requeue_after = Some(wait);
    }
}
