//! Input URLs: where a stream's media comes from.
//!
//! Accepted forms:
//! - `udp://GROUP:PORT[?iface=IPV4&source=IP]`, also VLC style
//!   `udp://@GROUP:PORT` and `udp://SOURCE@GROUP:PORT`, and unicast
//!   `udp://:PORT` / `udp://0.0.0.0:PORT`;
//! - `tshttp://...` / `tshttps://...` (MPEG-TS over HTTP, stored as
//!   `http://` / `https://`), and `http://` / `https://` as written;
//! - `publish://` (pushed by an encoder);
//! - `file:///abs/path` or `file://rel/path`, and for `backup` a bare path;
//! - `builtin://NAME`, the embedded test channels;
//! - `rtmp://HOST[:PORT]/APP/NAME` (pulled from an RTMP server);
//! - `srt://HOST:PORT[?streamid=…&passphrase=…&latency=MS]` (MPEG-TS from a
//!   remote SRT listener, strom calling; values may be percent-encoded).
//!
//! Every MPEG-TS input (udp, http, srt, publish, file) takes a program selector
//! `program=N` in its query (`udp://239.0.0.1:1234?program=202`,
//! `tshttp://h/mpts.ts?program=202`, `publish://?program=202`,
//! `file:///srv/mpts.ts?program=202`): the `program_number` of a
//! multi-program TS to follow. strom consumes it; it is not sent to an HTTP
//! source. Without it, the first program with video is followed.
//!
//! Invariant: `Display` prints the canonical URL, and parsing that URL gives
//! back an equal [`Input`].

use crate::value::check_http_url;
use std::fmt;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::str::FromStr;

/// Where a stream's media comes from.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Input {
    /// MPEG-TS over UDP. For a multicast group, `iface` is the local IPv4
    /// address to join on and `source` selects source-specific multicast.
    Udp {
        /// Group (or unicast bind) address and port; the port is never 0.
        addr: SocketAddr,
        /// Local interface address for the multicast join (IPv4 groups only).
        iface: Option<Ipv4Addr>,
        /// Source-specific multicast sender (same family as `addr`).
        source: Option<IpAddr>,
        /// MPTS `program_number` to follow (`?program=N`).
        program: Option<u16>,
    },
    /// MPEG-TS pulled over HTTP(S); `url` starts with `http://` or `https://`
    /// and has a host.
    Http {
        /// The URL as fetched (without strom's own `program=` parameter).
        url: String,
        /// MPTS `program_number` to follow (`program=N` in the query).
        program: Option<u16>,
    },
    /// An encoder pushes the stream to strom.
    Publish {
        /// MPTS `program_number` to follow (`publish://?program=N`).
        program: Option<u16>,
    },
    /// A local MPEG-TS file, played in a loop.
    File {
        /// Absolute or relative (to the working directory) path; never empty.
        path: PathBuf,
        /// MPTS `program_number` to follow (`file://PATH?program=N`).
        program: Option<u16>,
    },
    /// A channel embedded in the binary, such as `builtin://demo`.
    Builtin {
        /// Letters, digits, `_` and `-`.
        name: String,
    },
    /// A stream pulled from an RTMP server: `rtmp://HOST[:PORT]/APP/NAME`.
    /// The first path component is the application, the rest (query
    /// included) the stream name it is asked to play, as ffmpeg and
    /// Flussonic split them.
    Rtmp {
        /// DNS name, IPv4 address or bracketed IPv6 address.
        host: String,
        /// `None`: the default 1935.
        port: Option<u16>,
        /// The application (`connect`'s `app`); never empty.
        app: String,
        /// The stream name (`play`'s argument), `?query` included; never empty.
        name: String,
    },
    /// MPEG-TS over SRT, calling a remote SRT listener:
    /// `srt://HOST:PORT?streamid=…&passphrase=…&latency=MS&program=N`.
    Srt {
        /// DNS name, IPv4 address or bracketed IPv6 address.
        host: String,
        port: u16,
        /// The SRT streamid sent to the listener (percent-decoded).
        streamid: Option<String>,
        /// Encryption passphrase, 10–79 characters (percent-decoded).
        passphrase: Option<String>,
        /// Receiver latency; [`SRT_DEFAULT_LATENCY`] when not given.
        latency: std::time::Duration,
        /// MPTS `program_number` to follow.
        program: Option<u16>,
    },
}

