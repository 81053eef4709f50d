//! The state directory holds Secret values (in the database, see docs/standalone.md), so it is
//! the user's alone: the directory 0700, the database and its WAL/SHM files 0600. Group and
//! other access left by an older amlops (or a umask) is removed when the files are the user's
//! (the owner's own bits stay: a read-only state stays read-only), refused otherwise: amlops
//! cannot make someone else's files private.

use std::fs::{DirBuilder, OpenOptions};
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

const DIR_MODE: u32 = 0o700;
const FILE_MODE: u32 = 0o600;

#[derive(Debug, thiserror::Error)]
pub enum PrivateError {
    #[error(
        "{path} is open to other users (mode {mode:04o}) but belongs to uid {owner}, not to you (uid {me}), so amlops cannot make it private; it holds Secret values: have its owner run `chmod go-rwx` on it, or choose another --state"
    )]
    NotOwned {
        path: PathBuf,
        mode: u32,
        owner: u32,
        me: u32,
    },
    #[error(
        "--state {db} would put the state in {dir}, a directory open to other users (mode {mode:04o}) that holds no amlops state yet; amlops keeps Secret values in a private directory of its own and will not change the mode of a shared one: choose --state {suggestion}"
    )]
    SharedDirectory {
        db: PathBuf,
        dir: PathBuf,
        mode: u32,
        suggestion: PathBuf,
    },
    #[error("{path}: cannot make it private (mode {wanted:04o}): {source}")]
    Io {
        path: PathBuf,
        wanted: u32,
        source: std::io::Error,
    },
}

/// What to do with an existing file or directory of the state.
#[derive(Debug, PartialEq, Eq)]
pub enum Verdict {
    Private,
    Tighten,
    Refuse,
}

/// `mode` is loose when anyone but the owner has any access.
pub fn verdict(mode: u32, owner: u32, me: u32) -> Verdict {
    match (mode & 0o077 == 0, owner == me) {
        (true, _) => Verdict::Private,
        (false, true) => Verdict::Tighten,
        (false, false) => Verdict::Refuse,
    }
}

/// Creates the state directory of the database `db` (0700) and the database file (0600, empty:
/// SQLite creates its WAL and SHM files with the database's mode), or removes group and other
/// access from them. Returns a notice for each path it tightened.
pub fn make_private(db: &Path) -> Result<Vec<String>, PrivateError> {
    let dir = db
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    if !dir.exists() {
        DirBuilder::new()
            .recursive(true)
            .mode(DIR_MODE)
            .create(dir)
            .map_err(io(dir, DIR_MODE))?;
    } else if !db.exists() {
        // A directory that is not a state yet (`--state /tmp/s.db`, `--state ~/s.db`) is the
        // user's or everyone's: tightening it would lock others out of /tmp or $HOME.
        let mode = std::fs::metadata(dir)
            .map_err(io(dir, DIR_MODE))?
            .permissions()
            .mode()
            & 0o7777;
        if mode & 0o077 != 0 {
            let file = db.file_name().unwrap_or(std::ffi::OsStr::new("state.db"));
            return Err(PrivateError::SharedDirectory {
                db: db.to_path_buf(),
                dir: dir.to_path_buf(),
                mode,
                suggestion: dir.join("amlops-state").join(file),
            });
        }
    }
    match OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(FILE_MODE)
        .open(db)
    {
        Err(e) if e.kind() != std::io::ErrorKind::AlreadyExists => {
            return Err(io(db, FILE_MODE)(e));
        }
        _ => {}
    }
    // SAFETY: geteuid has no preconditions and cannot fail.
    let me = unsafe { nix::libc::geteuid() };
    let mut notices = Vec::new();
    let files = ["", "-wal", "-shm"].map(|suffix| {
        let mut name = db.as_os_str().to_owned();
        name.push(suffix);
        PathBuf::from(name)
    });
    for path in std::iter::once(dir.to_path_buf()).chain(files) {
        let Ok(meta) = std::fs::metadata(&path) else {
            continue; // no WAL or SHM yet
        };
        let mode = meta.permissions().mode() & 0o7777;
        match verdict(mode, meta.uid(), me) {
            Verdict::Private => {}
            Verdict::Refuse => {
                return Err(PrivateError::NotOwned {
                    path,
                    mode,
                    owner: meta.uid(),
                    me,
                });
            }
            Verdict::Tighten => {
                let wanted = mode & 0o7700;
                std::fs::set_permissions(&path, std::fs::Permissions::from_mode(wanted))
                    .map_err(io(&path, wanted))?;
                notices.push(format!(
                    "made {} private (mode {mode:04o} -> {wanted:04o}): the state holds Secret values",
                    path.display()
                ));
            }
        }
    }
    Ok(notices)
}

