//! The request log and per-operation counters, readable in-process and over `/_fake/*`.

use serde::Serialize;
use std::collections::BTreeMap;

/// One handled request. `status` 0 means the connection was dropped on purpose (fault).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct RequestRecord {
    pub method: String,
    pub path: String,
    pub query: String,
    pub status: u16,
}

#[derive(Debug, Default)]
pub struct RequestLog {
    records: Vec<RequestRecord>,
    /// "METHOD path-template" -> count.
    counters: BTreeMap<String, u64>,
}

impl RequestLog {
    pub fn push(&mut self, record: RequestRecord, template: &str) {
        *self
            .counters
            .entry(format!("{} {template}", record.method))
            .or_default() += 1;
        self.records.push(record);
    }

    pub fn records(&self) -> Vec<RequestRecord> {
        self.records.clone()
    }

    pub fn counters(&self) -> BTreeMap<String, u64> {
        self.counters.clone()
    }

    /// Requests with this method whose path contains `path_contains` (case-insensitive).
    pub fn count(&self, method: &str, path_contains: &str) -> usize {
        let needle = path_contains.to_ascii_lowercase();
        self.records
            .iter()
            .filter(|r| {
                r.method.eq_ignore_ascii_case(method)
                    && r.path.to_ascii_lowercase().contains(&needle)
            })
            .count()
    }

    pub fn clear(&mut self) {
        self.records.clear();
        self.counters.clear();
    }
}