/// SRT's default receiver latency (120 ms, as libsrt's).
pub const SRT_DEFAULT_LATENCY: std::time::Duration = std::time::Duration::from_millis(120);
/// SRT latencies strom accepts, in milliseconds.
pub const SRT_LATENCY_MS: std::ops::RangeInclusive<u64> = 20..=10_000;
/// The default RTMP port.
pub const RTMP_DEFAULT_PORT: u16 = 1935;

/// Why an input URL was rejected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct InputError(pub String);

const SCHEMES: &str =
    "udp://, tshttp://, tshttps://, http://, https://, rtmp://, srt://, publish://, file://, builtin://";

impl Input {
    /// `publish://` without a program selector.
    pub const PUBLISH: Input = Input::Publish { program: None };

    /// The MPTS program this input follows, if one was chosen.
    pub fn program(&self) -> Option<u16> {
        match self {
            Input::Udp { program, .. }
            | Input::Http { program, .. }
            | Input::Publish { program }
            | Input::File { program, .. }
            | Input::Srt { program, .. } => *program,
            Input::Builtin { .. } | Input::Rtmp { .. } => None,
        }
    }

    /// Parses a `backup` value: like [`Input::from_str`], but a value without
    /// `://` is a file path (`PATH[?program=N]`, as `file://` takes), and `publish://` is refused (a backup must play
    /// without anyone pushing).
    pub fn parse_backup(s: &str) -> Result<Input, InputError> {
        if !s.contains("://") {
            if s.is_empty() {
                return Err(InputError("empty backup path".into()));
            }
            // A bare path reads as `file://PATH`, `?program=N` included, so
            // that it prints back to the same input.
            return format!("file://{s}").parse();
        }
        match s.parse()? {
            Input::Publish { .. } => Err(InputError(
                "`publish://` cannot be a backup; use a file or a URL".into(),
            )),
            input => Ok(input),
        }
    }
}

impl FromStr for Input {
    type Err = InputError;

    fn from_str(s: &str) -> Result<Input, InputError> {
        let err = |m: String| Err(InputError(m));
        let Some((scheme, rest)) = s.split_once("://") else {
            return err(format!("bad input `{s}`: expected a URL such as udp://239.0.0.1:1234"));
        };
        match scheme {
            "udp" => parse_udp(s, rest),
            "tshttp" | "tshttps" | "http" | "https" => {
                let url = match scheme {
                    "tshttp" => format!("http://{rest}"),
                    "tshttps" => format!("https://{rest}"),
                    _ => s.to_owned(),
                };
                let (url, program) = take_program(&url).map_err(|m| InputError(format!("bad input `{s}`: {m}")))?;
                check_http_url(&url).map_err(InputError)?;
                Ok(Input::Http { url, program })
            }
            "publish" => match rest.strip_prefix('?').map(parse_program) {
                None if rest.is_empty() => Ok(Input::PUBLISH),
                Some(Ok(program)) => Ok(Input::Publish { program: Some(program) }),
                Some(Err(m)) => err(format!("bad input `{s}`: {m}")),
                None => err(format!(
                    "bad input `{s}`: `publish://` takes nothing after `://` but `?program=N`"
                )),
            },
            "file" => {
                let (path, program) = match rest.rsplit_once("?program=") {
                    Some((path, n)) => match parse_program(&format!("program={n}")) {
                        Ok(p) => (path, Some(p)),
                        Err(m) => return err(format!("bad input `{s}`: {m}")),
                    },
                    None => (rest, None),
                };
                if path.is_empty() {
                    return err(format!("bad input `{s}`: no file path"));
                }
                Ok(Input::File {
                    path: path.into(),
                    program,
                })
            }
            "rtmp" => parse_rtmp(s, rest),
            "srt" => parse_srt(s, rest),
            "builtin" => {
                if rest.is_empty()
                    || !rest
                        .bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
                {
                    return err(format!(
                        "bad input `{s}`: expected builtin://NAME with a name of letters, digits, `_` and `-`"
                    ));
                }
                Ok(Input::Builtin { name: rest.into() })
            }
            _ => err(format!(
                "unsupported input scheme `{scheme}://` in `{s}`; supported: {SCHEMES}"
            )),
        }
    }
}

