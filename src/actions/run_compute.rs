//! Run-based compute: an AmlCompute cluster created for one run and deleted when the run ends.
//! Its name is derived from the run id, so after a crash the same cluster is found again
//! (never a second one) and the cleanup can always name what to delete.

use super::compute::build_resource;
use super::{SecretSource, azure_failure, needs_human};
use crate::api::{ComputeTargetSpec, RunBasedCompute};
use crate::azure::WorkspaceClient;
use crate::azure::lro::Started;
use crate::azure::models::compute::UnderlyingResourceAction;
use crate::reconcile::ActionFailure;

/// Where the run's cluster stands after one `ensure`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ComputeReadiness {
    /// Provisioned: the job may go.
    Ready,
    /// Being created (or just asked for): look again later.
    Provisioning,
}

/// Whether the cluster still exists after one `remove`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Removal {
    Gone,
    Deleting,
}

/// A valid Azure ML compute name for a run: `amlr` + 16 hex digits of the run id's hash
/// (20 characters, a letter first, no `-<digits>` ending).
pub fn compute_name(run_id: &str) -> String {
    let hash = blake3::hash(run_id.as_bytes()).to_hex();
    format!("amlr{}", &hash[..16])
}

/// The ComputeTarget-shaped spec of the cluster (scale to zero, max `maxNodes`).
fn spec_of(rc: &RunBasedCompute) -> Result<ComputeTargetSpec, ActionFailure> {
    serde_json::from_value(serde_json::json!({
        "description": "run-based compute created by amlops for one run",
        "amlCompute": {
            "vmSize": rc.vm_size,
            "vmPriority": rc.vm_priority,
            "minNodes": 0,
            "maxNodes": rc.max_nodes,
            "idleSecondsBeforeScaleDown": 120,
        }
    }))
    .map_err(|e| needs_human("InvalidSpec", format!("spec.amlCompute: {e}")))
}

/// GETs the cluster, creates it when absent; Ready once Azure reports it provisioned.
/// `owner` is `namespace/name` of the Experiment.
pub async fn ensure<S: SecretSource>(
    client: &WorkspaceClient,
    name: &str,
    rc: &RunBasedCompute,
    owner: &str,
    secrets: &S,
) -> Result<ComputeReadiness, ActionFailure> {
    let found = client
        .compute_get(name)
        .await
        .map_err(|e| azure_failure(&e))?;
    let Some(found) = found else {
        let spec = spec_of(rc)?;
        let subscription = &client.workspace().subscription_id;
        let body = build_resource(&spec, owner, subscription, secrets).await?;
        return match client
            .compute_create_or_update(name, &body)
            .await
            .map_err(|e| azure_failure(&e))?
        {
            Started::Done(_) | Started::Pending(_) => Ok(ComputeReadiness::Provisioning),
        };
    };
    let observed = super::compute::observed(&found);
    match observed.provisioning_state.as_deref() {
        Some("Succeeded") => Ok(ComputeReadiness::Ready),
        Some("Failed" | "Canceled") => {
            let (code, detail) = observed
                .errors
                .first()
                .map(|e| (e.code.as_str(), e.message.as_str()))
                .unwrap_or(("ProvisioningFailed", "no details"));
            Err(needs_human(
                code,
                format!("run-based compute {name} failed to provision: {detail}"),
            ))
        }
        _ => Ok(ComputeReadiness::Provisioning),
    }
}

/// Deletes the cluster if it is still there (one GET, then at most one DELETE).
pub async fn remove(client: &WorkspaceClient, name: &str) -> Result<Removal, ActionFailure> {
    let found = client
        .compute_get(name)
        .await
        .map_err(|e| azure_failure(&e))?;
    let Some(found) = found else {
        return Ok(Removal::Gone);
    };
    if super::compute::observed(&found)
        .provisioning_state
        .as_deref()
        == Some("Deleting")
    {
        return Ok(Removal::Deleting);
    }
    match client
        .compute_delete(name, UnderlyingResourceAction::Delete)
        .await
    {
        Ok(Started::Done(())) => Ok(Removal::Gone),
        Ok(Started::Pending(_)) => Ok(Removal::Deleting),
        Err(e) if e.is_not_found() => Ok(Removal::Gone),
        Err(e) => Err(azure_failure(&e)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::reconcile::compute_target::valid_azure_name;

    #[test]
    fn names_are_valid_azure_compute_names_and_stable() {
        for id in [
            "train-1-0123456789",
            "x",
            "a-very-long-experiment-name-3-ffffffffff",
        ] {
            let n = compute_name(id);
            assert!(valid_azure_name(&n), "{n}");
            assert_eq!(n, compute_name(id));
        }
        assert_ne!(compute_name("a-1-x"), compute_name("a-2-x"));
    }

    #[test]
    fn spec_scales_to_zero_with_the_declared_size() {
        let s = spec_of(&RunBasedCompute {
            vm_size: "STANDARD_D2_V2".into(),
            vm_priority: crate::api::VmPriority::LowPriority,
            max_nodes: 3,
        })
        .unwrap();
        let a = s.aml_compute.unwrap();
        assert_eq!((a.min_nodes, a.max_nodes), (0, 3));
        assert_eq!(a.vm_priority, crate::api::VmPriority::LowPriority);
    }
}
