//! Turns an Experiment's `spec.source` into a snapshot source, with the ConfigMap contents and
//! git credential the frontend looked up (a kube API read or the standalone store).

use std::collections::BTreeMap;
use std::future::Future;
use std::path::PathBuf;

use super::{SecretError, SecretSource, needs_human};
use crate::api::Source;
use crate::reconcile::{ActionFailure, CONFIG_MAP_NOT_FOUND};
use crate::snapshot::{self, GitAuth, GitSource, Secret};

/// The data of a ConfigMap source.
#[derive(Clone, Debug, Default)]
pub struct ConfigMapData {
    pub data: BTreeMap<String, String>,
    pub binary_data: BTreeMap<String, Vec<u8>>,
}

/// Where a run's sources are read: the API server or the standalone store. Both frontends
/// resolve `spec.source` through [`RunInputs::source`].
pub trait RunInputs: SecretSource {
    /// The data of ConfigMap `name` in the Experiment's namespace; `None` when it does not exist.
    fn config_map(
        &self,
        name: &str,
    ) -> impl Future<Output = Result<Option<ConfigMapData>, ActionFailure>> + Send;

    /// Whether `spec.source.localPath` may be read: on the user's machine yes; the operator
    /// pod has no business reading its own filesystem for a user.
    fn local_paths_allowed(&self) -> bool;

    /// The snapshot source of `source`, with the ConfigMap and git credential it references.
    fn source(
        &self,
        source: &Source,
    ) -> impl Future<Output = Result<snapshot::Source, ActionFailure>> + Send {
        async move {
            if source.local_path.is_some() && !self.local_paths_allowed() {
                return Err(needs_human(
                    "LocalPathNotAllowed",
                    "spec.source.localPath works with `amlops apply` only; in a cluster use git, configMap or inline",
                ));
            }
            let config_map = match &source.config_map {
                Some(r) => self.config_map(&r.name).await?,
                None => None,
            };
            let git_secret = match source.git.as_ref().and_then(|g| g.secret_ref.as_ref()) {
                Some(r) => match self.secret_value(&r.name, &r.key).await {
                    Ok(v) => Some((r.key.clone(), v)),
                    Err(SecretError::NotFound { .. }) => None,
                    Err(e) => return Err(e.into()),
                },
                None => None,
            };
            snapshot_source(source, config_map, git_secret)
        }
    }
}

/// `config_map` is the referenced ConfigMap (None: not found); `git_secret` the value of the
/// git `secretRef` key (None: not set or not found).
pub fn snapshot_source(
    source: &Source,
    config_map: Option<ConfigMapData>,
    git_secret: Option<(String, Secret)>,
) -> Result<snapshot::Source, ActionFailure> {
    if let Some(path) = &source.local_path {
        return Ok(snapshot::Source::LocalDir(PathBuf::from(path)));
    }
    if let Some(inline) = &source.inline {
        return Ok(snapshot::Source::Inline(inline.files.clone()));
    }
    if let Some(cm) = &source.config_map {
        let data = config_map.ok_or_else(|| {
            needs_human(
                CONFIG_MAP_NOT_FOUND,
                format!("ConfigMap {:?} (spec.source.configMap) not found", cm.name),
            )
        })?;
        return Ok(snapshot::Source::ConfigMap {
            data: data.data,
            binary_data: data.binary_data,
        });
    }
    if let Some(git) = &source.git {
        if git.secret_ref.is_some() && git_secret.is_none() {
            let r = git
                .secret_ref
                .as_ref()
                .map(|r| format!("{}/{}", r.name, r.key))
                .unwrap_or_default();
            return Err(needs_human(
                "SecretNotFound",
                format!("git credential Secret key {r} (spec.source.git.secretRef) not found"),
            ));
        }
        let auth = match git_secret {
            None => GitAuth::None,
            Some((key, value))
                if key == "ssh-privatekey"
                    || value.expose().trim_start().starts_with("-----BEGIN") =>
            {
                GitAuth::SshKey(value)
            }
            Some((_, value)) => GitAuth::Token(value),
        };
        return Ok(snapshot::Source::Git(GitSource {
            url: git.url.clone(),
            revision: git.revision.clone(),
            sub_path: git.path.clone(),
            auth,
        }));
    }
    Err(needs_human(
        "InvalidSpec",
        "spec.source needs one of git, configMap, inline or localPath",
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::{GitSource as ApiGit, ObjectRef, SecretKeyRef};

    #[test]
    fn git_credentials_pick_token_or_ssh_key_and_missing_ones_need_a_human() {
        let src = Source {
            git: Some(ApiGit {
                url: "https://example.com/r.git".into(),
                revision: None,
                path: Some("train".into()),
                secret_ref: Some(SecretKeyRef {
                    name: "git".into(),
                    key: "token".into(),
                }),
            }),
            ..Default::default()
        };
        match snapshot_source(&src, None, Some(("token".into(), Secret::new("t0k")))).unwrap() {
            snapshot::Source::Git(g) => assert!(
                matches!(g.auth, GitAuth::Token(_)) && g.sub_path.as_deref() == Some("train")
            ),
            other => panic!("{other:?}"),
        }
        let key = Secret::new("-----BEGIN OPENSSH PRIVATE KEY-----\n...");
        assert!(matches!(
            snapshot_source(&src, None, Some(("id".into(), key))).unwrap(),
            snapshot::Source::Git(GitSource {
                auth: GitAuth::SshKey(_),
                ..
            })
        ));
        let err = snapshot_source(&src, None, None).unwrap_err();
        assert_eq!(
            (err.reason.as_str(), err.retryable()),
            ("SecretNotFound", false)
        );
        assert!(!err.message.contains("t0k"));
    }

    #[test]
    fn config_map_must_exist() {
        let src = Source {
            config_map: Some(ObjectRef {
                name: "code".into(),
            }),
            ..Default::default()
        };
        assert_eq!(
            snapshot_source(&src, None, None).unwrap_err().reason,
            CONFIG_MAP_NOT_FOUND
        );
        let data = ConfigMapData {
            data: [("train.py".to_string(), "print(1)".to_string())].into(),
            ..Default::default()
        };
        assert!(matches!(
            snapshot_source(&src, Some(data), None).unwrap(),
            snapshot::Source::ConfigMap { .. }
        ));
    }
}
