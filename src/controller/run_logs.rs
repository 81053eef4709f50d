//! `amlops logs` against a cluster: the Experiment, its RunConfiguration, target and Workspace
//! are read from the API server (with the caller's kubeconfig and RBAC), then the run's log is
//! read from Azure ML like in standalone mode. Nothing is written anywhere.

use kube::Api;

use crate::actions::credentials::Frontend;
use crate::actions::workspace::Connector;
use crate::api::{
    AzureCli, ComputeTarget, Experiment, RunConfiguration, Workspace, WorkspaceCredential,
};
use crate::azure::{ArmConfig, WorkspaceClient};
use crate::controller::secrets::KubeSecrets;
use crate::reconcile::run_configuration::workspace_name;

/// Which identity reads Azure for the caller.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Identity {
    /// The Workspace's own credential (its Secrets read with the caller's RBAC). A workload
    /// identity only works where its token file exists (inside the cluster).
    Workspace,
    /// The user signed in with the Azure CLI (`az login`), like `az ml job stream`.
    AzureCli,
}

/// The current run of Experiment `namespace/name` and a client for the Workspace it runs in
/// (`arm` carries everything but the endpoints, which come from the Workspace).
pub async fn current_azure_run(
    kube: kube::Client,
    namespace: &str,
    name: &str,
    identity: Identity,
    arm: ArmConfig,
) -> anyhow::Result<(String, WorkspaceClient)> {
    let exp = Api::<Experiment>::namespaced(kube.clone(), namespace)
        .get_opt(name)
        .await?
        .ok_or_else(|| anyhow::anyhow!("Experiment {namespace}/{name} not found"))?;
    let run_id = exp
        .status
        .as_ref()
        .and_then(|s| s.current_run.as_ref())
        .map(|r| r.id.clone())
        .ok_or_else(|| anyhow::anyhow!("Experiment {namespace}/{name} has no run yet"))?;
    let rc_name = &exp.spec.run_configuration_ref.name;
    let rc = Api::<RunConfiguration>::namespaced(kube.clone(), namespace)
        .get_opt(rc_name)
        .await?
        .ok_or_else(|| anyhow::anyhow!("RunConfiguration {namespace}/{rc_name} not found"))?;
    let target = match &rc.spec.target_ref {
        Some(t) => {
            Api::<ComputeTarget>::namespaced(kube.clone(), namespace)
                .get_opt(&t.name)
                .await?
        }
        None => None,
    };
    if target.as_ref().is_some_and(|t| t.spec.local.is_some()) {
        anyhow::bail!(
            "run {run_id} runs in the cluster, not in Azure ML: read its logs with kubectl logs"
        );
    }
    let ws_name = workspace_name(&rc.spec, target.as_ref()).ok_or_else(|| {
        anyhow::anyhow!("RunConfiguration {namespace}/{rc_name} names no Workspace")
    })?;
    let mut ws = Api::<Workspace>::namespaced(kube.clone(), namespace)
        .get_opt(ws_name)
        .await?
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
    Ok((run_id, client))
}
