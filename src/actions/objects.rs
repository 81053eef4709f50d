//! One way to follow what an object names and to judge whether it is ready, for both
//! frontends: the API server (controller) and the standalone store each implement
//! [`ObjectSource`]; which ComputeTarget and Workspace a RunConfiguration resolves to, and
//! what their readiness means to the objects that wait on them, is decided here once.

use std::fmt::Debug;
use std::future::Future;

use k8s_openapi::NamespaceResourceScope;
use serde::de::DeserializeOwned;

use crate::api::readiness::{Readiness, why_not_ready};
use crate::api::{ComputeTarget, RunConfiguration, Workspace};
use crate::reconcile::compute_target::WorkspaceState;
use crate::reconcile::experiment::RunConfigurationState;
use crate::reconcile::run_configuration::{TargetState, workspace_name};

/// A namespaced kind an [`ObjectSource`] reads.
pub trait Namespaced:
    kube::Resource<DynamicType = (), Scope = NamespaceResourceScope>
    + DeserializeOwned
    + Clone
    + Debug
    + Send
    + 'static
{
}

impl<K> Namespaced for K where
    K: kube::Resource<DynamicType = (), Scope = NamespaceResourceScope>
        + DeserializeOwned
        + Clone
        + Debug
        + Send
        + 'static
{
}

/// Reads objects of the amlops kinds by namespace and name.
pub trait ObjectSource {
    type Error;

    /// The object, or `None` when there is none by that name.
    fn get<K: Namespaced>(
        &self,
        namespace: &str,
        name: &str,
    ) -> impl Future<Output = Result<Option<K>, Self::Error>> + Send;
}

/// What a RunConfiguration's runs go to.
pub struct Resolved {
    /// The ComputeTarget it names (None: run-based compute, or not found).
    pub target: Option<ComputeTarget>,
    /// The Workspace name looked for (spec.workspaceRef, else the target's).
    pub workspace_name: Option<String>,
    pub workspace: Option<Workspace>,
}

impl Resolved {
    /// Whether runs go to a process on this machine or a Job in this cluster, not to Azure.
    pub fn runs_locally(&self) -> bool {
        self.target.as_ref().is_some_and(|t| t.spec.local.is_some())
    }
}

/// Reads the RunConfiguration's ComputeTarget and the Workspace its runs go to.
pub async fn resolve<O: ObjectSource>(
    objects: &O,
    namespace: &str,
    rc: &RunConfiguration,
) -> Result<Resolved, O::Error> {
    let target: Option<ComputeTarget> = match &rc.spec.target_ref {
        Some(r) => objects.get(namespace, &r.name).await?,
        None => None,
    };
    let workspace_name = workspace_name(&rc.spec, target.as_ref()).map(str::to_string);
    let workspace = match &workspace_name {
        Some(name) => objects.get(namespace, name).await?,
        None => None,
    };
    Ok(Resolved {
        target,
        workspace_name,
        workspace,
    })
}

/// `None` when absent, else why the object is not ready (`Some(None)`: ready).
fn readiness<K: Readiness>(obj: Option<&K>) -> Option<Option<(String, String)>> {
    obj.map(why_not_ready)
}

/// The RunConfiguration as the Experiment that references it sees it.
pub fn run_configuration_state(rc: Option<&RunConfiguration>) -> RunConfigurationState {
    match readiness(rc) {
        None => RunConfigurationState::Missing,
        Some(None) => RunConfigurationState::Ready,
        Some(Some((reason, message))) => RunConfigurationState::NotReady { reason, message },
    }
}

/// The Workspace as the ComputeTarget that references it sees it.
pub fn workspace_state(ws: Option<&Workspace>) -> WorkspaceState {
    match readiness(ws) {
        None => WorkspaceState::Missing,
        Some(None) => WorkspaceState::Ready,
        Some(Some((reason, message))) => WorkspaceState::NotReady { reason, message },
    }
}

/// Whether a `local` ComputeTarget can take runs where this frontend runs them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LocalTargets {
    /// On the user's machine (`amlops apply`), or as Kubernetes Jobs in a cluster.
    Allowed,
    /// In a cluster whose operator runs with `--disable-local-jobs`.
    Disabled,
}

/// The target as the RunConfiguration sees it.
pub fn target_state(
    rc: &RunConfiguration,
    target: Option<&ComputeTarget>,
    local: LocalTargets,
) -> TargetState {
    if rc.spec.target_ref.is_none() {
        return TargetState::Ready; // run-based compute is created per run
    }
    let Some(ct) = target else {
        return TargetState::Missing;
    };
    if ct.spec.local.is_some() && local == LocalTargets::Disabled {
        return TargetState::Unusable {
            reason: "LocalComputeNotAllowed".into(),
            message: "this operator runs with --disable-local-jobs (chart value controller.localJobs.enabled=false), so `local` targets take no runs in this cluster; use amlCompute, remoteVM or kubernetes, or `amlops apply` for local runs".into(),
        };
    }
    match why_not_ready(ct) {
        None => TargetState::Ready,
        Some((reason, message)) => TargetState::NotReady { reason, message },
    }
}
