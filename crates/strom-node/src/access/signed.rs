//! Signed links (`token_secret KEY;`): a playback token that middleware
//! computes with the shared KEY and strom checks on its own, with no auth
//! backend. Pure: no I/O, the clock comes in as `now_unix`.
//!
//! # Format
//!
//! ```text
//! token   = EXPIRY "-" HEX
//! HEX     = lowercase hex (64 digits) of HMAC-SHA256(key = KEY, message)
//! message = NAME "\n" EXPIRY "\n" IP
//! ```
//!
//! - EXPIRY: Unix seconds (UTC) after which the token no longer starts a
//!   session; canonical decimal (digits only, no sign, no leading zero except
//!   `0` itself), at most 20 digits, at most `u64::MAX`. The message carries
//!   the same text as the token.
//! - NAME: the stream name as in the URL path (`mylive/cam1`).
//! - IP: the viewer's address in canonical text form (`192.0.2.7`; IPv6 as
//!   RFC 5952 §4, `2001:db8::1`; an IPv4-mapped IPv6 address counts as its
//!   IPv4 form), or the empty string for a token valid from any address.
//! - HMAC per RFC 2104 with SHA-256 (FIPS 180-4); the key is KEY's bytes.
//!
//! NAME cannot be confused with the other fields: EXPIRY and IP contain no
//! line feed, so the message splits uniquely from its end.
//!
//! # Invariants
//!
//! - One link has exactly one token string: upper-case hex, leading zeros,
//!   signs, spaces or trailing bytes make the token `Malformed`. The token is
//!   part of a session's identity, so a link cannot be re-spelled into a
//!   second session.
//! - Work is bounded: a token longer than [`MAX_TOKEN_LEN`] bytes is refused
//!   before any parsing or HMAC, and a well-formed one costs at most two
//!   HMACs over NAME and at most 61 more bytes.
//! - The MAC is compared in constant time (`Mac::verify_slice`).
//! - Errors are checked in order: form (`Malformed`), then MAC
//!   (`BadSignature`), then clock (`Expired`). `Expired` therefore means the
//!   token is genuine.
//! - The expiry bounds the START of a session only; the callers do not cut
//!   a running session when it passes.
//!
//! `docs/signed-links.md` is the operator's description; the tests below run
//! its shell and Python recipes against [`verify`].

use std::net::IpAddr;

use hmac::{Hmac, Mac};
use sha2::Sha256;

type HmacSha256 = Hmac<Sha256>;

/// Longest token accepted, in bytes. A valid token is at most 20 + 1 + 64 =
/// 85 bytes; anything longer than this is refused before any HMAC.
pub const MAX_TOKEN_LEN: usize = 128;
/// Most decimal digits of EXPIRY (`u64::MAX` has 20).
pub const MAX_EXPIRY_DIGITS: usize = 20;
/// Length of HEX: the 32-byte HMAC-SHA256 as lowercase hex digits.
pub const MAC_HEX_LEN: usize = 64;

/// What a valid token grants.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Grant {
    /// Unix seconds after which the token no longer starts a session.
    pub expiry: u64,
    /// The token was signed for the viewer's address (false: for any address).
    pub ip_bound: bool,
}

/// Why a token was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum SignedError {
    /// Not of the form `EXPIRY-HEX` (or longer than [`MAX_TOKEN_LEN`] bytes).
    #[error("signed-link token is malformed (expected EXPIRY-HEX)")]
    Malformed,
    /// Well formed, but the HMAC matches neither the viewer's address nor the
    /// empty address: another key, stream, expiry or address.
    #[error("signed-link token does not match (wrong key, stream or client address)")]
    BadSignature,
    /// Genuine, but its expiry (Unix seconds) is in the past.
    #[error("signed link expired at {expiry} (Unix seconds)")]
    Expired {
        /// The token's EXPIRY, Unix seconds.
        expiry: u64,
    },
}

