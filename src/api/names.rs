//! The apiserver's rules for names (as in k8s.io/apimachinery `util/validation`): object names,
//! namespaces, label and annotation keys, label values, ConfigMap and Secret keys. Each check
//! returns what is expected, for a message that already names the field.

use std::sync::LazyLock;

use regex::Regex;

/// A regex compiled once; the patterns below are constants, so compiling cannot fail.
macro_rules! pattern {
    ($re:literal) => {{
        static RE: LazyLock<Regex> =
            LazyLock::new(|| Regex::new($re).unwrap_or_else(|e| panic!("{}: {e}", $re)));
        &*RE
    }};
}

/// What a name may be, after the value that broke the rule.
type Rule = Result<(), String>;

fn check(value: &str, max: usize, re: &Regex, expected: &str) -> Rule {
    if value.chars().count() > max {
        return Err(format!("{value:?} is longer than {max} characters"));
    }
    if re.is_match(value) {
        Ok(())
    } else {
        Err(format!("{value:?} is not valid: {expected}"))
    }
}

/// An RFC 1123 subdomain: the name of every object kind amlops reads.
pub fn dns_subdomain(value: &str) -> Rule {
    check(
        value,
        253,
        pattern!(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$"),
        "use lower-case letters, digits, '-' and '.', starting and ending with a letter or digit (e.g. my-name or team.train)",
    )
}

/// An RFC 1123 label: a namespace.
pub fn dns_label(value: &str) -> Rule {
    check(
        value,
        63,
        pattern!(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$"),
        "use lower-case letters, digits and '-', starting and ending with a letter or digit (e.g. team-a)",
    )
}

const NAME_PART: &str =
    "use letters, digits, '-', '_' and '.', starting and ending with a letter or digit";

/// A label or annotation key: `name` or `prefix/name`, the prefix a DNS subdomain.
pub fn qualified_name(value: &str) -> Rule {
    let (prefix, name) = match value.split_once('/') {
        Some((prefix, name)) => (Some(prefix), name),
        None => (None, value),
    };
    if let Some(prefix) = prefix {
        dns_subdomain(prefix).map_err(|e| format!("the prefix of {value:?}: {e}"))?;
    }
    check(
        name,
        63,
        pattern!(r"^[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?$"),
        NAME_PART,
    )
    .map_err(|e| format!("{e} (the key is [prefix/]name)"))
}

/// A label value: empty, or like the name part of a key.
pub fn label_value(value: &str) -> Rule {
    check(
        value,
        63,
        pattern!(r"^([A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?)?$"),
        NAME_PART,
    )
}

/// A key of a ConfigMap's or Secret's data: it becomes a file name.
pub fn config_map_key(value: &str) -> Rule {
    check(
        value,
        253,
        pattern!(r"^[-._a-zA-Z0-9]+$"),
        "use letters, digits, '-', '_' and '.'",
    )?;
    if value == "." || value.starts_with("..") {
        return Err(format!(
            "{value:?} is not valid: it must not be '.' or start with '..'"
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_follow_the_apiserver_rules_and_messages_escape_the_value() {
        assert!(dns_subdomain("train.v2-a").is_ok());
        for bad in ["Bad_Name", "-a", "a-", "", "a..b", &"a".repeat(254)] {
            assert!(dns_subdomain(bad).is_err(), "{bad}");
        }
        assert!(dns_label("team-a").is_ok());
        assert!(dns_label("team.a").is_err());
        assert!(dns_label(&"a".repeat(64)).is_err());
        assert!(qualified_name("app.kubernetes.io/name").is_ok());
        assert!(qualified_name("Team_1").is_ok());
        assert!(qualified_name("Bad_Prefix/x").is_err());
        assert!(qualified_name("a/").is_err());
        assert!(label_value("").is_ok());
        assert!(label_value("a b").is_err());
        assert!(config_map_key("train.py").is_ok());
        for bad in [".", "..x", "a/b", ""] {
            assert!(config_map_key(bad).is_err(), "{bad}");
        }
        let message = dns_subdomain("a\0b").unwrap_err();
        assert!(message.contains(r#""a\0b""#), "{message}");
    }
}
