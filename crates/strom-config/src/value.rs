//! Scalar values: durations, sizes, percentages, addresses, stream names.
//!
//! Invariants: every parser here is total (returns `None`/`Err`, never
//! panics, never overflows), and every `format_*` output parses back to the
//! same value with its `parse_*` counterpart.

use ipnet::IpNet;
use std::net::{IpAddr, Ipv6Addr, SocketAddr};
use std::time::Duration;

/// First path segments the node serves itself; streams may not shadow them.
pub const RESERVED_STREAM_PREFIXES: [&str; 4] = ["api", "metrics", "healthz", "readyz"];

/// Longest stream name, in characters.
pub const MAX_STREAM_NAME: usize = 128;

/// Longest balancer server name, in characters.
pub const MAX_SERVER_NAME: usize = 64;

/// ISO 3166-1 alpha-2 country codes (the 249 assigned ones, sorted), plus
/// `XK` (Kosovo), which GeoIP databases use.
const COUNTRIES: [&str; 250] = [
    "AD", "AE", "AF", "AG", "AI", "AL", "AM", "AO", "AQ", "AR", "AS", "AT", "AU", "AW", "AX", "AZ", //
    "BA", "BB", "BD", "BE", "BF", "BG", "BH", "BI", "BJ", "BL", "BM", "BN", "BO", "BQ", "BR", "BS", //
    "BT", "BV", "BW", "BY", "BZ", "CA", "CC", "CD", "CF", "CG", "CH", "CI", "CK", "CL", "CM", "CN", //
    "CO", "CR", "CU", "CV", "CW", "CX", "CY", "CZ", "DE", "DJ", "DK", "DM", "DO", "DZ", "EC", "EE", //
    "EG", "EH", "ER", "ES", "ET", "FI", "FJ", "FK", "FM", "FO", "FR", "GA", "GB", "GD", "GE", "GF", //
    "GG", "GH", "GI", "GL", "GM", "GN", "GP", "GQ", "GR", "GS", "GT", "GU", "GW", "GY", "HK", "HM", //
    "HN", "HR", "HT", "HU", "ID", "IE", "IL", "IM", "IN", "IO", "IQ", "IR", "IS", "IT", "JE", "JM", //
    "JO", "JP", "KE", "KG", "KH", "KI", "KM", "KN", "KP", "KR", "KW", "KY", "KZ", "LA", "LB", "LC", //
    "LI", "LK", "LR", "LS", "LT", "LU", "LV", "LY", "MA", "MC", "MD", "ME", "MF", "MG", "MH", "MK", //
    "ML", "MM", "MN", "MO", "MP", "MQ", "MR", "MS", "MT", "MU", "MV", "MW", "MX", "MY", "MZ", "NA", //
    "NC", "NE", "NF", "NG", "NI", "NL", "NO", "NP", "NR", "NU", "NZ", "OM", "PA", "PE", "PF", "PG", //
    "PH", "PK", "PL", "PM", "PN", "PR", "PS", "PT", "PW", "PY", "QA", "RE", "RO", "RS", "RU", "RW", //
    "SA", "SB", "SC", "SD", "SE", "SG", "SH", "SI", "SJ", "SK", "SL", "SM", "SN", "SO", "SR", "SS", //
    "ST", "SV", "SX", "SY", "SZ", "TC", "TD", "TF", "TG", "TH", "TJ", "TK", "TL", "TM", "TN", "TO", //
    "TR", "TT", "TV", "TW", "TZ", "UA", "UG", "UM", "US", "UY", "UZ", "VA", "VC", "VE", "VG", "VI", //
    "VN", "VU", "WF", "WS", "XK", "YE", "YT", "ZA", "ZM", "ZW",
];

/// Splits `s` into its leading ASCII digits and the rest.
fn split_number(s: &str) -> Option<(u64, &str)> {
    let split = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    let (num, rest) = s.split_at(split);
    if num.is_empty() {
        return None;
    }
    Some((num.parse().ok()?, rest))
}

