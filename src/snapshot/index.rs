//! Where content already is in the container: the manifests of earlier snapshots. There is no
//! shared index blob, so concurrent uploads of different snapshots never write the same blob;
//! a new snapshot reads the few earlier manifests its sketch says are most alike. Pure.

use std::cmp::Ordering;
use std::collections::HashMap;
use std::time::SystemTime;

use super::manifest::Manifest;
use super::plan::blob_name;
use super::sketch::Sketch;
use crate::azure::blob::BlobItem;

/// Where completed snapshots' manifests are kept: `amlops-manifests/<snapshot id>.json`.
pub const MANIFEST_PREFIX: &str = "amlops-manifests";
/// Metadata key of a manifest blob holding its snapshot's [`Sketch`].
pub const SKETCH_METADATA: &str = "amlops_sketch";

/// The manifest blob of a snapshot.
pub fn manifest_blob(snapshot_id: &str) -> String {
    format!("{MANIFEST_PREFIX}/{snapshot_id}.json")
}

/// Content hash -> a container-relative blob holding that content.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ContentIndex {
    pub blobs: HashMap<String, String>,
}

impl ContentIndex {
    /// Adds the files of a snapshot uploaded to `folder`; content already known keeps its
    /// first location (sources are added most alike first).
    pub fn add(&mut self, folder: &str, manifest: &Manifest) {
        for f in &manifest.files {
            self.blobs
                .entry(f.hash.clone())
                .or_insert_with(|| blob_name(folder, &f.path));
        }
    }
}

/// A manifest blob as listed.
#[derive(Debug, Clone, PartialEq)]
pub struct ListedManifest {
    pub snapshot_id: String,
    pub sketch: Option<Sketch>,
    pub last_modified: Option<SystemTime>,
}

impl ListedManifest {
    /// Reads a listed blob; `None` for anything that is not `amlops-manifests/<id>.json`.
    pub fn from_item(item: &BlobItem) -> Option<ListedManifest> {
        let id = item
            .name
            .strip_prefix(MANIFEST_PREFIX)?
            .strip_prefix('/')?
            .strip_suffix(".json")?;
        (!id.is_empty() && !id.contains('/')).then(|| ListedManifest {
            snapshot_id: id.to_string(),
            sketch: item
                .metadata
                .get(SKETCH_METADATA)
                .and_then(|s| Sketch::parse(s)),
            last_modified: item.last_modified,
        })
    }
}

/// The earlier snapshots worth reading for `mine`: those sharing content by their sketches,
/// most alike first (newer first on ties), at most `max`.
pub fn choose_sources<'a>(mine: &Sketch, listed: &'a [ListedManifest], max: usize) -> Vec<&'a str> {
    let mut scored: Vec<(f64, &ListedManifest)> = listed
        .iter()
        .filter_map(|m| Some((mine.similarity(m.sketch.as_ref()?), m)))
        .filter(|(score, _)| *score > 0.0)
        .collect();
    scored.sort_by(|(sa, a), (sb, b)| {
        sb.partial_cmp(sa)
            .unwrap_or(Ordering::Equal)
            .then(b.last_modified.cmp(&a.last_modified))
    });
    scored
        .into_iter()
        .take(max)
        .map(|(_, m)| m.snapshot_id.as_str())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::snapshot::ManifestEntry;
    use std::collections::BTreeMap;
    use std::time::Duration;

    fn manifest(contents: &[&str]) -> Manifest {
        Manifest::from_entries(
            contents
                .iter()
                .enumerate()
                .map(|(i, c)| ManifestEntry {
                    path: format!("f{i}"),
                    size: 1,
                    mode: 0o644,
                    hash: blake3::hash(c.as_bytes()).to_hex().to_string(),
                })
                .collect(),
        )
    }

    fn listed(id: &str, m: &Manifest, age_s: u64) -> ListedManifest {
        ListedManifest {
            snapshot_id: id.into(),
            sketch: Some(Sketch::of(m)),
            last_modified: Some(SystemTime::UNIX_EPOCH + Duration::from_secs(1000 - age_s)),
        }
    }

    #[test]
    fn the_most_alike_snapshots_are_read_unrelated_ones_never() {
        let mine = Sketch::of(&manifest(&["a", "b", "c", "d"]));
        let all = vec![
            listed("unrelated", &manifest(&["x", "y"]), 0),
            listed("half", &manifest(&["a", "b", "y", "z"]), 0),
            listed("close-old", &manifest(&["a", "b", "c"]), 50),
            listed("close-new", &manifest(&["a", "b", "c"]), 10),
            ListedManifest {
                snapshot_id: "no-sketch".into(),
                sketch: None,
                last_modified: None,
            },
        ];
        assert_eq!(
            choose_sources(&mine, &all, 3),
            vec!["close-new", "close-old", "half"]
        );
        assert_eq!(choose_sources(&mine, &all, 1), vec!["close-new"]);
    }

    #[test]
    fn listed_names_other_than_manifests_are_ignored() {
        let item = |name: &str| BlobItem {
            name: name.into(),
            size: 1,
            last_modified: None,
            metadata: BTreeMap::from([(SKETCH_METADATA.to_string(), String::new())]),
        };
        let m = ListedManifest::from_item(&item(&manifest_blob("abc"))).unwrap();
        assert_eq!(m.snapshot_id, "abc");
        assert!(m.sketch.is_some());
        for other in [
            "amlops-manifests/x/y.json",
            "amlops-manifests/.json",
            "other/abc.json",
        ] {
            assert!(ListedManifest::from_item(&item(other)).is_none(), "{other}");
        }
    }

    #[test]
    fn known_content_keeps_its_first_location() {
        let mut index = ContentIndex::default();
        index.add("LocalUpload/s1", &manifest(&["a", "b"]));
        index.add("LocalUpload/s2", &manifest(&["b", "a", "c"]));
        let a = blake3::hash(b"a").to_hex().to_string();
        let c = blake3::hash(b"c").to_hex().to_string();
        assert_eq!(index.blobs[&a], "LocalUpload/s1/f0");
        assert_eq!(index.blobs[&c], "LocalUpload/s2/f2");
    }
}