/// Parses `program=N`, a TS `program_number` (1..=65535; 0 is the network PID entry).
fn parse_program(pair: &str) -> Result<u16, String> {
    let value = pair
        .strip_prefix("program=")
        .ok_or_else(|| format!("unknown option `{pair}`; expected `program=N`"))?;
    match value.parse::<u16>() {
        Ok(n) if n > 0 && value.bytes().all(|b| b.is_ascii_digit()) => Ok(n),
        _ => Err(format!("bad program `{value}`: expected a program_number 1..65535")),
    }
}

/// Splits strom's `program=N` parameter off an HTTP URL's query.
fn take_program(url: &str) -> Result<(String, Option<u16>), String> {
    let Some((base, query)) = url.split_once('?') else {
        return Ok((url.to_owned(), None));
    };
    let mut program = None;
    let mut kept: Vec<&str> = Vec::new();
    for pair in query.split('&') {
        if pair.starts_with("program=") {
            if program.is_some() {
                return Err("`program` given twice".into());
            }
            program = Some(parse_program(pair)?);
        } else {
            kept.push(pair);
        }
    }
    let url = if kept.is_empty() {
        base.to_owned()
    } else {
        format!("{base}?{}", kept.join("&"))
    };
    Ok((url, program))
}

fn parse_rtmp(s: &str, rest: &str) -> Result<Input, InputError> {
    let bad = |m: &str| Err(InputError(format!("bad rtmp URL `{s}`: {m}")));
    let Some((hostport, path)) = rest.split_once('/') else {
        return bad("expected rtmp://HOST[:PORT]/APP/NAME");
    };
    let hp = match crate::value::parse_host_port(hostport) {
        Ok(hp) => hp,
        Err(m) => return bad(&m),
    };
    if hp.host.is_empty() {
        return bad("no host");
    }
    let Some((app, name)) = path.split_once('/') else {
        return bad("expected an application and a stream name: rtmp://HOST[:PORT]/APP/NAME");
    };
    if app.is_empty() || app.contains('?') {
        return bad("empty or malformed application name");
    }
    if name.is_empty() || name.starts_with('?') {
        return bad("no stream name after the application");
    }
    if !name.bytes().chain(app.bytes()).all(|b| b.is_ascii_graphic()) {
        return bad("spaces and control characters are not allowed");
    }
    Ok(Input::Rtmp {
        host: hp.host.to_owned(),
        port: hp.port,
        app: app.to_owned(),
        name: name.to_owned(),
    })
}

fn parse_srt(s: &str, rest: &str) -> Result<Input, InputError> {
    let bad = |m: &str| Err(InputError(format!("bad srt URL `{s}`: {m}")));
    let (hostport, query) = match rest.split_once('?') {
        Some((h, q)) => (h, Some(q)),
        None => (rest, None),
    };
    let hostport = hostport.strip_suffix('/').unwrap_or(hostport);
    let hp = match crate::value::parse_host_port(hostport) {
        Ok(hp) => hp,
        Err(m) => return bad(&m),
    };
    if hp.host.is_empty() {
        return bad("no host; strom calls a remote SRT listener (for publishers, use a top-level `srt PORT;`)");
    }
    let Some(port) = hp.port else {
        return bad("missing port, e.g. srt://192.0.2.1:9000");
    };
    let mut streamid = None;
    let mut passphrase = None;
    let mut latency = None;
    let mut program = None;
    for pair in query.unwrap_or("").split('&').filter(|p| !p.is_empty()) {
        let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
        let twice = |k: &str| format!("`{k}` given twice");
        match key {
            "streamid" => {
                if streamid.is_some() {
                    return bad(&twice(key));
                }
                let Some(v) = percent_decode(value) else {
                    return bad("bad percent-encoding in `streamid`");
                };
                if v.is_empty() || v.len() > 512 {
                    return bad("`streamid` must be 1 to 512 bytes");
                }
                streamid = Some(v);
            }
            "passphrase" => {
                if passphrase.is_some() {
                    return bad(&twice(key));
                }
                let Some(v) = percent_decode(value) else {
                    return bad("bad percent-encoding in `passphrase`");
                };
                if !(10..=79).contains(&v.chars().count()) {
                    return bad("`passphrase` must be 10 to 79 characters");
                }
                passphrase = Some(v);
            }
            "latency" => {
                if latency.is_some() {
                    return bad(&twice(key));
                }
                match parse_srt_latency(value) {
                    Some(d) => latency = Some(d),
                    None => {
                        return bad(&format!(
                            "bad latency `{value}`: expected milliseconds {}..={} (or a duration such as 300ms)",
                            SRT_LATENCY_MS.start(),
                            SRT_LATENCY_MS.end()
                        ))
                    }
                }
            }
            "program" => {
                if program.is_some() {
                    return bad(&twice(key));
                }
                match parse_program(pair) {
                    Ok(p) => program = Some(p),
                    Err(m) => return bad(&m),
                }
            }
            "mode" if value == "caller" => {}
            "mode" => return bad("only `mode=caller` is supported; for publishers use a top-level `srt PORT;`"),
            _ => {
                return bad(&format!(
                    "unknown option `{key}`; expected `streamid`, `passphrase`, `latency`, `program` or `mode`"
                ))
            }
        }
    }
    Ok(Input::Srt {
        host: hp.host.to_owned(),
        port,
        streamid,
        passphrase,
        latency: latency.unwrap_or(SRT_DEFAULT_LATENCY),
        program,
    })
}

