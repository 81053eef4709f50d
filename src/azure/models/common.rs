//! Shapes shared by several resources: paged lists, the `ResourceBase` metadata,
//! ISO-8601 durations, and null-tolerant collections.

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::collections::BTreeMap;
use std::time::Duration;

/// Azure sends `null` for empty x-nullable collections; read it as empty.
pub fn null_as_default<'de, D, T>(d: D) -> Result<T, D::Error>
where
    D: Deserializer<'de>,
    T: Default + Deserialize<'de>,
{
    Option::<T>::deserialize(d).map(Option::unwrap_or_default)
}

/// One page of an ARM list.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase", bound(deserialize = "T: Deserialize<'de>"))]
pub struct Page<T> {
    /// Items of this page.
    #[serde(default = "Vec::new", deserialize_with = "null_as_default")]
    pub value: Vec<T>,
    /// URL of the next page.
    #[serde(default)]
    pub next_link: Option<String>,
}

/// `ResourceBase`: description, free-form properties and tags of jobs and assets.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ResourceBase {
    /// Description.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// Free-form string properties (amlops records git provenance and content hashes here).
    #[serde(
        default,
        deserialize_with = "null_as_default",
        skip_serializing_if = "BTreeMap::is_empty"
    )]
    pub properties: BTreeMap<String, String>,
    /// Tags (amlops tags what it owns).
    #[serde(
        default,
        deserialize_with = "null_as_default",
        skip_serializing_if = "BTreeMap::is_empty"
    )]
    pub tags: BTreeMap<String, String>,
}

/// An ISO-8601 duration (`PT120S`), whole seconds. Azure may answer in other forms
/// (`PT2M`, `P1DT2H`); days count as 24 hours.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct IsoDuration(pub Duration);

impl IsoDuration {
    /// From whole seconds.
    pub fn from_secs(secs: u64) -> Self {
        Self(Duration::from_secs(secs))
    }

    /// Parses an ISO-8601 duration.
    pub fn parse(text: &str) -> Result<Self, String> {
        use jiff::{Span, SpanTotal, Unit};
        let span: Span = text
            .parse()
            .map_err(|e| format!("{text:?} is not an ISO-8601 duration: {e}"))?;
        let secs = span
            .total(SpanTotal::from(Unit::Second).days_are_24_hours())
            .map_err(|e| format!("{text:?} cannot be converted to seconds: {e}"))?;
        if !(secs.is_finite() && secs >= 0.0) {
            return Err(format!("{text:?} is negative"));
        }
        Ok(Self(Duration::from_secs_f64(secs)))
    }
}

impl std::fmt::Display for IsoDuration {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "PT{}S", self.0.as_secs())
    }
}

impl Serialize for IsoDuration {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for IsoDuration {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        Self::parse(&text).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_serialize_as_seconds_and_parse_other_forms() {
        assert_eq!(IsoDuration::from_secs(120).to_string(), "PT120S");
        assert_eq!(
            IsoDuration::parse("PT2M").unwrap(),
            IsoDuration::from_secs(120)
        );
        assert_eq!(
            IsoDuration::parse("P1DT1H").unwrap(),
            IsoDuration::from_secs(25 * 3600)
        );
        assert_eq!(
            serde_json::to_string(&IsoDuration::from_secs(0)).unwrap(),
            "\"PT0S\""
        );
        assert!(IsoDuration::parse("two minutes please").is_err());
        assert!(IsoDuration::parse("-PT5S").is_err());
    }

    #[test]
    fn null_collections_read_as_empty() {
        let b: ResourceBase = serde_json::from_str(r#"{"tags":null,"properties":null}"#).unwrap();
        assert!(b.tags.is_empty() && b.properties.is_empty());
        let p: Page<u32> = serde_json::from_str(r#"{"value":null}"#).unwrap();
        assert!(p.value.is_empty() && p.next_link.is_none());
        assert_eq!(
            serde_json::to_string(&ResourceBase::default()).unwrap(),
            "{}"
        );
    }
}
