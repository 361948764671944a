//! Node-to-node authentication with the shared `cluster_key`.
//!
//! A request carries `X-Strom-Time` (Unix seconds), `X-Strom-Nonce` (random
//! hex) and `X-Strom-Signature` = hex(HMAC-SHA256(key, METHOD "\n" HOST "\n"
//! PATH_AND_QUERY "\n" TIME "\n" NONCE)), where HOST is the target node as
//! addressed (the `Host` header, lower case, without a default `:80`). The key
//! itself never crosses the wire. The server accepts a signature only within
//! `WINDOW` of its own clock, only once per nonce, and only for its own Host,
//! so a captured request can be replayed neither to it nor to another node.

use hmac::{Hmac, Mac};
use sha2::Sha256;
use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

pub const HEADER_TIME: &str = "x-strom-time";
pub const HEADER_NONCE: &str = "x-strom-nonce";
pub const HEADER_SIGNATURE: &str = "x-strom-signature";

/// How far a request's time may be from the server's clock.
pub const WINDOW: Duration = Duration::from_secs(30);
/// Nonces remembered at most; beyond this, requests are refused until old ones expire.
const MAX_NONCES: usize = 200_000;

type HmacSha256 = Hmac<Sha256>;

/// The form of a host that both sides sign: lower case, no default `:80`.
pub fn canonical_host(host: &str) -> String {
    let h = host.trim().to_ascii_lowercase();
    match h.strip_suffix(":80") {
        Some(bare) => bare.to_string(),
        None => h,
    }
}

fn mac(key: &str, method: &str, host: &str, path_and_query: &str, time: u64, nonce: &str) -> HmacSha256 {
    // HMAC accepts keys of any length.
    let mut m = <HmacSha256 as Mac>::new_from_slice(key.as_bytes())
        .unwrap_or_else(|_| unreachable!("HMAC takes any key length"));
    m.update(method.as_bytes());
    m.update(b"\n");
    m.update(canonical_host(host).as_bytes());
    m.update(b"\n");
    m.update(path_and_query.as_bytes());
    m.update(b"\n");
    m.update(time.to_string().as_bytes());
    m.update(b"\n");
    m.update(nonce.as_bytes());
    m
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn unhex(s: &str) -> Option<Vec<u8>> {
    if !s.len().is_multiple_of(2) || s.len() > 128 {
        return None;
    }
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(s.get(i..i + 2)?, 16).ok())
        .collect()
}

pub fn unix_now() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

/// The three headers for a request to `host` (`HOST[:PORT]` as addressed).
pub fn sign(
    key: &str,
    method: &str,
    host: &str,
    path_and_query: &str,
    time: u64,
    nonce: &str,
) -> [(&'static str, String); 3] {
    let sig = hex(&mac(key, method, host, path_and_query, time, nonce)
        .finalize()
        .into_bytes());
    [
        (HEADER_TIME, time.to_string()),
        (HEADER_NONCE, nonce.to_string()),
        (HEADER_SIGNATURE, sig),
    ]
}

/// A fresh random nonce (128 bits, hex), from the OS's randomness via std's hasher keys.
pub fn nonce() -> String {
    use std::hash::{BuildHasher, Hasher};
    let mut out = String::with_capacity(32);
    for _ in 0..2 {
        let mut h = std::collections::hash_map::RandomState::new().build_hasher();
        h.write_u128(SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_nanos()));
        out.push_str(&format!("{:016x}", h.finish()));
    }
    out
}

/// Why a request was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AuthError {
    #[error("this node has no cluster_key")]
    NoKey,
    #[error("missing or malformed authentication headers")]
    Malformed,
    #[error("request time is {0} s away from this node's clock")]
    Skew(i64),
    #[error("signature does not match (wrong cluster_key?)")]
    BadSignature,
    #[error("nonce already used (replay)")]
    Replay,
    #[error("too many requests in the replay window")]
    Busy,
}

/// What the server received: the request line and the three headers.
#[derive(Debug, Clone, Copy)]
pub struct Signed<'a> {
    pub method: &'a str,
    /// The `Host` header the request arrived with.
    pub host: Option<&'a str>,
    pub path_and_query: &'a str,
    pub time: Option<&'a str>,
    pub nonce: Option<&'a str>,
    pub signature: Option<&'a str>,
}

/// Server-side verifier with a replay cache.
#[derive(Debug, Default)]
pub struct Verifier {
    seen: Mutex<HashMap<String, u64>>,
}

