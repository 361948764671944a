//! Fuzz target for signed-link tokens (`strom_node::access::signed`).
//!
//! Input: byte 0 picks the viewer's address (low two bits: 0 none, 1 IPv4,
//! 2 IPv6, 3 IPv4-mapped IPv6), bytes 1..17 hold it (IPv4 uses the first
//! four), bytes 17..25 are `now` (Unix seconds, big-endian); the rest, as
//! UTF-8 (lossy), is `NAME NUL TOKEN`, or only TOKEN (name empty). Short
//! inputs are padded with zeros. The key is `s3cret`, the key of the
//! examples in docs/signed-links.md, so the seeds can be genuine tokens.
//!
//! Invariants:
//! - nothing panics;
//! - an accepted token is exactly the one `sign` makes for that name,
//!   expiry and address (the viewer's, or none), its expiry is not before
//!   `now`, and it is IP-bound only when the viewer has an address;
//! - an expired token is genuine: it verifies at its own expiry;
//! - a token longer than `MAX_TOKEN_LEN` bytes is malformed;
//! - `sign` for the fuzzed name, address and `now` verifies at `now`.
//!
//! The seeds in fuzz/corpus/signed_token/ are the documented example tokens
//! (valid, expired, from the wrong address, v4-mapped) and a few malformed
//! ones, written by this Python:
//!
//! ```text
//! import ipaddress, struct
//! V4 = "1700000000-76f8c45329008580807218511bd75e6226b76c64a990f04689404dfee55b2f5f"
//! ANY = "1700000000-d7d64013e39034a8c6dc8e7c168ac7ec1f265095f35332cf6b74d8a86ad02dda"
//! V6 = "1700000000-b41a73a34ce7505dcdd467e6fe7c6debb82869899b98014c2e66b75fa228cbee"
//! def seed(file, kind, addr, now, name, token):
//!     a = ipaddress.ip_address(addr).packed if addr else b""
//!     body = (name + "\0" if name is not None else "") + token
//!     open(f"fuzz/corpus/signed_token/{file}", "wb").write(
//!         bytes([kind]) + a.ljust(16, b"\0") + struct.pack(">Q", now) + body.encode())
//! seed("v4", 1, "192.0.2.7", 1600000000, "mylive/cam1", V4)
//! seed("any", 0, None, 1700000000, "mylive/cam1", ANY)
//! seed("v6", 2, "2001:db8::1", 1600000000, "mylive/cam1", V6)
//! seed("v4-mapped", 3, "192.0.2.7", 1600000000, "mylive/cam1", V4)
//! seed("expired", 1, "192.0.2.7", 1700000001, "mylive/cam1", V4)
//! seed("other-ip", 1, "192.0.2.8", 1600000000, "mylive/cam1", V4)
//! seed("other-name", 0, None, 1600000000, "mylive/cam2", ANY)
//! seed("upper-hex", 0, None, 1600000000, "mylive/cam1", ANY.upper())
//! seed("no-name", 0, None, 0, None, ANY)
//! seed("too-long", 0, None, 0, "mylive/cam1", ANY + "0" * 100)
//! ```
#![no_main]

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use libfuzzer_sys::fuzz_target;
use strom_node::access::signed::{sign, verify, Grant, SignedError, MAX_TOKEN_LEN};

const KEY: &[u8] = b"s3cret";
const HEADER: usize = 25;

fuzz_target!(|data: &[u8]| {
    let mut header = [0u8; HEADER];
    let n = data.len().min(HEADER);
    header[..n].copy_from_slice(&data[..n]);
    let rest = data.get(HEADER..).unwrap_or_default();

    let mut v6 = [0u8; 16];
    v6.copy_from_slice(&header[1..17]);
    let v4 = Ipv4Addr::new(v6[0], v6[1], v6[2], v6[3]);
    let ip = match header[0] & 3 {
        0 => None,
        1 => Some(IpAddr::V4(v4)),
        2 => Some(IpAddr::V6(Ipv6Addr::from(v6))),
        _ => Some(IpAddr::V6(v4.to_ipv6_mapped())),
    };
    let mut now_be = [0u8; 8];
    now_be.copy_from_slice(&header[17..25]);
    let now = u64::from_be_bytes(now_be);

    let text = String::from_utf8_lossy(rest);
    let (name, token) = text.split_once('\0').unwrap_or(("", &text));

    match verify(KEY, name, token, ip, now) {
        Ok(Grant { expiry, ip_bound }) => {
            assert!(expiry >= now);
            assert!(!ip_bound || ip.is_some());
            assert_eq!(token, sign(KEY, name, expiry, if ip_bound { ip } else { None }));
        }
        Err(SignedError::Expired { expiry }) => {
            assert!(expiry < now);
            assert!(verify(KEY, name, token, ip, expiry).is_ok());
        }
        Err(SignedError::Malformed | SignedError::BadSignature) => {}
    }
    if token.len() > MAX_TOKEN_LEN {
        assert_eq!(verify(KEY, name, token, ip, now), Err(SignedError::Malformed));
    }

    let fresh = sign(KEY, name, now, ip);
    assert_eq!(
        verify(KEY, name, &fresh, ip, now),
        Ok(Grant {
            expiry: now,
            ip_bound: ip.is_some()
        })
    );
});
