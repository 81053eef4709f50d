//! `Experiment`: a script run — its source, command, and the history of its runs.

use std::collections::BTreeMap;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::{CustomResource, KubeSchema};
use serde::{Deserialize, Serialize};

use super::{Condition, ErrorInfo, ObjectRef, SecretKeyRef};

/// A script run on a RunConfiguration's target. A new spec generation (or a change of the
/// `amlops.io/rerun` annotation) starts a new run; `suspend: true` cancels the running one.
#[derive(CustomResource, KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[kube(
    group = "amlops.io",
    version = "v1alpha1",
    kind = "Experiment",
    namespaced,
    status = "ExperimentStatus",
    shortname = "exp",
    category = "amlops",
    doc = "A training script run: source snapshot, command, and the history of its runs.",
    printcolumn(name = "Run", type_ = "string", json_path = ".status.currentRun.id"),
    printcolumn(
        name = "State",
        type_ = "string",
        json_path = ".status.currentRun.state"
    ),
    printcolumn(
        name = "Started",
        type_ = "date",
        json_path = ".status.currentRun.startedAt"
    ),
    printcolumn(
        name = "Duration",
        type_ = "string",
        json_path = ".status.currentRun.duration"
    ),
    printcolumn(
        name = "Ready",
        type_ = "string",
        json_path = ".status.conditions[?(@.type==\"Ready\")].status"
    ),
    printcolumn(
        name = "Reason",
        type_ = "string",
        json_path = ".status.conditions[?(@.type==\"Ready\")].reason",
        priority = 1
    ),
    printcolumn(
        name = "Studio",
        type_ = "string",
        json_path = ".status.currentRun.studioUrl",
        priority = 1
    ),
    printcolumn(
        name = "Age",
        type_ = "date",
        json_path = ".metadata.creationTimestamp"
    )
)]
#[serde(rename_all = "camelCase")]
#[x_kube(
    validation = kube::core::Rule::new("has(self.script) != has(self.command)")
        .message("set exactly one of script (with optional arguments) or command"),
    validation = kube::core::Rule::new("!has(self.command) || !has(self.arguments) || size(self.arguments) == 0")
        .message("arguments go with script; put them inside command instead").field_path(".arguments"),
)]
pub struct ExperimentSpec {
    /// Azure ML experiment name that groups the runs. Defaults to metadata.name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = r"^[a-zA-Z0-9][a-zA-Z0-9\-_.]{0,254}$"))]
    pub experiment_name: Option<String>,
    /// The RunConfiguration (same namespace) that gives the target and environment.
    pub run_configuration_ref: ObjectRef,
    /// Where the code comes from. It is captured as an immutable snapshot for every run.
    pub source: Source,
    /// Script to run, relative to the source root, e.g. `train.py`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 1024))]
    #[x_kube(validation = kube::core::Rule::new("!self.startsWith('/') && !self.contains('..')").message("script must be a relative path inside the source"))]
    pub script: Option<String>,
    /// Arguments passed to the script.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 256))]
    pub arguments: Vec<String>,
    /// A full command line instead of script + arguments, run from the source root.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 16384))]
    pub command: Option<String>,
    /// Tags recorded on every run.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    #[schemars(extend("maxProperties" = 64))]
    pub tags: BTreeMap<String, String>,
    /// True cancels the running run and starts none until set back to false.
    #[serde(default)]
    pub suspend: bool,
    /// How many finished runs `status.runs` keeps (default 10).
    #[serde(default = "default_history_limit")]
    #[schemars(range(min = 1, max = 100))]
    pub history_limit: i32,
    /// Limits of the source snapshot.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub snapshot_limits: Option<SnapshotLimits>,
}

fn default_history_limit() -> i32 {
    10
}

/// Exactly one source of code.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = kube::core::Rule::new(
    "(has(self.git) ? 1 : 0) + (has(self.configMap) ? 1 : 0) + (has(self.inline) ? 1 : 0) + (has(self.localPath) ? 1 : 0) == 1"
).message("exactly one of git, configMap, inline or localPath must be set"))]
pub struct Source {
    /// A git repository.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub git: Option<GitSource>,
    /// A ConfigMap (same namespace) whose keys become files (binaryData too).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub config_map: Option<ObjectRef>,
    /// Files written inline: path -> content.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub inline: Option<InlineSource>,
    /// A directory on the machine that runs `amlops apply` (standalone mode only), relative to the manifest file.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 4096))]
    pub local_path: Option<String>,
}