impl Verifier {
    /// Checks a request signed with `key`. `now` is Unix seconds.
    pub fn verify(&self, key: Option<&str>, req: Signed<'_>, now: u64) -> Result<(), AuthError> {
        let key = key.ok_or(AuthError::NoKey)?;
        let (method, path_and_query) = (req.method, req.path_and_query);
        let host = req.host.ok_or(AuthError::Malformed)?;
        let (Some(time), Some(nonce), Some(signature)) = (req.time, req.nonce, req.signature) else {
            return Err(AuthError::Malformed);
        };
        let time: u64 = time.parse().map_err(|_| AuthError::Malformed)?;
        if nonce.is_empty() || nonce.len() > 64 || !nonce.bytes().all(|b| b.is_ascii_alphanumeric()) {
            return Err(AuthError::Malformed);
        }
        let skew = i64::try_from(time)
            .unwrap_or(i64::MAX)
            .saturating_sub(i64::try_from(now).unwrap_or(i64::MAX));
        if skew.unsigned_abs() > WINDOW.as_secs() {
            return Err(AuthError::Skew(skew));
        }
        let sig = unhex(signature).ok_or(AuthError::Malformed)?;
        mac(key, method, host, path_and_query, time, nonce)
            .verify_slice(&sig)
            .map_err(|_| AuthError::BadSignature)?;
        let mut seen = self.seen.lock().unwrap_or_else(|e| e.into_inner());
        seen.retain(|_, t| *t + WINDOW.as_secs() >= now);
        if seen.contains_key(nonce) {
            return Err(AuthError::Replay);
        }
        if seen.len() >= MAX_NONCES {
            return Err(AuthError::Busy);
        }
        seen.insert(nonce.to_string(), time.max(now));
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const HOST: &str = "node-a:8080";

    fn req<'a>(path: &'a str, t: Option<&'a str>, n: Option<&'a str>, s: Option<&'a str>) -> Signed<'a> {
        Signed {
            method: "GET",
            host: Some(HOST),
            path_and_query: path,
            time: t,
            nonce: n,
            signature: s,
        }
    }

    fn check(v: &Verifier, key: Option<&str>, h: &[(&str, String); 3], path: &str, now: u64) -> Result<(), AuthError> {
        v.verify(key, req(path, Some(&h[0].1), Some(&h[1].1), Some(&h[2].1)), now)
    }

    #[test]
    fn absurd_times_are_refused_without_overflow() {
        let v = Verifier::default();
        for t in ["18446744073709551615", "9223372036854775808", "0"] {
            let r = v.verify(Some("k"), req("/x", Some(t), Some("abc"), Some("00")), 1_800_000_000);
            assert!(matches!(r, Err(AuthError::Skew(_))), "{t}: {r:?}");
        }
    }

    #[test]
    fn signed_request_passes_once() {
        let v = Verifier::default();
        let h = sign("abcd", "GET", HOST, "/api/v1/cluster/streams", 1000, "n1");
        assert_eq!(check(&v, Some("abcd"), &h, "/api/v1/cluster/streams", 1005), Ok(()));
        assert_eq!(
            check(&v, Some("abcd"), &h, "/api/v1/cluster/streams", 1006),
            Err(AuthError::Replay)
        );
    }

    #[test]
    fn wrong_key_path_or_time_fail() {
        let v = Verifier::default();
        let h = sign("abcd", "GET", HOST, "/a", 1000, "n1");
        assert_eq!(check(&v, Some("abce"), &h, "/a", 1000), Err(AuthError::BadSignature));
        assert_eq!(check(&v, Some("abcd"), &h, "/b", 1000), Err(AuthError::BadSignature));
        assert_eq!(check(&v, Some("abcd"), &h, "/a", 1031), Err(AuthError::Skew(-31)));
        assert_eq!(check(&v, None, &h, "/a", 1000), Err(AuthError::NoKey));
        assert_eq!(
            v.verify(Some("abcd"), req("/a", Some("1000"), Some("n1"), Some("zz")), 1000),
            Err(AuthError::Malformed)
        );
        assert_eq!(
            v.verify(Some("abcd"), req("/a", None, Some("n1"), Some("00")), 1000),
            Err(AuthError::Malformed)
        );
    }

    #[test]
    fn a_signature_is_for_one_node_only() {
        let (a, b) = (Verifier::default(), Verifier::default());
        let h = sign("k", "GET", HOST, "/a", 1000, "n1");
        let at = |host| Signed {
            host: Some(host),
            ..req("/a", Some(&h[0].1), Some(&h[1].1), Some(&h[2].1))
        };
        assert_eq!(
            a.verify(Some("k"), at("NODE-A:8080"), 1000),
            Ok(()),
            "case does not matter"
        );
        assert_eq!(
            b.verify(Some("k"), at("node-b:8080"), 1000),
            Err(AuthError::BadSignature),
            "replayed to another node"
        );
        let h80 = sign("k", "GET", "origin:80", "/a", 1000, "n2");
        let plain = Signed {
            host: Some("origin"),
            ..req("/a", Some(&h80[0].1), Some(&h80[1].1), Some(&h80[2].1))
        };
        assert_eq!(a.verify(Some("k"), plain, 1000), Ok(()), "a default port is implied");
        let nohost = Signed { host: None, ..at(HOST) };
        assert_eq!(
            Verifier::default().verify(Some("k"), nohost, 1000),
            Err(AuthError::Malformed)
        );
    }

    #[test]
    fn old_nonces_expire() {
        let v = Verifier::default();
        let h = sign("k", "GET", HOST, "/a", 1000, "n1");
        assert_eq!(check(&v, Some("k"), &h, "/a", 1000), Ok(()));
        let h2 = sign("k", "GET", HOST, "/a", 1100, "n1");
        assert_eq!(
            check(&v, Some("k"), &h2, "/a", 1100),
            Ok(()),
            "same nonce long after is a new request"
        );
    }

    #[test]
    fn the_key_is_not_in_the_headers() {
        let h = sign("supersecretkey", "GET", HOST, "/a", 1000, "n1");
        assert!(h.iter().all(|(_, v)| !v.contains("supersecretkey")));
        assert_ne!(nonce(), nonce());
    }
}
