//! Canonical text form of a [`Config`] and a [`BalancerConfig`], for
//! `strom check --print` and for round-trip tests.
//!
//! Invariant: for any `Config` that satisfies the invariants in
//! [`crate::model`] (every config [`crate::parse`] returns does),
//! `parse(to_text(c)) == Ok(c)`, and likewise for a `BalancerConfig` and
//! [`crate::parse_balancer`]. Every setting is written out, defaults
//! included, so the text shows exactly what the node or balancer will run
//! with.
//!
//! Archive settings come out as `dvr ROOT [DEPTH] [PERCENT%];`, then
//! `storage_limit SIZE;` for the size (never on the `dvr` line) and
//! `dvr_offline;` when on.

use crate::lex::is_delimiter;
use crate::model::{AuthBackend, BalancerConfig, CacheConfig, Config, Cors, DvrConfig};
use crate::value::{format_duration, format_size};
use std::fmt::Write;
use std::path::Path;

/// A value as one token: bare when the lexer would read it back unchanged
/// (so not when it starts with `#` or `'`), else double-quoted with `\` and `"` escaped (control characters and
/// newlines are kept as they are: quoted strings take them literally).
fn word(s: &str) -> String {
    let needs_quotes = |c: char| is_delimiter(c) || c.is_control();
    if !s.is_empty() && !s.starts_with(['#', '\'']) && !s.chars().any(needs_quotes) {
        return s.to_owned();
    }
    let mut q = String::with_capacity(s.len() + 2);
    q.push('"');
    for c in s.chars() {
        if c == '"' || c == '\\' {
            q.push('\\');
        }
        q.push(c);
    }
    q.push('"');
    q
}

fn path(p: &Path) -> String {
    word(&p.to_string_lossy())
}

/// The archive directives of a block, as lines.
fn dvr(d: &DvrConfig) -> Vec<String> {
    let mut s = format!("dvr {}", path(&d.root));
    if let Some(v) = d.depth {
        s += &format!(" {}", format_duration(v));
    }
    if let Some(v) = d.disk_limit_percent {
        s += &format!(" {v}%");
    }
    s.push(';');
    let mut lines = vec![s];
    if let Some(v) = d.max_size {
        lines.push(format!("storage_limit {};", format_size(v)));
    }
    if d.offline {
        lines.push("dvr_offline;".to_string());
    }
    lines
}

fn cache(c: &CacheConfig) -> String {
    format!("cache {} {};", path(&c.path), format_size(c.size))
}

/// `on_play URL { ... }` / `on_publish URL { ... }` as lines, the block
/// always written out (timeout and cache even at their defaults, so the text
/// shows what runs; `fail_open;` only when on, like `ondemand;`).
fn auth(name: &str, b: &AuthBackend) -> Vec<String> {
    let mut lines = vec![
        format!("{name} {} {{", word(&b.url)),
        format!("    timeout {};", format_duration(b.timeout)),
        format!("    cache {};", format_duration(b.cache)),
    ];
    if b.fail_open {
        lines.push("    fail_open;".to_string());
    }
    lines.push("}".to_string());
    lines
}

