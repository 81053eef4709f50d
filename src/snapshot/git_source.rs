//! Git sources: a bare clone per repository URL in a cache directory (shallow when the
//! revision is a branch or tag), fetched again on later use unless the wanted commit is
//! already there, and the wanted tree (or sub-path) written out as plain files.

use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicBool;

use gix::objs::tree::EntryKind;

use super::SnapshotError;
use super::provenance::{GitProvenance, strip_credentials};
use super::source::Secret;

/// A git repository at a revision, optionally a sub-directory of it.
#[derive(Debug, Clone)]
pub struct GitSource {
    /// HTTPS, SSH or file URL (or a local path).
    pub url: String,
    /// Branch, tag or commit; the remote's default branch when absent.
    pub revision: Option<String>,
    /// Directory inside the repository to snapshot.
    pub sub_path: Option<String>,
    pub auth: GitAuth,
}

/// Credentials for the remote, from a Kubernetes Secret.
#[derive(Debug, Clone, Default)]
pub enum GitAuth {
    #[default]
    None,
    /// HTTPS token (GitHub/Azure DevOps PAT), sent as the password of basic auth.
    Token(Secret),
    /// SSH private key (PEM/OpenSSH), used through `ssh -i`.
    SshKey(Secret),
}

/// Writes the source's tree into `dest` (an empty directory); returns its provenance.
pub fn checkout(
    src: &GitSource,
    cache_dir: &Path,
    dest: &Path,
) -> Result<GitProvenance, SnapshotError> {
    let clean_url = strip_credentials(src.url.clone());
    // gix's messages may quote the URL as given: keep a password in it (or the token) out.
    let secrets: Vec<String> = url::Url::parse(&src.url)
        .ok()
        .and_then(|u| u.password().map(str::to_string))
        .into_iter()
        .chain(match &src.auth {
            GitAuth::Token(t) => Some(t.expose().to_string()),
            _ => None,
        })
        .filter(|s| !s.is_empty())
        .collect();
    let err = |message: String| SnapshotError::Git {
        url: clean_url.clone(),
        message: secrets
            .iter()
            .fold(message, |m, s| m.replace(s.as_str(), "<redacted>")),
    };
    std::fs::create_dir_all(cache_dir).map_err(SnapshotError::io(cache_dir))?;
    let key_file = write_ssh_key(&src.auth, cache_dir)?;
    let overrides = ssh_overrides(key_file.as_ref().map(|k| k.path()), cache_dir);
    let repo_dir = cache_dir.join(format!(
        "{}.git",
        &blake3::hash(clean_url.as_bytes()).to_hex()[..24]
    ));
    let full_sha = src.revision.as_deref().filter(|r| is_full_sha(r));
    let shallow = src.revision.as_deref().is_none_or(|r| !looks_like_sha(r));

    let repo = if repo_dir.exists() {
        let repo = gix::open_opts(
            &repo_dir,
            gix::open::Options::isolated().config_overrides(overrides),
        )
        .map_err(|e| err(format!("opening cache {}: {e}", repo_dir.display())))?;
        let have_commit = full_sha.is_some_and(|sha| {
            gix::ObjectId::from_hex(sha.as_bytes()).is_ok_and(|id| repo.find_object(id).is_ok())
        });
        if !have_commit {
            fetch(&repo, &src.auth, shallow).map_err(|e| err(format!("fetch: {}", chain(&*e))))?;
        }
        repo
    } else {
        clone(src, &repo_dir, overrides, shallow)
            .map_err(|e| err(format!("clone: {}", chain(&*e))))?
    };

    let (commit, branch) = resolve(&repo, src.revision.as_deref()).ok_or_else(|| {
        err(format!(
            "revision '{}' not found",
            src.revision.as_deref().unwrap_or("HEAD")
        ))
    })?;
    let commit_obj = repo.find_commit(commit).map_err(|e| err(e.to_string()))?;
    let mut tree = commit_obj.tree().map_err(|e| err(e.to_string()))?;
    if let Some(sub) = src
        .sub_path
        .as_deref()
        .map(|s| s.trim_matches('/'))
        .filter(|s| !s.is_empty())
    {
        let entry = tree
            .peel_to_entry_by_path(sub)
            .map_err(|e| err(e.to_string()))?
            .filter(|e| e.mode().is_tree())
            .ok_or_else(|| err(format!("sub-path '{sub}' is not a directory at {commit}")))?;
        tree = repo
            .find_tree(entry.object_id())
            .map_err(|e| err(e.to_string()))?;
    }
    write_tree(&repo, &tree, dest).map_err(|e| match e {
        WriteError::Io(path, source) => SnapshotError::Io { path, source },
        WriteError::Git(m) => err(m),
    })?;
    Ok(GitProvenance {
        repository_uri: Some(clean_url.clone()),
        branch,
        commit: Some(commit.to_string()),
        dirty: false,
    })
}

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// An error with its causes ("handshake failed: ...: 401"): gix's top-level messages alone
/// do not say what went wrong.
fn chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut text = e.to_string();
    let mut cause = e.source();
    while let Some(c) = cause {
        let next = c.to_string();
        if !text.ends_with(&next) {
            text.push_str(": ");
            text.push_str(&next);
        }
        cause = c.source();
    }
    text
}

