//! Playback requests, parsed once: `/NAME/RESOURCE?QUERY` plus the headers
//! that matter (Range, Host) and the peer address, into a [`PlayRequest`]
//! that the gate, authorization and every output read.
//!
//! Stream names may contain `/` (`mylive/cam1`), so the resource is read
//! from the end of the path and everything before it is the name
//! (Flussonic's URL layout): the last segment, or the last two when the one
//! before the last names a track selection (`mylive/cam1/tracks-v1a2/mono.m3u8`,
//! see [`TrackSelection`]). A segment before the last that starts with
//! `tracks-` but is not a valid selection, or holds anything but a media
//! playlist or a segment, is a 404: a path segment starting with `tracks-`
//! never ends a stream name. Pure: no I/O.

use axum::http::{HeaderMap, Method};
use std::hash::{Hash, Hasher};
use std::net::{IpAddr, SocketAddr};
use strom_api::{query_param, HOP_PARAM};
use strom_media::hls::{self, TrackSelection};

/// Longest request path accepted for playback, bytes.
pub const MAX_PATH: usize = 1024;
/// Longest query string carried into playlists, bytes.
pub const MAX_QUERY: usize = 2048;

/// What a playback URL asks for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Resource {
    /// `index.m3u8` or `playlist.m3u8`: the HLS master playlist.
    MasterPlaylist,
    /// `mono.m3u8` or `video.m3u8`: the HLS media playlist.
    MediaPlaylist,
    /// `SEQ.ts` (see `strom_media::hls::segment_uri`).
    Segment(u64),
    /// `tracks-…/mono.m3u8`: the media playlist of a track selection.
    TrackPlaylist(TrackSelection),
    /// `tracks-…/SEQ.ts`: a segment with only the selection's tracks.
    TrackSegment(TrackSelection, u64),
    /// `mpegts`: continuous HTTP MPEG-TS.
    MpegTs,
    /// `publish`: HTTP push ingest (PUT/POST).
    Publish,
    /// A DVR URL (`archive-FROM-DURATION.m3u8`, `timeshift_rel-N.ts`, …;
    /// see [`crate::dvr::request`]).
    Archive(crate::dvr::request::ArchiveRequest),
    /// Anything else; an output may still claim it.
    Other(String),
}

impl Resource {
    fn parse(s: &str) -> Resource {
        match s {
            "index.m3u8" | "playlist.m3u8" => Resource::MasterPlaylist,
            "mono.m3u8" | "video.m3u8" => Resource::MediaPlaylist,
            "mpegts" => Resource::MpegTs,
            "publish" => Resource::Publish,
            r => match hls::parse_segment_uri(r) {
                Some(seq) => Resource::Segment(seq),
                None => Resource::Other(r.to_string()),
            },
        }
    }

    /// An archive resource, or a refusal of a malformed one.
    fn parse_archive(s: &str, sel: Option<TrackSelection>) -> Option<Result<Resource, Reject>> {
        crate::dvr::request::parse(s, sel).map(|r| r.map(Resource::Archive).map_err(Reject::BadArchive))
    }

    /// The resource `last` inside the track-selection directory `dir`.
    fn parse_in_tracks(dir: &str, last: &str) -> Option<Resource> {
        let sel = TrackSelection::parse(dir)?;
        if let Some(Ok(r)) = Self::parse_archive(last, Some(sel)) {
            return Some(r);
        }
        if last == hls::MEDIA_PLAYLIST {
            return Some(Resource::TrackPlaylist(sel));
        }
        hls::parse_segment_uri(last).map(|seq| Resource::TrackSegment(sel, seq))
    }

    /// The track selection this resource is inside, if any.
    pub fn selection(&self) -> Option<TrackSelection> {
        match self {
            Resource::TrackPlaylist(s) | Resource::TrackSegment(s, _) => Some(*s),
            Resource::Archive(a) => a.selection,
            _ => None,
        }
    }
}

/// A path segment that can only be a track-selection directory.
fn is_tracks_dir(segment: &str) -> bool {
    segment.starts_with("tracks-")
}

