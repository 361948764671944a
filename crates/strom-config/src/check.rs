//! Checker: directive tree → typed [`Config`], with every semantic error.
//!
//! Each directive is checked in this order, and a failed step skips the
//! later ones for that directive only: known in this block → block or `;`
//! as required → argument count → not a duplicate → values. Errors point at
//! the offending token: the directive name for unknown or duplicate
//! directives, the argument for bad values, the `{` or `;` for a wrong body.
//!
//! The archive directives of a block (`dvr`, `storage_limit`,
//! `dvr_offline`) are gathered while the block is read and combined at its
//! end ([`Checker::dvr_block`]), so their order in the block does not
//! matter.
//!
//! Invariant: when no error was reported, the returned `Config` satisfies
//! every invariant documented in [`crate::model`].

use crate::diag::{Diags, Pos, WarningKind};
use crate::input::Input;
use crate::lex::Token;
use crate::model::*;
use crate::schema::{suggest, unknown_directive, Ctx};
use crate::syntax::{Body, Directive};
use crate::value::{
    check_http_url, check_origin, check_pattern, check_stream_name, format_duration, parse_bitrate, parse_duration,
    parse_host_port, parse_listen, parse_number, parse_percent, parse_size,
};
use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::ops::RangeInclusive;
use std::time::Duration;

/// What body a directive needs.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum Shape {
    Simple,
    Block,
    Either,
}

/// The body a directive of a stream or source block takes: `on_play` and
/// `on_publish` may carry a block of options, the others end with `;`.
fn auth_shape(name: &str) -> Shape {
    match name {
        "on_play" | "on_publish" => Shape::Either,
        _ => Shape::Simple,
    }
}

/// Argument counts (least, most) of a simple directive of a stream or
/// source block, and of the archive directives at top level.
fn arity(name: &str) -> (usize, usize) {
    match name {
        "ondemand" | "dvr_offline" => (0, 1),
        "dvr" => (1, 4),
        "cache" => (2, 2),
        _ => (1, 1),
    }
}

