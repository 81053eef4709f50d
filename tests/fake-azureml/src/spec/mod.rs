//! The official Azure ML REST spec (api-version 2026-07-01), compiled into the fake:
//! document loading, `$ref` resolution across files and the discriminator subtype index.

mod operations;
mod schema;
mod secrets;

pub use operations::{Operation, ParamViolations, RouteError, RouteMatch};
pub use schema::Violation;

use serde_json::Value;
use std::collections::HashMap;
use std::sync::OnceLock;

/// The api-version every ARM call must carry.
pub const API_VERSION: &str = "2026-07-01";

const FILES: [(&str, &str); 4] = [
    ("openapi.json", include_str!("../../spec/openapi.json")),
    ("types.json", include_str!("../../spec/types.json")),
    (
        "managedidentity.json",
        include_str!("../../spec/managedidentity.json"),
    ),
    (
        "privatelinks.json",
        include_str!("../../spec/privatelinks.json"),
    ),
];

/// Index of a document in [`Spec`].
pub type DocId = usize;

/// A named definition: the document it lives in and its name under `definitions`.
pub type DefKey = (DocId, String);

/// A schema node together with the document its relative `$ref`s resolve against.
#[derive(Clone, Copy, Debug)]
pub struct SchemaRef<'s> {
    pub doc: DocId,
    pub node: &'s Value,
    /// The definition this node is the root of, if it was reached through `#/definitions/<name>`.
    pub def: Option<&'s str>,
}

/// The loaded spec documents plus indexes.
pub struct Spec {
    docs: Vec<(&'static str, Value)>,
    /// base definition -> (discriminator value, subtype), transitively.
    subtypes: HashMap<DefKey, Vec<(String, DefKey)>>,
    operations: Vec<Operation>,
}

/// An error in the embedded spec itself (a bug of the fake, not of a request).
#[derive(Debug, thiserror::Error)]
pub enum SpecError {
    #[error("embedded spec file {file} is not valid JSON: {source}")]
    Parse {
        file: &'static str,
        source: serde_json::Error,
    },
    #[error("unresolvable $ref {reference:?} in {file}")]
    Ref {
        file: &'static str,
        reference: String,
    },
}

static SPEC: OnceLock<Result<Spec, String>> = OnceLock::new();

impl Spec {
    /// The process-wide spec, parsed once.
    pub fn get() -> Result<&'static Spec, String> {
        SPEC.get_or_init(|| Spec::load().map_err(|e| e.to_string()))
            .as_ref()
            .map_err(Clone::clone)
    }

    fn load() -> Result<Spec, SpecError> {
        let mut docs = Vec::new();
        for (file, text) in FILES {
            let value =
                serde_json::from_str(text).map_err(|source| SpecError::Parse { file, source })?;
            docs.push((file, value));
        }
        let mut spec = Spec {
            docs,
            subtypes: HashMap::new(),
            operations: Vec::new(),
        };
        spec.subtypes = spec.index_subtypes()?;
        spec.operations = operations::load(&spec)?;
        Ok(spec)
    }

    fn doc(&self, id: DocId) -> &Value {
        &self.docs[id].1
    }

