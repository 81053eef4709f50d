//! The AAD v2 token endpoint (`POST /{tenant}/oauth2/v2.0/token`): client-credentials grants
//! with a client secret or a client assertion (workload identity). Client ids starting with
//! `invalid` are rejected as AAD rejects an unknown application.

use crate::reply::Reply;
use serde_json::json;

/// Matches `/{tenant}/oauth2/v2.0/token`; returns the tenant.
pub fn tenant_of(path: &str) -> Option<&str> {
    let rest = path.strip_prefix('/')?;
    let (tenant, tail) = rest.split_once('/')?;
    (tail == "oauth2/v2.0/token" && !tenant.is_empty()).then_some(tenant)
}

pub const TEMPLATE: &str = "/{tenant}/oauth2/v2.0/token";
const ASSERTION_TYPE: &str = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";
/// Token lifetime in seconds, as AAD issues them.
const LIFETIME_SECS: u64 = 3599;

fn aad_error(status: u16, error: &str, code: u32, description: &str) -> Reply {
    Reply::json(
        status,
        json!({
            "error": error,
            "error_description": format!("AADSTS{code}: {description}"),
            "error_codes": [code],
        }),
    )
}

/// Issues a token for the form-encoded request `form`; `serial` makes tokens distinct.
pub fn issue(tenant: &str, form: &[(String, String)], serial: u64) -> Reply {
    let get = |name: &str| {
        form.iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
            .filter(|v| !v.is_empty())
    };
    let missing = |name: &str| {
        aad_error(
            400,
            "invalid_request",
            900144,
            &format!("The request body must contain the following parameter: '{name}'."),
        )
    };
    match get("grant_type") {
        None => return missing("grant_type"),
        Some("client_credentials") => {}
        Some(other) => {
            return aad_error(
                400,
                "unsupported_grant_type",
                70003,
                &format!("The app requested an unsupported grant type '{other}'."),
            );
        }
    }
    let Some(client_id) = get("client_id") else {
        return missing("client_id");
    };
    let Some(scope) = get("scope") else {
        return missing("scope");
    };
    if !scope.split(' ').all(|s| s.ends_with("/.default")) {
        return aad_error(
            400,
            "invalid_scope",
            1002012,
            "The provided value for scope is not valid. Client credential flows must have a scope value with /.default suffixed to the resource identifier.",
        );
    }
    match (
        get("client_secret"),
        get("client_assertion"),
        get("client_assertion_type"),
    ) {
        (Some(_), None, _) => {}
        (None, Some(_), Some(ASSERTION_TYPE)) => {}
        (None, Some(_), _) => {
            return aad_error(
                400,
                "invalid_request",
                90014,
                &format!("client_assertion_type must be '{ASSERTION_TYPE}'."),
            );
        }
        _ => {
            return aad_error(
                401,
                "invalid_client",
                7000218,
                "The request body must contain exactly one of 'client_assertion' or 'client_secret'.",
            );
        }
    }
    if client_id.starts_with("invalid") {
        return aad_error(
            400,
            "unauthorized_client",
            700016,
            &format!(
                "Application with identifier '{client_id}' was not found in the directory '{tenant}'."
            ),
        );
    }
    Reply::json(
        200,
        json!({
            "token_type": "Bearer",
            "expires_in": LIFETIME_SECS,
            "ext_expires_in": LIFETIME_SECS,
            "access_token": format!("fake-token.{tenant}.{client_id}.{serial}"),
        }),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn form(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn paths() {
        assert_eq!(tenant_of("/tid/oauth2/v2.0/token"), Some("tid"));
        assert_eq!(tenant_of("/subscriptions/x"), None);
        assert_eq!(tenant_of("//oauth2/v2.0/token"), None);
    }

    #[test]
    fn secret_and_assertion_grants_get_tokens() {
        let base = [
            ("grant_type", "client_credentials"),
            ("client_id", "app"),
            ("scope", "https://management.azure.com/.default"),
        ];
        let mut secret = form(&base);
        secret.extend(form(&[("client_secret", "s3cret")]));
        let reply = issue("t", &secret, 1);
        assert_eq!(reply.status, 200);
        assert_eq!(reply.body.as_ref().unwrap()["token_type"], "Bearer");
        let mut assertion = form(&base);
        assertion.extend(form(&[
            ("client_assertion", "jwt"),
            ("client_assertion_type", ASSERTION_TYPE),
        ]));
        assert_eq!(issue("t", &assertion, 2).status, 200);
    }

    #[test]
    fn bad_requests_are_refused_like_aad() {
        let reply = issue(
            "t",
            &form(&[
                ("grant_type", "client_credentials"),
                ("scope", "x/.default"),
                ("client_secret", "s"),
            ]),
            1,
        );
        assert_eq!(reply.status, 400);
        assert!(
            reply.body.unwrap()["error_description"]
                .as_str()
                .unwrap()
                .contains("'client_id'")
        );
        let no_cred = issue(
            "t",
            &form(&[
                ("grant_type", "client_credentials"),
                ("client_id", "a"),
                ("scope", "x/.default"),
            ]),
            1,
        );
        assert_eq!(no_cred.status, 401);
        let bad_scope = issue(
            "t",
            &form(&[
                ("grant_type", "client_credentials"),
                ("client_id", "a"),
                ("scope", "x"),
                ("client_secret", "s"),
            ]),
            1,
        );
        assert_eq!(bad_scope.body.unwrap()["error"], "invalid_scope");
    }
}
