//! Git provenance of a source tree (repository URI without credentials, branch, commit,
//! dirty), read with gix — no `git` binary needed.

use std::collections::BTreeMap;
use std::path::Path;

/// What Azure ML records about the code's origin, as the run properties it uses.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct GitProvenance {
    pub repository_uri: Option<String>,
    pub branch: Option<String>,
    pub commit: Option<String>,
    pub dirty: bool,
}

impl GitProvenance {
    /// `azureml.git.*` run properties (absent values are left out).
    pub fn to_properties(&self) -> BTreeMap<String, String> {
        let mut props = BTreeMap::new();
        let mut put = |k: &str, v: Option<&String>| {
            if let Some(v) = v {
                props.insert(format!("azureml.git.{k}"), v.clone());
            }
        };
        put("repository_uri", self.repository_uri.as_ref());
        put("branch", self.branch.as_ref());
        put("commit", self.commit.as_ref());
        props.insert("azureml.git.dirty".into(), self.dirty.to_string());
        props
    }
}

/// Provenance of the git working tree containing `dir`, or `None` when it is not in one.
/// Dirty means what `git status --porcelain` shows: staged, unstaged or untracked (not
/// ignored) changes.
pub fn detect(dir: &Path) -> Option<GitProvenance> {
    let repo = gix::discover(dir).ok()?;
    let repository_uri = repo
        .find_default_remote(gix::remote::Direction::Fetch)
        .and_then(Result::ok)
        .and_then(|remote| {
            remote
                .url(gix::remote::Direction::Fetch)
                .map(|u| strip_credentials(u.to_bstring().to_string()))
        });
    let branch = repo
        .head_name()
        .ok()
        .flatten()
        .map(|n| n.shorten().to_string());
    let commit = repo.head_id().ok().map(|id| id.to_string());
    let dirty = is_dirty(&repo).unwrap_or(true);
    Some(GitProvenance {
        repository_uri,
        branch,
        commit,
        dirty,
    })
}

fn is_dirty(repo: &gix::Repository) -> Result<bool, Box<dyn std::error::Error + Send + Sync>> {
    let mut changes = repo
        .status(gix::progress::Discard)?
        .untracked_files(gix::status::UntrackedFiles::Collapsed)
        .into_iter(Vec::<gix::bstr::BString>::new())?;
    Ok(changes.next().is_some())
}

/// Removes user and password from a URL (`https://user:token@host/x` -> `https://host/x`);
/// scp-like SSH addresses (`git@host:org/repo`) keep their user, which is not a secret.
pub fn strip_credentials(uri: String) -> String {
    match url::Url::parse(&uri) {
        Ok(mut url) if url.has_host() => {
            let _ = url.set_username("");
            let _ = url.set_password(None);
            url.to_string()
        }
        _ => uri,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn credentials_are_stripped_from_urls() {
        assert_eq!(
            strip_credentials("https://bob:s3cret@dev.azure.com/org/repo".into()),
            "https://dev.azure.com/org/repo"
        );
        assert_eq!(
            strip_credentials("https://x-access-token:ghp_1@github.com/o/r.git".into()),
            "https://github.com/o/r.git"
        );
        assert_eq!(
            strip_credentials("git@github.com:o/r.git".into()),
            "git@github.com:o/r.git"
        );
        assert_eq!(
            strip_credentials("/srv/repos/r.git".into()),
            "/srv/repos/r.git"
        );
    }

    #[test]
    fn properties_use_azure_ml_names() {
        let p = GitProvenance {
            repository_uri: Some("https://h/r".into()),
            branch: None,
            commit: Some("abc".into()),
            dirty: true,
        };
        let props = p.to_properties();
        assert_eq!(
            props.get("azureml.git.repository_uri").map(String::as_str),
            Some("https://h/r")
        );
        assert_eq!(
            props.get("azureml.git.commit").map(String::as_str),
            Some("abc")
        );
        assert_eq!(
            props.get("azureml.git.dirty").map(String::as_str),
            Some("true")
        );
        assert!(!props.contains_key("azureml.git.branch"));
    }
}