fn clone(
    src: &GitSource,
    repo_dir: &Path,
    overrides: Vec<String>,
    shallow: bool,
) -> Result<gix::Repository, BoxError> {
    let tmp = repo_dir.with_extension(format!("tmp{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&tmp);
    let mut prepare = gix::clone::PrepareFetch::new(
        src.url.as_str(),
        &tmp,
        gix::create::Kind::Bare,
        gix::create::Options::default(),
        gix::open::Options::isolated().config_overrides(overrides),
    )?;
    if shallow {
        prepare = prepare.with_shallow(depth_one());
    }
    if let GitAuth::Token(token) = &src.auth {
        let token = token.clone();
        prepare = prepare.configure_connection(move |connection| {
            let token = token.clone();
            connection.set_credentials(move |action| Ok(token_outcome(&token, action)));
            Ok(())
        });
    }
    let (repo, _) = prepare.fetch_only(gix::progress::Discard, &AtomicBool::new(false))?;
    drop(repo);
    std::fs::rename(&tmp, repo_dir)?;
    Ok(gix::open_opts(repo_dir, gix::open::Options::isolated())?)
}

fn fetch(repo: &gix::Repository, auth: &GitAuth, shallow: bool) -> Result<(), BoxError> {
    let remote = repo
        .find_default_remote(gix::remote::Direction::Fetch)
        .ok_or("the cached clone has no remote")??
        // A bare clone mirrors branches and tags and records no fetch refspec: say it here.
        .with_refspecs(
            ["+refs/heads/*:refs/heads/*", "+refs/tags/*:refs/tags/*"],
            gix::remote::Direction::Fetch,
        )?;
    let mut connection = remote.connect(gix::remote::Direction::Fetch)?;
    if let GitAuth::Token(token) = auth {
        let token = token.clone();
        connection.set_credentials(move |action| Ok(token_outcome(&token, action)));
    }
    let mut prepare = connection.prepare_fetch(gix::progress::Discard, Default::default())?;
    if shallow {
        prepare = prepare.with_shallow(depth_one());
    }
    prepare.receive(gix::progress::Discard, &AtomicBool::new(false))?;
    Ok(())
}

fn depth_one() -> gix::remote::fetch::Shallow {
    gix::remote::fetch::Shallow::DepthAtRemote(std::num::NonZeroU32::MIN)
}

fn token_outcome(
    token: &Secret,
    action: gix::credentials::helper::Action,
) -> Option<gix::credentials::protocol::Outcome> {
    match action {
        gix::credentials::helper::Action::Get(ctx) => Some(gix::credentials::protocol::Outcome {
            identity: gix::sec::identity::Account {
                username: "x-access-token".into(),
                password: token.expose().to_string(),
                oauth_refresh_token: None,
            },
            next: ctx.into(),
        }),
        _ => None,
    }
}

/// The key goes into a 0600 temp file for `ssh -i`; it is removed when the guard drops.
fn write_ssh_key(
    auth: &GitAuth,
    cache_dir: &Path,
) -> Result<Option<tempfile::NamedTempFile>, SnapshotError> {
    let GitAuth::SshKey(key) = auth else {
        return Ok(None);
    };
    let mut file = tempfile::Builder::new()
        .prefix("ssh-key")
        .permissions(std::fs::Permissions::from_mode(0o600))
        .tempfile_in(cache_dir)
        .map_err(SnapshotError::io(cache_dir))?;
    let mut text = key.expose().to_string();
    if !text.ends_with('\n') {
        text.push('\n');
    }
    std::io::Write::write_all(&mut file, text.as_bytes())
        .map_err(SnapshotError::io(file.path()))?;
    Ok(Some(file))
}

fn ssh_overrides(key: Option<&Path>, cache_dir: &Path) -> Vec<String> {
    match key {
        Some(key) => vec![format!(
            "core.sshCommand=ssh -i {} -o IdentitiesOnly=yes -o BatchMode=yes -o StrictHostKeyChecking=accept-new -o UserKnownHostsFile={}",
            key.display(),
            cache_dir.join("known_hosts").display()
        )],
        None => Vec::new(),
    }
}

fn is_full_sha(r: &str) -> bool {
    r.len() == 40 && r.bytes().all(|b| b.is_ascii_hexdigit())
}

fn looks_like_sha(r: &str) -> bool {
    (7..=40).contains(&r.len()) && r.bytes().all(|b| b.is_ascii_hexdigit())
}

/// The commit for `revision` and, when it named a branch, the branch name.
fn resolve(
    repo: &gix::Repository,
    revision: Option<&str>,
) -> Option<(gix::ObjectId, Option<String>)> {
    let Some(rev) = revision else {
        let head = repo.head_commit().ok()?;
        let branch = repo
            .head_name()
            .ok()
            .flatten()
            .map(|n| n.shorten().to_string());
        return Some((head.id, branch));
    };
    for (name, is_branch) in [
        (format!("refs/heads/{rev}"), true),
        (format!("refs/remotes/origin/{rev}"), true),
        (format!("refs/tags/{rev}"), false),
    ] {
        if let Ok(mut reference) = repo.find_reference(name.as_str()) {
            let id = reference.peel_to_commit().ok()?.id;
            return Some((id, is_branch.then(|| rev.to_string())));
        }
    }
    // A (possibly abbreviated) commit id; ambiguous prefixes are not guessed.
    let prefix = gix::hash::Prefix::from_hex(rev).ok()?;
    let id = repo.objects.lookup_prefix(prefix, None).ok()??.ok()?;
    Some((repo.find_commit(id).ok()?.id, None))
}

enum WriteError {
    Io(PathBuf, std::io::Error),
    Git(String),
}

/// Writes a git tree as files: executables keep their bit, symlinks stay symlinks (the walk
/// later refuses those leaving the tree), submodules are skipped.
fn write_tree(repo: &gix::Repository, tree: &gix::Tree<'_>, dir: &Path) -> Result<(), WriteError> {
    let io = |p: &Path| {
        let p = p.to_path_buf();
        move |e| WriteError::Io(p, e)
    };
    for entry in tree.iter() {
        let entry = entry.map_err(|e| WriteError::Git(e.to_string()))?;
        let name = entry.filename();
        if name.is_empty() || name.contains(&b'/') || name == ".." || name == "." || name == ".git"
        {
            return Err(WriteError::Git(format!(
                "refusing tree entry name '{name}'"
            )));
        }
        let path = dir.join(std::ffi::OsStr::from_bytes(name));
        let kind = entry.mode().kind();
        if kind == EntryKind::Commit {
            continue;
        }
        let object = repo
            .find_object(entry.oid())
            .map_err(|e| WriteError::Git(e.to_string()))?;
        match kind {
            EntryKind::Tree => {
                std::fs::create_dir(&path).map_err(io(&path))?;
                write_tree(repo, &object.into_tree(), &path)?;
            }
            EntryKind::Blob | EntryKind::BlobExecutable => {
                std::fs::write(&path, &object.data).map_err(io(&path))?;
                if kind == EntryKind::BlobExecutable {
                    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755))
                        .map_err(io(&path))?;
                }
            }
            EntryKind::Link => {
                std::os::unix::fs::symlink(std::ffi::OsStr::from_bytes(&object.data), &path)
                    .map_err(io(&path))?;
            }
            EntryKind::Commit => {}
        }
    }
    Ok(())
}
