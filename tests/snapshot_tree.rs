//! File selection, limits and identity of snapshots of local trees.

use std::fs;
use std::os::unix::fs::{PermissionsExt, symlink};
use std::path::Path;

use amlops::snapshot::{Explanation, Limits, SnapshotError, explain, take_dir};

fn write(root: &Path, rel: &str, content: &str) {
    let p = root.join(rel);
    fs::create_dir_all(p.parent().unwrap()).unwrap();
    fs::write(p, content).unwrap();
}

fn paths(root: &Path) -> Vec<String> {
    take_dir(root, &Limits::default())
        .unwrap()
        .manifest
        .files
        .into_iter()
        .map(|f| f.path)
        .collect()
}

#[test]
fn amlignore_takes_precedence_over_gitignore_in_the_same_directory() {
    let d = tempfile::tempdir().unwrap();
    let r = d.path();
    write(r, ".gitignore", "*.log\n");
    write(r, ".amlignore", "data/\n");
    write(r, "train.py", "print(1)");
    write(r, "run.log", "log");
    write(r, "data/big.csv", "1,2");
    // .gitignore in a directory without .amlignore still applies there.
    write(r, "sub/.gitignore", "*.tmp\n");
    write(r, "sub/x.tmp", "t");
    write(r, "sub/x.py", "p");
    write(r, ".git/HEAD", "ref: refs/heads/main");
    assert_eq!(
        paths(r),
        vec![
            ".amlignore",
            ".gitignore",
            "run.log",
            "sub/.gitignore",
            "sub/x.py",
            "train.py"
        ]
    );
}

#[test]
fn nested_and_negated_patterns() {
    let d = tempfile::tempdir().unwrap();
    let r = d.path();
    write(r, ".amlignore", "*.csv\n!keep.csv\nbuild/\n");
    write(r, "a.csv", "");
    write(r, "keep.csv", "");
    write(r, "build/out.bin", "");
    write(r, "src/b.csv", "");
    write(r, "src/.amlignore", "!b.csv\nlocal_only.py\n");
    write(r, "src/local_only.py", "");
    write(r, "src/deep/c.csv", "");
    write(r, "src/deep/ok.py", "");
    assert_eq!(
        paths(r),
        vec![
            ".amlignore",
            "keep.csv",
            "src/.amlignore",
            "src/b.csv",
            "src/deep/ok.py"
        ]
    );

    let why = explain(r, Path::new("src/local_only.py")).unwrap();
    let Explanation::Excluded { path, rule } = why else {
        panic!("{why:?}")
    };
    assert_eq!(path, "src/local_only.py");
    assert_eq!(
        (rule.file, rule.line, rule.pattern.as_str()),
        (
            r.canonicalize().unwrap().join("src/.amlignore"),
            2,
            "local_only.py"
        )
    );
    let why = explain(r, Path::new("build/out.bin")).unwrap();
    assert!(
        matches!(&why, Explanation::Excluded { path, rule } if path == "build" && rule.line == 3),
        "{why:?}"
    );
    let why = explain(r, Path::new("keep.csv")).unwrap();
    assert!(
        matches!(&why, Explanation::Included { reincluded_by: Some(rule) } if rule.line == 2),
        "{why:?}"
    );
    assert!(matches!(
        explain(r, Path::new(".git/config")).unwrap(),
        Explanation::GitDirectory { .. }
    ));
    assert!(matches!(
        explain(r, Path::new("nope.py")).unwrap(),
        Explanation::NotFound { .. }
    ));
}

#[test]
fn symlink_leaving_the_tree_is_refused_by_name() {
    let outside = tempfile::tempdir().unwrap();
    write(outside.path(), "secret.txt", "s");
    let d = tempfile::tempdir().unwrap();
    write(d.path(), "a.py", "");
    fs::create_dir(d.path().join("lib")).unwrap();
    symlink(
        outside.path().join("secret.txt"),
        d.path().join("lib/creds"),
    )
    .unwrap();
    let err = take_dir(d.path(), &Limits::default()).unwrap_err();
    assert!(
        matches!(&err, SnapshotError::SymlinkEscape { link, .. } if link == "lib/creds"),
        "{err:?}"
    );
    assert!(
        err.to_string()
            .contains("'lib/creds' points outside the source tree"),
        "{err}"
    );
    assert!(matches!(
        explain(d.path(), Path::new("lib/creds")).unwrap(),
        Explanation::Refused { .. }
    ));
    // Ignoring the link makes the tree acceptable.
    write(d.path(), ".amlignore", "lib/creds\n");
    assert_eq!(paths(d.path()), vec![".amlignore", "a.py"]);
}

