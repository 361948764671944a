//! Credentials of the JSON API (`view_auth`, `edit_auth`): HTTP Basic or
//! Bearer, compared in constant time. Play authorization lives in
//! [`crate::access`].

use crate::Node;
use axum::extract::{Request, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use base64::Engine;
use std::sync::Arc;
use strom_config::Credentials;

/// Compares two secrets in time that depends only on their lengths.
fn same(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// Whether an `Authorization` value carries one of `allowed`: HTTP Basic
/// `USER:PASSWORD` (RFC 7617), or `Bearer PASSWORD`.
pub fn carries(authorization: Option<&str>, allowed: &[&Credentials]) -> bool {
    let Some(v) = authorization else { return false };
    let (scheme, rest) = v.trim().split_once(' ').unwrap_or((v, ""));
    let rest = rest.trim();
    if scheme.eq_ignore_ascii_case("basic") {
        let Ok(raw) = base64::engine::general_purpose::STANDARD.decode(rest) else {
            return false;
        };
        let Some(colon) = raw.iter().position(|&b| b == b':') else {
            return false;
        };
        let (user, password) = (&raw[..colon], &raw[colon + 1..]);
        allowed
            .iter()
            .any(|c| same(user, c.user.as_bytes()) & same(password, c.password.as_bytes()))
    } else if scheme.eq_ignore_ascii_case("bearer") {
        allowed.iter().any(|c| same(rest.as_bytes(), c.password.as_bytes()))
    } else {
        false
    }
}

/// Middleware of the JSON API: with `view_auth` or `edit_auth` set, a
/// request needs either's credentials (401 with a Basic challenge
/// otherwise). Without them the API is open, as it always was.
pub async fn require_view(State(node): State<Arc<Node>>, req: Request, next: Next) -> Response {
    let allowed: Vec<&Credentials> = [&node.config.view_auth, &node.config.edit_auth]
        .into_iter()
        .flatten()
        .collect();
    if allowed.is_empty() {
        return next.run(req).await;
    }
    let given = req.headers().get(header::AUTHORIZATION).and_then(|v| v.to_str().ok());
    if carries(given, &allowed) {
        return next.run(req).await;
    }
    challenge()
}

/// 401 with a Basic challenge.
fn challenge() -> Response {
    let mut r = (StatusCode::UNAUTHORIZED, "credentials required\n").into_response();
    r.headers_mut().insert(
        header::WWW_AUTHENTICATE,
        HeaderValue::from_static("Basic realm=\"strom\""),
    );
    r
}

/// Middleware of the API's changes (kicks, re-authorization): with
/// `edit_auth` set a request needs its credentials; with only `view_auth`,
/// view credentials; with neither the API is open.
pub async fn require_edit(State(node): State<Arc<Node>>, req: Request, next: Next) -> Response {
    let allowed: Vec<&Credentials> = match (&node.config.edit_auth, &node.config.view_auth) {
        (Some(e), _) => vec![e],
        (None, Some(v)) => vec![v],
        (None, None) => return next.run(req).await,
    };
    let given = req.headers().get(header::AUTHORIZATION).and_then(|v| v.to_str().ok());
    if carries(given, &allowed) {
        return next.run(req).await;
    }
    challenge()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn basic_and_bearer_credentials() {
        let view = Credentials {
            user: "viewer".into(),
            password: "pw".into(),
        };
        let edit = Credentials {
            user: "admin".into(),
            password: "s3cret".into(),
        };
        let ok = [&view, &edit];
        let basic = |s: &str| format!("Basic {}", base64::engine::general_purpose::STANDARD.encode(s));
        assert!(carries(Some(&basic("viewer:pw")), &ok));
        assert!(carries(Some(&basic("admin:s3cret")), &ok));
        assert!(carries(Some("Bearer s3cret"), &ok));
        let colon = Credentials {
            user: "u".into(),
            password: "p:w".into(),
        };
        assert!(carries(Some(&basic("u:p:w")), &[&colon]), "a password may hold a colon");
        assert!(!carries(Some(&basic("viewer:s3cret")), &ok), "another user's password");
        assert!(!carries(Some(&basic("viewer")), &ok));
        assert!(!carries(Some("Basic !!!"), &ok));
        assert!(!carries(Some("Bearer nope"), &ok));
        assert!(!carries(Some("Digest x"), &ok));
        assert!(!carries(None, &ok));
    }
}
