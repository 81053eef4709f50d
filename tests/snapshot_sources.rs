//! The four source kinds resolve to the same kind of tree; git provenance on clean and dirty
//! working trees and on git sources. Repositories are made with the `git` binary here in
//! the test only; amlops itself reads them with gix.

mod git_support;

use std::collections::BTreeMap;
use std::fs;
use std::path::Path;

use git_support::git;

use amlops::snapshot::{GitAuth, GitSource, Limits, SnapshotOptions, Source, take};

fn options(cache: &Path) -> SnapshotOptions {
    SnapshotOptions {
        limits: Limits::default(),
        cache_dir: cache.to_path_buf(),
    }
}

/// A working tree with one commit on `main` and an origin URL carrying credentials.
fn repo_with_commit() -> tempfile::TempDir {
    let d = tempfile::tempdir().unwrap();
    let r = d.path();
    git(r, &["init", "-q"]);
    fs::create_dir(r.join("src")).unwrap();
    fs::write(r.join("src/train.py"), "print('hi')\n").unwrap();
    fs::write(r.join(".gitignore"), "*.log\n").unwrap();
    git(r, &["add", "."]);
    git(r, &["commit", "-q", "-m", "one"]);
    git(
        r,
        &[
            "remote",
            "add",
            "origin",
            "https://alice:ghp_SECRET@github.com/org/repo.git",
        ],
    );
    d
}

#[test]
fn provenance_of_a_clean_and_a_dirty_working_tree() {
    let repo = repo_with_commit();
    let cache = tempfile::tempdir().unwrap();
    let head = git(repo.path(), &["rev-parse", "HEAD"]);
    let snap = take(
        &Source::LocalDir(repo.path().to_path_buf()),
        &options(cache.path()),
    )
    .unwrap();
    let props = snap.provenance.as_ref().unwrap().to_properties();
    assert_eq!(
        props["azureml.git.repository_uri"],
        "https://github.com/org/repo.git"
    );
    assert_eq!(props["azureml.git.branch"], "main");
    assert_eq!(props["azureml.git.commit"], head);
    assert_eq!(props["azureml.git.dirty"], "false");
    assert!(!format!("{props:?}").contains("ghp_SECRET"));

    // An ignored file does not make the tree dirty; a modified tracked file does.
    fs::write(repo.path().join("debug.log"), "x").unwrap();
    let snap = take(
        &Source::LocalDir(repo.path().to_path_buf()),
        &options(cache.path()),
    )
    .unwrap();
    assert!(!snap.provenance.unwrap().dirty);
    fs::write(repo.path().join("src/train.py"), "print('changed')\n").unwrap();
    let snap = take(
        &Source::LocalDir(repo.path().to_path_buf()),
        &options(cache.path()),
    )
    .unwrap();
    assert!(snap.provenance.unwrap().dirty);

    // An untracked (not ignored) file counts as dirty too, like `git status --porcelain`.
    git(repo.path(), &["checkout", "-q", "--", "src/train.py"]);
    fs::write(repo.path().join("new.py"), "").unwrap();
    let snap = take(
        &Source::LocalDir(repo.path().to_path_buf()),
        &options(cache.path()),
    )
    .unwrap();
    assert!(snap.provenance.unwrap().dirty);
}

#[test]
fn a_directory_outside_git_has_no_provenance() {
    let d = tempfile::tempdir().unwrap();
    fs::write(d.path().join("a.py"), "").unwrap();
    let cache = tempfile::tempdir().unwrap();
    assert!(
        take(
            &Source::LocalDir(d.path().to_path_buf()),
            &options(cache.path())
        )
        .unwrap()
        .provenance
        .is_none()
    );
}