#[test]
fn in_tree_symlinks_are_followed_and_loops_refused() {
    let d = tempfile::tempdir().unwrap();
    let r = d.path();
    write(r, "real/mod.py", "x = 1");
    symlink("real", r.join("alias")).unwrap();
    symlink("real/mod.py", r.join("mod_link.py")).unwrap();
    let snap = take_dir(r, &Limits::default()).unwrap();
    let files: Vec<_> = snap
        .manifest
        .files
        .iter()
        .map(|f| (f.path.as_str(), f.hash.as_str()))
        .collect();
    let h = blake3::hash(b"x = 1").to_hex().to_string();
    assert_eq!(
        files,
        vec![
            ("alias/mod.py", h.as_str()),
            ("mod_link.py", h.as_str()),
            ("real/mod.py", h.as_str())
        ]
    );

    symlink("..", r.join("real/up")).unwrap();
    let err = take_dir(r, &Limits::default()).unwrap_err();
    assert!(
        matches!(&err, SnapshotError::SymlinkLoop { link } if link == "real/up"),
        "{err:?}"
    );
}

#[test]
fn limits_fail_with_the_limit_the_measure_and_the_contributors() {
    let d = tempfile::tempdir().unwrap();
    for i in 0..5 {
        write(d.path(), &format!("data/{i}.bin"), &"x".repeat(1000));
    }
    write(d.path(), "train.py", "p");
    let err = take_dir(
        d.path(),
        &Limits {
            max_bytes: 2000,
            max_files: 100,
        },
    )
    .unwrap_err();
    let msg = err.to_string();
    assert!(
        msg.contains("4.9 KiB exceed the size limit of 2.0 KiB (max-bytes)"),
        "{msg}"
    );
    assert!(msg.contains("data/ (5 files, 4.9 KiB)"), "{msg}");
    let err = take_dir(
        d.path(),
        &Limits {
            max_bytes: 1 << 30,
            max_files: 3,
        },
    )
    .unwrap_err();
    assert!(
        err.to_string()
            .contains("6 files exceed the file-count limit of 3 (max-files)"),
        "{err}"
    );
    assert!(
        take_dir(
            d.path(),
            &Limits {
                max_bytes: 6000,
                max_files: 6
            }
        )
        .is_ok()
    );
}

#[test]
fn identical_trees_in_different_places_have_identical_ids() {
    let make = |extra: Option<&str>| {
        let d = tempfile::tempdir().unwrap();
        write(d.path(), "src/train.py", "import os\n");
        write(d.path(), "README.md", "# hi\n");
        let script = d.path().join("run.sh");
        fs::write(&script, "#!/bin/sh\n").unwrap();
        fs::set_permissions(&script, fs::Permissions::from_mode(0o750)).unwrap();
        if let Some(content) = extra {
            write(d.path(), "src/train.py", content);
        }
        d
    };
    let (a, b) = (make(None), make(None));
    let (sa, sb) = (
        take_dir(a.path(), &Limits::default()).unwrap(),
        take_dir(b.path(), &Limits::default()).unwrap(),
    );
    assert_eq!(sa.id, sb.id);
    assert_eq!(
        sa.manifest
            .files
            .iter()
            .find(|f| f.path == "run.sh")
            .unwrap()
            .mode,
        0o755
    );
    let c = make(Some("import sys\n"));
    assert_ne!(take_dir(c.path(), &Limits::default()).unwrap().id, sa.id);
    // Only the execute bit of the mode counts, and it does count.
    fs::set_permissions(b.path().join("run.sh"), fs::Permissions::from_mode(0o700)).unwrap();
    assert_eq!(take_dir(b.path(), &Limits::default()).unwrap().id, sa.id);
    fs::set_permissions(b.path().join("run.sh"), fs::Permissions::from_mode(0o600)).unwrap();
    assert_ne!(take_dir(b.path(), &Limits::default()).unwrap().id, sa.id);
}