    /// The schema of definition `name` in the main document.
    pub fn definition(&self, name: &str) -> Option<SchemaRef<'_>> {
        let (def, node) = self
            .doc(0)
            .get("definitions")?
            .as_object()?
            .get_key_value(name)?;
        Some(SchemaRef {
            doc: 0,
            node,
            def: Some(def.as_str()),
        })
    }

    /// Resolves a `$ref` written in document `from`.
    pub fn resolve(&self, from: DocId, reference: &str) -> Result<SchemaRef<'_>, SpecError> {
        let err = || SpecError::Ref {
            file: self.docs[from].0,
            reference: reference.to_string(),
        };
        let (file, pointer) = reference.split_once('#').ok_or_else(err)?;
        let doc = if file.is_empty() {
            from
        } else {
            let base = file.rsplit('/').next().unwrap_or(file);
            self.docs
                .iter()
                .position(|(name, _)| *name == base)
                .ok_or_else(err)?
        };
        let node = self.doc(doc).pointer(pointer).ok_or_else(err)?;
        let def = pointer
            .strip_prefix("/definitions/")
            .filter(|d| !d.contains('/'));
        // Borrow the name from the document so the SchemaRef lives as long as the spec.
        let def = match def {
            Some(name) => self.doc(doc)["definitions"]
                .as_object()
                .and_then(|m| m.get_key_value(name))
                .map(|(k, _)| k.as_str()),
            None => None,
        };
        Ok(SchemaRef { doc, node, def })
    }

    /// The subtype of `base` whose discriminator value is `value`.
    pub fn subtype(&self, base: &DefKey, value: &str) -> Option<SchemaRef<'_>> {
        let (_, key) = self.subtypes.get(base)?.iter().find(|(v, _)| v == value)?;
        let (name, node) = self.doc(key.0)["definitions"]
            .as_object()?
            .get_key_value(key.1.as_str())?;
        Some(SchemaRef {
            doc: key.0,
            node,
            def: Some(name.as_str()),
        })
    }

    /// Discriminator values known for `base` (for error messages).
    pub fn subtype_values(&self, base: &DefKey) -> Vec<&str> {
        self.subtypes
            .get(base)
            .map(|s| s.iter().map(|(v, _)| v.as_str()).collect())
            .unwrap_or_default()
    }

    fn index_subtypes(&self) -> Result<HashMap<DefKey, Vec<(String, DefKey)>>, SpecError> {
        // Direct parent -> children edges from `allOf: [{$ref: parent}]`.
        let mut children: HashMap<DefKey, Vec<DefKey>> = HashMap::new();
        for (doc, (_, root)) in self.docs.iter().enumerate() {
            let Some(defs) = root.get("definitions").and_then(Value::as_object) else {
                continue;
            };
            for (name, schema) in defs {
                for parent in schema
                    .get("allOf")
                    .and_then(Value::as_array)
                    .into_iter()
                    .flatten()
                {
                    let Some(reference) = parent.get("$ref").and_then(Value::as_str) else {
                        continue;
                    };
                    let resolved = self.resolve(doc, reference)?;
                    if let Some(parent_name) = resolved.def {
                        children
                            .entry((resolved.doc, parent_name.to_string()))
                            .or_default()
                            .push((doc, name.clone()));
                    }
                }
            }
        }
        let mut out = HashMap::new();
        for (base, _) in children.iter() {
            let mut found = Vec::new();
            let mut stack = children.get(base).cloned().unwrap_or_default();
            while let Some(child) = stack.pop() {
                let schema = &self.doc(child.0)["definitions"][child.1.as_str()];
                let value = schema
                    .get("x-ms-discriminator-value")
                    .and_then(Value::as_str)
                    .unwrap_or(&child.1);
                found.push((value.to_string(), child.clone()));
                stack.extend(children.get(&child).cloned().unwrap_or_default());
            }
            out.insert(base.clone(), found);
        }
        Ok(out)
    }

    /// All operations of the spec (method + path template + parameters).
    pub fn operations(&self) -> &[Operation] {
        &self.operations
    }

    /// Validates `value` against `schema`; an empty list means valid.
    pub fn validate(&self, schema: SchemaRef<'_>, value: &Value) -> Vec<Violation> {
        schema::validate(self, schema, value)
    }

    /// Removes every property the spec marks `x-ms-secret` (Azure never echoes them).
    pub fn strip_secrets(&self, schema: SchemaRef<'_>, value: &mut Value) {
        secrets::strip(self, schema, value)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loads_all_documents_and_indexes_polymorphic_types() {
        let spec = Spec::get().unwrap();
        assert!(
            spec.operations().len() > 150,
            "{} operations",
            spec.operations().len()
        );
        let compute_types = spec.subtype_values(&(0, "Compute".to_string()));
        assert!(compute_types.contains(&"AmlCompute"), "{compute_types:?}");
        assert!(compute_types.contains(&"VirtualMachine"));
        assert!(
            !compute_types.contains(&"AzureBatch"),
            "the 2026-07-01 spec has no Batch compute"
        );
        let job = spec
            .subtype(&(0, "JobBaseProperties".to_string()), "Command")
            .unwrap();
        assert_eq!(job.def, Some("CommandJob"));
    }

    #[test]
    fn resolves_refs_into_common_types() {
        let spec = Spec::get().unwrap();
        let r = spec
            .resolve(0, "../../../../../../common-types/resource-management/v3/types.json#/definitions/ErrorResponse")
            .unwrap();
        assert_eq!(r.def, Some("ErrorResponse"));
        assert_eq!(spec.docs[r.doc].0, "types.json");
        assert!(spec.resolve(0, "#/definitions/NoSuchThing").is_err());
    }
}
