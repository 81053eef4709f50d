//! Deciding, per file, whether to upload, copy server-side or skip. Pure.

use std::collections::{HashMap, HashSet};

use super::index::ContentIndex;
use super::manifest::{Manifest, ManifestEntry};

/// Copy Blob From URL handles sources up to 256 MiB; bigger files are uploaded.
pub const COPY_MAX: u64 = 256 * 1024 * 1024;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step<'a> {
    Upload(&'a ManifestEntry),
    Copy {
        entry: &'a ManifestEntry,
        from: String,
    },
    Present(&'a ManifestEntry),
}

/// Steps in two waves: the second copies duplicates of content the first uploads.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Plan<'a> {
    pub first: Vec<Step<'a>>,
    pub second: Vec<Step<'a>>,
}

/// The blob name of a file of the snapshot folder (`""`: the container root).
pub fn blob_name(folder: &str, path: &str) -> String {
    if folder.is_empty() {
        path.to_string()
    } else {
        format!("{folder}/{path}")
    }
}

/// Plans the upload of `manifest` into `folder`, given the content index and the blobs
/// already present in the folder.
pub fn plan<'a>(
    manifest: &'a Manifest,
    folder: &str,
    index: &ContentIndex,
    present: &HashSet<String>,
) -> Plan<'a> {
    let mut plan = Plan::default();
    let mut uploading: HashMap<&str, String> = HashMap::new();
    for entry in &manifest.files {
        let name = blob_name(folder, &entry.path);
        if present.contains(&name) {
            plan.first.push(Step::Present(entry));
            continue;
        }
        let copyable = entry.size <= COPY_MAX;
        match (
            index.blobs.get(&entry.hash),
            uploading.get(entry.hash.as_str()),
        ) {
            (Some(from), _) if copyable => plan.first.push(Step::Copy {
                entry,
                from: from.clone(),
            }),
            (_, Some(from)) if copyable => plan.second.push(Step::Copy {
                entry,
                from: from.clone(),
            }),
            _ => {
                uploading.entry(&entry.hash).or_insert(name);
                plan.first.push(Step::Upload(entry));
            }
        }
    }
    plan
}

#[cfg(test)]
mod tests {
    use super::*;

    fn e(path: &str, hash: &str) -> ManifestEntry {
        ManifestEntry {
            path: path.into(),
            size: 3,
            mode: 0o644,
            hash: hash.into(),
        }
    }

    #[test]
    fn known_content_is_copied_new_content_uploaded_once_present_skipped() {
        let m =
            Manifest::from_entries(vec![e("a", "h1"), e("b", "h2"), e("c", "h2"), e("d", "h3")]);
        let mut index = ContentIndex::default();
        index.blobs.insert("h1".into(), "LocalUpload/old/a".into());
        let present: HashSet<_> = ["F/d".to_string()].into();
        let p = plan(&m, "F", &index, &present);
        assert_eq!(
            p.first,
            vec![
                Step::Copy {
                    entry: &m.files[0],
                    from: "LocalUpload/old/a".into()
                },
                Step::Upload(&m.files[1]),
                Step::Present(&m.files[3]),
            ]
        );
        assert_eq!(
            p.second,
            vec![Step::Copy {
                entry: &m.files[2],
                from: "F/b".into()
            }]
        );
    }

    #[test]
    fn huge_files_are_uploaded_even_when_known() {
        let mut big = e("big", "h");
        big.size = COPY_MAX + 1;
        let m = Manifest::from_entries(vec![big]);
        let mut index = ContentIndex::default();
        index.blobs.insert("h".into(), "x".into());
        assert_eq!(
            plan(&m, "F", &index, &HashSet::new()).first,
            vec![Step::Upload(&m.files[0])]
        );
    }
}
