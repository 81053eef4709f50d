//! Environment versions: immutable once written, so amlops versions them by content hash.

use super::common::ResourceBase;
use serde::{Deserialize, Serialize};

/// An environment version resource.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EnvironmentVersion {
    /// ARM id (read-only).
    #[serde(default, skip_serializing)]
    pub id: Option<String>,
    /// The version (read-only).
    #[serde(default, skip_serializing)]
    pub name: Option<String>,
    /// The environment.
    pub properties: EnvironmentVersionProperties,
}

/// `EnvironmentVersionProperties` (the fields amlops uses).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct EnvironmentVersionProperties {
    /// Base image, e.g. `mcr.microsoft.com/azureml/openmpi4.1.0-ubuntu22.04`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image: Option<String>,
    /// The conda environment YAML, as a string.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub conda_file: Option<String>,
    /// Description, properties, tags.
    #[serde(flatten)]
    pub base: ResourceBase,
    /// Provisioning state (read-only).
    #[serde(default, skip_serializing)]
    pub provisioning_state: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn body_has_the_spec_shape() {
        let v = EnvironmentVersion {
            id: None,
            name: None,
            properties: EnvironmentVersionProperties {
                image: Some("mcr.microsoft.com/azureml/openmpi4.1.0-ubuntu22.04".into()),
                conda_file: Some("name: e\ndependencies:\n- python=3.11\n".into()),
                provisioning_state: Some("Succeeded".into()),
                ..Default::default()
            },
        };
        assert_eq!(
            serde_json::to_value(v).unwrap(),
            json!({"properties": {
                "image": "mcr.microsoft.com/azureml/openmpi4.1.0-ubuntu22.04",
                "condaFile": "name: e\ndependencies:\n- python=3.11\n"
            }})
        );
    }
}
