//! `amlops logs` against a cluster: the Experiment, its RunConfiguration, target and Workspace
//! are read from the API server (with the caller's kubeconfig and RBAC), then the run's log is
//! read from Azure ML like in standalone mode, or from its Job's pod for a `local` target.
//! Nothing is written anywhere.

use crate::actions::credentials::Frontend;
use crate::actions::kube_job::KubeJobs;
use crate::actions::objects::{ObjectSource, resolve};
use crate::actions::workspace::Connector;
use crate::api::{AzureCli, Experiment, RunConfiguration, WorkspaceCredential};
use crate::azure::{ArmConfig, WorkspaceClient};
use crate::controller::objects::KubeObjects;
use crate::controller::secrets::KubeSecrets;

/// Which identity reads Azure for the caller.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Identity {
    /// The Workspace's own credential (its Secrets read with the caller's RBAC). A workload
    /// identity only works where its token file exists (inside the cluster).
    Workspace,
    /// The user signed in with the Azure CLI (`az login`), like `az ml job stream`.
    AzureCli,
}

/// Where an Experiment's current run runs, as `amlops logs` reads it.
pub enum ClusterRun {
    /// In Azure ML, with a client for its Workspace.
    Azure(WorkspaceClient),
    /// As a Job in the Experiment's namespace (a `local` target).
    Job(KubeJobs),
}

/// The current run of Experiment `namespace/name` and where it runs (`arm` carries
/// everything but the endpoints, which come from the Workspace).
pub async fn current_run(
    kube: kube::Client,
    namespace: &str,
    name: &str,
    identity: Identity,
    arm: ArmConfig,
) -> anyhow::Result<(String, ClusterRun)> {
    let objects = KubeObjects(kube.clone());
    let exp: Experiment = objects
        .get(namespace, name)
        .await?
        .ok_or_else(|| anyhow::anyhow!("Experiment {namespace}/{name} not found"))?;
    let run_id = exp
        .status
        .as_ref()
        .and_then(|s| s.current_run.as_ref())
        .map(|r| r.id.clone())
        .ok_or_else(|| anyhow::anyhow!("Experiment {namespace}/{name} has no run yet"))?;
    let rc_name = &exp.spec.run_configuration_ref.name;
    let rc: RunConfiguration = objects
        .get(namespace, rc_name)
        .await?
        .ok_or_else(|| anyhow::anyhow!("RunConfiguration {namespace}/{rc_name} not found"))?;
    let resolved = resolve(&objects, namespace, &rc).await?;
    if resolved.runs_locally() {
        return Ok((run_id, ClusterRun::Job(KubeJobs::new(kube, namespace))));
    }
    let ws_name = resolved.workspace_name.as_deref().ok_or_else(|| {
        anyhow::anyhow!("RunConfiguration {namespace}/{rc_name} names no Workspace")
    })?;
    let mut ws = resolved
        .workspace
        .ok_or_else(|| anyhow::anyhow!("Workspace {namespace}/{ws_name} not found"))?;
    if identity == Identity::AzureCli {
        ws.spec.credential = WorkspaceCredential {
            azure_cli: Some(AzureCli {}),
            ..WorkspaceCredential::default()
        };
    }
    let connector = Connector::new(arm, Frontend::Standalone);
    let secrets = KubeSecrets::new(kube, namespace);
    let client = connector
        .connect(&format!("{namespace}/{ws_name}"), &ws.spec, &secrets)
        .await
        .map_err(|f| anyhow::anyhow!("Workspace {namespace}/{ws_name}: {}", f.message))?;
    Ok((run_id, ClusterRun::Azure(client)))
}
