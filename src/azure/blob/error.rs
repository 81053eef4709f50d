//! Typed blob errors. Messages name the operation and blob, never a SAS signature.

use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum BlobError {
    #[error("invalid blob container URL: {reason}")]
    InvalidUrl { reason: String },
    #[error("blob {op} of '{blob}' failed with HTTP {status} {code}: {message}")]
    Status {
        op: &'static str,
        blob: String,
        status: u16,
        code: String,
        message: String,
    },
    #[error("blob {op} of '{blob}' could not reach the storage service: {source}")]
    Transport {
        op: &'static str,
        blob: String,
        /// Built with `without_url()`, so the SAS never appears.
        #[source]
        source: reqwest::Error,
    },
    #[error("server-side copy to '{blob}' ended with copy status '{status}' (expected 'success')")]
    Copy { blob: String, status: String },
    #[error("reading '{}': {source}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("getting a bearer token for blob storage: {0}")]
    Token(String),
}

impl BlobError {
    /// Whether repeating the request can help (throttling, server errors, lost connections).
    pub fn is_retryable(&self) -> bool {
        match self {
            BlobError::Status { status, .. } => matches!(status, 408 | 429 | 500 | 502 | 503 | 504),
            BlobError::Transport { source, .. } => {
                source.is_connect()
                    || source.is_timeout()
                    || source.is_request()
                    || source.is_body()
            }
            _ => false,
        }
    }

    /// Whether the service answered 404 (blob or container missing).
    pub fn is_not_found(&self) -> bool {
        matches!(self, BlobError::Status { status: 404, .. })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn status(status: u16) -> BlobError {
        BlobError::Status {
            op: "put",
            blob: "b".into(),
            status,
            code: String::new(),
            message: String::new(),
        }
    }

    #[test]
    fn server_errors_and_throttling_are_retryable_client_errors_are_not() {
        assert!(status(503).is_retryable());
        assert!(status(429).is_retryable());
        assert!(!status(403).is_retryable());
        assert!(!status(404).is_retryable());
        assert!(status(404).is_not_found());
    }
}
