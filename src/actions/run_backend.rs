//! The seam every run goes through, whatever runs it: Azure ML, a process on this machine or
//! a Kubernetes Job in the Experiment's namespace. [`super::experiment::converge`] is the one
//! loop that observes, decides and executes, for both frontends; a backend only knows how to
//! do each step in its place.

use std::future::Future;

use super::experiment::ExperimentDecision;
use super::needs_human;
use crate::api::{RunConfiguration, RunStatus};
use crate::reconcile::experiment::ObservedRun;
use crate::reconcile::run_configuration::{EnvironmentPlan, plan_environment};
use crate::reconcile::{ActionFailure, ObjectInfo};

/// The RunConfiguration a submit runs with and its planned environment, or why there is none.
pub fn planned(
    rc: Option<&RunConfiguration>,
) -> Result<(&RunConfiguration, EnvironmentPlan), ActionFailure> {
    let Some(rc) = rc else {
        return Err(needs_human(
            "RunConfigurationNotFound",
            "the RunConfiguration disappeared",
        ));
    };
    let plan = plan_environment(&ObjectInfo::of(rc), &rc.spec).ok_or_else(|| {
        needs_human(
            "InvalidEnvironment",
            "the RunConfiguration has no environment",
        )
    })?;
    Ok((rc, plan))
}

/// How one submit ended.
pub enum Submitted {
    /// Started, or found already started under this id: its first observation.
    Run(Box<ObservedRun>),
    /// Not started yet (a run-based cluster is still being created): the backend wrote what it
    /// waits for into the decision, with when to look again.
    Waiting,
}

/// Where runs run. Every method is keyed by the run id, which is derived from the
/// Experiment's uid and generation, so repeating a step after a crash is always safe:
/// a submit of an id that already runs adopts it.
pub trait RunBackend: Sync {
    /// What the backend knows of run `run_id`; `None` when it was never submitted.
    /// `recorded` is the status's record of the run, for backends that read more once.
    fn observe(
        &self,
        run_id: &str,
        recorded: Option<&RunStatus>,
    ) -> impl Future<Output = Result<Option<ObservedRun>, ActionFailure>> + Send;

    /// Snapshots the source, stages the environment and starts the run `run_id` (exactly
    /// once). Warnings worth an event go into `d.events`.
    fn submit(
        &self,
        run_id: &str,
        d: &mut ExperimentDecision,
    ) -> impl Future<Output = Result<Submitted, ActionFailure>> + Send;

    /// Asks the run to stop; a later observe tells when it has.
    fn cancel(&self, run_id: &str) -> impl Future<Output = Result<(), ActionFailure>> + Send;

    /// Removes what finished runs left behind (Azure: run-based clusters); every leftover
    /// goes when `releasing` (the finalizer is about to be removed). True while something is
    /// still going away.
    fn clean_up(
        &self,
        d: &mut ExperimentDecision,
        releasing: bool,
    ) -> impl Future<Output = Result<bool, ActionFailure>> + Send {
        let _ = (d, releasing);
        std::future::ready(Ok(false))
    }
}
