//! Size and file-count limits, and the message that helps a user get under them. Pure.

/// Limits on what a snapshot may contain (Azure ML's own defaults: 300 MB, 2000 files).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    pub max_bytes: u64,
    pub max_files: u64,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_bytes: 300 * 1024 * 1024,
            max_files: 2000,
        }
    }
}

/// Checks `files` (relative path, size) against `limits`; on failure, the message says which
/// limit, the measured total and the top-level entries that contribute most.
pub fn check(files: &[(&str, u64)], limits: &Limits) -> Result<(), String> {
    let total_bytes: u64 = files.iter().map(|(_, s)| s).sum();
    let count = files.len() as u64;
    let mut broken = Vec::new();
    if count > limits.max_files {
        broken.push(format!(
            "{count} files exceed the file-count limit of {} (max-files)",
            limits.max_files
        ));
    }
    if total_bytes > limits.max_bytes {
        broken.push(format!(
            "{} exceed the size limit of {} (max-bytes)",
            human_bytes(total_bytes),
            human_bytes(limits.max_bytes)
        ));
    }
    if broken.is_empty() {
        return Ok(());
    }
    let by_files = count > limits.max_files && total_bytes <= limits.max_bytes;
    Err(format!(
        "snapshot too large: {}. Largest contributors: {}. Exclude them in .amlignore or raise the limit.",
        broken.join("; "),
        contributors(files, by_files).join(", ")
    ))
}

/// Top-level entries (first path component) ranked by size, or by file count when only the
/// count limit is broken; at most five.
fn contributors(files: &[(&str, u64)], by_files: bool) -> Vec<String> {
    let mut groups: std::collections::BTreeMap<String, (u64, u64)> = Default::default();
    for (path, size) in files {
        let key = match path.split_once('/') {
            Some((dir, _)) => format!("{dir}/"),
            None => (*path).to_string(),
        };
        let g = groups.entry(key).or_default();
        g.0 += 1;
        g.1 += size;
    }
    let mut ranked: Vec<_> = groups.into_iter().collect();
    ranked.sort_by(|a, b| {
        let (ka, kb) = if by_files {
            (a.1.0, b.1.0)
        } else {
            (a.1.1, b.1.1)
        };
        kb.cmp(&ka).then_with(|| a.0.cmp(&b.0))
    });
    ranked
        .into_iter()
        .take(5)
        .map(|(name, (n, bytes))| format!("{name} ({n} files, {})", human_bytes(bytes)))
        .collect()
}

/// Bytes in binary units with one decimal (`1.5 MiB`).
pub fn human_bytes(bytes: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut value = bytes as f64;
    let mut unit = 0;
    while value >= 1024.0 && unit < UNITS.len() - 1 {
        value /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{bytes} B")
    } else {
        format!("{value:.1} {}", UNITS[unit])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn within_limits_is_ok() {
        assert!(
            check(
                &[("a", 10), ("b/c", 20)],
                &Limits {
                    max_bytes: 30,
                    max_files: 2
                }
            )
            .is_ok()
        );
    }

    #[test]
    fn size_limit_names_limit_total_and_biggest_directory() {
        let files = [
            ("data/x.bin", 900),
            ("data/y.bin", 900),
            ("src/a.py", 10),
            ("README", 5),
        ];
        let err = check(
            &files,
            &Limits {
                max_bytes: 1000,
                max_files: 100,
            },
        )
        .unwrap_err();
        assert!(err.contains("size limit of 1000 B (max-bytes)"), "{err}");
        assert!(err.contains("1.8 KiB exceed"), "{err}");
        assert!(
            err.starts_with("snapshot too large")
                && err.contains("contributors: data/ (2 files, 1.8 KiB)"),
            "{err}"
        );
        assert!(!err.contains("file-count"), "{err}");
    }

    #[test]
    fn count_limit_ranks_by_file_count() {
        let mut files = vec![("big.bin", 500)];
        files.extend(std::iter::repeat_n(("node_modules/x", 1), 3));
        let err = check(
            &files,
            &Limits {
                max_bytes: 10_000,
                max_files: 3,
            },
        )
        .unwrap_err();
        assert!(
            err.contains("4 files exceed the file-count limit of 3 (max-files)"),
            "{err}"
        );
        let first = err.split("contributors: ").nth(1).unwrap();
        assert!(first.starts_with("node_modules/ (3 files"), "{err}");
    }
}