#[test]
fn all_four_source_kinds_resolve_to_the_same_snapshot() {
    let cache = tempfile::tempdir().unwrap();
    let files: BTreeMap<String, String> = [
        ("train.py".to_string(), "import sys\n".to_string()),
        ("conf.yaml".to_string(), "lr: 0.1\n".to_string()),
    ]
    .into();

    // Local directory.
    let local = tempfile::tempdir().unwrap();
    for (k, v) in &files {
        fs::write(local.path().join(k), v).unwrap();
    }
    let local_snap = take(
        &Source::LocalDir(local.path().to_path_buf()),
        &options(cache.path()),
    )
    .unwrap();

    // Inline files.
    let inline = take(&Source::Inline(files.clone()), &options(cache.path())).unwrap();
    assert_eq!(inline.id, local_snap.id);
    assert!(inline.provenance.is_none());

    // ConfigMap: one key as text, one as binaryData.
    let cm = Source::ConfigMap {
        data: [("train.py".to_string(), files["train.py"].clone())].into(),
        binary_data: [(
            "conf.yaml".to_string(),
            files["conf.yaml"].clone().into_bytes(),
        )]
        .into(),
    };
    let cm_snap = take(&cm, &options(cache.path())).unwrap();
    assert_eq!(cm_snap.id, local_snap.id);

    // Git: a bare repository reached over file://, the files under a sub-path, on a branch.
    let work = tempfile::tempdir().unwrap();
    let w = work.path();
    git(w, &["init", "-q"]);
    fs::create_dir(w.join("job")).unwrap();
    for (k, v) in &files {
        fs::write(w.join("job").join(k), v).unwrap();
    }
    fs::write(w.join("other.txt"), "not in the sub-path").unwrap();
    git(w, &["add", "."]);
    git(w, &["commit", "-q", "-m", "c1"]);
    let commit = git(w, &["rev-parse", "HEAD"]);
    let bare = tempfile::tempdir().unwrap();
    git(
        bare.path(),
        &["clone", "-q", "--bare", w.to_str().unwrap(), "repo.git"],
    );
    let url = format!("file://{}", bare.path().join("repo.git").display());
    let git_source = |revision: Option<&str>| {
        Source::Git(GitSource {
            url: url.clone(),
            revision: revision.map(str::to_string),
            sub_path: Some("job".into()),
            auth: GitAuth::None,
        })
    };
    let git_snap = take(&git_source(Some("main")), &options(cache.path())).unwrap();
    assert_eq!(git_snap.id, local_snap.id);
    let p = git_snap.provenance.as_ref().unwrap();
    assert_eq!(p.commit.as_deref(), Some(commit.as_str()));
    assert_eq!(p.branch.as_deref(), Some("main"));
    assert_eq!(p.repository_uri.as_deref(), Some(url.as_str()));
    assert!(!p.dirty);

    // A second commit: the cached clone is fetched again; a commit id selects the old tree.
    fs::write(w.join("job/train.py"), "import os\n").unwrap();
    git(w, &["commit", "-q", "-am", "c2"]);
    git(
        w,
        &[
            "push",
            "-q",
            bare.path().join("repo.git").to_str().unwrap(),
            "main",
        ],
    );
    let newer = take(&git_source(Some("main")), &options(cache.path())).unwrap();
    assert_ne!(newer.id, local_snap.id);
    assert_eq!(
        fs::read_to_string(newer.root.join("train.py")).unwrap(),
        "import os\n"
    );
    let pinned = take(&git_source(Some(&commit)), &options(cache.path())).unwrap();
    assert_eq!(pinned.id, local_snap.id);
    assert_eq!(pinned.provenance.unwrap().branch, None);
    let cached: Vec<_> = fs::read_dir(cache.path().join("git")).unwrap().collect();
    assert_eq!(cached.len(), 1, "one cached clone per URL");

    let missing = take(&git_source(Some("no-such-branch")), &options(cache.path())).unwrap_err();
    assert!(
        missing
            .to_string()
            .contains("revision 'no-such-branch' not found"),
        "{missing}"
    );
}

#[test]
fn inline_file_names_cannot_escape_the_tree() {
    let cache = tempfile::tempdir().unwrap();
    let files: BTreeMap<String, String> = [("../evil.py".to_string(), String::new())].into();
    let err = take(&Source::Inline(files), &options(cache.path())).unwrap_err();
    assert!(
        err.to_string().contains("'../evil.py' in inline files"),
        "{err}"
    );
}