impl Config {
    /// Renders the config as canonical config text that parses back to an
    /// equal `Config` (positions aside).
    pub fn to_text(&self) -> String {
        let mut out = String::new();
        // `writeln!` into a String cannot fail.
        let line = |out: &mut String, indent: bool, text: &str| {
            let _ = writeln!(out, "{}{text}", if indent { "    " } else { "" });
        };
        for a in &self.http {
            line(&mut out, false, &format!("http {a};"));
        }
        for a in &self.rtmp {
            line(&mut out, false, &format!("rtmp {a};"));
        }
        for l in &self.srt {
            let mut t = format!("srt {}", l.addr);
            if l.latency != crate::SRT_DEFAULT_LATENCY {
                t.push_str(&format!(" latency={}", l.latency.as_millis()));
            }
            if let Some(p) = &l.passphrase {
                t.push_str(&format!(" {}", word(&format!("passphrase={p}"))));
            }
            t.push(';');
            line(&mut out, false, &t);
        }
        if let Some(p) = &self.public {
            line(&mut out, false, &format!("public {};", word(p)));
        }
        for (name, c) in [("view_auth", &self.view_auth), ("edit_auth", &self.edit_auth)] {
            if let Some(c) = c {
                line(
                    &mut out,
                    false,
                    &format!("{name} {} {};", word(&c.user), word(&c.password)),
                );
            }
        }
        if let Some(k) = &self.cluster_key {
            line(&mut out, false, &format!("cluster_key {};", word(k)));
        }
        if let Some(p) = &self.state_dir {
            line(&mut out, false, &format!("state_dir {};", path(p)));
        }
        if let Some(n) = self.max_clients {
            line(&mut out, false, &format!("max_clients {n};"));
        }
        if let Some(b) = self.max_bitrate {
            line(
                &mut out,
                false,
                &format!("max_bitrate {};", crate::value::format_bitrate(b)),
            );
        }
        let t = format_duration(self.client_header_timeout);
        line(&mut out, false, &format!("client_header_timeout {t};"));
        let t = format_duration(self.keepalive_timeout);
        line(&mut out, false, &format!("keepalive_timeout {t};"));
        line(&mut out, false, &format!("max_connections {};", self.max_connections));
        let t = format_duration(self.session_timeout);
        line(&mut out, false, &format!("session_timeout {t};"));
        line(
            &mut out,
            false,
            &format!("max_sessions_per_ip {};", self.max_sessions_per_ip),
        );
        let cors = match &self.cors {
            Cors::Any => "on".to_string(),
            Cors::Off => "off".to_string(),
            Cors::Origins(list) => list.iter().map(|o| word(o)).collect::<Vec<_>>().join(" "),
        };
        line(&mut out, false, &format!("cors {cors};"));
        if let Some(k) = &self.token_secret {
            line(&mut out, false, &format!("token_secret {};", word(k)));
        }
        for (name, b) in [("on_play", &self.on_play), ("on_publish", &self.on_publish)] {
            for l in b.iter().flat_map(|b| auth(name, b)) {
                line(&mut out, false, &l);
            }
        }
        for l in self.dvr.iter().flat_map(dvr) {
            line(&mut out, false, &l);
        }
        for p in &self.peers {
            out.push('\n');
            match &p.public {
                Some(public) => {
                    line(&mut out, false, &format!("peer {} {{", word(&p.addr)));
                    line(&mut out, true, &format!("public {};", word(public)));
                    line(&mut out, false, "}");
                }
                None => line(&mut out, false, &format!("peer {};", word(&p.addr))),
            }
        }
        for s in &self.sources {
            out.push('\n');
            let mut body = Vec::new();
            if let Some(k) = &s.cluster_key {
                body.push(format!("cluster_key {};", word(k)));
            }
            for (name, list) in [("only", &s.only), ("except", &s.except)] {
                if !list.is_empty() {
                    let items: Vec<String> = list.iter().map(|x| word(x)).collect();
                    body.push(format!("{name} {};", items.join(" ")));
                }
            }
            if let Some(b) = &s.on_play {
                body.extend(auth("on_play", b));
            }
            if let Some(k) = &s.token_secret {
                body.push(format!("token_secret {};", word(k)));
            }
            if let Some(b) = &s.backup {
                body.push(format!("backup {};", word(&b.to_string())));
            }
            body.extend(s.dvr.iter().flat_map(dvr));
            body.extend(s.cache.iter().map(cache));
            if s.max_streams != crate::model::DEFAULT_SOURCE_MAX_STREAMS {
                body.push(format!("max_streams {};", s.max_streams));
            }
            if body.is_empty() {
                line(&mut out, false, &format!("source {};", word(&s.addr)));
            } else {
                line(&mut out, false, &format!("source {} {{", word(&s.addr)));
                for b in &body {
                    line(&mut out, true, b);
                }
                line(&mut out, false, "}");
            }
        }
        for s in &self.streams {
            out.push('\n');
            line(&mut out, false, &format!("stream {} {{", word(&s.name)));
            for i in &s.inputs {
                line(&mut out, true, &format!("input {};", word(&i.to_string())));
            }
            if let Some(b) = &s.backup {
                line(&mut out, true, &format!("backup {};", word(&b.to_string())));
            }
            let durations = [
                ("source_timeout", s.source_timeout),
                ("segment_duration", s.segment_duration),
            ];
            for (name, d) in durations {
                line(&mut out, true, &format!("{name} {};", format_duration(d)));
            }
            line(&mut out, true, &format!("segment_count {};", s.segment_count));
            if s.ondemand {
                line(&mut out, true, "ondemand;");
            }
            line(
                &mut out,
                true,
                &format!("clients_timeout {};", format_duration(s.clients_timeout)),
            );
            for (name, b) in [("on_play", &s.on_play), ("on_publish", &s.on_publish)] {
                for l in b.iter().flat_map(|b| auth(name, b)) {
                    line(&mut out, true, &l);
                }
            }
            let secrets = [
                ("token_secret", &s.token_secret),
                ("publish_password", &s.publish_password),
            ];
            for (name, v) in secrets {
                if let Some(v) = v {
                    line(&mut out, true, &format!("{name} {};", word(v)));
                }
            }
            for l in s.dvr.iter().flat_map(dvr) {
                line(&mut out, true, &l);
            }
            line(&mut out, false, "}");
        }
        out
    }
}

