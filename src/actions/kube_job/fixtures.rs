//! The objects the unit tests of this module build runs from.

use serde_json::{Value, json};

use super::JobRun;
use crate::api::{ExperimentSpec, GitProvenance, LocalCompute, RunConfigurationSpec};
use crate::reconcile::ObjectInfo;
use crate::reconcile::run_configuration::{EnvironmentPlan, plan_environment};

/// Owned inputs of a [`JobRun`]; `run()` borrows them.
pub struct Inputs {
    pub owner: ObjectInfo,
    pub experiment: ExperimentSpec,
    pub run_configuration: RunConfigurationSpec,
    pub environment: EnvironmentPlan,
    pub target: LocalCompute,
    pub git: Option<GitProvenance>,
}

fn merged(mut base: Value, extra: Value) -> Value {
    if let (Some(b), Some(e)) = (base.as_object_mut(), extra.as_object()) {
        b.extend(e.clone());
    }
    base
}

impl Inputs {
    /// `train.py --epochs 3` of Experiment `ml/train` on a pip-only environment, with the
    /// RunConfiguration and ComputeTarget `local` fields merged from `rc` and `target`.
    pub fn new(rc: Value, target: Value) -> Self {
        let run_configuration: RunConfigurationSpec = serde_json::from_value(merged(
            json!({
                "targetRef": {"name": "local"},
                "environment": {"condaDependencies": {"pipPackages": ["scikit-learn==1.5.0"]}},
                "environmentVariables": {"LEARNING_RATE": "0.1", "AZUREML_RUN_ID": "mine"}
            }),
            rc,
        ))
        .unwrap();
        let rc_info = ObjectInfo {
            name: "rc".into(),
            namespace: "ml".into(),
            ..ObjectInfo::default()
        };
        Inputs {
            owner: ObjectInfo {
                name: "train".into(),
                namespace: "ml".into(),
                uid: "0b7c2d4e-1111-2222-3333-444455556666".into(),
                generation: Some(2),
                ..ObjectInfo::default()
            },
            experiment: serde_json::from_value(json!({
                "runConfigurationRef": {"name": "rc"},
                "source": {"inline": {"files": {"train.py": "print(1)"}}},
                "script": "train.py",
                "arguments": ["--epochs", "3"]
            }))
            .unwrap(),
            environment: plan_environment(&rc_info, &run_configuration).unwrap(),
            run_configuration,
            target: serde_json::from_value(target).unwrap(),
            git: Some(GitProvenance {
                repository_uri: Some("https://example.com/ml.git".into()),
                branch: Some("main".into()),
                commit: Some("abc123".into()),
                dirty: false,
            }),
        }
    }

    pub fn run(&self) -> JobRun<'_> {
        JobRun {
            run_id: "train-2-0123456789",
            owner: &self.owner,
            experiment: &self.experiment,
            run_configuration: &self.run_configuration,
            environment: &self.environment,
            target: &self.target,
            snapshot_id: "5f1e",
            git: self.git.as_ref(),
        }
    }
}
