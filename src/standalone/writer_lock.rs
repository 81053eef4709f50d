//! One writer at a time on a state directory: the first change a command makes to the store
//! takes an exclusive `flock` on `<database>.lock` and keeps it until the command exits, so
//! two `apply` take turns instead of interleaving (one's status update meeting the other's
//! object). Readers never take it. The kernel drops the lock when its holder dies, so a stale
//! lock file blocks no one; the holder's pid and command in it only make the wait message.

use std::fs::{File, OpenOptions};
use std::os::unix::fs::{FileExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use nix::errno::Errno;
use nix::fcntl::{Flock, FlockArg};

/// Held while alive.
pub struct WriterLock {
    _lock: Flock<File>,
}

/// The lock file of the state database `db`.
pub fn lock_path(db: &Path) -> PathBuf {
    let mut name = db.as_os_str().to_owned();
    name.push(".lock");
    PathBuf::from(name)
}

/// What a waiting command says, from the holder's line (`<pid> <command>`) in the lock file.
pub fn waiting_message(holder: &str, state_dir: &Path) -> String {
    let mut words = holder.split_whitespace();
    let who = match (
        words.next().filter(|p| p.parse::<u32>().is_ok()),
        words.next(),
    ) {
        (Some(pid), Some(command)) => format!("another amlops {command} (pid {pid})"),
        (Some(pid), None) => format!("another amlops command (pid {pid})"),
        _ => "another amlops command".to_string(),
    };
    format!("waiting for {who} on {}", state_dir.display())
}

/// The holder's line. The holder writes it just after taking the lock, so an empty file is
/// read again for up to 200 ms before the wait message goes without it.
fn holder_line(path: &Path) -> String {
    for _ in 0..20 {
        let line = std::fs::read_to_string(path).unwrap_or_default();
        if !line.trim().is_empty() {
            return line;
        }
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    String::new()
}

impl WriterLock {
    /// Takes the lock of the state database `db`, waiting while another command holds it and
    /// saying so once on stderr; then records this process as the holder.
    pub fn acquire(db: &Path) -> std::io::Result<WriterLock> {
        let path = lock_path(db);
        let file = OpenOptions::new()
            .create(true)
            .truncate(false)
            .read(true)
            .write(true)
            .mode(0o600)
            .open(&path)?;
        let lock = match Flock::lock(file, FlockArg::LockExclusiveNonblock) {
            Ok(lock) => lock,
            Err((file, Errno::EWOULDBLOCK)) => {
                let holder = holder_line(&path);
                let dir = db.parent().filter(|d| !d.as_os_str().is_empty());
                eprintln!(
                    "amlops: {}",
                    waiting_message(&holder, dir.unwrap_or(Path::new(".")))
                );
                Flock::lock(file, FlockArg::LockExclusive).map_err(|(_, e)| e)?
            }
            Err((_, errno)) => return Err(errno.into()),
        };
        // The subcommand, wherever global options put it (`amlops --state x apply`).
        let command = std::env::args()
            .skip(1)
            .find(|a| ["apply", "delete"].contains(&a.as_str()))
            .unwrap_or_default();
        let holder = format!("{} {command}\n", std::process::id());
        lock.set_len(0)?;
        lock.write_all_at(holder.as_bytes(), 0)?;
        Ok(WriterLock { _lock: lock })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_wait_message_names_the_holder_when_the_lock_file_says_who() {
        let dir = Path::new(".amlops");
        assert_eq!(
            waiting_message("4242 apply\n", dir),
            "waiting for another amlops apply (pid 4242) on .amlops"
        );
        assert_eq!(
            waiting_message("", dir),
            "waiting for another amlops command on .amlops"
        );
        assert_eq!(
            waiting_message("junk", dir),
            "waiting for another amlops command on .amlops"
        );
    }

    #[test]
    fn a_second_holder_waits_until_the_first_is_dropped() {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("state.db");
        let first = WriterLock::acquire(&db).unwrap();
        let holder = std::fs::read_to_string(lock_path(&db)).unwrap();
        assert!(holder.starts_with(&format!("{} ", std::process::id())));
        let (tx, rx) = std::sync::mpsc::channel();
        let db2 = db.clone();
        let waiter = std::thread::spawn(move || {
            let lock = WriterLock::acquire(&db2).unwrap();
            tx.send(()).unwrap();
            lock
        });
        // flock locks belong to open files, so a second open in this process must wait too.
        assert!(
            rx.recv_timeout(std::time::Duration::from_millis(300))
                .is_err()
        );
        drop(first);
        rx.recv().unwrap();
        drop(waiter.join().unwrap());
    }
}
