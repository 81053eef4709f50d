//! Environment actions on Azure: observe (one GET of the planned version) and register
//! (one PUT, only after that GET found nothing). Versions are named by content, so an
//! unchanged RunConfiguration never registers again and two RunConfigurations with the same
//! content never race into a conflict.

use std::collections::BTreeMap;

use super::azure_failure;
use crate::azure::models::common::ResourceBase;
use crate::azure::models::environment::{EnvironmentVersion, EnvironmentVersionProperties};
use crate::azure::{WorkspaceClient, WorkspaceRef};
use crate::reconcile::ActionFailure;
use crate::reconcile::run_configuration::{EnvironmentPlan, EnvironmentState};

/// Property naming the object that registered a version (`namespace/name`).
pub const OWNER_PROPERTY: &str = "amlops.io/owner";

/// The `environmentId` of a job that runs in `plan`: the registry asset id of a registry
/// (or curated) environment, else the ARM id of the workspace version. Both the
/// RunConfiguration (its status) and the Experiment (its job) take it from here.
pub fn environment_id(plan: &EnvironmentPlan, workspace: &WorkspaceRef) -> String {
    plan.registry_asset_id()
        .unwrap_or_else(|| workspace.environment_version_id(plan.name(), plan.version()))
}

/// One GET of the planned version. An `existing` environment that is absent is `Missing`
/// (a person must fix the reference); a planned one that is absent is `NotStaged`. A
/// registry environment is not looked up: the workspace may answer 404
/// (`EnvironmentNotFound`) for a curated one that runs can use, and a registry GET needs
/// the registry's resource group, which a reference does not carry.
pub async fn observe(
    client: &WorkspaceClient,
    plan: &EnvironmentPlan,
) -> Result<EnvironmentState, ActionFailure> {
    if plan.registry().is_some() {
        return Ok(EnvironmentState::Staged);
    }
    let found = client
        .environment_version_get(plan.name(), plan.version())
        .await
        .map_err(|e| azure_failure(&e))?;
    Ok(match (found, plan) {
        (Some(_), _) => EnvironmentState::Staged,
        (None, EnvironmentPlan::Existing { .. }) => EnvironmentState::Missing,
        (None, _) => EnvironmentState::NotStaged,
    })
}

/// The PUT body of a planned version; `None` for an `existing` environment (never written).
pub fn version_body(plan: &EnvironmentPlan, owner: &str) -> Option<EnvironmentVersion> {
    let (image, conda_file) = match plan {
        EnvironmentPlan::SystemManaged {
            base_image,
            conda_file,
            ..
        } => (base_image.clone(), Some(conda_file.clone())),
        EnvironmentPlan::UserManaged { base_image, .. } => (base_image.clone(), None),
        EnvironmentPlan::Existing { .. } => return None,
    };
    Some(EnvironmentVersion {
        id: None,
        name: None,
        properties: EnvironmentVersionProperties {
            image: Some(image),
            conda_file,
            base: ResourceBase {
                description: Some("registered by amlops; the version is a content hash".into()),
                properties: BTreeMap::from([(OWNER_PROPERTY.to_string(), owner.to_string())]),
                tags: BTreeMap::new(),
            },
            provisioning_state: None,
        },
    })
}