/// The archive directives of one block, gathered in any order and combined
/// by [`Checker::dvr_block`] once the whole block is read. Each keeps its
/// directive (for positions) and its value, `None` when the value was bad
/// (and reported).
#[derive(Default)]
struct DvrParts<'a> {
    dvr: Option<(&'a Directive, Option<DvrConfig>)>,
    storage_limit: Option<(&'a Directive, Option<u64>)>,
    offline: Option<(&'a Directive, Option<bool>)>,
}

/// Checks the top-level directives and builds the config.
pub(crate) fn check(items: &[Directive], diags: &mut Diags) -> Config {
    Checker { d: diags }.top(items)
}

/// Checks one file's directives, reporting into `d`; the node checker is
/// here, the balancer's in [`crate::check_balancer`].
pub(crate) struct Checker<'a> {
    pub(crate) d: &'a mut Diags,
}

/// First position of each directive that may appear only once in a block.
pub(crate) type Seen = HashMap<String, Pos>;

pub(crate) fn items_of(d: &Directive) -> &[Directive] {
    match &d.body {
        Body::Block { items, .. } => items,
        _ => &[],
    }
}

/// A `u64` range as `usize`, for [`Checker::count`] (saturating on 32-bit).
pub(crate) fn usize_range(r: &RangeInclusive<u64>) -> RangeInclusive<usize> {
    let conv = |v: u64| usize::try_from(v).unwrap_or(usize::MAX);
    conv(*r.start())..=conv(*r.end())
}

impl Checker<'_> {
    /// Checks the name of a named block (`stream`, `server`, `channel`) and
    /// that it is not a duplicate; records it. False when the block must not
    /// be kept (its contents are still checked by the caller).
    pub(crate) fn block_name(
        &mut self,
        a: &Token,
        what: &str,
        valid: fn(&str) -> Result<(), String>,
        seen: &mut HashMap<String, Pos>,
    ) -> bool {
        if let Err(e) = valid(&a.text) {
            self.d.error(a.pos, e);
            return false;
        }
        if let Some(first) = seen.get(&a.text) {
            self.d.error(
                a.pos,
                format!("duplicate {what} `{}`; first defined at line {}", a.text, first.line),
            );
            return false;
        }
        seen.insert(a.text.clone(), a.pos);
        true
    }

    /// Checks body shape and argument count; `false` means skip the values.
    pub(crate) fn header(&mut self, d: &Directive, ctx: Ctx, shape: Shape, min: usize, max: Option<usize>) -> bool {
        let name = &d.name.text;
        match (&d.body, shape) {
            (Body::Truncated, _) => return false,
            (Body::Block { open, .. }, Shape::Simple) => {
                self.d.error(*open, format!("`{name}` does not take a block"));
            }
            (Body::Semi(pos), Shape::Block) => {
                self.d
                    .error(*pos, format!("`{name}` needs a block: `{name} ... {{ ... }}`"));
                return false;
            }
            (Body::Missing, Shape::Block) => return false,
            _ => {}
        }
        let n = d.args.len();
        if n >= min && max.is_none_or(|m| n <= m) {
            return true;
        }
        if let Some(max) = max.filter(|&m| n > m) {
            // `input udp://a:1 input udp://b:2;` on one line: a known
            // directive among the extra words means a forgotten `;`.
            if let Some(i) = d.args.iter().position(|a| !a.quoted && ctx.knows(&a.text)) {
                let end = if i == 0 { d.name.end } else { d.args[i - 1].end };
                self.d.error(end, format!("missing `;` after `{name}` directive"));
                return false;
            }
            let takes = match (min, max) {
                (0, 0) => "takes no arguments".to_string(),
                (1, 1) => "takes 1 argument".to_string(),
                (a, b) if a == b => format!("takes {a} arguments"),
                (0, 1) => "takes at most 1 argument".to_string(),
                (a, b) => format!("takes {a} to {b} arguments"),
            };
            self.d.error(d.args[max].pos, format!("`{name}` {takes}, got {n}"));
            return false;
        }
        let takes = match (min, max) {
            (1, Some(1)) => "takes 1 argument".to_string(),
            (a, Some(b)) if a == b => format!("takes {a} arguments"),
            (a, Some(b)) => format!("takes {a} to {b} arguments"),
            (1, None) => "takes at least 1 argument".to_string(),
            (a, None) => format!("takes at least {a} arguments"),
        };
        self.d.error(d.name.pos, format!("`{name}` {takes}, got {n}"));
        false
    }

    /// Reports a second occurrence of a directive allowed once per block.
    pub(crate) fn once(&mut self, seen: &mut Seen, d: &Directive, ctx: Ctx) -> bool {
        let name = &d.name.text;
        if let Some(first) = seen.get(name) {
            self.d.error(
                d.name.pos,
                format!(
                    "duplicate `{name}` {}; first set at line {}",
                    ctx.describe(),
                    first.line
                ),
            );
            return false;
        }
        seen.insert(name.clone(), d.name.pos);
        true
    }

    fn top(&mut self, items: &[Directive]) -> Config {
        let ctx = Ctx::Top;
        let mut cfg = Config {
            http: Vec::new(),
            ..Config::default()
        };
        let mut seen = Seen::new();
        let mut http_at: HashMap<SocketAddr, Pos> = HashMap::new();
        let mut stream_at: HashMap<String, Pos> = HashMap::new();
        let mut source_at: HashMap<String, Pos> = HashMap::new();
        let mut peer_at: HashMap<String, Pos> = HashMap::new();
        let mut dvr_parts = DvrParts::default();
        let mut tcp_at: HashMap<SocketAddr, Pos> = HashMap::new();
        let mut srt_at: HashMap<SocketAddr, Pos> = HashMap::new();
        for d in items {
            let a0 = d.args.first();
            match d.name.text.as_str() {
                "http" => self.http(d, ctx, &mut http_at, &mut cfg.http),
                "cluster_key" => {
                    if self.header(d, ctx, Shape::Simple, 1, Some(1)) && self.once(&mut seen, d, ctx) {
                        cfg.cluster_key = a0.and_then(|a| self.non_empty(d, a));
                    }
                }
                "public" => {
                    if self.header(d, ctx, Shape::Simple, 1, Some(1)) && self.once(&mut seen, d, ctx) {
                        if let Some(a) = a0 {
                            match crate::value::check_base_url(&a.text) {
                                Ok(url) => cfg.public = Some(url),
                                Err(e) => self.d.error(a.pos, e),
                            }
                        }
                    }
                }
                n @ ("view_auth" | "edit_auth") => {
                    if self.header(d, ctx, Shape::Simple, 2, Some(2)) && self.once(&mut seen, d, ctx) {
                        let creds = self.credentials(d);
                        if n == "view_auth" {
                            cfg.view_auth = creds;
                        } else {
                            cfg.edit_auth = creds;
                        }
                    }
                }
                "state_dir" => {
                    if self.header(d, ctx, Shape::Simple, 1, Some(1)) && self.once(&mut seen, d, ctx) {
                        cfg.state_dir = a0.and_then(|a| self.non_empty(d, a)).map(Into::into);
                    }
                }
                "max_clients" => {
                    if self.header(d, ctx, Shape::Simple, 1, Some(1)) && self.once(&mut seen, d, ctx) {
                        cfg.max_clients = self.count(d, usize_range(&MAX_CLIENTS_RANGE)).map(|v| v as u64);
                    }
                }
                "max_bitrate" => {
                    if self.header(d, ctx, Shape::Simple, 1, Some(1)) && self.once(&mut seen, d, ctx) {
                        if let Some(a) = a0 {
                            match parse_bitrate(&a.text) {
                                Some(v) if v > 0 => cfg.max_bitrate = Some(v),
                                _ => self.d.error(
                                    a.pos,
                                    format!(
                                        "bad bitrate `{}` for `max_bitrate`; use bits per second like 800M or 8G",
                                        a.text
                                    ),
                                ),
                            }
                        }
                    }
                }
                "client_header_timeout" => {
                    if self.header(d, ctx, Shape::Simple, 1, Some(1)) && self.once(&mut seen, d, ctx) {
                        if let Some(v) = self.duration(d, CLIENT_HEADER_TIMEOUT_RANGE) {
                            cfg.client_header_timeout = v;
                        }
                    }
                }
                "keepalive_timeout" => {
                    if self.header(d, ctx, Shape::Simple, 1, Some(1)) && self.once(&mut seen, d, ctx) {
                        if let Some(v) = self.duration(d, KEEPALIVE_TIMEOUT_RANGE) {
                            cfg.keepalive_timeout = v;
                        }
                    }
                }
                "max_connections" => {
                    if self.header(d, ctx, Shape::Simple, 1, Some(1)) && self.once(&mut seen, d, ctx) {
                        if let Some(v) = self.count(d, usize_range(&MAX_CONNECTIONS_RANGE)) {
                            cfg.max_connections = v as u64;
                        }
                    }
                }
                "on_play" | "on_publish" => {
                    if self.header(d, ctx, Shape::Either, 1, Some(1)) && self.once(&mut seen, d, ctx) {
                        let backend = self.auth_backend(d, ctx);
                        if d.name.text == "on_play" {
                            cfg.on_play = backend;
                        } else {
                            cfg.on_publish = backend;
                        }
                    }
                }
                "token_secret" => {
                    if self.header(d, ctx, Shape::Simple, 1, Some(1)) && self.once(&mut seen, d, ctx) {
                        cfg.token_secret = a0.and_then(|a| self.non_empty(d, a));
                    }
                }
                "session_timeout" => {
                    if self.header(d, ctx, Shape::Simple, 1, Some(1)) && self.once(&mut seen, d, ctx) {
                        if let Some(v) = self.duration(d, SESSION_TIMEOUT_RANGE) {
                            cfg.session_timeout = v;
                        }
                    }
                }
                "max_sessions_per_ip" => {
                    if self.header(d, ctx, Shape::Simple, 1, Some(1)) && self.once(&mut seen, d, ctx) {
                        if let Some(v) = self.count(d, usize_range(&MAX_SESSIONS_PER_IP_RANGE)) {
                            cfg.max_sessions_per_ip = v as u64;
                        }
                    }
                }
                n @ ("dvr" | "storage_limit" | "dvr_offline") => {
                    let (min, max) = arity(n);
                    if self.header(d, ctx, Shape::Simple, min, Some(max)) && self.once(&mut seen, d, ctx) {
                        self.dvr_part(d, &mut dvr_parts);
                    }
                }
                "rtmp" => {
                    if self.header(d, ctx, Shape::Simple, 1, Some(1)) {
                        if let Some(a) = a0 {
                            match parse_listen(&a.text, IpAddr::V6(NODE_LISTEN_IP)) {
                                Err(e) => self.d.error(a.pos, e),
                                Ok(addr) => {
                                    if let Some(first) = tcp_at.get(&addr) {
                                        self.d.error(
                                            a.pos,
                                            format!(
                                                "address {addr} is already a listener; first at line {}",
                                                first.line
                                            ),
                                        );
                                    } else {
                                        tcp_at.insert(addr, a.pos);
                                        cfg.rtmp.push(addr);
                                    }
                                }
                            }
                        }
                    }
                }
                "srt" => {
                    if self.header(d, ctx, Shape::Simple, 1, Some(3)) {
                        if let Some(l) = self.srt_listen(d, &mut srt_at) {
                            cfg.srt.push(l);
                        }
                    }
                }
                "cors" => {
                    if self.header(d, ctx, Shape::Simple, 1, None) && self.once(&mut seen, d, ctx) {
                        if let Some(c) = self.cors(d) {
                            cfg.cors = c;
                        }
                    }
                }
                "stream" => {
                    if !self.header(d, ctx, Shape::Block, 1, Some(1)) {
                        continue;
                    }
                    let Some(a) = a0 else { continue };
                    let keep = self.block_name(a, "stream", check_stream_name, &mut stream_at);
                    let closed = matches!(d.body, Body::Block { closed: true, .. });
                    let s = self.stream(a, items_of(d), closed);
                    if keep {
                        cfg.streams.push(s);
                    }
                }
                "source" => {
                    if !self.header(d, ctx, Shape::Either, 1, Some(1)) {
                        continue;
                    }
                    let Some(a) = a0 else { continue };
                    let mut s = self.source(items_of(d));
                    let Some(addr) = self.node_addr(a) else {
                        continue;
                    };
                    if let Some(first) = source_at.get(&addr) {
                        self.d.error(
                            a.pos,
                            format!("duplicate source `{addr}`; first at line {}", first.line),
                        );
                        continue;
                    }
                    source_at.insert(addr.clone(), a.pos);
                    s.addr = addr;
                    s.pos = a.pos;
                    cfg.sources.push(s);
                }
                "peer" => {
                    if !self.header(d, ctx, Shape::Either, 1, Some(1)) {
                        continue;
                    }
                    let Some(a) = a0 else { continue };
                    let public = self.peer(items_of(d));
                    let Some(addr) = self.node_addr(a) else {
                        continue;
                    };
                    if let Some(first) = peer_at.get(&addr) {
                        self.d
                            .error(a.pos, format!("duplicate peer `{addr}`; first at line {}", first.line));
                        continue;
                    }
                    peer_at.insert(addr.clone(), a.pos);
                    cfg.peers.push(PeerConfig {
                        addr,
                        pos: a.pos,
                        public,
                    });
                }
                other => self.d.error(d.name.pos, unknown_directive(ctx, other)),
            }
        }
        if cfg.http.is_empty() {
            cfg.http = Config::default().http;
        }
        for (addr, pos) in &tcp_at {
            if cfg.http.iter().any(|h| {
                h.port() == addr.port()
                    && (h.ip() == addr.ip() || h.ip().is_unspecified() || addr.ip().is_unspecified())
            }) {
                self.d
                    .error(*pos, format!("`rtmp` address {addr} is also an `http` listener"));
            }
        }
        cfg.dvr = self.dvr_block(dvr_parts);
        cfg
    }

    /// `cors on|off;` or `cors ORIGIN...;` (origins per [`check_origin`]).
    fn cors(&mut self, d: &Directive) -> Option<Cors> {
        let keyword = |t: &str| match t {
            "true" | "on" | "yes" => Some(true),
            "false" | "off" | "no" => Some(false),
            _ => None,
        };
        if let [a] = d.args.as_slice() {
            match keyword(&a.text) {
                Some(true) => return Some(Cors::Any),
                Some(false) => return Some(Cors::Off),
                None => {}
            }
        }
        let mut origins: Vec<String> = Vec::new();
        let mut ok = true;
        for a in &d.args {
            let err = if keyword(&a.text).is_some() {
                Some(format!(
                    "`{}` cannot be combined with origins; write `cors {};` alone, or list only origins",
                    a.text, a.text
                ))
            } else if let Err(e) = check_origin(&a.text) {
                Some(e)
            } else if origins.contains(&a.text) {
                Some(format!("duplicate origin `{}` in `cors`", a.text))
            } else {
                origins.push(a.text.clone());
                None
            };
            if let Some(e) = err {
                self.d.error(a.pos, e);
                ok = false;
            }
        }
        ok.then_some(Cors::Origins(origins))
    }

    /// `http ADDRESS;`, the same in node and balancer files: appends the
    /// address to `out` unless it is bad or a duplicate. A bare port means
    /// `[::]` in a node file and `0.0.0.0` in a balancer file.
    /// `srt [ADDR:]PORT [latency=MS] [passphrase=P];`
    fn srt_listen(&mut self, d: &Directive, at: &mut HashMap<SocketAddr, Pos>) -> Option<SrtListen> {
        let a = d.args.first()?;
        let addr = match parse_listen(&a.text, IpAddr::V6(NODE_LISTEN_IP)) {
            Ok(addr) => addr,
            Err(e) => {
                self.d.error(a.pos, e);
                return None;
            }
        };
        if let Some(first) = at.get(&addr) {
            self.d.error(
                a.pos,
                format!("duplicate `srt` address {addr}; first at line {}", first.line),
            );
            return None;
        }
        at.insert(addr, a.pos);
        let mut l = SrtListen {
            addr,
            latency: crate::SRT_DEFAULT_LATENCY,
            passphrase: None,
        };
        let mut ok = true;
        let mut seen_opt: Vec<&str> = Vec::new();
        for o in &d.args[1..] {
            let Some((k, v)) = o.text.split_once('=') else {
                self.d.error(
                    o.pos,
                    format!("bad `srt` option `{}`: expected latency=MS or passphrase=P", o.text),
                );
                ok = false;
                continue;
            };
            if seen_opt.contains(&k) {
                self.d.error(o.pos, format!("`{k}` given twice"));
                ok = false;
                continue;
            }
            match k {
                "latency" => match crate::input::parse_srt_latency(v) {
                    Some(d) => l.latency = d,
                    None => {
                        self.d.error(
                            o.pos,
                            format!(
                                "bad latency `{v}`: expected milliseconds {}..={} (or a duration such as 300ms)",
                                crate::SRT_LATENCY_MS.start(),
                                crate::SRT_LATENCY_MS.end()
                            ),
                        );
                        ok = false;
                    }
                },
                "passphrase" => {
                    if (10..=79).contains(&v.chars().count()) {
                        l.passphrase = Some(v.to_owned());
                    } else {
                        self.d.error(o.pos, "`passphrase` must be 10 to 79 characters");
                        ok = false;
                    }
                }
                _ => {
                    self.d.error(
                        o.pos,
                        format!("unknown `srt` option `{k}`; expected `latency` or `passphrase`"),
                    );
                    ok = false;
                    continue;
                }
            }
            seen_opt.push(k);
        }
        ok.then_some(l)
    }

    pub(crate) fn http(
        &mut self,
        d: &Directive,
        ctx: Ctx,
        http_at: &mut HashMap<SocketAddr, Pos>,
        out: &mut Vec<SocketAddr>,
    ) {
        if !self.header(d, ctx, Shape::Simple, 1, Some(1)) {
            return;
        }
        let Some(a) = d.args.first() else { return };
        let bare = match ctx {
            Ctx::Top => IpAddr::V6(NODE_LISTEN_IP),
            _ => IpAddr::V4(Ipv4Addr::UNSPECIFIED),
        };
        match parse_listen(&a.text, bare) {
            Err(e) => self.d.error(a.pos, e),
            Ok(addr) => {
                if let Some(first) = http_at.get(&addr) {
                    self.d.error(
                        a.pos,
                        format!("duplicate `http` address {addr}; first at line {}", first.line),
                    );
                } else {
                    http_at.insert(addr, a.pos);
                    out.push(addr);
                }
            }
        }
    }

    /// A stream block; an unclosed one (already reported) is not also
    /// blamed for having no input.
    fn stream(&mut self, name: &Token, items: &[Directive], closed: bool) -> StreamConfig {
        let ctx = Ctx::Stream;
        let mut s = StreamConfig::new(name.text.clone(), Vec::new());
        s.pos = name.pos;
        let mut seen = Seen::new();
        let mut dvr_parts = DvrParts::default();
        let mut input_at: Vec<Pos> = Vec::new();
        let mut any_input = false;
        for d in items {
            let n = d.name.text.as_str();
            if n == "input" {
                any_input = true;
                if !self.header(d, ctx, Shape::Simple, 1, Some(1)) {
                    continue;
                }
                let Some(a) = d.args.first() else { continue };
                match a.text.parse::<Input>() {
                    Err(e) => self.d.error(a.pos, e.0),
                    Ok(input) => {
                        if let Some(i) = s.inputs.iter().position(|x| *x == input) {
                            self.d.error(
                                a.pos,
                                format!("duplicate input `{input}`; first at line {}", input_at[i].line),
                            );
                        } else {
                            s.inputs.push(input);
                            input_at.push(a.pos);
                        }
                    }
                }
                continue;
            }
            if !ctx.knows(n) {
                // A misspelt `input` is reported as such, not again as a
                // missing input.
                any_input |= suggest(n, ctx.directives()) == Some("input");
                self.d.error(d.name.pos, unknown_directive(ctx, n));
                continue;
            }
            let (min, max) = arity(n);
            if !self.header(d, ctx, auth_shape(n), min, Some(max))
                || !self.not_alias_of_seen(&seen, d, ctx)
                || !self.once(&mut seen, d, ctx)
            {
                continue;
            }
            match n {
                "backup" => s.backup = self.backup(d),
                "source_timeout" => {
                    if let Some(v) = self.duration(d, SOURCE_TIMEOUT_RANGE) {
                        s.source_timeout = v;
                    }
                }
                "segment_duration" => {
                    if let Some(v) = self.duration(d, SEGMENT_DURATION_RANGE) {
                        s.segment_duration = v;
                    }
                }
                "clients_timeout" => {
                    if let Some(v) = self.duration(d, CLIENTS_TIMEOUT_RANGE) {
                        s.clients_timeout = v;
                    }
                }
                "segment_count" => {
                    if let Some(v) = self.count(d, SEGMENT_COUNT_RANGE) {
                        s.segment_count = v;
                    }
                }
                "ondemand" => {
                    if let Some(v) = self.flag(d) {
                        s.ondemand = v;
                    }
                }
                "on_play" => s.on_play = self.auth_backend(d, ctx),
                "on_publish" => s.on_publish = self.auth_backend(d, ctx),
                "token_secret" => s.token_secret = d.args.first().and_then(|a| self.non_empty(d, a)),
                "publish_password" | "password" => {
                    s.publish_password = d.args.first().and_then(|a| self.non_empty(d, a));
                }
                "dvr" | "storage_limit" | "dvr_offline" => self.dvr_part(d, &mut dvr_parts),
                _ => {}
            }
        }
        let offline_at = dvr_parts.offline.map(|(d, _)| d.name.pos);
        s.dvr = self.dvr_block(dvr_parts);
        if let (Some(at), Some(true), false) = (offline_at, s.dvr.as_ref().map(|d| d.offline), s.ondemand) {
            self.d.warn(
                at,
                WarningKind::DvrOfflineWithoutOndemand,
                format!(
                    "`dvr_offline` changes nothing: stream `{}` is not `ondemand`, so it runs and records without viewers anyway",
                    name.text
                ),
            );
        }
        if !any_input && closed {
            self.d.error(name.pos, format!("stream `{}` has no input", name.text));
        }
        s
    }

    /// The source block's settings; `addr` and `pos` are filled by the caller.
    fn source(&mut self, items: &[Directive]) -> SourceConfig {
        let ctx = Ctx::Source;
        let mut s = SourceConfig::new(String::new());
        let mut seen = Seen::new();
        let mut dvr_parts = DvrParts::default();
        for d in items {
            let n = d.name.text.as_str();
            if !ctx.knows(n) {
                self.d.error(d.name.pos, unknown_directive(ctx, n));
                continue;
            }
            if n == "only" || n == "except" {
                if !self.header(d, ctx, Shape::Simple, 1, None) {
                    continue;
                }
                for a in &d.args {
                    match check_pattern(&a.text) {
                        Err(e) => self.d.error(a.pos, e),
                        Ok(()) if n == "only" => s.only.push(a.text.clone()),
                        Ok(()) => s.except.push(a.text.clone()),
                    }
                }
                continue;
            }
            let (min, max) = arity(n);
            if !self.header(d, ctx, auth_shape(n), min, Some(max)) || !self.once(&mut seen, d, ctx) {
                continue;
            }
            match n {
                "cluster_key" => {
                    s.cluster_key = d.args.first().and_then(|a| self.non_empty(d, a));
                }
                "on_play" => s.on_play = self.auth_backend(d, ctx),
                "token_secret" => {
                    s.token_secret = d.args.first().and_then(|a| self.non_empty(d, a));
                }
                "backup" => s.backup = self.backup(d),
                "dvr" | "storage_limit" | "dvr_offline" => self.dvr_part(d, &mut dvr_parts),
                "cache" => s.cache = self.cache(d),
                "max_streams" => {
                    if let Some(v) = self.count(d, crate::model::SOURCE_MAX_STREAMS_RANGE) {
                        s.max_streams = v;
                    }
                }
                _ => {}
            }
        }
        s.dvr = self.dvr_block(dvr_parts);
        s
    }

    /// The peer block's `public` address.
    fn peer(&mut self, items: &[Directive]) -> Option<String> {
        let ctx = Ctx::Peer;
        let mut seen = Seen::new();
        let mut public = None;
        for d in items {
            let n = d.name.text.as_str();
            if !ctx.knows(n) {
                self.d.error(d.name.pos, unknown_directive(ctx, n));
                continue;
            }
            if !self.header(d, ctx, Shape::Simple, 1, Some(1)) || !self.once(&mut seen, d, ctx) {
                continue;
            }
            let Some(a) = d.args.first() else { continue };
            match parse_host_port(&a.text) {
                Err(e) => self.d.error(a.pos, format!("bad `public` address: {e}")),
                Ok(_) => public = Some(a.text.clone()),
            }
        }
        public
    }

    /// `on_play URL;` / `on_publish URL;`, or the same with a block of
    /// options (`timeout`, `cache`, `fail_open`), written in `ctx`; the
    /// caller has checked the header. Every option in the block is checked
    /// even when the URL is bad, so all errors are reported at once.
    fn auth_backend(&mut self, d: &Directive, ctx: Ctx) -> Option<AuthBackend> {
        let url = self.url(d);
        let mut backend = AuthBackend::new(String::new());
        if let Some(bctx) = ctx.child(&d.name.text) {
            let mut seen = Seen::new();
            for o in items_of(d) {
                let n = o.name.text.as_str();
                if !bctx.knows(n) {
                    self.d.error(o.name.pos, unknown_directive(bctx, n));
                    continue;
                }
                let min = usize::from(n != "fail_open");
                if !self.header(o, bctx, Shape::Simple, min, Some(1)) || !self.once(&mut seen, o, bctx) {
                    continue;
                }
                match n {
                    "timeout" => {
                        if let Some(v) = self.duration(o, AUTH_TIMEOUT_RANGE) {
                            backend.timeout = v;
                        }
                    }
                    "cache" => {
                        if let Some(v) = self.duration(o, AUTH_CACHE_RANGE) {
                            backend.cache = v;
                        }
                    }
                    "fail_open" => {
                        if let Some(v) = self.flag(o) {
                            backend.fail_open = v;
                        }
                    }
                    _ => {}
                }
            }
        }
        url.map(|url| AuthBackend { url, ..backend })
    }

    /// Refuses `password` in a block that already set `publish_password`,
    /// and the other way round: they are one setting under two names.
    fn not_alias_of_seen(&mut self, seen: &Seen, d: &Directive, ctx: Ctx) -> bool {
        let name = d.name.text.as_str();
        let other = match name {
            "password" => "publish_password",
            "publish_password" => "password",
            _ => return true,
        };
        let Some(first) = seen.get(other) else {
            return true;
        };
        self.d.error(
            d.name.pos,
            format!(
                "duplicate `{name}` {}: `password` is another name for `publish_password`, first set at line {}",
                ctx.describe(),
                first.line
            ),
        );
        false
    }

    /// `HOST[:PORT]` of a source or peer, normalized to `host:port`.
    fn node_addr(&mut self, a: &Token) -> Option<String> {
        match parse_host_port(&a.text) {
            Ok(hp) => Some(format!("{}:{}", hp.host, hp.port.unwrap_or(DEFAULT_PORT))),
            Err(e) => {
                self.d.error(a.pos, e);
                None
            }
        }
    }

    /// The values of `view_auth USER PASSWORD;` or `edit_auth USER PASSWORD;`
    /// (node and balancer files alike), whose header was checked: both
    /// non-empty, and no `:` in the user name (HTTP Basic splits there).
    pub(crate) fn credentials(&mut self, d: &Directive) -> Option<crate::model::Credentials> {
        let user = d.args.first().and_then(|a| self.non_empty(d, a));
        let password = d.args.get(1).and_then(|a| self.non_empty(d, a));
        let creds = user
            .zip(password)
            .map(|(user, password)| crate::model::Credentials { user, password });
        if let Some(c) = &creds {
            if c.user.contains(':') {
                self.d.error(
                    d.args[0].pos,
                    format!("`{}` user name must not contain `:`", d.name.text),
                );
            }
        }
        creds
    }

    pub(crate) fn non_empty(&mut self, d: &Directive, a: &Token) -> Option<String> {
        if a.text.is_empty() {
            self.d.error(a.pos, format!("`{}` must not be empty", d.name.text));
            return None;
        }
        Some(a.text.clone())
    }

    pub(crate) fn duration(&mut self, d: &Directive, range: RangeInclusive<Duration>) -> Option<Duration> {
        let a = d.args.first()?;
        let name = &d.name.text;
        let Some(v) = parse_duration(&a.text) else {
            self.d.error(
                a.pos,
                format!(
                    "bad duration `{}` for `{name}`: expected a whole number with an optional unit ms, s, m, h or d, like 10s",
                    a.text
                ),
            );
            return None;
        };
        if !range.contains(&v) {
            self.d.error(
                a.pos,
                format!(
                    "`{name}` must be between {} and {}, got {}",
                    format_duration(*range.start()),
                    format_duration(*range.end()),
                    a.text
                ),
            );
            return None;
        }
        Some(v)
    }

    pub(crate) fn count(&mut self, d: &Directive, range: RangeInclusive<usize>) -> Option<usize> {
        let a = d.args.first()?;
        let name = &d.name.text;
        let Some(v) = parse_number(&a.text) else {
            self.d.error(a.pos, format!("bad number `{}` for `{name}`", a.text));
            return None;
        };
        match usize::try_from(v) {
            Ok(v) if range.contains(&v) => Some(v),
            _ => {
                self.d.error(
                    a.pos,
                    format!(
                        "`{name}` must be between {} and {}, got {}",
                        range.start(),
                        range.end(),
                        a.text
                    ),
                );
                None
            }
        }
    }

    pub(crate) fn flag(&mut self, d: &Directive) -> Option<bool> {
        let Some(a) = d.args.first() else {
            return Some(true);
        };
        match a.text.as_str() {
            "true" | "on" | "yes" => Some(true),
            "false" | "off" | "no" => Some(false),
            other => {
                self.d.error(
                    a.pos,
                    format!(
                        "bad value `{other}` for `{}`: expected on or off (or true/false, yes/no)",
                        d.name.text
                    ),
                );
                None
            }
        }
    }

    fn url(&mut self, d: &Directive) -> Option<String> {
        let a = d.args.first()?;
        match check_http_url(&a.text) {
            Ok(()) => Some(a.text.clone()),
            Err(e) => {
                self.d.error(a.pos, e);
                None
            }
        }
    }

    fn backup(&mut self, d: &Directive) -> Option<Input> {
        let a = d.args.first()?;
        match Input::parse_backup(&a.text) {
            Ok(i) => Some(i),
            Err(e) => {
                self.d.error(a.pos, e.0);
                None
            }
        }
    }

    /// Records an archive directive of a block (`dvr`, `storage_limit` or
    /// `dvr_offline`, header and duplicates already checked) with its value.
    fn dvr_part<'a>(&mut self, d: &'a Directive, parts: &mut DvrParts<'a>) {
        match d.name.text.as_str() {
            "dvr" => parts.dvr = Some((d, self.dvr(d))),
            "storage_limit" => parts.storage_limit = Some((d, d.args.first().and_then(|a| self.size(d, a)))),
            "dvr_offline" => parts.offline = Some((d, self.flag(d))),
            _ => {}
        }
    }

    /// Combines the archive directives of one block. `storage_limit` and
    /// `dvr_offline` need a `dvr` in the same block (an error at each
    /// otherwise), and `storage_limit` beside a `dvr` line that already
    /// gives a size is an error at `storage_limit`. `None` when the block
    /// has no valid `dvr`.
    fn dvr_block(&mut self, parts: DvrParts<'_>) -> Option<DvrConfig> {
        let Some((dvr_at, dvr)) = parts.dvr else {
            let lone = [parts.storage_limit.map(|p| p.0), parts.offline.map(|p| p.0)];
            for d in lone.into_iter().flatten() {
                self.d
                    .error(d.name.pos, format!("`{}` needs `dvr` in the same block", d.name.text));
            }
            return None;
        };
        // A bad `dvr` is reported already; the rest is not checked against it.
        let mut dvr = dvr?;
        if let Some((d, size)) = parts.storage_limit {
            if dvr.max_size.is_some() {
                self.d.error(
                    d.name.pos,
                    format!(
                        "`dvr` has two sizes: `storage_limit` and the size on the `dvr` line (line {}); keep one",
                        dvr_at.name.pos.line
                    ),
                );
                return None;
            }
            dvr.max_size = size;
        }
        if let Some((_, Some(offline))) = parts.offline {
            dvr.offline = offline;
        }
        if dvr.depth.is_none() && dvr.disk_limit_percent.is_none() && dvr.max_size.is_none() {
            self.d.warn(
                dvr_at.name.pos,
                WarningKind::DvrUnbounded,
                "`dvr` without a depth, a disk limit or a size keeps every hour until the disk is full; \
                 give one, like `dvr PATH 7d 95%`",
            );
        }
        Some(dvr)
    }

    /// Argument `a` of `d` as a non-zero size in bytes (see [`parse_size`]).
    fn size(&mut self, d: &Directive, a: &Token) -> Option<u64> {
        let name = &d.name.text;
        match parse_size(&a.text) {
            Some(0) => {
                self.d.error(a.pos, format!("`{name}` size must be greater than 0"));
                None
            }
            Some(v) => Some(v),
            None => {
                self.d.error(
                    a.pos,
                    format!(
                        "bad size `{}` for `{name}`: expected a whole number of bytes with an optional binary unit K, M, G or T (or KB, MB, GB, TB), like 500G",
                        a.text
                    ),
                );
                None
            }
        }
    }

    /// `cache PATH SIZE;` of a source block; the caller has checked the
    /// header. Both values are checked, so both errors are reported at once.
    fn cache(&mut self, d: &Directive) -> Option<CacheConfig> {
        let [path, size] = d.args.as_slice() else {
            return None;
        };
        if path.text.is_empty() {
            self.d.error(path.pos, "`cache` needs a cache directory");
        }
        let size = self.size(d, size)?;
        (!path.text.is_empty()).then(|| CacheConfig {
            path: path.text.clone().into(),
            size,
        })
    }

    /// `dvr ROOT [DEPTH] [PERCENT%] [SIZE]`, optional values in any order.
    fn dvr(&mut self, d: &Directive) -> Option<DvrConfig> {
        let (root, rest) = d.args.split_first()?;
        let mut ok = true;
        if root.text.is_empty() {
            self.d.error(root.pos, "`dvr` needs an archive directory");
            ok = false;
        }
        let mut dvr = DvrConfig::new(root.text.clone());
        for a in rest {
            let t = a.text.as_str();
            let err = if let Some(p) = parse_percent(t) {
                match u8::try_from(p) {
                    Ok(p @ 1..=100) if dvr.disk_limit_percent.is_none() => {
                        dvr.disk_limit_percent = Some(p);
                        None
                    }
                    Ok(1..=100) => Some("`dvr` has two disk limits".to_string()),
                    _ => Some(format!("`dvr` disk limit must be between 1% and 100%, got {t}")),
                }
            } else if let Some(v) = parse_duration(t) {
                if v.is_zero() {
                    Some("`dvr` depth must be greater than 0".to_string())
                } else if dvr.depth.is_some() {
                    Some("`dvr` has two depths".to_string())
                } else {
                    dvr.depth = Some(v);
                    None
                }
            } else if let Some(v) = parse_size(t) {
                if v == 0 {
                    Some("`dvr` size must be greater than 0".to_string())
                } else if dvr.max_size.is_some() {
                    Some("`dvr` has two sizes".to_string())
                } else {
                    dvr.max_size = Some(v);
                    None
                }
            } else {
                Some(format!(
                    "bad `dvr` value `{t}`: expected a depth (7d), a disk limit (97%) or a size (500G)"
                ))
            };
            if let Some(e) = err {
                self.d.error(a.pos, e);
                ok = false;
            }
        }
        ok.then_some(dvr)
    }
}