/// Parses a duration: `10` (seconds), `10s`, `500ms`, `5m`, `2h`, `2d`.
///
/// Whole numbers only; units are lower case. Returns `None` on anything else,
/// including overflow.
pub fn parse_duration(s: &str) -> Option<Duration> {
    let (n, unit) = split_number(s)?;
    let ms_per: u64 = match unit {
        "ms" => 1,
        "" | "s" => 1_000,
        "m" => 60_000,
        "h" => 3_600_000,
        "d" => 86_400_000,
        _ => return None,
    };
    Some(Duration::from_millis(n.checked_mul(ms_per)?))
}

/// Renders a duration in the largest unit that keeps it exact (`2d`, `90s`,
/// `1500ms`). Sub-millisecond parts are dropped: config durations are whole
/// milliseconds.
pub fn format_duration(d: Duration) -> String {
    // `rem` spelled out: `is_multiple_of` is newer than the workspace MSRV.
    let rem = |n: u128, k: u128| n % k;
    let ms = d.as_millis();
    if rem(ms, 1000) != 0 {
        return format!("{ms}ms");
    }
    let s = ms / 1000;
    for (unit, k) in [("d", 86_400), ("h", 3_600), ("m", 60)] {
        if s != 0 && rem(s, k) == 0 {
            return format!("{}{unit}", s / k);
        }
    }
    format!("{s}s")
}

/// Parses a size in bytes: `1000`, `1000B`, `64K`, `500M`, `2G`, `1T`, and
/// the same with a `B` after the unit (`64KB`, `10GB`).
///
/// Units are binary (K = 1024, so `1GB` is 2^30 bytes) and upper case, so
/// that in `dvr` a lower-case `m` always means minutes. Returns `None` on
/// anything else or overflow.
pub fn parse_size(s: &str) -> Option<u64> {
    let (n, unit) = split_number(s)?;
    let k: u64 = match unit {
        "" | "B" => 1,
        "K" | "KB" => 1 << 10,
        "M" | "MB" => 1 << 20,
        "G" | "GB" => 1 << 30,
        "T" | "TB" => 1 << 40,
        _ => return None,
    };
    n.checked_mul(k)
}

/// Parses a bitrate in bits per second with decimal suffixes:
/// `800000`, `500K`, `800M`, `8G` (k/m/g in either case). Returns bits per second.
pub fn parse_bitrate(s: &str) -> Option<u64> {
    let (digits, mult) = match s.char_indices().last()? {
        (i, 'k' | 'K') => (&s[..i], 1_000),
        (i, 'm' | 'M') => (&s[..i], 1_000_000),
        (i, 'g' | 'G') => (&s[..i], 1_000_000_000),
        _ => (s, 1),
    };
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse::<u64>().ok()?.checked_mul(mult)
}

/// Renders bits per second in the shortest exact form `parse_bitrate` reads.
pub fn format_bitrate(n: u64) -> String {
    for (m, suffix) in [(1_000_000_000, "G"), (1_000_000, "M"), (1_000, "K")] {
        if n >= m && n.is_multiple_of(m) {
            return format!("{}{suffix}", n / m);
        }
    }
    n.to_string()
}

/// Renders a size with the largest exact unit; plain bytes get a `B` suffix
/// so they never read as a duration.
pub fn format_size(n: u64) -> String {
    for (unit, shift) in [("T", 40), ("G", 30), ("M", 20), ("K", 10)] {
        let k = 1u64 << shift;
        if n != 0 && n.trailing_zeros() >= shift {
            return format!("{}{unit}", n / k);
        }
    }
    format!("{n}B")
}

/// Parses `97%` into 97 (no range check).
pub(crate) fn parse_percent(s: &str) -> Option<u64> {
    match split_number(s)? {
        (n, "%") => Some(n),
        _ => None,
    }
}

/// Parses a non-negative integer.
pub(crate) fn parse_number(s: &str) -> Option<u64> {
    match split_number(s)? {
        (n, "") => Some(n),
        _ => None,
    }
}