/// Registers the planned version (the caller observed it absent just before).
pub async fn register(
    client: &WorkspaceClient,
    plan: &EnvironmentPlan,
    owner: &str,
) -> Result<(), ActionFailure> {
    let Some(body) = version_body(plan, owner) else {
        return Ok(());
    };
    client
        .environment_version_create_or_update(plan.name(), plan.version(), &body)
        .await
        .map(|_| ())
        .map_err(|e| azure_failure(&e))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::reconcile::run_configuration::ExistingName;

    #[test]
    fn system_managed_sends_conda_and_image_user_managed_only_the_image() {
        let sys = EnvironmentPlan::SystemManaged {
            name: "amlops-ml-rc".into(),
            version: "abc".into(),
            conda_file: "name: project_environment\n".into(),
            python_version: Some("3.11".into()),
            conda_packages: vec![],
            pip_packages: vec![],
            base_image: "img:1".into(),
        };
        let body = serde_json::to_value(version_body(&sys, "ml/rc").unwrap()).unwrap();
        assert_eq!(body["properties"]["image"], "img:1");
        assert_eq!(
            body["properties"]["condaFile"],
            "name: project_environment\n"
        );
        assert_eq!(body["properties"]["properties"][OWNER_PROPERTY], "ml/rc");
        let user = EnvironmentPlan::UserManaged {
            name: "amlops-ml-rc".into(),
            version: "def".into(),
            interpreter: "python3".into(),
            base_image: "img:2".into(),
        };
        let body = serde_json::to_value(version_body(&user, "ml/rc").unwrap()).unwrap();
        assert_eq!(body["properties"]["image"], "img:2");
        assert!(body["properties"].get("condaFile").is_none());
        let existing = EnvironmentPlan::Existing {
            name: "e".into(),
            version: "1".into(),
        };
        assert!(version_body(&existing, "ml/rc").is_none());
    }

    fn workspace() -> WorkspaceRef {
        WorkspaceRef {
            subscription_id: "sub".into(),
            resource_group: "rg".into(),
            workspace: "ws".into(),
        }
    }

    fn existing(name: &str, registry: Option<&str>, version: &str) -> EnvironmentPlan {
        EnvironmentPlan::Existing {
            name: ExistingName::new(name, registry),
            version: version.into(),
        }
    }

    #[test]
    fn jobs_reference_workspace_environments_by_arm_id_and_registry_ones_by_asset_id() {
        let ws = workspace();
        assert_eq!(
            environment_id(&existing("my-env", None, "3"), &ws),
            "/subscriptions/sub/resourceGroups/rg/providers/Microsoft.MachineLearningServices/workspaces/ws/environments/my-env/versions/3"
        );
        assert_eq!(
            environment_id(
                &existing("AzureML-sklearn-1.0-ubuntu20.04-py38-cpu", None, "33"),
                &ws
            ),
            "azureml://registries/azureml/environments/AzureML-sklearn-1.0-ubuntu20.04-py38-cpu/versions/33"
        );
        assert_eq!(
            environment_id(
                &existing("acpt-pytorch-2.2-cuda12.1", Some("azureml"), "41"),
                &ws
            ),
            "azureml://registries/azureml/environments/acpt-pytorch-2.2-cuda12.1/versions/41"
        );
        let pattern =
            regex::Regex::new("^azureml://registries/[^/]+/environments/[^/]+/versions/[^/]+$")
                .unwrap();
        let shared = environment_id(&existing("train", Some("team-registry"), "7"), &ws);
        assert!(pattern.is_match(&shared), "{shared}");
        let sys = EnvironmentPlan::UserManaged {
            name: "amlops-ml-rc".into(),
            version: "abc".into(),
            interpreter: "python3".into(),
            base_image: "img".into(),
        };
        assert_eq!(
            environment_id(&sys, &ws),
            ws.environment_version_id("amlops-ml-rc", "abc")
        );
    }

    #[tokio::test]
    async fn registry_environments_are_not_looked_up_in_the_workspace() {
        use crate::azure::{ArmClient, ArmConfig, CredentialSource, Endpoints, Secret};
        use std::sync::{Arc, Mutex};
        let calls = Arc::new(Mutex::new(Vec::new()));
        let seen = calls.clone();
        let config = ArmConfig {
            // Nothing listens here: any call would fail.
            endpoints: Endpoints::new("https://127.0.0.1:9/", "https://127.0.0.1:9/").unwrap(),
            ..ArmConfig::default()
        };
        let source = CredentialSource::ServicePrincipal {
            tenant_id: "t".into(),
            client_id: "c".into(),
            client_secret: Secret::new("s"),
        };
        let arm = ArmClient::new(config, &source)
            .unwrap()
            .with_observer(Arc::new(move |op: &'static str, _: Option<u16>| {
                seen.lock().unwrap().push(op)
            }));
        let client = WorkspaceClient::new(arm, workspace());
        for plan in [
            existing("AzureML-sklearn-1.0-ubuntu20.04-py38-cpu", None, "33"),
            existing("train", Some("team-registry"), "7"),
        ] {
            let state = observe(&client, &plan).await;
            assert_eq!(state, Ok(EnvironmentState::Staged), "{plan:?}");
        }
        assert!(
            calls.lock().unwrap().is_empty(),
            "{:?}",
            calls.lock().unwrap()
        );
    }
}
