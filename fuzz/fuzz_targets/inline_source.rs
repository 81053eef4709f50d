//! Inline source files (`spec.source.inline.files`): arbitrary names and contents are
//! materialised as a snapshot tree. Besides panics: an accepted source has each file's
//! content at its name inside the tree, and nothing is written outside the cache directory.
#![no_main]

use std::collections::BTreeMap;

use amlops::snapshot::{Source, resolve};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|files: BTreeMap<String, String>| {
    if files.len() > 8 {
        return;
    }
    let Ok(sandbox) = tempfile::tempdir_in("/dev/shm").or_else(|_| tempfile::tempdir()) else {
        return;
    };
    let cache = sandbox.path().join("cache");
    if let Ok(tree) = resolve(&Source::Inline(files.clone()), &cache) {
        assert!(tree.root.starts_with(&cache), "{:?}", tree.root);
        for (name, content) in &files {
            let written = std::fs::read_to_string(tree.root.join(name));
            assert_eq!(written.ok().as_ref(), Some(content), "{name:?}");
        }
    }
    let outside: Vec<_> = std::fs::read_dir(sandbox.path())
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.file_name())
        .filter(|n| n != "cache")
        .collect();
    assert!(outside.is_empty(), "written outside the cache: {outside:?}");
});