/// Parses a listen address: `8080` (port 8080 on `bare`, which is `[::]`
/// for a node and `0.0.0.0` for a balancer), `IPV4:PORT` or `[IPV6]:PORT`.
/// Port 0 (an ephemeral port) is allowed for tests.
pub(crate) fn parse_listen(s: &str, bare: IpAddr) -> Result<SocketAddr, String> {
    let bad = || format!("bad listen address `{s}`: expected PORT, IPV4:PORT or [IPV6]:PORT");
    if s.bytes().all(|b| b.is_ascii_digit()) {
        let port: u16 = s.parse().map_err(|_| bad())?;
        return Ok(SocketAddr::new(bare, port));
    }
    s.parse().map_err(|_| bad())
}

/// A validated `HOST[:PORT]`: a DNS name, an IPv4 address or a bracketed
/// IPv6 address, with an optional non-zero port.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct HostPort<'a> {
    /// As written, brackets included for IPv6.
    pub host: &'a str,
    pub port: Option<u16>,
}

pub(crate) fn parse_host_port(s: &str) -> Result<HostPort<'_>, String> {
    let parse_port = |p: &str| -> Result<u16, String> {
        match parse_number(p) {
            Some(n) if (1..=65535).contains(&n) => Ok(n as u16),
            _ => Err(format!("bad port `{p}`: expected 1..65535")),
        }
    };
    if let Some(rest) = s.strip_prefix('[') {
        let Some((ip, after)) = rest.split_once(']') else {
            return Err(format!("bad address `{s}`: missing `]`"));
        };
        if ip.parse::<Ipv6Addr>().is_err() {
            return Err(format!("bad IPv6 address `{ip}`"));
        }
        let host = &s[..ip.len() + 2];
        let port = match after {
            "" => None,
            _ => match after.strip_prefix(':') {
                Some(p) => Some(parse_port(p)?),
                None => return Err(format!("bad address `{s}`: expected `:PORT` after `]`")),
            },
        };
        return Ok(HostPort { host, port });
    }
    let (host, port) = match s.split_once(':') {
        Some((h, p)) if !p.contains(':') => (h, Some(parse_port(p)?)),
        Some(_) => {
            return Err(format!(
                "bad address `{s}`: write IPv6 addresses in brackets, like [::1]:8080"
            ))
        }
        None => (s, None),
    };
    if !is_hostname(host) {
        return Err(format!("bad host name `{host}`"));
    }
    Ok(HostPort { host, port })
}

/// A DNS name or IPv4 address: dot-separated non-empty labels of letters,
/// digits, `-` and `_`.
fn is_hostname(h: &str) -> bool {
    !h.is_empty()
        && h.len() <= 253
        && h.split('.').all(|label| {
            !label.is_empty()
                && label
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        })
}

/// Checks an `http://` / `https://` URL: a host is required, and whitespace
/// or control characters are not allowed.
pub(crate) fn check_http_url(s: &str) -> Result<(), String> {
    let Some(rest) = s.strip_prefix("http://").or_else(|| s.strip_prefix("https://")) else {
        return Err(format!("bad URL `{s}`: expected http:// or https://"));
    };
    if s.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(format!(
            "bad URL `{}`: contains whitespace or control characters",
            s.escape_debug()
        ));
    }
    let authority = rest.split(['/', '?', '#']).next().unwrap_or("");
    let hostport = authority.rsplit('@').next().unwrap_or("");
    if hostport.is_empty() {
        return Err(format!("bad URL `{s}`: no host"));
    }
    parse_host_port(hostport).map_err(|e| format!("bad URL `{s}`: {e}"))?;
    Ok(())
}

