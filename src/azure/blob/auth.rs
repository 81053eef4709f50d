//! How blob requests are authorised: a SAS query (from `startPendingUpload` or a datastore)
//! or a bearer token (Azure AD, scope `https://storage.azure.com/.default`).

use std::fmt;
use std::sync::Arc;

use futures::future::BoxFuture;
use reqwest::RequestBuilder;
use url::Url;

use super::BlobError;

/// A SAS query string. Its `Debug`/`Display` never show the signature.
#[derive(Clone)]
pub struct SasToken(String);

impl SasToken {
    /// Accepts the query part of a SAS URL (without `?`); it must carry a signature.
    pub fn new(query: &str) -> Result<SasToken, BlobError> {
        let query = query.trim_start_matches('?');
        if !url::form_urlencoded::parse(query.as_bytes()).any(|(k, _)| k == "sig") {
            return Err(BlobError::InvalidUrl {
                reason: "the SAS query has no `sig` parameter".into(),
            });
        }
        Ok(SasToken(query.to_string()))
    }

    /// Appends the SAS parameters to `url`, after the operation's own query parameters.
    pub fn apply(&self, url: &mut Url) {
        let joined = match url.query() {
            Some(q) if !q.is_empty() => format!("{q}&{}", self.0),
            _ => self.0.clone(),
        };
        url.set_query(Some(&joined));
    }
}

impl fmt::Debug for SasToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SasToken({})", redact(&self.0))
    }
}

/// Supplies bearer tokens for blob storage; implementations cache and refresh them.
pub trait BearerSource: Send + Sync {
    fn token(&self) -> BoxFuture<'_, Result<String, BlobError>>;
}

/// The authorisation strategy of a [`super::BlobContainer`].
#[derive(Clone)]
pub enum BlobAuth {
    /// SAS appended to every request URL (and to copy sources).
    Sas(SasToken),
    /// `Authorization: Bearer` on every request; copy sources get `x-ms-copy-source-authorization`.
    Bearer(Arc<dyn BearerSource>),
}

impl fmt::Debug for BlobAuth {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            BlobAuth::Sas(sas) => sas.fmt(f),
            BlobAuth::Bearer(_) => f.write_str("Bearer(<redacted>)"),
        }
    }
}

impl BlobAuth {
    /// Adds credentials to a request for `url` (the URL must not yet carry a SAS).
    pub(super) async fn authorize(
        &self,
        client: &reqwest::Client,
        method: reqwest::Method,
        mut url: Url,
    ) -> Result<RequestBuilder, BlobError> {
        match self {
            BlobAuth::Sas(sas) => {
                sas.apply(&mut url);
                Ok(client.request(method, url))
            }
            BlobAuth::Bearer(source) => {
                let token = source.token().await?;
                Ok(client.request(method, url).bearer_auth(token))
            }
        }
    }

    /// Makes `source` readable by the service for a server-side copy: the SAS goes into the
    /// source URL, a bearer token into `x-ms-copy-source-authorization`.
    pub(super) async fn authorize_copy_source(
        &self,
        request: RequestBuilder,
        mut source: Url,
    ) -> Result<RequestBuilder, BlobError> {
        match self {
            BlobAuth::Sas(sas) => {
                sas.apply(&mut source);
                Ok(request.header("x-ms-copy-source", source.as_str()))
            }
            BlobAuth::Bearer(src) => {
                let token = src.token().await?;
                Ok(request
                    .header("x-ms-copy-source", source.as_str())
                    .header("x-ms-copy-source-authorization", format!("Bearer {token}")))
            }
        }
    }
}

/// Replaces the value of every `sig=` parameter in `text` (a URL, query or message).
pub fn redact(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(pos) = find_sig(rest) {
        let value_start = pos + 4;
        out.push_str(&rest[..value_start]);
        out.push_str("REDACTED");
        let tail = &rest[value_start..];
        let end = tail
            .find(|c: char| c == '&' || c == '"' || c == '\'' || c.is_whitespace() || c == '<')
            .unwrap_or(tail.len());
        rest = &tail[end..];
    }
    out.push_str(rest);
    out
}

/// Position of a `sig=` that starts a query parameter (not e.g. `xsig=`).
fn find_sig(text: &str) -> Option<usize> {
    let mut from = 0;
    while let Some(i) = text[from..].find("sig=") {
        let at = from + i;
        if at == 0 || matches!(text.as_bytes()[at - 1], b'?' | b'&' | b' ' | b'\n') {
            return Some(at);
        }
        from = at + 4;
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redact_hides_every_signature_and_keeps_the_rest() {
        let text = "GET http://h/c/b?sv=2021&sig=abc%2Bdef&se=x then sig=zzz end";
        assert_eq!(
            redact(text),
            "GET http://h/c/b?sv=2021&sig=REDACTED&se=x then sig=REDACTED end"
        );
        assert_eq!(redact("xsig=keep"), "xsig=keep");
    }

    #[test]
    fn sas_debug_does_not_show_the_signature() {
        let sas = SasToken::new("?sv=1&sig=SECRET").unwrap();
        assert!(!format!("{sas:?}").contains("SECRET"));
        assert!(!format!("{:?}", BlobAuth::Sas(sas)).contains("SECRET"));
    }

    #[test]
    fn sas_without_signature_is_refused() {
        assert!(SasToken::new("sv=1&se=2").is_err());
    }

    #[test]
    fn sas_is_appended_after_operation_parameters() {
        let sas = SasToken::new("sv=1&sig=s").unwrap();
        let mut url = Url::parse("http://h/c?restype=container").unwrap();
        sas.apply(&mut url);
        assert_eq!(url.query(), Some("restype=container&sv=1&sig=s"));
    }
}
