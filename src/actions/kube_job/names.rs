//! Names, labels and annotations of a run's Kubernetes objects. Pure.
//!
//! A Job name becomes the `batch.kubernetes.io/job-name` label of its pods, so it must be a
//! DNS-1123 label of at most 63 characters. Run ids usually are one already
//! (`<name up to 40>-<generation>-<10 hex>`); a long generation or an odd name is shortened
//! deterministically, so the same run id always names the same Job.

/// Every object amlops creates for a run carries this label with value [`MANAGER`].
pub const MANAGED_BY: &str = "app.kubernetes.io/managed-by";
pub const MANAGER: &str = "amlops";
/// Label: the Experiment's name (as a label value).
pub const EXPERIMENT_LABEL: &str = "amlops.io/experiment";
/// Label: the Job's name, which pods are listed by.
pub const RUN_LABEL: &str = "amlops.io/run-id";
/// Annotation: the full run id (the label holds the Job name derived from it).
pub const RUN_ANNOTATION: &str = "amlops.io/run-id";
/// Annotation: content hash of the snapshot the run started from.
pub const SNAPSHOT_ANNOTATION: &str = "amlops.io/snapshot-id";
/// Annotation: git provenance of the snapshot, as JSON.
pub const GIT_ANNOTATION: &str = "amlops.io/git";
/// Kueue reads the LocalQueue of a Job from this label.
pub const KUEUE_QUEUE_LABEL: &str = "kueue.x-k8s.io/queue-name";

/// The longest label value and DNS-1123 label.
const MAX_LABEL: usize = 63;
/// Hex digits of the hash that keeps a shortened name unique.
const HASH_CHARS: usize = 10;

/// The name of the Job (and ConfigMap) of a run.
pub fn job_name(run_id: &str) -> String {
    bounded(run_id, |c| {
        c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-'
    })
}

/// `value` as a label value: as it is when valid, else shortened deterministically.
pub fn label_value(value: &str) -> String {
    bounded(value, |c| c.is_ascii_alphanumeric() || "-_.".contains(c))
}

/// `s` when every character is `allowed`, it starts and ends alphanumeric and fits in 63;
/// otherwise its allowed prefix plus a hash of the whole of `s`.
fn bounded(s: &str, allowed: fn(char) -> bool) -> String {
    let edges_ok = |s: &str| {
        s.starts_with(|c: char| c.is_ascii_alphanumeric())
            && s.ends_with(|c: char| c.is_ascii_alphanumeric())
    };
    if s.len() <= MAX_LABEL && s.chars().all(allowed) && edges_ok(s) {
        return s.to_string();
    }
    let digest = blake3::hash(s.as_bytes()).to_hex();
    let hash = &digest[..HASH_CHARS];
    let prefix: String = s
        .chars()
        .map(|c| {
            let c = c.to_ascii_lowercase();
            if allowed(c) { c } else { '-' }
        })
        .take(MAX_LABEL - HASH_CHARS - 1)
        .collect();
    let prefix = prefix.trim_matches(|c: char| !c.is_ascii_alphanumeric());
    if prefix.is_empty() {
        hash.to_string()
    } else {
        format!("{prefix}-{hash}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::reconcile::ObjectInfo;
    use crate::reconcile::experiment::run_id;

    fn dns_label(s: &str) -> bool {
        regex::Regex::new(r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$")
            .unwrap()
            .is_match(s)
    }

    #[test]
    fn ordinary_run_ids_name_their_job_as_they_are() {
        let id = run_id(&ObjectInfo {
            name: "train".into(),
            uid: "u-1".into(),
            generation: Some(3),
            ..Default::default()
        });
        assert_eq!(job_name(&id), id);
    }

    #[test]
    fn long_or_odd_run_ids_become_distinct_valid_names_deterministically() {
        let long = run_id(&ObjectInfo {
            name: "a".repeat(200),
            uid: "u".into(),
            generation: Some(i64::MAX),
            ..Default::default()
        });
        assert!(long.len() > 63);
        let name = job_name(&long);
        assert!(dns_label(&name), "{name}");
        assert_eq!(name, job_name(&long));
        let other = long.replace("-9223372036854775807-", "-9223372036854775806-");
        assert_ne!(job_name(&other), name);
        for odd in ["Upper-Case", "-lead", "trail-", "a.b", "---"] {
            assert!(dns_label(&job_name(odd)), "{odd} -> {}", job_name(odd));
        }
    }

    #[test]
    fn label_values_keep_dots_and_shorten_long_names() {
        assert_eq!(label_value("train.v2"), "train.v2");
        let long = format!("{}.example", "x".repeat(250));
        let v = label_value(&long);
        assert!(v.len() <= 63 && v.starts_with("xxx"), "{v}");
        assert_ne!(v, label_value(&format!("{}.other", "x".repeat(250))));
    }
}
