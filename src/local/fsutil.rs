//! Small filesystem helpers shared by environment staging and runs.

use std::fs;
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use super::error::LocalError;

/// True when `name` can be used as one directory name under the state directory:
/// no separators, no `..`, nothing a shell or a path join could reinterpret.
pub(crate) fn is_safe_component(name: &str) -> bool {
    !name.is_empty()
        && name != "."
        && name != ".."
        && name.len() <= 200
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
}

/// Writes `contents` to `path` so that readers see either nothing or the whole file:
/// write a sibling temp file, fsync it, rename it over `path`.
pub(crate) fn write_atomic(path: &Path, contents: &[u8]) -> Result<(), LocalError> {
    let tmp = write_temp(path, contents)?;
    fs::rename(&tmp, path).map_err(LocalError::io("cannot rename into place", path))
}

/// Like [`write_atomic`], but never replaces an existing `path` (the temp file is
/// hard-linked into place, which fails if `path` exists). False when `path` existed.
pub(crate) fn create_atomic(path: &Path, contents: &[u8]) -> Result<bool, LocalError> {
    let tmp = write_temp(path, contents)?;
    let linked = fs::hard_link(&tmp, path);
    let _ = fs::remove_file(&tmp);
    match linked {
        Ok(()) => Ok(true),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(false),
        Err(e) => Err(LocalError::io("cannot link into place", path)(e)),
    }
}

/// Writes and fsyncs a temp file next to `path` (named after this process) for the
/// caller to move into place.
fn write_temp(path: &Path, contents: &[u8]) -> Result<PathBuf, LocalError> {
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(format!(".tmp{}", std::process::id()));
    let tmp = PathBuf::from(tmp);
    let mut file = fs::File::create(&tmp).map_err(LocalError::io("cannot create", &tmp))?;
    file.write_all(contents)
        .and_then(|()| file.sync_all())
        .map_err(LocalError::io("cannot write", &tmp))?;
    Ok(tmp)
}

/// How many bytes from the end of a log are read to find its last lines.
const TAIL_WINDOW: u64 = 64 * 1024;

/// The last `lines` lines of a text file (lossy UTF-8), reading at most the final 64 KiB.
/// A missing file gives an empty string: a run that printed nothing has no tail.
pub(crate) fn tail_lines(path: &Path, lines: usize) -> String {
    let Ok(mut file) = fs::File::open(path) else {
        return String::new();
    };
    let len = file.metadata().map(|m| m.len()).unwrap_or(0);
    let start = len.saturating_sub(TAIL_WINDOW);
    let mut buf = Vec::new();
    if file.seek(SeekFrom::Start(start)).is_err() || file.read_to_end(&mut buf).is_err() {
        return String::new();
    }
    last_lines(&String::from_utf8_lossy(&buf), lines, start > 0)
}

/// Pure part of [`tail_lines`]: when the text was cut at the front, its first (partial)
/// line is dropped.
fn last_lines(text: &str, lines: usize, cut_at_front: bool) -> String {
    let text = text.trim_end_matches(['\n', '\r']);
    let mut all: Vec<&str> = text.lines().collect();
    if cut_at_front && all.len() > 1 {
        all.remove(0);
    }
    let from = all.len().saturating_sub(lines);
    all[from..].join("\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn safe_components() {
        assert!(is_safe_component("run-1.2_a"));
        for bad in ["", ".", "..", "a/b", "a b", "x\n", "é"] {
            assert!(!is_safe_component(bad), "{bad:?} accepted");
        }
    }

    #[test]
    fn last_lines_keeps_the_end() {
        assert_eq!(last_lines("a\nb\nc\n", 2, false), "b\nc");
        assert_eq!(last_lines("a\nb", 5, false), "a\nb");
        assert_eq!(last_lines("partial\nb\nc", 5, true), "b\nc");
        assert_eq!(last_lines("", 3, false), "");
    }

    #[test]
    fn tail_of_large_file_and_atomic_write() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("log");
        let text: String = (0..20_000).map(|i| format!("line {i}\n")).collect();
        write_atomic(&path, text.as_bytes()).unwrap();
        assert_eq!(tail_lines(&path, 3), "line 19997\nline 19998\nline 19999");
        assert_eq!(tail_lines(&dir.path().join("missing"), 3), "");
        assert_eq!(
            fs::read_dir(dir.path()).unwrap().count(),
            1,
            "temp file left behind"
        );
    }

    #[test]
    fn create_atomic_never_replaces() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("reason");
        assert!(create_atomic(&path, b"first").unwrap());
        assert!(!create_atomic(&path, b"second").unwrap());
        assert_eq!(fs::read(&path).unwrap(), b"first");
        assert_eq!(fs::read_dir(dir.path()).unwrap().count(), 1);
    }
}