/// Checks a `cors` origin: `http://HOST[:PORT]` or `https://HOST[:PORT]`
/// written exactly as browsers send it in the `Origin` header (scheme and
/// host in lower case, no default port, no path, query, fragment or user),
/// because origins are matched as strings. Errors say what to write instead.
pub(crate) fn check_origin(s: &str) -> Result<(), String> {
    if s == "*" {
        return Err("bad origin `*`: to allow every origin write `cors on;`".into());
    }
    if s.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(format!(
            "bad origin `{}`: contains whitespace or control characters",
            s.escape_debug()
        ));
    }
    let lower = s.to_ascii_lowercase();
    let Some((scheme, rest)) = lower
        .split_once("://")
        .filter(|(scheme, _)| matches!(*scheme, "http" | "https"))
    else {
        return Err(format!(
            "bad origin `{s}`: expected `on`, `off` or origins like https://portal.example.com"
        ));
    };
    let authority = rest.split(['/', '?', '#']).next().unwrap_or("");
    if authority.contains('@') {
        return Err(format!("bad origin `{s}`: an origin has no user name"));
    }
    let hp = parse_host_port(authority).map_err(|e| format!("bad origin `{s}`: {e}"))?;
    let default_port = if scheme == "https" { 443 } else { 80 };
    let port = match hp.port {
        Some(p) if p != default_port => format!(":{p}"),
        _ => String::new(),
    };
    // What a browser would send for this origin (IPv6 in its shortest form).
    let host = match hp.host.strip_prefix('[').and_then(|h| h.strip_suffix(']')) {
        Some(ip) => ip
            .parse::<Ipv6Addr>()
            .map_or_else(|_| hp.host.to_owned(), |ip| format!("[{ip}]")),
        None => hp.host.to_owned(),
    };
    let canonical = format!("{scheme}://{host}{port}");
    if canonical == s {
        return Ok(());
    }
    let why = if authority.len() < rest.len() {
        "an origin has no path, query or fragment"
    } else if hp.port == Some(default_port) {
        "browsers leave the default port out of an origin"
    } else if lower != s {
        "browsers send an origin in lower case"
    } else {
        "browsers send an IPv6 address in its shortest form"
    };
    Err(format!("bad origin `{s}`: {why}; write `{canonical}`"))
}

/// Checks a balancer `url`: `http://` or `https://` and `HOST[:PORT]`,
/// nothing else. Returns it without a trailing `/`, so that paths can be
/// appended to it.
pub(crate) fn check_base_url(s: &str) -> Result<String, String> {
    check_http_url(s)?;
    let base = s.strip_suffix('/').unwrap_or(s);
    let rest = base.split_once("://").map_or("", |(_, r)| r);
    if rest.contains(['/', '?', '#', '@']) {
        return Err(format!(
            "bad URL `{s}`: expected only http(s)://HOST[:PORT], without a user, path, query or fragment"
        ));
    }
    Ok(base.to_owned())
}

/// Parses an IP network: `10.0.0.0/8`, `2001:db8::/32`, or a bare address,
/// which is a `/32` (IPv4) or `/128` (IPv6) network. Host bits below the
/// prefix are cleared (`10.1.2.3/16` is `10.1.0.0/16`).
pub fn parse_net(s: &str) -> Result<IpNet, String> {
    let (addr, prefix) = match s.split_once('/') {
        Some((a, p)) => (a, Some(p)),
        None => (s, None),
    };
    let Ok(ip) = addr.parse::<IpAddr>() else {
        return Err(format!(
            "bad network `{s}`: `{addr}` is not an IP address; expected an address or ADDRESS/PREFIX like 10.0.0.0/8"
        ));
    };
    let max: u8 = if ip.is_ipv4() { 32 } else { 128 };
    let len = match prefix {
        None => max,
        Some(p) => match parse_number(p) {
            Some(n) if n <= u64::from(max) => n as u8,
            _ => return Err(format!("bad network `{s}`: prefix length must be 0 to {max}")),
        },
    };
    IpNet::new(ip, len)
        .map(|n| n.trunc())
        .map_err(|_| format!("bad network `{s}`: prefix length must be 0 to {max}"))
}

/// Checks a country code: an assigned ISO 3166-1 alpha-2 code in upper case
/// (`DE`), as GeoIP databases report them.
pub(crate) fn check_country(s: &str) -> Result<(), String> {
    if COUNTRIES.binary_search(&s).is_ok() {
        return Ok(());
    }
    let upper = s.to_ascii_uppercase();
    let hint = match upper.as_str() {
        "UK" => Some("GB"),
        u if u != s => COUNTRIES.binary_search(&u).ok().map(|i| COUNTRIES[i]),
        _ => None,
    };
    let well_formed = s.len() == 2 && s.bytes().all(|b| b.is_ascii_uppercase());
    let mut msg = if well_formed {
        format!("bad country `{s}`: not an ISO 3166 country code")
    } else {
        format!(
            "bad country `{}`: must be a two-letter uppercase ISO 3166 code",
            s.escape_debug()
        )
    };
    match hint {
        Some(h) => msg.push_str(&format!("; did you mean `{h}`?")),
        None if !well_formed => msg.push_str(", like DE"),
        None => {}
    }
    Err(msg)
}

