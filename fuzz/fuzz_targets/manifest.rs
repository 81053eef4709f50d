//! `amlops validate -f` on arbitrary text: YAML -> documents -> admission (schema and CEL, as a
//! create and as an update of itself) -> the typed objects `apply` reconciles. A panic
//! anywhere is a bug: bad manifests get messages.
#![no_main]

use std::path::Path;

use amlops::api::{ComputeTarget, Experiment, RunConfiguration, Workspace};
use amlops::standalone::manifests::{admit, parse};
use libfuzzer_sys::fuzz_target;
use serde_json::Value;

fuzz_target!(|text: &str| {
    // A localPath source resolves against this directory, which does not exist.
    let Ok(docs) = parse("fuzz.yaml", text, "default", Path::new("/nonexistent")) else {
        return;
    };
    for doc in &docs {
        if admit(doc, None).is_empty() {
            let _ = admit(doc, Some(&doc.object));
            typed(&doc.key.kind, &doc.object);
        }
    }
});

/// Reads `object` as the type of its kind, as the engine does before reconciling it.
fn typed(kind: &str, object: &Value) {
    let o = object.clone();
    let _ = match kind {
        "Workspace" => serde_json::from_value::<Workspace>(o).map(drop),
        "ComputeTarget" => serde_json::from_value::<ComputeTarget>(o).map(drop),
        "RunConfiguration" => serde_json::from_value::<RunConfiguration>(o).map(drop),
        "Experiment" => serde_json::from_value::<Experiment>(o).map(drop),
        _ => Ok(()),
    };
}
