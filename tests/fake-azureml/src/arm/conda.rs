//! The service stores an environment's conda YAML and answers it re-serialized as JSON
//! indented by two spaces (environment/…create_conda.json #0, job/…dependency_label_resolution.json
//! #0–#1), and an environment without one with `""` (job/…ray_command_job.json #0).

use serde_json::Value;

/// The `condaFile` of an answer for the `condaFile` of a request. A value that is not YAML is
/// answered as given (not recorded: what the service does with one).
pub fn answered(requested: Option<&Value>) -> Value {
    let Some(yaml) = requested.and_then(Value::as_str) else {
        return Value::String(String::new());
    };
    let parsed: Result<Value, _> = serde_saphyr::from_str(yaml);
    match parsed
        .ok()
        .and_then(|v| serde_json::to_string_pretty(&v).ok())
    {
        Some(json) => Value::String(json),
        None => Value::String(yaml.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn yaml_becomes_two_space_json_and_absence_an_empty_string() {
        let yaml = "channels:\n- conda-forge\ndependencies:\n- python=3.10\n- pip:\n  - pandas\nname: example\n";
        assert_eq!(
            answered(Some(&json!(yaml))),
            json!(
                "{\n  \"channels\": [\n    \"conda-forge\"\n  ],\n  \"dependencies\": [\n    \"python=3.10\",\n    {\n      \"pip\": [\n        \"pandas\"\n      ]\n    }\n  ],\n  \"name\": \"example\"\n}"
            )
        );
        assert_eq!(answered(None), json!(""));
        assert_eq!(
            answered(Some(&json!("a: [unclosed"))),
            json!("a: [unclosed")
        );
    }
}