/// A git repository source.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
pub struct GitSource {
    /// Clone URL (https:// or ssh://, or git@host:path). Never put credentials in it: use secretRef.
    #[schemars(length(min = 1, max = 2048))]
    #[x_kube(validation = kube::core::Rule::new("!self.matches('(?i)^[a-z+]+://[^/@]+@')").message("url must not contain credentials; use secretRef"))]
    pub url: String,
    /// Branch, tag or commit (default: the remote's default branch).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 256))]
    pub revision: Option<String>,
    /// Sub-directory of the repository used as the source root.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 1024))]
    #[x_kube(validation = kube::core::Rule::new("!self.startsWith('/') && !self.contains('..')").message("path must be relative and stay inside the repository"))]
    pub path: Option<String>,
    /// Secret key holding an HTTPS token (key `token`) or an SSH private key (key `ssh-privatekey`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret_ref: Option<SecretKeyRef>,
}

/// Inline files.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
pub struct InlineSource {
    /// Relative file path -> file content. Paths are made of `/`-separated parts, none of
    /// them empty, `.`, `..` or `.git`, without control characters.
    #[schemars(extend("maxProperties" = 64))]
    #[x_kube(validation = kube::core::Rule::new(
        "self.all(k, !('/' + k + '/').matches('//|/[.][.]?/|/[.]git/|[\\\\x00-\\\\x1f\\\\x7f]'))"
    ).message("file names must be relative paths inside the source: parts separated by '/', none of them empty, '.', '..' or '.git', and no control characters"))]
    pub files: BTreeMap<String, String>,
}

/// Snapshot size limits.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
pub struct SnapshotLimits {
    /// Maximum total bytes (default 300 MB).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 10737418240_i64))]
    pub max_bytes: Option<i64>,
    /// Maximum number of files (default 2000).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 1000000))]
    pub max_files: Option<i64>,
}

/// Observed state of the experiment.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
pub struct ExperimentStatus {
    /// `Ready`, `Reconciling`, `Stalled`, `Submitted`, `Running`, `Succeeded` and `Failed` conditions.
    #[serde(default)]
    #[x_kube(merge_strategy = kube::core::ListMerge::Map(vec!["type".into()]))]
    #[schemars(length(max = 16))]
    pub conditions: Vec<Condition>,
    /// The `metadata.generation` the status describes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// The run of the current generation.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub current_run: Option<RunStatus>,
    /// Earlier runs, newest first, at most historyLimit.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 100))]
    pub runs: Vec<RunStatus>,
    /// The value of the `amlops.io/rerun` annotation the current run was started for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rerun_token: Option<String>,
}

/// One run.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
pub struct RunStatus {
    /// Run (job) ID, derived from the object's uid and generation so it is never submitted twice.
    pub id: String,
    /// Run state as Azure ML names it: NotStarted, Starting, Provisioning, Preparing, Queued,
    /// Running, Finalizing, CancelRequested, Completed, Failed, Canceled, NotResponding,
    /// Paused, Unknown. Only Completed, Failed and Canceled are final.
    pub state: String,
    /// The generation of the spec this run was started for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub generation: Option<i64>,
    /// Azure ML studio URL of the run.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub studio_url: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub submitted_at: Option<Time>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub started_at: Option<Time>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub finished_at: Option<Time>,
    /// Wall-clock duration, e.g. `1m12s`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub duration: Option<String>,
    /// Content hash of the source snapshot.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub snapshot_id: Option<String>,
    /// Git provenance of the source.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub git: Option<GitProvenance>,
    /// Why the run failed: the most specific Azure ML error code as `code`; the message shows
    /// the code chain, the error message and the last lines of the run's log.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<ErrorInfo>,
    /// Warnings Azure ML attached to the run (at most 5, each cut to 300 characters).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 5))]
    pub warnings: Vec<String>,
    /// Where the logs are (a directory on the local machine for local runs).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub logs: Option<String>,
    /// Where the outputs are (a directory on the local machine for local runs).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub outputs: Option<String>,
    /// Azure name of the run-based compute created for this run; cleared once it is deleted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub run_based_compute: Option<String>,
}

/// Git provenance, recorded as the run properties azureml.git.*.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Eq, Default)]
#[serde(rename_all = "camelCase")]
pub struct GitProvenance {
    /// Repository URL with credentials stripped.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub repository_uri: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub branch: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub commit: Option<String>,
    /// True when the working tree had uncommitted changes.
    #[serde(default)]
    pub dirty: bool,
}
