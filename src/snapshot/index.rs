//! The content index: content hash -> a blob that holds that content. Kept as one blob in
//! the container so deciding what to send costs one read, not a listing per file.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// Where the index lives in the container.
pub const INDEX_BLOB: &str = "amlops-index/v1.json";

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ContentIndex {
    /// Hex BLAKE3 -> container-relative blob name.
    pub blobs: BTreeMap<String, String>,
}

impl ContentIndex {
    /// Adds `additions` over `self` (newer locations win: older ones may have been deleted).
    pub fn merged(&self, additions: &BTreeMap<String, String>) -> ContentIndex {
        let mut blobs = self.blobs.clone();
        blobs.extend(additions.iter().map(|(k, v)| (k.clone(), v.clone())));
        ContentIndex { blobs }
    }

    /// Whether adding `additions` would change anything.
    pub fn lacks_any(&self, additions: &BTreeMap<String, String>) -> bool {
        additions.iter().any(|(k, v)| self.blobs.get(k) != Some(v))
    }
}