/// A single byte range from a `Range` header (RFC 9110 §14.1.2).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ByteRange {
    /// `bytes=FIRST-LAST` (inclusive).
    FromTo(u64, u64),
    /// `bytes=FIRST-`.
    From(u64),
    /// `bytes=-N`: the last N bytes.
    Suffix(u64),
}

/// A range that cannot be served from a body of this length: 416.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Unsatisfiable;

impl ByteRange {
    /// Parses a `Range` value. `None` for anything but one well-formed byte
    /// range (several ranges, other units, garbage): the full body is served,
    /// as RFC 9110 §14.2 allows. The unit is case-insensitive (§14.1), and
    /// a position too large for 64 bits means "past any body": a last
    /// position is clamped to the body, a first one is unsatisfiable.
    pub fn parse(v: &str) -> Option<ByteRange> {
        let v = v.trim();
        let unit = v.get(..6)?;
        if !unit.eq_ignore_ascii_case("bytes=") {
            return None;
        }
        let spec = v.get(6..)?.trim();
        if spec.contains(',') {
            return None;
        }
        let (a, b) = spec.split_once('-')?;
        let num = |s: &str| -> Option<u64> {
            let s = s.trim();
            (!s.is_empty() && s.bytes().all(|c| c.is_ascii_digit())).then(|| s.parse().unwrap_or(u64::MAX))
        };
        match (a.trim().is_empty(), b.trim().is_empty()) {
            (true, false) => num(b).map(ByteRange::Suffix),
            (false, true) => num(a).map(ByteRange::From),
            (false, false) => {
                let (x, y) = (num(a)?, num(b)?);
                (x <= y).then_some(ByteRange::FromTo(x, y))
            }
            (true, true) => None,
        }
    }

    /// The inclusive `(first, last)` byte positions in a body of `len` bytes.
    pub fn resolve(self, len: u64) -> Result<(u64, u64), Unsatisfiable> {
        if len == 0 {
            return Err(Unsatisfiable);
        }
        match self {
            ByteRange::FromTo(a, _) | ByteRange::From(a) if a >= len => Err(Unsatisfiable),
            ByteRange::FromTo(a, b) => Ok((a, b.min(len - 1))),
            ByteRange::From(a) => Ok((a, len - 1)),
            ByteRange::Suffix(0) => Err(Unsatisfiable),
            ByteRange::Suffix(n) => Ok((len.saturating_sub(n), len - 1)),
        }
    }
}

/// Why a path is not a playback request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Reject {
    /// No `NAME/RESOURCE` shape, or a name strom cannot have: 404.
    NotFound,
    /// Longer than [`MAX_PATH`] or [`MAX_QUERY`]: 414.
    TooLong,
    /// An archive URL with malformed or out-of-range values: 400.
    BadArchive(crate::dvr::request::Bad),
}

/// A parsed playback request.
#[derive(Clone, Debug)]
pub struct PlayRequest {
    pub method: Method,
    /// The path as received (`/NAME/RESOURCE`, `/NAME/tracks-SEL/RESOURCE`).
    pub path: String,
    pub name: String,
    pub resource: Resource,
    /// The raw query string, carried into the URIs strom writes.
    pub query: Option<String>,
    /// `?token=` (raw), as Flussonic middleware passes it.
    pub token: Option<String>,
    /// `?sid=` (raw): the session id strom wrote into the URI. Set by the
    /// gate to the request's own session for the URIs of a playlist.
    pub sid: Option<String>,
    /// `User-Agent`, for the backend and the sessions API.
    pub user_agent: Option<String>,
    /// `Referer`, for the backend.
    pub referer: Option<String>,
    /// The session this request is accounted to (set by the gate).
    pub ticket: Option<crate::access::Ticket>,
    /// The viewer's address (the TCP peer).
    pub ip: Option<IpAddr>,
    /// A single byte range asked for.
    pub range: Option<ByteRange>,
    /// Already redirected once (`strom_hop`): never redirect again.
    pub hop: bool,
    /// The `Host` header, for absolute URLs after a redirect.
    pub host: Option<String>,
    /// The prefix of URIs written into playlists for this request: set by
    /// the gate from [`PlayRequest::base`]; empty means relative.
    pub uri_base: String,
}

