//! Finding executables on `PATH` without running a shell.

use std::ffi::OsStr;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

/// The first executable file called `name` in the directories of `path_var`
/// (a `PATH`-style list). Names containing `/` are checked as given.
pub(crate) fn find_executable(name: &str, path_var: Option<&OsStr>) -> Option<PathBuf> {
    if name.contains('/') {
        let path = PathBuf::from(name);
        return is_executable(&path).then_some(path);
    }
    std::env::split_paths(path_var?)
        .filter(|dir| !dir.as_os_str().is_empty())
        .map(|dir| dir.join(name))
        .find(|candidate| is_executable(candidate))
}

fn is_executable(path: &Path) -> bool {
    path.metadata()
        .is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs;

    #[test]
    fn finds_only_executable_files_in_order() {
        let dir = tempfile::tempdir().unwrap();
        let (a, b) = (dir.path().join("a"), dir.path().join("b"));
        fs::create_dir_all(&a).unwrap();
        fs::create_dir_all(&b).unwrap();
        fs::write(a.join("tool"), "").unwrap(); // not executable
        fs::write(b.join("tool"), "").unwrap();
        fs::set_permissions(b.join("tool"), fs::Permissions::from_mode(0o755)).unwrap();
        let path_var = std::env::join_paths([&a, &b]).unwrap();
        assert_eq!(
            find_executable("tool", Some(&path_var)),
            Some(b.join("tool"))
        );
        assert_eq!(find_executable("other", Some(&path_var)), None);
        assert_eq!(find_executable("tool", None), None);
        let direct = b.join("tool");
        assert_eq!(
            find_executable(direct.to_str().unwrap(), None),
            Some(direct)
        );
    }
}