impl SignedError {
    /// The `result` label of `strom_auth_signed_total` for this refusal:
    /// `invalid` or `expired` (a valid token counts as `valid`).
    pub fn metric_result(&self) -> &'static str {
        match self {
            SignedError::Malformed | SignedError::BadSignature => "invalid",
            SignedError::Expired { .. } => "expired",
        }
    }
}

/// The token for stream `name`, valid until `expiry` (Unix seconds), bound to
/// `ip` (IPv4-mapped IPv6 taken as IPv4) or, with `None`, valid from any
/// address.
pub fn sign(key: &[u8], name: &str, expiry: u64, ip: Option<IpAddr>) -> String {
    let expiry_text = expiry.to_string();
    let tag = mac(key, name, &expiry_text, ip).finalize().into_bytes();
    let mut token = String::with_capacity(expiry_text.len() + 1 + MAC_HEX_LEN);
    token.push_str(&expiry_text);
    token.push('-');
    for b in tag {
        token.push(char::from(HEX_DIGITS[usize::from(b >> 4)]));
        token.push(char::from(HEX_DIGITS[usize::from(b & 0x0f)]));
    }
    token
}

/// Checks `token` (the raw `token` query value) for stream `name`, from a
/// viewer at `ip` (`None`: address unknown, so only a token valid from any
/// address can match), at `now_unix` (Unix seconds).
///
/// Accepts when HEX is the HMAC of the message with the viewer's address, or
/// with the empty address, and EXPIRY ≥ `now_unix`. Never panics; refuses a
/// token longer than [`MAX_TOKEN_LEN`] bytes before any HMAC.
pub fn verify(key: &[u8], name: &str, token: &str, ip: Option<IpAddr>, now_unix: u64) -> Result<Grant, SignedError> {
    let Parsed {
        expiry,
        expiry_text,
        tag,
    } = parse(token)?;
    let ip_bound = ip.is_some_and(|ip| mac(key, name, expiry_text, Some(ip)).verify_slice(&tag).is_ok());
    if !ip_bound && mac(key, name, expiry_text, None).verify_slice(&tag).is_err() {
        return Err(SignedError::BadSignature);
    }
    if expiry < now_unix {
        return Err(SignedError::Expired { expiry });
    }
    Ok(Grant { expiry, ip_bound })
}

const HEX_DIGITS: &[u8; 16] = b"0123456789abcdef";

/// A token that has the right form; its MAC is not checked yet.
struct Parsed<'a> {
    expiry: u64,
    /// EXPIRY exactly as in the token (canonical, so `expiry.to_string()`).
    expiry_text: &'a str,
    tag: [u8; 32],
}

fn parse(token: &str) -> Result<Parsed<'_>, SignedError> {
    if token.len() > MAX_TOKEN_LEN {
        return Err(SignedError::Malformed);
    }
    let (expiry_text, hex) = token.split_once('-').ok_or(SignedError::Malformed)?;
    let canonical_decimal = !expiry_text.is_empty()
        && expiry_text.len() <= MAX_EXPIRY_DIGITS
        && expiry_text.bytes().all(|b| b.is_ascii_digit())
        && (expiry_text == "0" || !expiry_text.starts_with('0'));
    if !canonical_decimal {
        return Err(SignedError::Malformed);
    }
    // Digits only by now, so this fails only past u64::MAX.
    let expiry = expiry_text.parse::<u64>().map_err(|_| SignedError::Malformed)?;
    if hex.len() != MAC_HEX_LEN {
        return Err(SignedError::Malformed);
    }
    let mut tag = [0u8; 32];
    for (out, pair) in tag.iter_mut().zip(hex.as_bytes().chunks_exact(2)) {
        let &[hi, lo] = pair else {
            return Err(SignedError::Malformed);
        };
        *out = (nibble(hi)? << 4) | nibble(lo)?;
    }
    Ok(Parsed {
        expiry,
        expiry_text,
        tag,
    })
}

/// A lowercase hex digit's value; anything else (upper case too) is malformed.
fn nibble(c: u8) -> Result<u8, SignedError> {
    match c {
        b'0'..=b'9' => Ok(c - b'0'),
        b'a'..=b'f' => Ok(c - b'a' + 10),
        _ => Err(SignedError::Malformed),
    }
}

