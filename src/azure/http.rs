//! The one HTTPS client shared by ARM calls and the credential's token requests.
//!
//! Certificate verification is always on. Extra trusted CAs (private clouds, tests) are
//! merged into the system roots from `SSL_CERT_FILE`, like other tools do, and from
//! PEM text given in code; there is deliberately no switch to disable verification.

use super::error::AzureError;
use reqwest::Certificate;
use std::time::Duration;

/// The user agent sent on every request.
pub const USER_AGENT: &str = concat!("amlops/", env!("CARGO_PKG_VERSION"));

/// Transport settings.
#[derive(Debug, Clone)]
pub struct HttpOptions {
    /// Whole-request deadline (connect + send + receive).
    pub request_timeout: Duration,
    /// TCP + TLS connect deadline.
    pub connect_timeout: Duration,
    /// Extra trusted CA certificates (PEM text), in addition to the system roots and
    /// `SSL_CERT_FILE`.
    pub extra_ca_pem: Vec<String>,
    /// Read `SSL_CERT_FILE` for extra CAs (on by default).
    pub use_ssl_cert_file: bool,
}

impl Default for HttpOptions {
    fn default() -> Self {
        Self {
            request_timeout: Duration::from_secs(60),
            connect_timeout: Duration::from_secs(10),
            extra_ca_pem: Vec::new(),
            use_ssl_cert_file: true,
        }
    }
}

/// Builds the client: system roots + extra CAs, timeouts, no redirects (ARM does not
/// redirect, and following one could carry a token to another host).
pub fn build_http_client(options: &HttpOptions) -> Result<reqwest::Client, AzureError> {
    let mut certs = Vec::new();
    if options.use_ssl_cert_file
        && let Some(path) = std::env::var_os("SSL_CERT_FILE")
    {
        let shown = path.to_string_lossy().into_owned();
        let pem = std::fs::read(&path).map_err(|e| AzureError::Config {
            message: format!("cannot read SSL_CERT_FILE {shown}: {e}"),
        })?;
        certs.extend(parse_pem_bundle(&pem, &format!("SSL_CERT_FILE {shown}"))?);
    }
    for (i, pem) in options.extra_ca_pem.iter().enumerate() {
        certs.extend(parse_pem_bundle(
            pem.as_bytes(),
            &format!("extra CA certificate #{}", i + 1),
        )?);
    }
    reqwest::Client::builder()
        .user_agent(USER_AGENT)
        .timeout(options.request_timeout)
        .connect_timeout(options.connect_timeout)
        .redirect(reqwest::redirect::Policy::none())
        .tls_certs_merge(certs)
        .build()
        .map_err(|e| AzureError::Config {
            message: format!("cannot build the HTTPS client: {e}"),
        })
}

/// Parses PEM certificates; `source` names where they came from in errors. An input
/// without any certificate is an error, since it is surely a mistake.
pub fn parse_pem_bundle(pem: &[u8], source: &str) -> Result<Vec<Certificate>, AzureError> {
    let certs = Certificate::from_pem_bundle(pem).map_err(|e| AzureError::Config {
        message: format!("{source} is not a valid PEM certificate bundle: {e}"),
    })?;
    if certs.is_empty() {
        return Err(AzureError::Config {
            message: format!("{source} contains no PEM certificate"),
        });
    }
    Ok(certs)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn user_agent_names_the_crate_version() {
        assert_eq!(USER_AGENT, format!("amlops/{}", env!("CARGO_PKG_VERSION")));
    }

    #[test]
    fn a_bundle_without_certificates_is_rejected_naming_its_source() {
        let err = parse_pem_bundle(b"not a certificate", "extra CA certificate #1").unwrap_err();
        assert!(err.to_string().contains("extra CA certificate #1"), "{err}");
        assert_eq!(err.code(), "InvalidConfiguration");
    }

    #[test]
    fn bad_extra_ca_fails_the_build() {
        let options = HttpOptions {
            extra_ca_pem: vec!["garbage".into()],
            use_ssl_cert_file: false,
            ..HttpOptions::default()
        };
        assert!(build_http_client(&options).is_err());
    }
}
