//! A bottom-k sketch of a snapshot's contents: the smallest content hashes of its files. It is
//! kept as metadata of the snapshot's manifest blob, so one listing of the manifests tells
//! which earlier snapshots share content with a new one (estimated Jaccard similarity) without
//! reading them. Content hashes are BLAKE3, uniformly distributed, so their prefixes serve as
//! the random ordering bottom-k needs. Pure.

use std::collections::BTreeSet;

use super::manifest::Manifest;

/// Hashes kept: the estimate's granularity is 1/16, enough to rank candidates.
pub const SKETCH_SIZE: usize = 16;
/// Hex digits kept per hash (64 bits: collisions between distinct contents are negligible).
const DIGITS: usize = 16;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sketch(Vec<String>);

impl Sketch {
    /// The sketch of a manifest's distinct contents.
    pub fn of(manifest: &Manifest) -> Sketch {
        let distinct: BTreeSet<&str> = manifest
            .files
            .iter()
            .map(|f| f.hash.get(..DIGITS).unwrap_or(&f.hash))
            .collect();
        Sketch(
            distinct
                .into_iter()
                .take(SKETCH_SIZE)
                .map(str::to_string)
                .collect(),
        )
    }

    /// Reads a sketch written by [`Sketch::to_metadata`]; `None` if it is not one.
    pub fn parse(text: &str) -> Option<Sketch> {
        if text.is_empty() {
            return Some(Sketch(Vec::new()));
        }
        let mut hashes: Vec<String> = text.split(',').map(str::to_string).collect();
        let valid = hashes.len() <= SKETCH_SIZE
            && hashes
                .iter()
                .all(|h| h.len() == DIGITS && h.bytes().all(|b| b.is_ascii_hexdigit()));
        hashes.sort();
        hashes.dedup();
        valid.then_some(Sketch(hashes))
    }

    /// Comma-separated hex, fit for a blob metadata value (≈ 270 bytes).
    pub fn to_metadata(&self) -> String {
        self.0.join(",")
    }

    /// Estimated Jaccard similarity of the two snapshots' content sets: of the smallest
    /// hashes of the union, the share both sketches hold.
    pub fn similarity(&self, other: &Sketch) -> f64 {
        let union: BTreeSet<&String> = self.0.iter().chain(&other.0).collect();
        let bottom: Vec<&String> = union.into_iter().take(SKETCH_SIZE).collect();
        if bottom.is_empty() {
            return 0.0;
        }
        let shared = bottom
            .iter()
            .filter(|h| self.0.contains(h) && other.0.contains(h))
            .count();
        shared as f64 / bottom.len() as f64
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::snapshot::ManifestEntry;

    fn manifest(range: std::ops::Range<u32>) -> Manifest {
        Manifest::from_entries(
            range
                .map(|i| ManifestEntry {
                    path: format!("f{i}"),
                    size: 1,
                    mode: 0o644,
                    hash: blake3::hash(&i.to_le_bytes()).to_hex().to_string(),
                })
                .collect(),
        )
    }

    #[test]
    fn one_changed_file_keeps_a_high_similarity_unrelated_trees_score_zero() {
        let old = Sketch::of(&manifest(0..1000));
        let mut changed = manifest(0..1000);
        changed.files[500].hash = blake3::hash(b"changed").to_hex().to_string();
        let new = Sketch::of(&changed);
        assert!(new.similarity(&old) >= 0.9, "{}", new.similarity(&old));
        let unrelated = Sketch::of(&manifest(5000..6000));
        assert_eq!(new.similarity(&unrelated), 0.0);
        let half = Sketch::of(&manifest(500..1500));
        let s = old.similarity(&half);
        assert!(s > 0.0 && s < 0.9, "{s}");
    }

    #[test]
    fn small_trees_are_compared_exactly() {
        let a = Sketch::of(&manifest(0..4));
        let b = Sketch::of(&manifest(2..6));
        assert_eq!(a.similarity(&b), 2.0 / 6.0);
        assert_eq!(a.similarity(&a), 1.0);
        assert_eq!(Sketch::of(&manifest(0..0)).similarity(&a), 0.0);
    }

    #[test]
    fn metadata_round_trips_and_garbage_is_refused() {
        let s = Sketch::of(&manifest(0..100));
        assert_eq!(s.0.len(), SKETCH_SIZE);
        let text = s.to_metadata();
        assert!(text.len() < 300);
        assert_eq!(Sketch::parse(&text), Some(s));
        assert_eq!(Sketch::parse("xyz"), None);
        assert_eq!(Sketch::parse("0123456789abcdef,0123"), None);
        assert_eq!(Sketch::parse(""), Some(Sketch(Vec::new())));
    }
}