/// Checks a balancer server name: 1..=64 letters, digits, `_`, `.` and `-`.
pub(crate) fn check_server_name(name: &str) -> Result<(), String> {
    if name.is_empty() {
        return Err("server name is empty".into());
    }
    if let Some(c) = name
        .chars()
        .find(|&c| !(c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-')))
    {
        return Err(format!(
            "server name `{}` contains `{}`; use letters, digits, `_`, `.` and `-`",
            name.escape_debug(),
            c.escape_debug()
        ));
    }
    if name.len() > MAX_SERVER_NAME {
        return Err(format!(
            "server name is {} characters long; the limit is {MAX_SERVER_NAME}",
            name.len()
        ));
    }
    Ok(())
}

/// Checks a stream name: 1..=128 characters, `/`-separated segments of
/// `[A-Za-z0-9_.-]`, no empty, `.` or `..` segment, and no first segment that
/// shadows a node route ([`RESERVED_STREAM_PREFIXES`]).
pub fn check_stream_name(name: &str) -> Result<(), String> {
    if name.is_empty() {
        return Err("stream name is empty".into());
    }
    if let Some(c) = name
        .chars()
        .find(|&c| !(c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-' | '/')))
    {
        return Err(format!(
            "stream name `{}` contains `{}`; use letters, digits, `_`, `.`, `-`, and `/` between segments",
            name.escape_debug(),
            c.escape_debug()
        ));
    }
    if name.len() > MAX_STREAM_NAME {
        return Err(format!(
            "stream name is {} characters long; the limit is {MAX_STREAM_NAME}",
            name.len()
        ));
    }
    if name.starts_with('/') || name.ends_with('/') {
        return Err(format!("stream name `{name}` must not start or end with `/`"));
    }
    if name.contains("//") {
        return Err(format!("stream name `{name}` has an empty segment (`//`)"));
    }
    if let Some(seg) = name.split('/').find(|s| *s == "." || *s == "..") {
        return Err(format!("stream name `{name}` must not have a `{seg}` segment"));
    }
    let last = name.rsplit('/').next().unwrap_or(name);
    if last.starts_with("tracks-") {
        return Err(format!(
            "stream name `{name}` ends in a `tracks-…` segment, which URLs use for per-track playlists (`/NAME/tracks-v1/mono.m3u8`)"
        ));
    }
    let first = name.split('/').next().unwrap_or(name);
    if RESERVED_STREAM_PREFIXES.contains(&first) {
        return Err(format!(
            "stream name `{name}` collides with the node's own `/{first}` route"
        ));
    }
    Ok(())
}

/// Checks an `only`/`except` entry: a stream name that may use `*` and `?`
/// wildcards.
pub(crate) fn check_pattern(p: &str) -> Result<(), String> {
    if p.is_empty() {
        return Err("empty stream name pattern".into());
    }
    if p.len() > MAX_STREAM_NAME {
        return Err(format!(
            "stream name pattern is {} characters long; the limit is {MAX_STREAM_NAME}",
            p.len()
        ));
    }
    if let Some(c) = p
        .chars()
        .find(|&c| !(c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-' | '/' | '*' | '?')))
    {
        return Err(format!(
            "stream name pattern `{}` contains `{}`; use letters, digits, `_`, `.`, `-`, `/`, `*` and `?`",
            p.escape_debug(),
            c.escape_debug()
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::Ipv4Addr;

    #[test]
    fn durations() {
        let ok = [
            ("0", 0),
            ("10", 10_000),
            ("10s", 10_000),
            ("500ms", 500),
            ("5m", 300_000),
            ("2h", 7_200_000),
            ("2d", 172_800_000),
            ("007s", 7_000),
        ];
        for (s, ms) in ok {
            assert_eq!(parse_duration(s), Some(Duration::from_millis(ms)), "{s}");
        }
        let bad = [
            "",
            "s",
            "-1",
            "1.5s",
            "10S",
            "10 s",
            "10sec",
            "1w",
            "ms",
            " 1",
            "1ms5",
            "99999999999999999999999d",
            "18446744073709551615d",
            "١٢",
        ];
        for s in bad {
            assert_eq!(parse_duration(s), None, "{s}");
        }
    }

    #[test]
    fn durations_format_round_trip() {
        let table = [
            (0, "0s"),
            (500, "500ms"),
            (1_500, "1500ms"),
            (2_000, "2s"),
            (90_000, "90s"),
            (120_000, "2m"),
            (3_600_000, "1h"),
            (86_400_000, "1d"),
            (90_000_000, "25h"),
        ];
        for (ms, s) in table {
            let d = Duration::from_millis(ms);
            assert_eq!(format_duration(d), s);
            assert_eq!(parse_duration(s), Some(d));
        }
    }

    #[test]
    fn sizes() {
        let ok = [
            ("0", 0),
            ("1000", 1000),
            ("1000B", 1000),
            ("64K", 64 << 10),
            ("500M", 500 << 20),
            ("2G", 2 << 30),
            ("1T", 1 << 40),
            ("64KB", 64 << 10),
            ("500MB", 500 << 20),
            ("10GB", 10 << 30),
            ("2TB", 2 << 40),
        ];
        for (s, n) in ok {
            assert_eq!(parse_size(s), Some(n), "{s}");
            assert_eq!(parse_size(&format_size(n)), Some(n), "{s}");
        }
        for s in [
            "",
            "M",
            "500m",
            "500mb",
            "500Mb",
            "500MiB",
            "5BB",
            "1.5G",
            "-1G",
            "20000000T",
            "1 G",
        ] {
            assert_eq!(parse_size(s), None, "{s}");
        }
        assert_eq!(format_size(1000), "1000B");
        assert_eq!(format_size(1 << 30), "1G");
        assert_eq!(format_size(1536 << 20), "1536M");
    }

    #[test]
    fn percents_and_numbers() {
        assert_eq!(parse_percent("97%"), Some(97));
        assert_eq!(parse_percent("97"), None);
        assert_eq!(parse_percent("%"), None);
        assert_eq!(parse_percent("9%7"), None);
        assert_eq!(parse_number("6"), Some(6));
        assert_eq!(parse_number("6s"), None);
    }

    #[test]
    fn listen_addresses() {
        let any6 = IpAddr::V6(Ipv6Addr::UNSPECIFIED);
        let any4 = IpAddr::V4(Ipv4Addr::UNSPECIFIED);
        let addr = |s: &str| Ok(s.parse::<SocketAddr>().expect("valid test input"));
        assert_eq!(parse_listen("8080", any6), addr("[::]:8080"));
        assert_eq!(parse_listen("8080", any4), addr("0.0.0.0:8080"));
        assert_eq!(parse_listen("0", any6), addr("[::]:0"));
        assert_eq!(parse_listen("127.0.0.1:80", any6), addr("127.0.0.1:80"));
        assert_eq!(parse_listen("0.0.0.0:80", any6), addr("0.0.0.0:80"));
        assert_eq!(parse_listen("[::1]:8080", any4), addr("[::1]:8080"));
        for s in ["", "65536", "localhost:80", "::1:80", ":80", "1.2.3.4", "[::]"] {
            assert!(parse_listen(s, any6).is_err(), "{s}");
        }
    }

    #[test]
    fn origins() {
        for s in [
            "https://portal.example.com",
            "http://a",
            "https://b.example:8443",
            "http://10.0.0.1:8080",
            "http://[::1]:3000",
            "https://a:80",
            "http://a:443",
        ] {
            assert_eq!(check_origin(s), Ok(()), "{s}");
        }
        let bad = [
            ("*", "bad origin `*`: to allow every origin write `cors on;`"),
            (
                "portal.example.com",
                "bad origin `portal.example.com`: expected `on`, `off` or origins like https://portal.example.com",
            ),
            (
                "ftp://a",
                "bad origin `ftp://a`: expected `on`, `off` or origins like https://portal.example.com",
            ),
            (
                "https://a.example/",
                "bad origin `https://a.example/`: an origin has no path, query or fragment; write `https://a.example`",
            ),
            (
                "https://a.example:8443/player?x#y",
                "bad origin `https://a.example:8443/player?x#y`: an origin has no path, query or fragment; write `https://a.example:8443`",
            ),
            (
                "https://a.example:443",
                "bad origin `https://a.example:443`: browsers leave the default port out of an origin; write `https://a.example`",
            ),
            (
                "http://a:80",
                "bad origin `http://a:80`: browsers leave the default port out of an origin; write `http://a`",
            ),
            (
                "HTTPS://Portal.Example.com",
                "bad origin `HTTPS://Portal.Example.com`: browsers send an origin in lower case; write `https://portal.example.com`",
            ),
            ("https://u@a", "bad origin `https://u@a`: an origin has no user name"),
            ("https://", "bad origin `https://`: bad host name ``"),
            ("https://a:0", "bad origin `https://a:0`: bad port `0`: expected 1..65535"),
            ("https://a b", "bad origin `https://a b`: contains whitespace or control characters"),
            (
                "http://[0:0::1]:3000",
                "bad origin `http://[0:0::1]:3000`: browsers send an IPv6 address in its shortest form; write `http://[::1]:3000`",
            ),
        ];
        for (s, msg) in bad {
            assert_eq!(check_origin(s), Err(msg.to_string()), "{s}");
        }
    }

    #[test]
    fn host_ports() {
        let hp = |h, p| Ok(HostPort { host: h, port: p });
        assert_eq!(parse_host_port("streamer:8081"), hp("streamer", Some(8081)));
        assert_eq!(parse_host_port("peer1.example.com"), hp("peer1.example.com", None));
        assert_eq!(parse_host_port("[::1]:80"), hp("[::1]", Some(80)));
        assert_eq!(parse_host_port("[fe80::1]"), hp("[fe80::1]", None));
        for s in [
            "", ":80", "a:0", "a:65536", "a:", "::1", "[::1", "[x]:1", "[::1]80", "a..b", "a b", "a/b",
        ] {
            assert!(parse_host_port(s).is_err(), "{s}");
        }
    }

    #[test]
    fn http_urls() {
        for s in ["http://a", "https://user:pw@a.b:8443/x?y=1#z", "http://[::1]:80/"] {
            assert_eq!(check_http_url(s), Ok(()), "{s}");
        }
        for s in [
            "http://",
            "http:///x",
            "ftp://a",
            "http://a b/",
            "http://a:x/",
            "http://u@/x",
        ] {
            assert!(check_http_url(s).is_err(), "{s}");
        }
    }

    #[test]
    fn base_urls() {
        assert_eq!(
            check_base_url("http://10.0.0.1:8080"),
            Ok("http://10.0.0.1:8080".into())
        );
        assert_eq!(check_base_url("https://a.b/"), Ok("https://a.b".into()));
        assert_eq!(check_base_url("http://[::1]:80"), Ok("http://[::1]:80".into()));
        for s in [
            "http://a/x",
            "http://a//",
            "http://a?x",
            "http://a#x",
            "http://u@a",
            "ftp://a",
            "http://",
        ] {
            assert!(check_base_url(s).is_err(), "{s}");
        }
    }

    #[test]
    fn networks() {
        let net = |s: &str| s.parse::<IpNet>().expect("valid test input");
        assert_eq!(parse_net("10.0.0.0/8"), Ok(net("10.0.0.0/8")));
        assert_eq!(parse_net("10.1.2.3/16"), Ok(net("10.1.0.0/16")));
        assert_eq!(parse_net("127.0.0.1"), Ok(net("127.0.0.1/32")));
        assert_eq!(parse_net("::1"), Ok(net("::1/128")));
        assert_eq!(parse_net("2001:db8::1/32"), Ok(net("2001:db8::/32")));
        assert_eq!(parse_net("0.0.0.0/0"), Ok(net("0.0.0.0/0")));
        assert_eq!(
            parse_net("10.0.0.0/33"),
            Err("bad network `10.0.0.0/33`: prefix length must be 0 to 32".into())
        );
        assert_eq!(
            parse_net("300.1.1.1/8"),
            Err("bad network `300.1.1.1/8`: `300.1.1.1` is not an IP address; expected an address or ADDRESS/PREFIX like 10.0.0.0/8".into())
        );
        for s in [
            "",
            "/8",
            "10.0.0.0/",
            "10.0.0.0/x",
            "::/129",
            "[::1]",
            "10.0.0.0/8/8",
            "10.0.0.0/99999999999999999999",
        ] {
            assert!(parse_net(s).is_err(), "{s}");
        }
    }

    #[test]
    fn countries() {
        assert!(COUNTRIES.windows(2).all(|w| w[0] < w[1]), "sorted, no duplicates");
        for s in ["DE", "AT", "US", "GB", "XK", "ZW", "AD"] {
            assert_eq!(check_country(s), Ok(()), "{s}");
        }
        let bad = [
            (
                "Germany",
                "bad country `Germany`: must be a two-letter uppercase ISO 3166 code, like DE",
            ),
            (
                "de",
                "bad country `de`: must be a two-letter uppercase ISO 3166 code; did you mean `DE`?",
            ),
            (
                "UK",
                "bad country `UK`: not an ISO 3166 country code; did you mean `GB`?",
            ),
            (
                "uk",
                "bad country `uk`: must be a two-letter uppercase ISO 3166 code; did you mean `GB`?",
            ),
            ("XX", "bad country `XX`: not an ISO 3166 country code"),
            (
                "",
                "bad country ``: must be a two-letter uppercase ISO 3166 code, like DE",
            ),
        ];
        for (s, msg) in bad {
            assert_eq!(check_country(s), Err(msg.to_string()), "{s}");
        }
    }

    #[test]
    fn server_names() {
        for s in ["s1", "edge-1.fra", "A_b", &"x".repeat(64)] {
            assert_eq!(check_server_name(s), Ok(()), "{s}");
        }
        assert_eq!(check_server_name(""), Err("server name is empty".into()));
        assert_eq!(
            check_server_name("a/b"),
            Err("server name `a/b` contains `/`; use letters, digits, `_`, `.` and `-`".into())
        );
        assert_eq!(
            check_server_name(&"x".repeat(65)),
            Err("server name is 65 characters long; the limit is 64".into())
        );
    }

    #[test]
    fn stream_names() {
        for s in [
            "news",
            "mylive/cam1",
            "a.b-c_d",
            "a/b/c",
            "x".repeat(128).as_str(),
            "apis",
            "x/api",
            "tracks-v1/news",
        ] {
            assert_eq!(check_stream_name(s), Ok(()), "{s}");
        }
        let bad = [
            ("", "stream name is empty"),
            (
                "a b",
                "stream name `a b` contains ` `; use letters, digits, `_`, `.`, `-`, and `/` between segments",
            ),
            ("/a", "stream name `/a` must not start or end with `/`"),
            ("a/", "stream name `a/` must not start or end with `/`"),
            ("a//b", "stream name `a//b` has an empty segment (`//`)"),
            ("a/../b", "stream name `a/../b` must not have a `..` segment"),
            ("./b", "stream name `./b` must not have a `.` segment"),
            ("api/x", "stream name `api/x` collides with the node's own `/api` route"),
            (
                "tv/tracks-v1",
                "stream name `tv/tracks-v1` ends in a `tracks-…` segment, which URLs use for per-track playlists (`/NAME/tracks-v1/mono.m3u8`)",
            ),
            (
                "metrics",
                "stream name `metrics` collides with the node's own `/metrics` route",
            ),
            (
                "healthz",
                "stream name `healthz` collides with the node's own `/healthz` route",
            ),
            (
                "readyz/1",
                "stream name `readyz/1` collides with the node's own `/readyz` route",
            ),
        ];
        for (s, msg) in bad {
            assert_eq!(check_stream_name(s), Err(msg.to_string()), "{s}");
        }
        assert_eq!(
            check_stream_name(&"x".repeat(129)),
            Err("stream name is 129 characters long; the limit is 128".to_string())
        );
    }

    #[test]
    fn patterns() {
        assert_eq!(check_pattern("mylive/*"), Ok(()));
        assert_eq!(check_pattern("cam?"), Ok(()));
        assert!(check_pattern("").is_err());
        assert!(check_pattern("a b").is_err());
    }
}