/// A `Host` value safe to write into a URL: `name`, `name:port` or
/// `[v6]:port`, at most 255 bytes.
fn valid_host(h: &str) -> bool {
    !h.is_empty()
        && h.len() <= 255
        && h.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b':' | b'[' | b']'))
}

/// What this node may write as its own address in a playlist: the
/// configured `public` base, else a `Host` that names this node (an IP
/// literal, `localhost` or the machine's host name, with a port it listens
/// on). Any other Host is never reflected into a URL (a cache-poisoning
/// risk behind a CDN); the playlist then stays relative.
#[derive(Clone, Debug, Default)]
pub struct PublicBase {
    /// `http(s)://HOST[:PORT]`, from the config.
    pub public: Option<String>,
    /// Ports this node listens on.
    pub ports: Vec<u16>,
    /// The machine's host name, lower case.
    pub hostname: Option<String>,
}

impl PublicBase {
    /// `http(s)://HOST[:PORT]` to prefix URLs with, for a request whose Host is `host`.
    pub fn origin(&self, host: Option<&str>) -> Option<String> {
        if let Some(p) = &self.public {
            return Some(p.trim_end_matches('/').to_string());
        }
        let host = host?.to_ascii_lowercase();
        let (name, port) = match host.rsplit_once(':') {
            Some((n, p)) if !n.ends_with(':') && p.bytes().all(|b| b.is_ascii_digit()) => {
                (n.to_string(), p.parse::<u16>().ok()?)
            }
            _ => (host.clone(), 80),
        };
        if !self.ports.contains(&port) {
            return None;
        }
        let bare = name.trim_start_matches('[').trim_end_matches(']');
        let ours = bare.parse::<IpAddr>().is_ok()
            || bare == "localhost"
            || self.hostname.as_deref().is_some_and(|h| h == bare);
        ours.then(|| format!("http://{host}"))
    }
}

impl PlayRequest {
    /// Parses a request for `/NAME/RESOURCE?QUERY` or
    /// `/NAME/tracks-SEL/RESOURCE?QUERY` (see the module docs).
    pub fn parse(
        method: Method,
        path: &str,
        query: Option<&str>,
        headers: &HeaderMap,
        peer: Option<SocketAddr>,
    ) -> Result<PlayRequest, Reject> {
        if path.len() > MAX_PATH || query.is_some_and(|q| q.len() > MAX_QUERY) {
            return Err(Reject::TooLong);
        }
        let bare = path.strip_prefix('/').unwrap_or(path);
        let (name, last) = bare.rsplit_once('/').ok_or(Reject::NotFound)?;
        let (name, resource) = if let Some((stream, legacy)) = crate::dvr::request::parse_legacy(bare) {
            (stream, Resource::Archive(legacy.map_err(Reject::BadArchive)?))
        } else {
            match name.rsplit_once('/').unwrap_or(("", name)) {
                (stream, dir) if is_tracks_dir(dir) => {
                    let r = match crate::dvr::request::parse(last, TrackSelection::parse(dir)) {
                        Some(Err(bad)) => return Err(Reject::BadArchive(bad)),
                        _ => Resource::parse_in_tracks(dir, last).ok_or(Reject::NotFound)?,
                    };
                    (stream, r)
                }
                _ => match Self::archive_resource(last) {
                    Some(r) => (name, r?),
                    None => (name, Resource::parse(last)),
                },
            }
        };
        let name_ends_in_tracks = name.rsplit('/').next().is_some_and(is_tracks_dir);
        if last.is_empty() || name_ends_in_tracks || strom_config::check_stream_name(name).is_err() {
            return Err(Reject::NotFound);
        }
        let query = query.filter(|q| !q.is_empty());
        let header = |h: axum::http::HeaderName| headers.get(h).and_then(|v| v.to_str().ok());
        Ok(PlayRequest {
            method,
            path: path.to_string(),
            name: name.to_string(),
            resource,
            token: query_param(query, "token").map(str::to_string),
            sid: query_param(query, crate::access::SID_PARAM).map(str::to_string),
            user_agent: header(axum::http::header::USER_AGENT).map(str::to_string),
            referer: header(axum::http::header::REFERER).map(str::to_string),
            ticket: None,
            hop: query_param(query, HOP_PARAM).is_some(),
            query: query.map(str::to_string),
            ip: peer.map(|p| p.ip()),
            range: header(axum::http::header::RANGE).and_then(ByteRange::parse),
            host: header(axum::http::header::HOST)
                .filter(|h| valid_host(h))
                .map(str::to_string),
            uri_base: String::new(),
        })
    }

