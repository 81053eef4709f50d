//! Copies a snapshot into a run directory, so a run never writes into the user's
//! source tree. Symlinks are allowed only when they point inside the snapshot.

use std::fs;
use std::path::Path;

use super::error::LocalError;

/// Copies the tree at `src` to `dst` (which must not exist). A symlink to a file inside
/// the tree is copied as the file; a symlink to a directory inside the tree becomes a
/// symlink to the same place in the copy; a symlink leaving the tree is refused.
pub(crate) fn copy_tree(src: &Path, dst: &Path) -> Result<(), LocalError> {
    let root =
        fs::canonicalize(src).map_err(LocalError::io("cannot read snapshot directory", src))?;
    copy_dir(&root, &root, dst, dst)
}

fn copy_dir(root: &Path, dir: &Path, dst_root: &Path, dst: &Path) -> Result<(), LocalError> {
    fs::create_dir(dst).map_err(LocalError::io("cannot create", dst))?;
    for entry in fs::read_dir(dir).map_err(LocalError::io("cannot read", dir))? {
        let entry = entry.map_err(LocalError::io("cannot read", dir))?;
        let from = entry.path();
        let to = dst.join(entry.file_name());
        let kind = entry
            .file_type()
            .map_err(LocalError::io("cannot stat", &from))?;
        if kind.is_symlink() {
            let target =
                fs::canonicalize(&from).map_err(LocalError::io("cannot resolve symlink", &from))?;
            let Ok(inside) = target.strip_prefix(root) else {
                return Err(LocalError::SymlinkEscapes { path: from });
            };
            if target.is_dir() {
                std::os::unix::fs::symlink(dst_root.join(inside), &to)
                    .map_err(LocalError::io("cannot create symlink", &to))?;
            } else {
                fs::copy(&target, &to).map_err(LocalError::io("cannot copy", &from))?;
            }
        } else if kind.is_dir() {
            copy_dir(root, &from, dst_root, &to)?;
        } else {
            fs::copy(&from, &to).map_err(LocalError::io("cannot copy", &from))?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::symlink;

    #[test]
    fn copies_files_dirs_and_inner_symlinks() {
        let dir = tempfile::tempdir().unwrap();
        let src = dir.path().join("src");
        fs::create_dir_all(src.join("pkg/sub")).unwrap();
        fs::write(src.join("train.py"), "print(1)").unwrap();
        fs::write(src.join("pkg/sub/data.txt"), "d").unwrap();
        symlink("train.py", src.join("alias.py")).unwrap();
        symlink(src.join("pkg"), src.join("pkglink")).unwrap();
        let dst = dir.path().join("dst");
        copy_tree(&src, &dst).unwrap();
        assert_eq!(
            fs::read_to_string(dst.join("train.py")).unwrap(),
            "print(1)"
        );
        assert_eq!(
            fs::read_to_string(dst.join("pkg/sub/data.txt")).unwrap(),
            "d"
        );
        assert!(
            !fs::symlink_metadata(dst.join("alias.py"))
                .unwrap()
                .is_symlink()
        );
        assert_eq!(fs::read_link(dst.join("pkglink")).unwrap(), dst.join("pkg"));
    }

    #[test]
    fn refuses_symlink_leaving_the_tree() {
        let dir = tempfile::tempdir().unwrap();
        let src = dir.path().join("src");
        fs::create_dir_all(&src).unwrap();
        fs::write(dir.path().join("secret"), "x").unwrap();
        symlink(dir.path().join("secret"), src.join("leak")).unwrap();
        let err = copy_tree(&src, &dir.path().join("dst")).unwrap_err();
        assert!(
            matches!(err, LocalError::SymlinkEscapes { ref path } if path.ends_with("leak")),
            "{err}"
        );
    }
}
