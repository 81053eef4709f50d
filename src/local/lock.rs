//! Inter-process exclusive locks (flock) so concurrent stagers of one environment
//! take turns instead of building into the same directory.

use std::fs::{File, OpenOptions};
use std::path::Path;

use nix::errno::Errno;
use nix::fcntl::{Flock, FlockArg};

use super::error::LocalError;
use super::progress::Progress;

/// Held while alive; the kernel drops the lock when the holder exits, even on a crash,
/// so a stale lock file never blocks anyone.
pub(crate) struct FileLock {
    _lock: Flock<File>,
}

/// Takes an exclusive lock on `path` (created if missing), waiting for other holders and
/// telling `progress` when it has to wait.
pub(crate) fn lock_exclusive(path: &Path, progress: &dyn Progress) -> Result<FileLock, LocalError> {
    let open = || {
        OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(path)
            .map_err(LocalError::io("cannot open lock file", path))
    };
    let file = match Flock::lock(open()?, FlockArg::LockExclusiveNonblock) {
        Ok(lock) => return Ok(FileLock { _lock: lock }),
        Err((file, Errno::EWOULDBLOCK)) => file,
        Err((_, errno)) => return Err(lock_error(path, errno)),
    };
    progress.step(&format!(
        "waiting for another process holding {}",
        path.display()
    ));
    match Flock::lock(file, FlockArg::LockExclusive) {
        Ok(lock) => Ok(FileLock { _lock: lock }),
        Err((_, errno)) => Err(lock_error(path, errno)),
    }
}

fn lock_error(path: &Path, errno: Errno) -> LocalError {
    LocalError::io("cannot lock", path)(std::io::Error::from(errno))
}