    /// The archive resource `last` names, if any.
    fn archive_resource(last: &str) -> Option<Result<Resource, Reject>> {
        Resource::parse_archive(last, None)
    }

    /// The viewer session this request belongs to: one per (token, ip,
    /// stream), whatever the protocol (REFERENCE: session identity).
    pub fn session_key(&self) -> u64 {
        let mut h = std::collections::hash_map::DefaultHasher::new();
        self.token.as_deref().unwrap_or("").hash(&mut h);
        self.ip.hash(&mut h);
        self.name.hash(&mut h);
        h.finish()
    }

    /// The prefix of URIs in a playlist: empty (relative) normally; after a
    /// redirect, this node's absolute `BASE/NAME/` (see [`PublicBase`]), for
    /// players that resolve relative URLs against the address before the
    /// redirect.
    pub fn base(&self, public: &PublicBase) -> String {
        if !self.hop {
            return String::new();
        }
        match public.origin(self.host.as_deref()) {
            Some(origin) => format!("{origin}/{}/", self.name),
            None => String::new(),
        }
    }

    pub fn is_head(&self) -> bool {
        self.method == Method::HEAD
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn parse(path: &str, query: Option<&str>) -> Result<PlayRequest, Reject> {
        PlayRequest::parse(Method::GET, path, query, &HeaderMap::new(), None)
    }

    #[test]
    fn names_resources_and_tokens() {
        let r = parse("/mylive/cam1/index.m3u8", Some("token=abc&strom_hop=1")).expect("parses");
        assert_eq!(r.name, "mylive/cam1");
        assert_eq!(r.resource, Resource::MasterPlaylist);
        assert_eq!(r.token.as_deref(), Some("abc"));
        assert!(r.hop);
        assert_eq!(
            parse("/a/mono.m3u8", None).map(|r| r.resource),
            Ok(Resource::MediaPlaylist)
        );
        assert_eq!(
            parse("/a/video.m3u8", None).map(|r| r.resource),
            Ok(Resource::MediaPlaylist)
        );
        assert_eq!(parse("/a/mpegts", None).map(|r| r.resource), Ok(Resource::MpegTs));
        let seg = strom_media::hls::segment_uri(1_700_000_123);
        assert_eq!(
            parse(&format!("/a/{seg}"), None).map(|r| r.resource),
            Ok(Resource::Segment(1_700_000_123))
        );
        assert_eq!(
            parse("/a/x.mpd", None).map(|r| r.resource),
            Ok(Resource::Other("x.mpd".into()))
        );
        assert_eq!(parse("/index.m3u8", None).err(), Some(Reject::NotFound));
        assert_eq!(parse("/a/", None).err(), Some(Reject::NotFound));
        assert_eq!(parse("/../x/mpegts", None).err(), Some(Reject::NotFound));
        assert_eq!(
            parse(&format!("/{}/mpegts", "a".repeat(2000)), None).err(),
            Some(Reject::TooLong)
        );
    }

    #[test]
    fn track_selections_are_read_from_the_end_of_the_path() {
        let sel = |s: &str| TrackSelection::parse(s).expect("valid selection");
        let r = parse("/mylive/cam1/tracks-v1/mono.m3u8", Some("token=abc")).expect("parses");
        assert_eq!(r.name, "mylive/cam1");
        assert_eq!(r.resource, Resource::TrackPlaylist(sel("tracks-v1")));
        assert_eq!(r.resource.selection(), Some(sel("tracks-v1")));
        assert_eq!(r.token.as_deref(), Some("abc"));
        assert_eq!(
            parse("/a/tracks-a2/mono.m3u8", None).map(|r| (r.name, r.resource)),
            Ok(("a".into(), Resource::TrackPlaylist(sel("tracks-a2"))))
        );
        assert_eq!(
            parse("/a/b/c/tracks-v1a1a3/1700000123.ts", None).map(|r| (r.name, r.resource)),
            Ok((
                "a/b/c".into(),
                Resource::TrackSegment(sel("tracks-v1a1a3"), 1_700_000_123)
            ))
        );
        // The same session as the stream's own playlists.
        let plain = parse("/a/index.m3u8", Some("token=t")).expect("parses");
        let track = parse("/a/tracks-a1/5.ts", Some("token=t")).expect("parses");
        assert_eq!(plain.session_key(), track.session_key());
        assert_eq!(Resource::MediaPlaylist.selection(), None);
        // Invalid selections and other resources inside one: 404.
        for bad in [
            "/a/tracks-v0/mono.m3u8",
            "/a/tracks-a2a1/mono.m3u8",
            "/a/tracks-x/mono.m3u8",
            "/a/tracks-/mono.m3u8",
            "/a/tracks-v1/index.m3u8",
            "/a/tracks-v1/mpegts",
            "/a/tracks-v1/x.ts",
            "/a/tracks-v1/",
            "/../tracks-v1/mono.m3u8",
            "/a/tracks-v1/tracks-v1/mono.m3u8",
        ] {
            assert_eq!(parse(bad, None).err(), Some(Reject::NotFound), "{bad}");
        }
        for never_a_name in ["/tracks-v1/mono.m3u8", "/a/tracks-foo/mpegts", "/tracks-a1/1.ts"] {
            assert_eq!(
                parse(never_a_name, None).err(),
                Some(Reject::NotFound),
                "{never_a_name}"
            );
        }
        assert_eq!(
            parse("/tracks-v1a/tracks/mono.m3u8", None).map(|r| r.name),
            Ok("tracks-v1a/tracks".into()),
            "only the last segment of a name is reserved"
        );
    }

    #[test]
    fn sessions_are_per_token_ip_and_stream() {
        let peer: SocketAddr = "10.0.0.1:5000".parse().expect("addr");
        let other_port: SocketAddr = "10.0.0.1:6000".parse().expect("addr");
        let p = |path: &str, q: Option<&str>, peer| {
            PlayRequest::parse(Method::GET, path, q, &HeaderMap::new(), Some(peer))
                .expect("parses")
                .session_key()
        };
        assert_eq!(
            p("/a/index.m3u8", Some("token=t"), peer),
            p("/a/segment-1.ts", Some("token=t"), other_port)
        );
        assert_ne!(
            p("/a/index.m3u8", Some("token=t"), peer),
            p("/a/index.m3u8", Some("token=u"), peer)
        );
        assert_ne!(
            p("/a/index.m3u8", Some("token=t"), peer),
            p("/b/index.m3u8", Some("token=t"), peer)
        );
    }

    #[test]
    fn only_this_nodes_names_reach_absolute_urls() {
        let node = PublicBase {
            public: None,
            ports: vec![8080],
            hostname: Some("edge1".into()),
        };
        let with_host = |host: &str| {
            let mut h = HeaderMap::new();
            h.insert(axum::http::header::HOST, host.parse().expect("value"));
            PlayRequest::parse(Method::GET, "/a/mono.m3u8", Some("strom_hop=1"), &h, None).expect("parses")
        };
        assert_eq!(with_host("10.0.0.5:8080").base(&node), "http://10.0.0.5:8080/a/");
        assert_eq!(with_host("[::1]:8080").base(&node), "http://[::1]:8080/a/");
        assert_eq!(with_host("EDGE1:8080").base(&node), "http://edge1:8080/a/");
        assert_eq!(with_host("localhost:8080").base(&node), "http://localhost:8080/a/");
        assert_eq!(with_host("evil.example:8080").base(&node), "", "not our name");
        assert_eq!(with_host("10.0.0.5:666").base(&node), "", "not our port");
        assert_eq!(with_host("evil.example/x?y=").base(&node), "", "not a clean host");
        let public = PublicBase {
            public: Some("https://tv.example.com".into()),
            ..node.clone()
        };
        assert_eq!(
            with_host("evil.example:8080").base(&public),
            "https://tv.example.com/a/"
        );
        let no_hop = PlayRequest::parse(Method::GET, "/a/mono.m3u8", None, &HeaderMap::new(), None).expect("parses");
        assert_eq!(no_hop.base(&public), "", "relative without a redirect");
    }

    #[test]
    fn byte_ranges() {
        use ByteRange::*;
        assert_eq!(ByteRange::parse("bytes=0-99"), Some(FromTo(0, 99)));
        assert_eq!(ByteRange::parse("bytes=100-"), Some(From(100)));
        assert_eq!(ByteRange::parse("bytes=-50"), Some(Suffix(50)));
        assert_eq!(ByteRange::parse("bytes=5-1"), None);
        assert_eq!(ByteRange::parse("bytes=0-1,5-6"), None, "several ranges: full body");
        assert_eq!(ByteRange::parse("items=0-1"), None);
        assert_eq!(ByteRange::parse("bytes=-"), None);
        assert_eq!(
            ByteRange::parse("BYTES=0-1"),
            Some(FromTo(0, 1)),
            "the unit is case-insensitive"
        );
        assert_eq!(
            ByteRange::parse("bytes=0-99999999999999999999"),
            Some(FromTo(0, u64::MAX)),
            "an overflowing last position is clamped when resolved"
        );
        assert_eq!(ByteRange::parse("bytes=99999999999999999999-"), Some(From(u64::MAX)));
        assert_eq!(ByteRange::parse("bytes=\u{e9}-1"), None);
        assert_eq!(ByteRange::parse("bytes=+1-2"), None);
        assert_eq!(FromTo(0, 99).resolve(50), Ok((0, 49)));
        assert_eq!(FromTo(10, 20).resolve(50), Ok((10, 20)));
        assert_eq!(From(50).resolve(50), Err(Unsatisfiable));
        assert_eq!(Suffix(10).resolve(50), Ok((40, 49)));
        assert_eq!(Suffix(100).resolve(50), Ok((0, 49)));
        assert_eq!(Suffix(0).resolve(50), Err(Unsatisfiable));
        assert_eq!(From(0).resolve(0), Err(Unsatisfiable));
    }

    proptest! {
        #[test]
        fn resolved_ranges_lie_inside_the_body(v in "\\PC{0,40}", len in 0u64..10_000) {
            if let Some(r) = ByteRange::parse(&v) {
                if let Ok((a, b)) = r.resolve(len) {
                    prop_assert!(a <= b && b < len);
                }
            }
        }

        #[test]
        fn well_formed_ranges_round_trip(a in 0u64..1_000_000, n in 0u64..1_000_000, len in 1u64..2_000_000) {
            let b = a + n;
            prop_assert_eq!(ByteRange::parse(&format!("bytes={a}-{b}")), Some(ByteRange::FromTo(a, b)));
            let got = ByteRange::FromTo(a, b).resolve(len);
            if a < len {
                prop_assert_eq!(got, Ok((a, b.min(len - 1))));
            } else {
                prop_assert_eq!(got, Err(Unsatisfiable));
            }
        }

        #[test]
        fn any_path_parses_or_rejects_without_panicking(path in "/\\PC{0,200}", q in proptest::option::of("\\PC{0,50}")) {
            let _ = parse(&path, q.as_deref());
        }
    }
}