impl BalancerConfig {
    /// Renders the config as canonical balancer config text that parses
    /// back to an equal `BalancerConfig` (positions aside).
    pub fn to_text(&self) -> String {
        let mut out = String::new();
        // `writeln!` into a String cannot fail.
        let line = |out: &mut String, indent: bool, text: &str| {
            let _ = writeln!(out, "{}{text}", if indent { "    " } else { "" });
        };
        let list = |items: &mut dyn Iterator<Item = String>| items.map(|x| word(&x)).collect::<Vec<_>>().join(" ");
        for a in &self.http {
            line(&mut out, false, &format!("http {a};"));
        }
        line(&mut out, false, &format!("refresh {};", format_duration(self.refresh)));
        if let Some(p) = &self.geoip {
            line(&mut out, false, &format!("geoip {};", path(p)));
        }
        if !self.trusted_proxies.is_empty() {
            let nets = list(&mut self.trusted_proxies.iter().map(ToString::to_string));
            line(&mut out, false, &format!("trusted_proxies {nets};"));
        }
        for (name, c) in [("view_auth", &self.view_auth), ("edit_auth", &self.edit_auth)] {
            if let Some(c) = c {
                line(
                    &mut out,
                    false,
                    &format!("{name} {} {};", word(&c.user), word(&c.password)),
                );
            }
        }
        if let Some(p) = &self.state_file {
            line(&mut out, false, &format!("state_file {};", path(p)));
        }
        if !self.peers.is_empty() {
            let peers = list(&mut self.peers.iter().cloned());
            line(&mut out, false, &format!("peers {peers};"));
        }
        let fallback = if self.zone_fallback { "on" } else { "off" };
        line(&mut out, false, &format!("zone_fallback {fallback};"));
        if let Some(p) = &self.prometheus {
            out.push('\n');
            line(&mut out, false, &format!("source prometheus {} {{", word(&p.url)));
            line(&mut out, true, &format!("query {};", word(&p.query)));
            for (kind, q) in &p.kind_queries {
                line(&mut out, true, &format!("query {kind} {};", word(q)));
            }
            line(&mut out, false, "}");
        }
        for s in &self.servers {
            out.push('\n');
            line(&mut out, false, &format!("server {} {{", word(&s.name)));
            line(&mut out, true, &format!("kind {};", s.kind));
            line(&mut out, true, &format!("url {};", word(&s.url)));
            if let Some(p) = &s.public {
                line(&mut out, true, &format!("public {};", word(p)));
            }
            line(&mut out, true, &format!("max_clients {};", s.max_clients));
            let monitoring = if s.monitoring { "on" } else { "off" };
            line(&mut out, true, &format!("monitoring {monitoring};"));
            if !s.networks.is_empty() {
                let nets = list(&mut s.networks.iter().map(ToString::to_string));
                line(&mut out, true, &format!("networks {nets};"));
            }
            if !s.countries.is_empty() {
                let countries = list(&mut s.countries.iter().cloned());
                line(&mut out, true, &format!("countries {countries};"));
            }
            let health = s.health_check();
            line(
                &mut out,
                true,
                &format!("health {} {};", word(&health.target), health.status),
            );
            if let Some(load) = s.load_source() {
                line(
                    &mut out,
                    true,
                    &format!("load {} {} {};", load.format, word(&load.target), word(&load.field)),
                );
            }
            if let Some(m) = &s.match_label {
                let value = m.value.as_deref().map(|v| format!(" {}", word(v))).unwrap_or_default();
                line(&mut out, true, &format!("match_label {}{value};", word(&m.label)));
            }
            line(&mut out, true, &format!("stream_list {};", s.stream_list().as_str()));
            if let Some(c) = &s.api_auth {
                line(
                    &mut out,
                    true,
                    &format!("api_auth {} {};", word(&c.user), word(&c.password)),
                );
            }
            if let Some(t) = &s.api_token {
                line(&mut out, true, &format!("api_token {};", word(&t.0)));
            }
            line(&mut out, false, "}");
        }
        for c in &self.channels {
            out.push('\n');
            line(&mut out, false, &format!("channel {} {{", word(&c.name)));
            let servers = list(&mut c.servers.iter().cloned());
            line(&mut out, true, &format!("servers {servers};"));
            line(&mut out, false, "}");
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::word;

    #[test]
    fn quoting() {
        assert_eq!(word("abc"), "abc");
        assert_eq!(word("udp://a:1?x=y&z"), "udp://a:1?x=y&z");
        assert_eq!(word("a#b"), "a#b");
        assert_eq!(word("#a"), "\"#a\"");
        assert_eq!(word("'a'"), "\"'a'\"");
        assert_eq!(word("it's"), "it's");
        assert_eq!(word(""), "\"\"");
        assert_eq!(word("a b"), "\"a b\"");
        assert_eq!(word("a;b"), "\"a;b\"");
        assert_eq!(word("{"), "\"{\"");
        assert_eq!(word("a\u{1}"), "\"a\u{1}\"");
        assert_eq!(word(r#"q"\"#), r#""q\"\\""#);
    }
}