/// An SRT latency: a bare number is milliseconds (as libsrt's option), or
/// a duration with a unit (`300ms`, `1s`); within [`SRT_LATENCY_MS`].
pub(crate) fn parse_srt_latency(s: &str) -> Option<std::time::Duration> {
    let d = match crate::value::parse_number(s) {
        Some(ms) => std::time::Duration::from_millis(ms),
        None => crate::value::parse_duration(s)?,
    };
    let ms = u64::try_from(d.as_millis()).ok()?;
    (SRT_LATENCY_MS.contains(&ms) && d.subsec_nanos() % 1_000_000 == 0).then_some(d)
}

/// Decodes `%XX` escapes into UTF-8 text; `None` on a bad escape or invalid UTF-8.
pub(crate) fn percent_decode(s: &str) -> Option<String> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' {
            let hex = b.get(i + 1..i + 3)?;
            let hex = std::str::from_utf8(hex).ok()?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

/// Escapes what cannot stand in a config word or a query value as `%XX`.
fn percent_encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_graphic() && !matches!(b, b'%' | b'&' | b'#' | b';' | b'{' | b'}' | b'"' | b'\'' | b'\\') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

fn parse_udp(s: &str, rest: &str) -> Result<Input, InputError> {
    let bad = |m: &str| Err(InputError(format!("bad udp URL `{s}`: {m}")));
    let (hostport, query) = match rest.split_once('?') {
        Some((h, q)) => (h, Some(q)),
        None => (rest, None),
    };
    if hostport.contains('/') {
        return bad("unexpected path after the port");
    }
    let mut source: Option<IpAddr> = None;
    let hostport = match hostport.split_once('@') {
        Some(("", hp)) => hp,
        Some((src, hp)) => {
            let Ok(ip) = src.parse() else {
                return bad(&format!("bad source address `{src}` before `@`"));
            };
            source = Some(ip);
            hp
        }
        None => hostport,
    };
    let (host, port) = if let Some(v6) = hostport.strip_prefix('[') {
        match v6.split_once("]:") {
            Some((h, p)) => (h, p),
            None if v6.contains(']') => return bad("missing port, e.g. udp://[ff0e::1]:1234"),
            None => return bad("missing `]`"),
        }
    } else {
        match hostport.rsplit_once(':') {
            Some((h, p)) => (h, p),
            None => return bad("missing port, e.g. udp://239.0.0.1:1234"),
        }
    };
    let port: u16 = match port.parse() {
        Ok(p) if p != 0 && port.bytes().all(|b| b.is_ascii_digit()) => p,
        _ => return bad(&format!("bad port `{port}`: expected 1..65535")),
    };
    let ip: IpAddr = if host.is_empty() {
        IpAddr::V4(Ipv4Addr::UNSPECIFIED)
    } else if hostport.starts_with('[') {
        match host.parse::<std::net::Ipv6Addr>() {
            Ok(ip) => IpAddr::V6(ip),
            Err(_) => return bad(&format!("bad IPv6 address `{host}`")),
        }
    } else {
        match host.parse::<Ipv4Addr>() {
            Ok(ip) => IpAddr::V4(ip),
            Err(_) => return bad(&format!("bad address `{host}`: expected an IP address")),
        }
    };
    let mut iface = None;
    let mut program = None;
    for pair in query.unwrap_or("").split('&').filter(|p| !p.is_empty()) {
        let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
        match key {
            "program" => {
                if program.is_some() {
                    return bad("`program` given twice");
                }
                match parse_program(pair) {
                    Ok(p) => program = Some(p),
                    Err(m) => return bad(&m),
                }
            }
            "iface" => {
                if iface.is_some() {
                    return bad("`iface` given twice");
                }
                match value.parse::<Ipv4Addr>() {
                    Ok(ip) => iface = Some(ip),
                    Err(_) => {
                        return bad(&format!(
                            "bad multicast iface `{value}`: expected the interface's IPv4 address"
                        ))
                    }
                }
            }
            "source" => {
                if source.is_some() {
                    return bad("source address given twice");
                }
                match value.parse() {
                    Ok(ip) => source = Some(ip),
                    Err(_) => return bad(&format!("bad source address `{value}`")),
                }
            }
            _ => {
                return bad(&format!(
                    "unknown option `{key}`; expected `iface`, `source` or `program`"
                ))
            }
        }
    }
    if iface.is_some() && !(ip.is_multicast() && ip.is_ipv4()) {
        return bad("`iface` needs an IPv4 multicast group address");
    }
    if let Some(src) = source {
        if !ip.is_multicast() {
            return bad("a source address needs a multicast group address");
        }
        if src.is_ipv4() != ip.is_ipv4() {
            return bad("the source and group addresses are of different IP families");
        }
    }
    Ok(Input::Udp {
        addr: SocketAddr::new(ip, port),
        iface,
        source,
        program,
    })
}

