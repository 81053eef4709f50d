//! Reading referenced Secret values at the moment they are sent to Azure. Values are
//! wrapped in [`Secret`] at once, so they cannot reach a log, an error or a status.

use std::future::Future;

use crate::azure::Secret;
use crate::reconcile::{
    ActionFailure, FailureKind, INVALID_SECRET, SECRET_KEY_NOT_FOUND, SECRET_NOT_FOUND,
    SECRET_UNREADABLE,
};

/// Reads one key of a Secret in the namespace of the object being reconciled. The
/// controller reads Kubernetes Secrets; the standalone frontend reads its own store.
pub trait SecretSource: Sync {
    fn secret_value(
        &self,
        name: &str,
        key: &str,
    ) -> impl Future<Output = Result<Secret, SecretError>> + Send;

    /// The Secret's version (its resourceVersion), which changes whenever its data does: a
    /// copy written to Azure can be refreshed without comparing values. `None` when unknown
    /// (a missing Secret is reported by [`Self::secret_value`]).
    fn secret_version(&self, _name: &str) -> impl Future<Output = Option<String>> + Send {
        std::future::ready(None)
    }
}

/// Why a referenced Secret value is unavailable. Never carries the value.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SecretError {
    #[error("Secret {namespace}/{name} not found (key {key:?} is referenced)")]
    NotFound {
        namespace: String,
        name: String,
        key: String,
    },
    #[error("Secret {namespace}/{name} has no key {key:?}")]
    KeyMissing {
        namespace: String,
        name: String,
        key: String,
    },
    #[error("Secret {namespace}/{name} key {key:?} is not valid UTF-8 text")]
    NotText {
        namespace: String,
        name: String,
        key: String,
    },
    #[error("cannot read Secret {namespace}/{name}: {message}")]
    Unreadable {
        namespace: String,
        name: String,
        message: String,
        retryable: bool,
    },
}

impl From<SecretError> for ActionFailure {
    fn from(e: SecretError) -> Self {
        let (retryable, reason) = match &e {
            SecretError::NotFound { .. } => (false, SECRET_NOT_FOUND),
            SecretError::KeyMissing { .. } => (false, SECRET_KEY_NOT_FOUND),
            SecretError::NotText { .. } => (false, INVALID_SECRET),
            SecretError::Unreadable { retryable, .. } => (*retryable, SECRET_UNREADABLE),
        };
        ActionFailure {
            kind: FailureKind::retryable_if(retryable),
            reason: reason.to_string(),
            message: e.to_string(),
        }
    }
}

/// Decodes raw Secret bytes as text, trimming one trailing newline (`kubectl create secret
/// --from-file` keeps it, and no password or key is meant to end in one).
pub fn text_value(
    bytes: Vec<u8>,
    namespace: &str,
    name: &str,
    key: &str,
) -> Result<Secret, SecretError> {
    let mut text = String::from_utf8(bytes).map_err(|_| SecretError::NotText {
        namespace: namespace.to_string(),
        name: name.to_string(),
        key: key.to_string(),
    })?;
    if text.ends_with('\n') {
        text.pop();
        if text.ends_with('\r') {
            text.pop();
        }
    }
    Ok(Secret::new(text))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn missing_secret_is_stalled_naming_secret_and_key() {
        let f: ActionFailure = SecretError::NotFound {
            namespace: "ml".into(),
            name: "sp".into(),
            key: "AZURE_CLIENT_SECRET".into(),
        }
        .into();
        assert_eq!(f.reason, "SecretNotFound");
        assert!(!f.retryable());
        assert!(f.message.contains("ml/sp") && f.message.contains("AZURE_CLIENT_SECRET"));
    }

    #[test]
    fn text_values_drop_one_trailing_newline_and_reject_binary() {
        assert_eq!(
            text_value(b"pw\n".to_vec(), "n", "s", "k")
                .unwrap()
                .expose(),
            "pw"
        );
        assert_eq!(
            text_value(b"pw\r\n".to_vec(), "n", "s", "k")
                .unwrap()
                .expose(),
            "pw"
        );
        assert_eq!(
            text_value(b"a\nb".to_vec(), "n", "s", "k")
                .unwrap()
                .expose(),
            "a\nb"
        );
        let e = text_value(vec![0xff, 0xfe], "n", "s", "k").unwrap_err();
        assert!(matches!(e, SecretError::NotText { .. }));
    }
}
