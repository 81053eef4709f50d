//! Which ignore file applies where, with gitignore semantics from the `ignore` crate.
//!
//! Per directory, `.amlignore` is used when present and `.gitignore` otherwise (Azure ML's
//! rule: "if both exist, .amlignore is used and .gitignore is unused"). Files in deeper
//! directories override shallower ones, the last matching line of a file wins, `!` re-includes,
//! and a directory that is excluded is not descended into (as in git).

use std::path::{Path, PathBuf};
use std::sync::Arc;

use ignore::Match;
use ignore::gitignore::{Gitignore, GitignoreBuilder};

use super::SnapshotError;

pub const AMLIGNORE: &str = ".amlignore";
pub const GITIGNORE: &str = ".gitignore";

/// The ignore rule that decided about a path: file, 1-based line and pattern.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rule {
    pub file: PathBuf,
    pub line: usize,
    pub pattern: String,
}

/// What the ignore files say about one path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// No rule matched.
    Unmatched,
    Excluded(Rule),
    /// A negated (`!`) rule re-included it.
    Reincluded(Rule),
}

/// The ignore files of one directory chain, root first.
#[derive(Debug, Clone, Default)]
pub struct IgnoreStack {
    levels: Vec<Arc<Gitignore>>,
}

impl IgnoreStack {
    /// The stack for `dir`, a child directory of the directory this stack describes.
    pub fn enter(&self, dir: &Path) -> Result<IgnoreStack, SnapshotError> {
        let mut next = self.clone();
        if let Some(file) = ignore_file_of(dir) {
            let mut builder = GitignoreBuilder::new(dir);
            if let Some(err) = builder.add(&file) {
                return Err(SnapshotError::IgnoreFile {
                    file,
                    message: err.to_string(),
                });
            }
            let matcher = builder.build().map_err(|e| SnapshotError::IgnoreFile {
                file: file.clone(),
                message: e.to_string(),
            })?;
            next.levels.push(Arc::new(matcher));
        }
        Ok(next)
    }

    /// The verdict for `path` (inside the deepest directory entered); deeper files win.
    pub fn verdict(&self, path: &Path, is_dir: bool) -> Verdict {
        for level in self.levels.iter().rev() {
            match level.matched(path, is_dir) {
                Match::None => continue,
                Match::Ignore(glob) => return Verdict::Excluded(rule_of(glob)),
                Match::Whitelist(glob) => return Verdict::Reincluded(rule_of(glob)),
            }
        }
        Verdict::Unmatched
    }
}

/// The ignore file that governs `dir`, if any.
pub fn ignore_file_of(dir: &Path) -> Option<PathBuf> {
    [AMLIGNORE, GITIGNORE]
        .iter()
        .map(|name| dir.join(name))
        .find(|p| p.is_file())
}

fn rule_of(glob: &ignore::gitignore::Glob) -> Rule {
    let file = glob.from().map(Path::to_path_buf).unwrap_or_default();
    let line = line_of(&file, glob.original()).unwrap_or(0);
    Rule {
        file,
        line,
        pattern: glob.original().to_string(),
    }
}

/// The last line of `file` holding `pattern` (the crate keeps the pattern, not its line).
fn line_of(file: &Path, pattern: &str) -> Option<usize> {
    let text = std::fs::read_to_string(file).ok()?;
    text.lines()
        .enumerate()
        .filter(|(_, l)| l.trim_end() == pattern.trim_end())
        .map(|(i, _)| i + 1)
        .last()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs;

    #[test]
    fn amlignore_replaces_gitignore_in_the_same_directory() {
        let d = tempfile::tempdir().unwrap();
        fs::write(d.path().join(".gitignore"), "*.log\n").unwrap();
        fs::write(d.path().join(".amlignore"), "# comment\n*.tmp\n").unwrap();
        let stack = IgnoreStack::default().enter(d.path()).unwrap();
        assert_eq!(
            stack.verdict(&d.path().join("a.log"), false),
            Verdict::Unmatched
        );
        let Verdict::Excluded(rule) = stack.verdict(&d.path().join("a.tmp"), false) else {
            panic!()
        };
        assert_eq!(
            (rule.file, rule.line, rule.pattern.as_str()),
            (d.path().join(".amlignore"), 2, "*.tmp")
        );
    }

    #[test]
    fn deeper_files_override_and_negation_reincludes() {
        let d = tempfile::tempdir().unwrap();
        let sub = d.path().join("sub");
        fs::create_dir(&sub).unwrap();
        fs::write(d.path().join(".gitignore"), "*.csv\n").unwrap();
        fs::write(sub.join(".amlignore"), "!keep.csv\n").unwrap();
        let root = IgnoreStack::default().enter(d.path()).unwrap();
        let deep = root.enter(&sub).unwrap();
        assert!(matches!(
            deep.verdict(&sub.join("other.csv"), false),
            Verdict::Excluded(_)
        ));
        assert!(matches!(
            deep.verdict(&sub.join("keep.csv"), false),
            Verdict::Reincluded(_)
        ));
        assert!(matches!(
            root.verdict(&d.path().join("keep.csv"), false),
            Verdict::Excluded(_)
        ));
    }
}
