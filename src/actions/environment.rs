//! Environment actions on Azure: observe (one GET of the planned version) and register
//! (one PUT, only after that GET found nothing). Versions are named by content, so an
//! unchanged RunConfiguration never registers again and two RunConfigurations with the same
//! content never race into a conflict.

use std::collections::BTreeMap;

use super::azure_failure;
use crate::azure::WorkspaceClient;
use crate::azure::models::common::ResourceBase;
use crate::azure::models::environment::{EnvironmentVersion, EnvironmentVersionProperties};
use crate::reconcile::ActionFailure;
use crate::reconcile::run_configuration::{EnvironmentPlan, EnvironmentState};

/// Property naming the object that registered a version (`namespace/name`).
pub const OWNER_PROPERTY: &str = "amlops.io/owner";

/// One GET of the planned version. An `existing` environment that is absent is `Missing`
/// (a person must fix the reference); a planned one that is absent is `NotStaged`.
pub async fn observe(
    client: &WorkspaceClient,
    plan: &EnvironmentPlan,
) -> Result<EnvironmentState, ActionFailure> {
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
}
