//! Recorded answers of the real Azure ML service for unit tests: each file of
//! `tests/fixtures/azure/` (see its README) holds one exchange, or a list of them, copied from
//! the recordings. Tests read the exchange instead of keeping their own copies.

use serde_json::Value;

fn file(name: &str) -> Value {
    let path = format!("{}/tests/fixtures/azure/{name}", env!("CARGO_MANIFEST_DIR"));
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{path}: {e}"))
}

/// The exchange of a one-exchange file, or the one recorded as entry `#n` of a list file.
fn exchange(name: &str, entry: Option<u32>) -> Value {
    let v = file(name);
    match entry {
        None => v,
        Some(n) => v
            .as_array()
            .and_then(|list| {
                list.iter().find(|x| {
                    x["source"]
                        .as_str()
                        .is_some_and(|s| s.ends_with(&format!(" #{n}")))
                })
            })
            .cloned()
            .unwrap_or_else(|| panic!("{name} has no entry #{n}")),
    }
}

/// What the service answered.
pub fn response(name: &str) -> Value {
    exchange(name, None)["responseBody"].clone()
}

/// What the service answered to entry `#n` of a list file.
pub fn response_of(name: &str, entry: u32) -> Value {
    exchange(name, Some(entry))["responseBody"].clone()
}

/// What the client sent.
pub fn request(name: &str) -> Value {
    exchange(name, None)["requestBody"].clone()
}