/// The HMAC state over `NAME "\n" EXPIRY "\n" IP` (IP empty for `None`).
fn mac(key: &[u8], name: &str, expiry_text: &str, ip: Option<IpAddr>) -> HmacSha256 {
    let mut m = <HmacSha256 as Mac>::new_from_slice(key).unwrap_or_else(|_| unreachable!("HMAC takes any key length"));
    m.update(name.as_bytes());
    m.update(b"\n");
    m.update(expiry_text.as_bytes());
    m.update(b"\n");
    if let Some(ip) = ip {
        // Display of Ipv4Addr/Ipv6Addr is the canonical text (RFC 5952 §4 for
        // IPv6); a mapped ::ffff:a.b.c.d becomes a.b.c.d first.
        m.update(ip.to_canonical().to_string().as_bytes());
    }
    m
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::net::{Ipv4Addr, Ipv6Addr};
    use std::process::Command;

    const KEY: &[u8] = b"s3cret";
    const NAME: &str = "mylive/cam1";
    const EXPIRY: u64 = 1_700_000_000;
    /// Computed once with `openssl dgst -sha256 -hmac s3cret` and Python's
    /// `hmac` (see docs/signed-links.md, "Example"); they pin the format.
    const TOKEN_V4: &str = "1700000000-76f8c45329008580807218511bd75e6226b76c64a990f04689404dfee55b2f5f";
    const TOKEN_ANY: &str = "1700000000-d7d64013e39034a8c6dc8e7c168ac7ec1f265095f35332cf6b74d8a86ad02dda";
    const TOKEN_V6: &str = "1700000000-b41a73a34ce7505dcdd467e6fe7c6debb82869899b98014c2e66b75fa228cbee";

    fn ip(s: &str) -> IpAddr {
        s.parse().expect("test address")
    }

    #[test]
    fn known_answer_vectors() {
        assert_eq!(sign(KEY, NAME, EXPIRY, Some(ip("192.0.2.7"))), TOKEN_V4);
        assert_eq!(sign(KEY, NAME, EXPIRY, None), TOKEN_ANY);
        assert_eq!(sign(KEY, NAME, EXPIRY, Some(ip("2001:db8::1"))), TOKEN_V6);
        // The same IPv6 address written another way is the same address.
        assert_eq!(sign(KEY, NAME, EXPIRY, Some(ip("2001:0DB8:0:0:0:0:0:0001"))), TOKEN_V6);
        let grant = verify(KEY, NAME, TOKEN_V6, Some(ip("2001:db8:0::1")), EXPIRY);
        assert_eq!(
            grant,
            Ok(Grant {
                expiry: EXPIRY,
                ip_bound: true
            })
        );
    }

    #[test]
    fn ip_bound_and_ip_less_tokens() {
        let viewer = Some(ip("192.0.2.7"));
        let now = EXPIRY - 10;
        assert_eq!(
            verify(KEY, NAME, TOKEN_V4, viewer, now),
            Ok(Grant {
                expiry: EXPIRY,
                ip_bound: true
            })
        );
        for from in [viewer, Some(ip("198.51.100.1")), Some(ip("2001:db8::2")), None] {
            assert_eq!(
                verify(KEY, NAME, TOKEN_ANY, from, now),
                Ok(Grant {
                    expiry: EXPIRY,
                    ip_bound: false
                }),
                "an IP-less token from {from:?}"
            );
        }
    }

    #[test]
    fn other_address_stream_or_key_refused() {
        let now = EXPIRY;
        let bad = Err(SignedError::BadSignature);
        assert_eq!(verify(KEY, NAME, TOKEN_V4, Some(ip("192.0.2.8")), now), bad);
        assert_eq!(verify(KEY, NAME, TOKEN_V4, Some(ip("::1")), now), bad);
        // The viewer's address unknown: only an IP-less token can match.
        assert_eq!(verify(KEY, NAME, TOKEN_V4, None, now), bad);
        assert_eq!(verify(KEY, NAME, TOKEN_V6, Some(ip("2001:db8::2")), now), bad);
        let viewer = Some(ip("192.0.2.7"));
        for other in ["mylive/cam2", "mylive", "MyLive/cam1", "mylive/cam1/", ""] {
            assert_eq!(verify(KEY, other, TOKEN_V4, viewer, now), bad, "{other}");
            assert_eq!(verify(KEY, other, TOKEN_ANY, viewer, now), bad, "{other}");
        }
        assert_eq!(verify(b"s3cret ", NAME, TOKEN_ANY, viewer, now), bad);
        assert_eq!(verify(b"", NAME, TOKEN_ANY, viewer, now), bad);
    }

    #[test]
    fn expiry_bounds_the_start() {
        let viewer = Some(ip("192.0.2.7"));
        assert!(verify(KEY, NAME, TOKEN_V4, viewer, 0).is_ok());
        assert!(
            verify(KEY, NAME, TOKEN_V4, viewer, EXPIRY).is_ok(),
            "valid through its last second"
        );
        assert_eq!(
            verify(KEY, NAME, TOKEN_V4, viewer, EXPIRY + 1),
            Err(SignedError::Expired { expiry: EXPIRY })
        );
        assert_eq!(
            verify(KEY, NAME, TOKEN_ANY, None, u64::MAX),
            Err(SignedError::Expired { expiry: EXPIRY })
        );
        // A forged token is not reported as expired: the MAC is checked first.
        let forged = TOKEN_V4.replace("1700000000-", "1600000000-");
        assert_eq!(
            verify(KEY, NAME, &forged, viewer, EXPIRY + 1),
            Err(SignedError::BadSignature)
        );
        // Moving the expiry forward breaks the MAC.
        let extended = TOKEN_V4.replace("1700000000-", "1800000000-");
        assert_eq!(
            verify(KEY, NAME, &extended, viewer, EXPIRY),
            Err(SignedError::BadSignature)
        );
        // Both ends of the range.
        for expiry in [0, u64::MAX] {
            let t = sign(KEY, NAME, expiry, None);
            assert_eq!(
                verify(KEY, NAME, &t, None, expiry),
                Ok(Grant {
                    expiry,
                    ip_bound: false
                })
            );
        }
        assert!(sign(KEY, NAME, u64::MAX, None).starts_with("18446744073709551615-"));
        assert!(sign(KEY, NAME, 0, None).starts_with("0-"));
    }

    #[test]
    fn ipv4_mapped_ipv6_is_its_ipv4_form() {
        let mapped = IpAddr::V6(Ipv4Addr::new(192, 0, 2, 7).to_ipv6_mapped());
        assert_eq!(mapped, ip("::ffff:192.0.2.7"));
        assert_eq!(sign(KEY, NAME, EXPIRY, Some(mapped)), TOKEN_V4);
        assert_eq!(
            verify(KEY, NAME, TOKEN_V4, Some(mapped), EXPIRY),
            Ok(Grant {
                expiry: EXPIRY,
                ip_bound: true
            })
        );
        // Not every IPv6 address holding those bytes is mapped.
        let compatible = IpAddr::V6(Ipv4Addr::new(192, 0, 2, 7).to_ipv6_compatible());
        assert_eq!(
            verify(KEY, NAME, TOKEN_V4, Some(compatible), EXPIRY),
            Err(SignedError::BadSignature)
        );
        let v6 = IpAddr::V6(Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 1));
        assert_eq!(
            verify(KEY, NAME, TOKEN_V6, Some(v6), EXPIRY).map(|g| g.ip_bound),
            Ok(true)
        );
    }

    #[test]
    fn malformed_tokens() {
        let hex = &TOKEN_ANY[11..];
        assert_eq!(hex.len(), MAC_HEX_LEN);
        let cases: Vec<String> = vec![
            String::new(),
            "-".into(),
            "1700000000".into(),
            "1700000000-".into(),
            format!("-{hex}"),
            format!("1700000000{hex}"),
            format!("1700000000_{hex}"),
            format!("1700000000--{hex}"),
            format!("+1700000000-{hex}"),
            format!(" 1700000000-{hex}"),
            format!("1700000000 -{hex}"),
            format!("1700000000-{hex} "),
            format!("1700000000-{hex}\n"),
            format!("1700000000-{hex}0"),
            format!("1700000000-{}", &hex[1..]),
            format!("17000x0000-{hex}"),
            format!("1.7e9-{hex}"),
            format!("01700000000-{hex}"),
            format!("00-{hex}"),
            format!("1700000000-{}", hex.to_ascii_uppercase()),
            format!("1700000000-{}X", &hex[1..]),
            format!("1700000000%2D{hex}"),
            format!("1700000000-{}", hex.replace('d', "%64")),
            format!("{TOKEN_ANY}&token={TOKEN_ANY}"),
            format!("{TOKEN_ANY},{TOKEN_ANY}"),
            format!("{TOKEN_ANY}-{hex}"),
            // 21 digits, and 20 digits past u64::MAX.
            format!("100000000000000000000-{hex}"),
            format!("18446744073709551616-{hex}"),
            format!("99999999999999999999-{hex}"),
            // Non-ASCII: full-width digits and a multi-byte letter in HEX.
            format!("１７００００００００-{hex}"),
            format!("1700000000-{}é", &hex[2..]),
            "\0".into(),
            TOKEN_ANY.replace('-', "\u{2011}"),
            "x".repeat(10_000),
            format!("{}-{hex}", "1".repeat(10_000)),
            format!("1700000000-{}", "a".repeat(10_000)),
        ];
        for t in &cases {
            for from in [None, Some(ip("192.0.2.7"))] {
                assert_eq!(
                    verify(KEY, NAME, t, from, 0),
                    Err(SignedError::Malformed),
                    "{:?}",
                    t.get(..80).unwrap_or(t)
                );
            }
        }
        // A token with leading zeros is refused even when its MAC was computed
        // over that text: one link, one token string.
        let padded = format!("01700000000-{}", &sign(KEY, NAME, EXPIRY, None)[11..]);
        assert_eq!(verify(KEY, NAME, &padded, None, 0), Err(SignedError::Malformed));
    }

    #[test]
    fn metric_results() {
        assert_eq!(SignedError::Malformed.metric_result(), "invalid");
        assert_eq!(SignedError::BadSignature.metric_result(), "invalid");
        assert_eq!(SignedError::Expired { expiry: 1 }.metric_result(), "expired");
    }

    // ---- interop: the recipes of docs/signed-links.md against `verify` ----

    const DOC: &str = include_str!("../../../../docs/signed-links.md");

    /// The fenced block after the doc's marker "keep the next block runnable by `tool`".
    fn doc_block(tool: &str) -> String {
        let marker = format!("keep the next block runnable by {tool} -->");
        let start = DOC
            .find(&marker)
            .unwrap_or_else(|| panic!("docs/signed-links.md has no {tool} block"));
        let mut lines = DOC[start..].lines().skip(1);
        let fence = lines.next().unwrap_or_default();
        assert!(
            fence.starts_with("```"),
            "the {tool} marker is not followed by a fenced block"
        );
        let body: Vec<&str> = lines.take_while(|l| !l.starts_with("```")).collect();
        assert!(!body.is_empty(), "empty {tool} block");
        body.join("\n") + "\n"
    }

    /// (KEY, NAME, EXPIRY, IP) the recipes are run with; IP "" = any address.
    const INTEROP_CASES: &[(&str, &str, u64, &str)] = &[
        ("s3cret", "mylive/cam1", 1_700_000_000, "192.0.2.7"),
        ("s3cret", "mylive/cam1", 1_700_000_000, ""),
        (
            "a key with spaces and ümlauts",
            "tv/sport.hd_1-x",
            4_102_444_800,
            "2001:db8::1",
        ),
        ("k", "a", 18_446_744_073_709_551_615, "203.0.113.254"),
    ];

    /// True when `tool` runs; otherwise says plainly that the test is skipped.
    fn have(tool: &str, version_arg: &str) -> bool {
        match Command::new(tool).arg(version_arg).output() {
            Ok(o) if o.status.success() => true,
            _ => {
                eprintln!("SKIPPED: `{tool}` is not installed (or `{tool} {version_arg}` fails); the {tool} recipe of docs/signed-links.md was NOT checked");
                false
            }
        }
    }

    fn check_interop(tool: &str, token: &str, (key, name, expiry, ipt): (&str, &str, u64, &str)) {
        let from = if ipt.is_empty() {
            Some(ip("198.51.100.99"))
        } else {
            Some(ip(ipt))
        };
        assert_eq!(
            verify(key.as_bytes(), name, token, from, expiry),
            Ok(Grant {
                expiry,
                ip_bound: !ipt.is_empty()
            }),
            "{tool} token {token:?} for {key:?} {name:?} {expiry} {ipt:?}"
        );
        let ip_opt = (!ipt.is_empty()).then(|| ip(ipt));
        assert_eq!(
            token,
            sign(key.as_bytes(), name, expiry, ip_opt),
            "{tool} and sign() differ"
        );
    }

    #[test]
    fn python_recipe_interop() {
        if !have("python3", "--version") {
            return;
        }
        let program = doc_block("python3")
            + "import sys\nprint(strom_token(sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]))\n";
        for &(key, name, expiry, ipt) in INTEROP_CASES {
            let out = Command::new("python3")
                .arg("-c")
                .arg(&program)
                .args([key, name, &expiry.to_string(), ipt])
                .output()
                .expect("run python3");
            assert!(
                out.status.success(),
                "python3 failed: {}",
                String::from_utf8_lossy(&out.stderr)
            );
            let token = String::from_utf8_lossy(&out.stdout).trim_end().to_string();
            check_interop("python3", &token, (key, name, expiry, ipt));
        }
    }

    /// The IPv6 text the docs ask middleware to sign (RFC 5952) is what
    /// Python's `ipaddress` prints, and what `sign` puts in the message.
    #[test]
    fn ipv6_text_matches_python_ipaddress() {
        if !have("python3", "--version") {
            return;
        }
        let addrs = [
            "2001:db8::1",
            "2001:DB8:0:0:0:0:0:1",
            "2001:db8:0:1:1:1:1:1",
            "2001:db8:0:0:1:0:0:1",
            "2001:0:0:1:0:0:0:1",
            "fe80::",
            "::",
            "::1",
            "2001:db8:85a3::8a2e:370:7334",
        ];
        let out = Command::new("python3")
            .arg("-c")
            .arg("import ipaddress, sys\nfor a in sys.argv[1:]: print(ipaddress.ip_address(a))\n")
            .args(addrs)
            .output()
            .expect("run python3");
        assert!(
            out.status.success(),
            "python3 failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let python = String::from_utf8_lossy(&out.stdout);
        let rust: Vec<String> = addrs.iter().map(|a| ip(a).to_canonical().to_string()).collect();
        assert_eq!(python.lines().collect::<Vec<_>>(), rust);
        for (a, text) in addrs.iter().zip(&rust) {
            let t = sign(KEY, NAME, EXPIRY, Some(ip(a)));
            let by_text = hmac_hex(KEY, &format!("{NAME}\n{EXPIRY}\n{text}"));
            assert_eq!(t, format!("{EXPIRY}-{by_text}"), "{a}");
        }
    }

    fn hmac_hex(key: &[u8], message: &str) -> String {
        let mut m = <HmacSha256 as Mac>::new_from_slice(key).expect("any key length");
        m.update(message.as_bytes());
        m.finalize().into_bytes().iter().map(|b| format!("{b:02x}")).collect()
    }

    #[test]
    fn openssl_recipe_interop() {
        if !have("openssl", "version") {
            return;
        }
        let script = doc_block("sh");
        for &(key, name, expiry, ipt) in INTEROP_CASES {
            let out = Command::new("sh")
                .arg("-c")
                .arg(&script)
                .env("KEY", key)
                .env("NAME", name)
                .env("EXPIRY", expiry.to_string())
                .env("IP", ipt)
                .output()
                .expect("run sh");
            assert!(
                out.status.success(),
                "sh/openssl failed: {}",
                String::from_utf8_lossy(&out.stderr)
            );
            let token = String::from_utf8_lossy(&out.stdout).trim_end().to_string();
            check_interop("openssl", &token, (key, name, expiry, ipt));
        }
    }

    // ---- properties ----

    fn any_ip() -> impl Strategy<Value = Option<IpAddr>> {
        prop_oneof![
            Just(None),
            any::<Ipv4Addr>().prop_map(|a| Some(IpAddr::V4(a))),
            any::<Ipv6Addr>().prop_map(|a| Some(IpAddr::V6(a))),
            any::<Ipv4Addr>().prop_map(|a| Some(IpAddr::V6(a.to_ipv6_mapped()))),
        ]
    }

    proptest! {
        #[test]
        fn sign_then_verify_round_trips(
            key in proptest::collection::vec(any::<u8>(), 0..80),
            name in "\\PC{0,64}",
            expiry in any::<u64>(),
            before in any::<u64>(),
            ip in any_ip(),
        ) {
            let token = sign(&key, &name, expiry, ip);
            prop_assert!(token.len() <= MAX_EXPIRY_DIGITS + 1 + MAC_HEX_LEN);
            prop_assert!(token.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b) || b == b'-'));
            let now = expiry.saturating_sub(before);
            let want = Ok(Grant { expiry, ip_bound: ip.is_some() });
            prop_assert_eq!(verify(&key, &name, &token, ip, now), want);
            prop_assert_eq!(verify(&key, &name, &token, ip.map(|a| a.to_canonical()), now), want);
            prop_assert_eq!(verify(&key, &name, &token, ip, expiry), want);
            if let Some(late) = expiry.checked_add(1) {
                prop_assert_eq!(verify(&key, &name, &token, ip, late), Err(SignedError::Expired { expiry }));
            }
            if let Some(a) = ip {
                let other = match a.to_canonical() {
                    IpAddr::V4(v4) => IpAddr::V4(Ipv4Addr::from(u32::from(v4) ^ 1)),
                    IpAddr::V6(v6) => IpAddr::V6(Ipv6Addr::from(u128::from(v6) ^ 1)),
                };
                prop_assert_eq!(verify(&key, &name, &token, Some(other), now), Err(SignedError::BadSignature));
            }
        }

        #[test]
        fn any_changed_character_is_refused(
            expiry in any::<u64>(),
            ip in any_ip(),
            at in any::<proptest::sample::Index>(),
            with in any::<char>(),
        ) {
            let token = sign(KEY, NAME, expiry, ip);
            let i = at.index(token.len());
            let old = char::from(token.as_bytes()[i]);
            prop_assume!(with != old);
            let changed = format!("{}{with}{}", &token[..i], &token[i + 1..]);
            let got = verify(KEY, NAME, &changed, ip, 0);
            prop_assert!(
                matches!(got, Err(SignedError::Malformed | SignedError::BadSignature)),
                "{changed:?} gave {got:?}"
            );
            // Dropping or appending a character is refused too.
            let shorter = format!("{}{}", &token[..i], &token[i + 1..]);
            prop_assert!(verify(KEY, NAME, &shorter, ip, 0).is_err());
            let longer = format!("{token}{with}");
            prop_assert!(verify(KEY, NAME, &longer, ip, 0).is_err());
        }

        #[test]
        fn arbitrary_strings_never_verify_nor_panic(
            token in prop_oneof!["\\PC{0,300}", "[0-9]{0,22}-[0-9a-fA-F]{0,70}", "[0-9]{1,20}-[0-9a-f]{64}"],
            name in "\\PC{0,40}",
            ip in any_ip(),
            now in any::<u64>(),
        ) {
            prop_assert!(verify(KEY, &name, &token, ip, now).is_err());
        }
    }
}