fn io(path: &Path, wanted: u32) -> impl FnOnce(std::io::Error) -> PrivateError + '_ {
    move |source| PrivateError::Io {
        path: path.to_path_buf(),
        wanted,
        source,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loose_modes_are_tightened_for_the_owner_and_refused_for_others() {
        assert_eq!(verdict(0o600, 1000, 1000), Verdict::Private);
        assert_eq!(verdict(0o700, 0, 1000), Verdict::Private);
        assert_eq!(verdict(0o644, 1000, 1000), Verdict::Tighten);
        assert_eq!(verdict(0o710, 1000, 1000), Verdict::Tighten);
        assert_eq!(verdict(0o644, 0, 1000), Verdict::Refuse);
    }

    #[test]
    fn a_shared_directory_is_never_made_private_for_a_new_state() {
        let root = tempfile::tempdir().unwrap();
        let shared = root.path().join("shared");
        std::fs::create_dir(&shared).unwrap();
        std::fs::set_permissions(&shared, std::fs::Permissions::from_mode(0o1777)).unwrap();
        let err = make_private(&shared.join("s.db")).unwrap_err();
        let mode = std::fs::metadata(&shared).unwrap().permissions().mode() & 0o7777;
        assert_eq!(mode, 0o1777, "the shared directory keeps its mode");
        assert!(!shared.join("s.db").exists(), "nothing is created there");
        let msg = err.to_string();
        assert!(
            msg.contains("open to other users") && msg.contains("amlops-state/s.db"),
            "{msg}"
        );
        // Its own directory under it is fine.
        assert!(make_private(&shared.join("amlops-state/s.db")).is_ok());
    }

    #[test]
    fn a_new_state_is_private_and_a_loose_one_is_tightened_once() {
        let root = tempfile::tempdir().unwrap();
        let db = root.path().join("state/sub/state.db");
        assert!(make_private(&db).unwrap().is_empty());
        let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(db.parent().unwrap()), 0o700);
        assert_eq!(mode(&db), 0o600);

        let wal = root.path().join("state/sub/state.db-wal");
        std::fs::write(&wal, "").unwrap();
        std::fs::set_permissions(&wal, std::fs::Permissions::from_mode(0o644)).unwrap();
        std::fs::set_permissions(db.parent().unwrap(), std::fs::Permissions::from_mode(0o755))
            .unwrap();
        let notices = make_private(&db).unwrap();
        assert_eq!(notices.len(), 2, "{notices:?}");
        assert!(notices[1].contains("state.db-wal private (mode 0644 -> 0600)"));
        assert_eq!(mode(&wal), 0o600);
        assert_eq!(mode(db.parent().unwrap()), 0o700);
        assert!(make_private(&db).unwrap().is_empty());
        // The owner's bits stay: a read-only database is made private, not writable.
        std::fs::set_permissions(&db, std::fs::Permissions::from_mode(0o444)).unwrap();
        make_private(&db).unwrap();
        assert_eq!(mode(&db), 0o400);
    }
}
