//! The private registry of a RunConfiguration's base image, on Azure: one GET of the planned
//! workspace connection, and one PUT when it is absent, differs, or was written from an older
//! version of the password's Secret (kept in the connection's metadata, since Azure never
//! returns the password), with the password read at that moment (it never reaches the
//! status, an event or a log).

use std::collections::BTreeMap;

use super::{SecretSource, azure_failure};
use crate::azure::models::connection::{
    ConnectionProperties, UsernamePassword, WorkspaceConnection,
};
use crate::azure::{Secret, WorkspaceClient};
use crate::reconcile::ActionFailure;
use crate::reconcile::run_configuration::{
    ObservedConnection, REGISTRY_CATEGORY, RegistryPlan, registry_in_sync,
};

/// Metadata key naming the object that wrote a connection (`namespace/name`).
const OWNER_METADATA: &str = "amlops.io/owner";
/// Metadata key holding the version of the password's Secret the connection was written from.
const SECRET_VERSION_METADATA: &str = "amlops.io/secret-version";

/// The PUT body of the planned connection.
pub fn connection_body(
    plan: &RegistryPlan,
    password: Secret,
    secret_version: Option<&str>,
    owner: &str,
) -> WorkspaceConnection {
    let mut metadata = BTreeMap::from([(OWNER_METADATA.to_string(), owner.to_string())]);
    if let Some(v) = secret_version {
        metadata.insert(SECRET_VERSION_METADATA.to_string(), v.to_string());
    }
    WorkspaceConnection {
        id: None,
        properties: ConnectionProperties {
            auth_type: "UsernamePassword".into(),
            category: Some(REGISTRY_CATEGORY.into()),
            target: Some(plan.address.clone()),
            credentials: Some(UsernamePassword {
                username: plan.username.clone(),
                password,
            }),
            metadata,
        },
    }
}

/// Makes the planned connection exist in the workspace; true when it had to be written.
pub async fn converge<S: SecretSource>(
    client: &WorkspaceClient,
    plan: &RegistryPlan,
    secrets: &S,
    owner: &str,
) -> Result<bool, ActionFailure> {
    let found = client
        .connection_get(&plan.name)
        .await
        .map_err(|e| azure_failure(&e))?
        .map(|c| ObservedConnection {
            secret_version: c.properties.metadata.get(SECRET_VERSION_METADATA).cloned(),
            category: c.properties.category,
            target: c.properties.target,
        });
    let version = secrets.secret_version(&plan.password.name).await;
    if registry_in_sync(plan, found.as_ref(), version.as_deref()) {
        return Ok(false);
    }
    let password = secrets
        .secret_value(&plan.password.name, &plan.password.key)
        .await?;
    let body = connection_body(plan, password, version.as_deref(), owner);
    client
        .connection_create_or_update(&plan.name, &body)
        .await
        .map_err(|e| azure_failure(&e))?;
    Ok(true)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::SecretKeyRef;

    #[test]
    fn the_body_carries_the_password_but_its_debug_form_does_not() {
        let plan = RegistryPlan {
            name: "amlops-registry-0123456789abcdef".into(),
            address: "private.example.io".into(),
            username: "puller".into(),
            password: SecretKeyRef {
                name: "registry".into(),
                key: "password".into(),
            },
        };
        let body = connection_body(&plan, Secret::new("s3cr3t-value"), Some("7"), "ml/rc");
        let json = serde_json::to_value(&body).unwrap();
        assert_eq!(json["properties"]["authType"], "UsernamePassword");
        assert_eq!(json["properties"]["category"], "ContainerRegistry");
        assert_eq!(json["properties"]["target"], "private.example.io");
        assert_eq!(json["properties"]["credentials"]["username"], "puller");
        assert_eq!(
            json["properties"]["credentials"]["password"],
            "s3cr3t-value"
        );
        assert_eq!(json["properties"]["metadata"][OWNER_METADATA], "ml/rc");
        assert_eq!(json["properties"]["metadata"][SECRET_VERSION_METADATA], "7");
        assert!(!format!("{body:?}").contains("s3cr3t-value"));
    }
}