impl fmt::Display for Input {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Input::Udp {
                addr,
                iface,
                source,
                program,
            } => {
                write!(f, "udp://{addr}")?;
                let mut sep = '?';
                if let Some(i) = iface {
                    write!(f, "{sep}iface={i}")?;
                    sep = '&';
                }
                if let Some(s) = source {
                    write!(f, "{sep}source={s}")?;
                    sep = '&';
                }
                if let Some(p) = program {
                    write!(f, "{sep}program={p}")?;
                }
                Ok(())
            }
            Input::Http { url, program } => {
                f.write_str(url)?;
                match program {
                    Some(p) if url.contains('?') => write!(f, "&program={p}"),
                    Some(p) => write!(f, "?program={p}"),
                    None => Ok(()),
                }
            }
            Input::Rtmp { host, port, app, name } => {
                write!(f, "rtmp://{host}")?;
                if let Some(p) = port {
                    write!(f, ":{p}")?;
                }
                write!(f, "/{app}/{name}")
            }
            Input::Srt {
                host,
                port,
                streamid,
                passphrase,
                latency,
                program,
            } => {
                write!(f, "srt://{host}:{port}")?;
                let mut sep = '?';
                let mut put = |f: &mut fmt::Formatter<'_>, k: &str, v: &str| {
                    let r = write!(f, "{sep}{k}={v}");
                    sep = '&';
                    r
                };
                if let Some(s) = streamid {
                    put(f, "streamid", &percent_encode(s))?;
                }
                if let Some(p) = passphrase {
                    put(f, "passphrase", &percent_encode(p))?;
                }
                if *latency != SRT_DEFAULT_LATENCY {
                    put(f, "latency", &latency.as_millis().to_string())?;
                }
                if let Some(p) = program {
                    put(f, "program", &p.to_string())?;
                }
                Ok(())
            }
            Input::Publish { program: None } => f.write_str("publish://"),
            Input::Publish { program: Some(p) } => write!(f, "publish://?program={p}"),
            Input::File { path, program } => {
                write!(f, "file://{}", path.display())?;
                match program {
                    Some(p) => write!(f, "?program={p}"),
                    None => Ok(()),
                }
            }
            Input::Builtin { name } => write!(f, "builtin://{name}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn udp(addr: &str, iface: Option<&str>, source: Option<&str>) -> Input {
        Input::Udp {
            addr: addr.parse().expect("valid test input"),
            iface: iface.map(|s| s.parse().expect("valid test input")),
            source: source.map(|s| s.parse().expect("valid test input")),
            program: None,
        }
    }

    #[test]
    fn udp_forms() {
        let table = [
            (
                "udp://239.0.0.1:1234",
                udp("239.0.0.1:1234", None, None),
                "udp://239.0.0.1:1234",
            ),
            (
                "udp://@239.0.0.1:1234",
                udp("239.0.0.1:1234", None, None),
                "udp://239.0.0.1:1234",
            ),
            (
                "udp://239.0.0.1:1234?iface=10.0.0.1",
                udp("239.0.0.1:1234", Some("10.0.0.1"), None),
                "udp://239.0.0.1:1234?iface=10.0.0.1",
            ),
            (
                "udp://239.0.0.1:1234?source=10.1.1.1&iface=10.0.0.1",
                udp("239.0.0.1:1234", Some("10.0.0.1"), Some("10.1.1.1")),
                "udp://239.0.0.1:1234?iface=10.0.0.1&source=10.1.1.1",
            ),
            (
                "udp://10.1.1.1@232.1.1.1:5000",
                udp("232.1.1.1:5000", None, Some("10.1.1.1")),
                "udp://232.1.1.1:5000?source=10.1.1.1",
            ),
            ("udp://:1234", udp("0.0.0.0:1234", None, None), "udp://0.0.0.0:1234"),
            (
                "udp://0.0.0.0:1234",
                udp("0.0.0.0:1234", None, None),
                "udp://0.0.0.0:1234",
            ),
            (
                "udp://[ff0e::1]:1234",
                udp("[ff0e::1]:1234", None, None),
                "udp://[ff0e::1]:1234",
            ),
        ];
        for (s, want, canon) in table {
            let got: Input = s.parse().expect("valid test input");
            assert_eq!(got, want, "{s}");
            assert_eq!(got.to_string(), canon);
            assert_eq!(canon.parse::<Input>().expect("valid test input"), want);
        }
    }

    #[test]
    fn udp_errors() {
        let table = [
            ("udp://239.0.0.1", "bad udp URL `udp://239.0.0.1`: missing port, e.g. udp://239.0.0.1:1234"),
            ("udp://239.0.0.1:0", "bad udp URL `udp://239.0.0.1:0`: bad port `0`: expected 1..65535"),
            ("udp://239.0.0.1:+5", "bad udp URL `udp://239.0.0.1:+5`: bad port `+5`: expected 1..65535"),
            ("udp://host:1", "bad udp URL `udp://host:1`: bad address `host`: expected an IP address"),
            (
                "udp://239.0.0.1:1?iface=eth0",
                "bad udp URL `udp://239.0.0.1:1?iface=eth0`: bad multicast iface `eth0`: expected the interface's IPv4 address",
            ),
            ("udp://10.0.0.1:1?iface=10.0.0.2", "bad udp URL `udp://10.0.0.1:1?iface=10.0.0.2`: `iface` needs an IPv4 multicast group address"),
            ("udp://239.0.0.1:1?ttl=3", "bad udp URL `udp://239.0.0.1:1?ttl=3`: unknown option `ttl`; expected `iface`, `source` or `program`"),
            ("udp://239.0.0.1:1/x", "bad udp URL `udp://239.0.0.1:1/x`: unexpected path after the port"),
            ("udp://[ff0e::1]", "bad udp URL `udp://[ff0e::1]`: missing port, e.g. udp://[ff0e::1]:1234"),
            (
                "udp://239.0.0.1:1?source=::1",
                "bad udp URL `udp://239.0.0.1:1?source=::1`: the source and group addresses are of different IP families",
            ),
        ];
        for (s, msg) in table {
            assert_eq!(s.parse::<Input>(), Err(InputError(msg.into())), "{s}");
        }
    }

    #[test]
    fn other_schemes() {
        let http = |u: &str| Input::Http {
            url: u.into(),
            program: None,
        };
        let table = [
            ("tshttp://10.0.0.5/news.ts", http("http://10.0.0.5/news.ts")),
            ("tshttps://cdn.example/a.ts", http("https://cdn.example/a.ts")),
            ("http://h:8080/x?y", http("http://h:8080/x?y")),
            ("publish://", Input::PUBLISH),
            ("publish://?program=7", Input::Publish { program: Some(7) }),
            (
                "tshttp://h/mpts.ts?a=1&program=202&b",
                Input::Http {
                    url: "http://h/mpts.ts?a=1&b".into(),
                    program: Some(202),
                },
            ),
            (
                "http://h/mpts.ts?program=202",
                Input::Http {
                    url: "http://h/mpts.ts".into(),
                    program: Some(202),
                },
            ),
            (
                "file:///srv/mpts.ts?program=101",
                Input::File {
                    path: "/srv/mpts.ts".into(),
                    program: Some(101),
                },
            ),
            (
                "file:///srv/a.ts",
                Input::File {
                    path: "/srv/a.ts".into(),
                    program: None,
                },
            ),
            (
                "file://rel/a.ts",
                Input::File {
                    path: "rel/a.ts".into(),
                    program: None,
                },
            ),
            ("builtin://demo", Input::Builtin { name: "demo".into() }),
        ];
        for (s, want) in table {
            let got: Input = s.parse().expect("valid test input");
            assert_eq!(got, want, "{s}");
            assert_eq!(got.to_string().parse::<Input>().expect("valid test input"), want);
        }
        assert_eq!(Input::PUBLISH.to_string(), "publish://");
        assert_eq!(http("http://a/b").to_string(), "http://a/b");
        assert_eq!(
            Input::File {
                path: "/x".into(),
                program: None
            }
            .to_string(),
            "file:///x"
        );
        let mpts: Input = "udp://239.0.0.1:1234?program=202".parse().expect("valid");
        assert_eq!(mpts.program(), Some(202));
        assert_eq!(mpts.to_string(), "udp://239.0.0.1:1234?program=202");
    }

    #[test]
    fn other_errors() {
        let table = [
            ("rtsp://a/b", "unsupported input scheme `rtsp://` in `rtsp://a/b`; supported: udp://, tshttp://, tshttps://, http://, https://, rtmp://, srt://, publish://, file://, builtin://"),
            ("tshttp:///x.ts", "bad URL `http:///x.ts`: no host"),
            ("http://", "bad URL `http://`: no host"),
            ("publish://x", "bad input `publish://x`: `publish://` takes nothing after `://` but `?program=N`"),
            ("publish://?program=0", "bad input `publish://?program=0`: bad program `0`: expected a program_number 1..65535"),
            ("udp://239.0.0.1:1?program=x", "bad udp URL `udp://239.0.0.1:1?program=x`: bad program `x`: expected a program_number 1..65535"),
            ("udp://239.0.0.1:1?program=1&program=2", "bad udp URL `udp://239.0.0.1:1?program=1&program=2`: `program` given twice"),
            ("http://h/a?program=70000", "bad input `http://h/a?program=70000`: bad program `70000`: expected a program_number 1..65535"),
            ("file://?program=3", "bad input `file://?program=3`: no file path"),
            ("file://", "bad input `file://`: no file path"),
            ("builtin://", "bad input `builtin://`: expected builtin://NAME with a name of letters, digits, `_` and `-`"),
            ("/srv/a.ts", "bad input `/srv/a.ts`: expected a URL such as udp://239.0.0.1:1234"),
        ];
        for (s, msg) in table {
            assert_eq!(s.parse::<Input>(), Err(InputError(msg.into())), "{s}");
        }
    }

    #[test]
    fn backups() {
        assert_eq!(
            Input::parse_backup("/srv/slate.ts"),
            Ok(Input::File {
                path: "/srv/slate.ts".into(),
                program: None
            })
        );
        assert_eq!(
            Input::parse_backup("vod/bunny.mp4"),
            Ok(Input::File {
                path: "vod/bunny.mp4".into(),
                program: None
            })
        );
        assert_eq!(
            Input::parse_backup("builtin://demo"),
            Ok(Input::Builtin { name: "demo".into() })
        );
        assert!(Input::parse_backup("publish://").is_err());
        assert!(Input::parse_backup("").is_err());
        // A bare path takes a program selector like `file://` does, so every
        // backup prints back to itself.
        let mpts = Input::parse_backup("/srv/mpts.ts?program=202");
        assert_eq!(
            mpts,
            Ok(Input::File {
                path: "/srv/mpts.ts".into(),
                program: Some(202)
            })
        );
        for text in ["/srv/mpts.ts?program=202", "file:/x/:y?program=7", "a b"] {
            let once = Input::parse_backup(text).expect("valid backup");
            assert_eq!(Input::parse_backup(&once.to_string()), Ok(once));
        }
        assert!(Input::parse_backup("/srv/mpts.ts?program=0").is_err());
    }
}
