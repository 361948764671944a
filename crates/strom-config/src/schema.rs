//! Which directives exist in which block, and did-you-mean suggestions.
//!
//! Invariant: this table is the single list of directive names. The parser
//! uses it to spot a missing `;` (a directive name at the start of a line),
//! and the checker uses it for "unknown" and "not allowed here" errors, so
//! they can never disagree. Node and balancer files have separate tables;
//! a directive of the other kind of file is reported as belonging there.

/// The two kinds of config file: a node's and a balancer's.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum FileKind {
    Node,
    Balancer,
}

/// Top-level directives that only a balancer file has; any of them at top
/// level makes [`crate::parse_any`] read the file as a balancer config.
pub(crate) const BALANCER_MARKERS: [&str; 6] = [
    "server",
    "channel",
    "refresh",
    "geoip",
    "trusted_proxies",
    "zone_fallback",
];

impl FileKind {
    /// The block contexts of this kind of file, top level first.
    pub(crate) fn contexts(self) -> &'static [Ctx] {
        match self {
            FileKind::Node => &Ctx::NODE,
            FileKind::Balancer => &Ctx::BALANCER,
        }
    }

    fn top(self) -> Ctx {
        self.contexts()[0]
    }

    fn other(self) -> FileKind {
        match self {
            FileKind::Node => FileKind::Balancer,
            FileKind::Balancer => FileKind::Node,
        }
    }

    /// "node" / "balancer", for messages.
    fn describe(self) -> &'static str {
        match self {
            FileKind::Node => "node",
            FileKind::Balancer => "balancer",
        }
    }
}

/// A block context: where a directive appears.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Ctx {
    Top,
    Stream,
    Source,
    Peer,
    /// Top level of a balancer file.
    BalancerTop,
    Server,
    Channel,
    /// `source prometheus URL { ... }` in a balancer file.
    Prometheus,
    /// `on_play URL { ... }` (top level, stream or source block).
    OnPlay,
    /// `on_publish URL { ... }` (top level or stream block).
    OnPublish,
}

impl Ctx {
    pub(crate) const NODE: [Ctx; 6] = [
        Ctx::Top,
        Ctx::Stream,
        Ctx::Source,
        Ctx::Peer,
        Ctx::OnPlay,
        Ctx::OnPublish,
    ];
    pub(crate) const BALANCER: [Ctx; 4] = [Ctx::BalancerTop, Ctx::Server, Ctx::Channel, Ctx::Prometheus];
    /// Both kinds, for telling them apart before the kind is known.
    pub(crate) const ALL: [Ctx; 10] = [
        Ctx::Top,
        Ctx::Stream,
        Ctx::Source,
        Ctx::Peer,
        Ctx::OnPlay,
        Ctx::OnPublish,
        Ctx::BalancerTop,
        Ctx::Server,
        Ctx::Channel,
        Ctx::Prometheus,
    ];

    fn kind(self) -> FileKind {
        match self {
            Ctx::Top | Ctx::Stream | Ctx::Source | Ctx::Peer | Ctx::OnPlay | Ctx::OnPublish => FileKind::Node,
            Ctx::BalancerTop | Ctx::Server | Ctx::Channel | Ctx::Prometheus => FileKind::Balancer,
        }
    }

    /// Directive names valid in this context.
    pub(crate) fn directives(self) -> &'static [&'static str] {
        match self {
            Ctx::Top => &[
                "http",
                "cluster_key",
                "public",
                "view_auth",
                "edit_auth",
                "state_dir",
                "max_clients",
                "max_bitrate",
                "client_header_timeout",
                "keepalive_timeout",
                "max_connections",
                "cors",
                "on_play",
                "on_publish",
                "token_secret",
                "session_timeout",
                "max_sessions_per_ip",
                "dvr",
                "storage_limit",
                "dvr_offline",
                "rtmp",
                "srt",
                "stream",
                "source",
                "peer",
            ],
            Ctx::Stream => &[
                "input",
                "backup",
                "source_timeout",
                "segment_duration",
                "segment_count",
                "ondemand",
                "clients_timeout",
                "on_play",
                "on_publish",
                "token_secret",
                "publish_password",
                "password",
                "dvr",
                "storage_limit",
                "dvr_offline",
            ],
            Ctx::Source => &[
                "cluster_key",
                "only",
                "except",
                "on_play",
                "token_secret",
                "backup",
                "dvr",
                "storage_limit",
                "dvr_offline",
                "cache",
                "max_streams",
            ],
            Ctx::Peer => &["public"],
            Ctx::OnPlay | Ctx::OnPublish => &["timeout", "cache", "fail_open"],
            Ctx::BalancerTop => &[
                "http",
                "refresh",
                "source",
                "server",
                "geoip",
                "channel",
                "trusted_proxies",
                "view_auth",
                "edit_auth",
                "state_file",
                "peers",
                "zone_fallback",
            ],
            Ctx::Server => &[
                "url",
                "public",
                "max_clients",
                "monitoring",
                "networks",
                "countries",
                "api_auth",
                "api_token",
                "kind",
                "health",
                "load",
                "match_label",
                "stream_list",
            ],
            Ctx::Channel => &["servers"],
            Ctx::Prometheus => &["query"],
        }
    }

    /// "at top level" / "in stream block", for messages.
    pub(crate) fn describe(self) -> &'static str {
        match self {
            Ctx::Top | Ctx::BalancerTop => "at top level",
            Ctx::Stream => "in stream block",
            Ctx::Source => "in source block",
            Ctx::Peer => "in peer block",
            Ctx::Server => "in server block",
            Ctx::Channel => "in channel block",
            Ctx::Prometheus => "in source prometheus block",
            Ctx::OnPlay => "in on_play block",
            Ctx::OnPublish => "in on_publish block",
        }
    }

    /// Where a directive of this context is allowed, for hints ("a `stream` block").
    fn place(self) -> &'static str {
        match self {
            Ctx::Top | Ctx::BalancerTop => "at top level",
            Ctx::Stream => "inside a `stream` block",
            Ctx::Source => "inside a `source` block",
            Ctx::Peer => "inside a `peer` block",
            Ctx::Server => "inside a `server` block",
            Ctx::Channel => "inside a `channel` block",
            Ctx::Prometheus => "inside a `source prometheus` block",
            Ctx::OnPlay => "inside an `on_play` block",
            Ctx::OnPublish => "inside an `on_publish` block",
        }
    }

    /// The context opened by a block of directive `name` written in `self`;
    /// `None` when such a block has no known contents.
    pub(crate) fn child(self, name: &str) -> Option<Ctx> {
        match (self, name) {
            (Ctx::Top, "stream") => Some(Ctx::Stream),
            (Ctx::Top, "source") => Some(Ctx::Source),
            (Ctx::Top, "peer") => Some(Ctx::Peer),
            (Ctx::Top | Ctx::Stream | Ctx::Source, "on_play") => Some(Ctx::OnPlay),
            (Ctx::Top | Ctx::Stream, "on_publish") => Some(Ctx::OnPublish),
            (Ctx::BalancerTop, "server") => Some(Ctx::Server),
            (Ctx::BalancerTop, "channel") => Some(Ctx::Channel),
            (Ctx::BalancerTop, "source") => Some(Ctx::Prometheus),
            _ => None,
        }
    }

    pub(crate) fn knows(self, name: &str) -> bool {
        self.directives().contains(&name)
    }
}

/// A directive name valid in one of `contexts`.
pub(crate) fn is_directive(contexts: &[Ctx], name: &str) -> bool {
    contexts.iter().any(|c| c.knows(name))
}

/// The message for a directive that is not valid in `ctx`: either it belongs
/// elsewhere in this kind of file ("not allowed ...; use it ..."), or in the
/// other kind of file, or it is unknown, with a did-you-mean.
pub(crate) fn unknown_directive(ctx: Ctx, name: &str) -> String {
    let kind = ctx.kind();
    let homes: Vec<&str> = kind
        .contexts()
        .iter()
        .filter(|c| c.knows(name))
        .map(|c| c.place())
        .collect();
    if !homes.is_empty() {
        let mut msg = format!(
            "`{name}` is not allowed {}; use it {}",
            ctx.describe(),
            homes.join(" or ")
        );
        // A block that belongs only at top level (`stream` inside a
        // `stream`) suggests an unclosed block before it.
        let top_only = homes == [kind.top().place()];
        if ctx != kind.top() && top_only && kind.top().child(name).is_some() {
            msg.push_str(" (is a `}` missing before it?)");
        }
        return msg;
    }
    let other = kind.other();
    if is_directive(other.contexts(), name) {
        let mut msg = format!(
            "`{name}` is not allowed in a {} config; it belongs in a {} config",
            kind.describe(),
            other.describe()
        );
        // `peer` in a balancer file is more likely a misspelt `peers`.
        if let Some(s) = suggest(name, ctx.directives()) {
            msg.push_str(&format!("; did you mean `{s}`?"));
        }
        return msg;
    }
    let mut msg = format!("unknown directive `{name}` {}", ctx.describe());
    if let Some(s) = suggest(name, ctx.directives()) {
        msg.push_str(&format!("; did you mean `{s}`?"));
    }
    msg
}

/// The closest candidate within a small edit distance, if any.
pub(crate) fn suggest<'a>(word: &str, candidates: &[&'a str]) -> Option<&'a str> {
    let word = word.to_lowercase();
    let limit = (word.chars().count() / 3).max(1);
    candidates
        .iter()
        .map(|c| (edit_distance(&word, c), *c))
        .filter(|(d, _)| *d <= limit)
        .min_by_key(|(d, _)| *d)
        .map(|(_, c)| c)
}

/// Like [`suggest`], but only when one candidate is strictly closer than
/// every other: for short names such as `s1`, `s2`, `s3` a typo `s9` is
/// equally close to all of them, and picking one would mislead.
pub(crate) fn suggest_unique<'a>(word: &str, candidates: &[&'a str]) -> Option<&'a str> {
    let limit = (word.chars().count() / 3).max(1);
    let mut scored: Vec<(usize, &str)> = candidates
        .iter()
        .map(|c| (edit_distance(word, c), *c))
        .filter(|(d, _)| *d <= limit)
        .collect();
    scored.sort_by_key(|(d, _)| *d);
    match scored.as_slice() {
        [(_, only)] => Some(only),
        [(d0, best), (d1, _), ..] if d0 < d1 => Some(best),
        _ => None,
    }
}

/// Optimal-string-alignment distance: Levenshtein plus adjacent transpositions,
/// so `inptu` is one edit from `input`.
pub(crate) fn edit_distance(a: &str, b: &str) -> usize {
    let a: Vec<char> = a.chars().collect();
    let b: Vec<char> = b.chars().collect();
    // Rows i-2, i-1 and i of the DP table.
    let mut prev2 = vec![0usize; b.len() + 1];
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    let mut cur = vec![0usize; b.len() + 1];
    for i in 1..=a.len() {
        cur[0] = i;
        for j in 1..=b.len() {
            let cost = usize::from(a[i - 1] != b[j - 1]);
            let mut d = (prev[j] + 1).min(cur[j - 1] + 1).min(prev[j - 1] + cost);
            if i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] {
                d = d.min(prev2[j - 2] + 1);
            }
            cur[j] = d;
        }
        std::mem::swap(&mut prev2, &mut prev);
        std::mem::swap(&mut prev, &mut cur);
    }
    prev[b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn distances() {
        assert_eq!(edit_distance("", ""), 0);
        assert_eq!(edit_distance("abc", ""), 3);
        assert_eq!(edit_distance("sorce_timeout", "source_timeout"), 1);
        assert_eq!(edit_distance("inptu", "input"), 1);
        assert_eq!(edit_distance("kitten", "sitting"), 3);
    }

    #[test]
    fn suggestions_stay_within_context() {
        let s = Ctx::Stream.directives();
        assert_eq!(suggest("sorce_timeout", s), Some("source_timeout"));
        assert_eq!(suggest("INPUT", s), Some("input"));
        assert_eq!(suggest("ondemnad", s), Some("ondemand"));
        assert_eq!(suggest("xyz", s), None);
        assert_eq!(suggest("strem", Ctx::Top.directives()), Some("stream"));
        assert_eq!(suggest("cros", Ctx::Top.directives()), Some("cors"));
        assert_eq!(suggest("CORS", Ctx::Top.directives()), Some("cors"));
        assert_eq!(suggest("strem", Ctx::Stream.directives()), None);
        assert_eq!(suggest("sever", Ctx::BalancerTop.directives()), Some("server"));
        assert_eq!(suggest("qeury", Ctx::Prometheus.directives()), Some("query"));
        assert_eq!(suggest("timout", Ctx::OnPlay.directives()), Some("timeout"));
        assert_eq!(suggest("chache", Ctx::OnPublish.directives()), Some("cache"));
        assert_eq!(suggest("failopen", Ctx::OnPlay.directives()), Some("fail_open"));
        assert_eq!(suggest("on_pubish", Ctx::Stream.directives()), Some("on_publish"));
        assert_eq!(suggest("pasword", Ctx::Stream.directives()), Some("password"));
        assert_eq!(suggest("token_secrt", Ctx::Source.directives()), Some("token_secret"));
        assert_eq!(
            suggest("session_timeot", Ctx::Top.directives()),
            Some("session_timeout")
        );
        assert_eq!(suggest("timout", Ctx::Stream.directives()), None);
    }

    #[test]
    fn auth_directives_and_their_blocks() {
        for ctx in [Ctx::Top, Ctx::Stream, Ctx::Source] {
            assert!(ctx.knows("on_play") && ctx.knows("token_secret"), "{ctx:?}");
            assert_eq!(ctx.child("on_play"), Some(Ctx::OnPlay));
        }
        for ctx in [Ctx::Top, Ctx::Stream] {
            assert!(ctx.knows("on_publish"), "{ctx:?}");
            assert_eq!(ctx.child("on_publish"), Some(Ctx::OnPublish));
        }
        assert!(!Ctx::Source.knows("on_publish"));
        assert_eq!(Ctx::Source.child("on_publish"), None);
        assert_eq!(Ctx::Peer.child("on_play"), None);
        for n in ["publish_password", "password"] {
            assert!(
                Ctx::Stream.knows(n) && !Ctx::Top.knows(n) && !Ctx::Source.knows(n),
                "{n}"
            );
        }
        for n in ["session_timeout", "max_sessions_per_ip"] {
            assert!(
                Ctx::Top.knows(n) && !Ctx::Stream.knows(n) && !Ctx::Source.knows(n),
                "{n}"
            );
        }
        for n in ["timeout", "cache", "fail_open"] {
            assert!(Ctx::OnPlay.knows(n) && Ctx::OnPublish.knows(n), "{n}");
            assert!(!Ctx::Top.knows(n) && !Ctx::Stream.knows(n), "{n}");
            // Known to the parser, so a missing `;` before one is caught.
            assert!(is_directive(FileKind::Node.contexts(), n), "{n}");
            assert!(is_directive(&Ctx::ALL, n), "{n}");
        }
        assert_eq!(
            unknown_directive(Ctx::OnPublish, "fail_opn"),
            "unknown directive `fail_opn` in on_publish block; did you mean `fail_open`?"
        );
        assert_eq!(
            unknown_directive(Ctx::Source, "on_publish"),
            "`on_publish` is not allowed in source block; use it at top level or inside a `stream` block"
        );
        assert_eq!(
            unknown_directive(Ctx::BalancerTop, "token_secret"),
            "`token_secret` is not allowed in a balancer config; it belongs in a node config"
        );
    }

    #[test]
    fn archive_directives_and_their_places() {
        for ctx in [Ctx::Top, Ctx::Stream, Ctx::Source] {
            for n in ["dvr", "storage_limit", "dvr_offline"] {
                assert!(ctx.knows(n), "{ctx:?} {n}");
            }
            assert_eq!(suggest("storage_limt", ctx.directives()), Some("storage_limit"));
            assert_eq!(suggest("dvr_ofline", ctx.directives()), Some("dvr_offline"));
            assert_eq!(suggest("dvr_offlien", ctx.directives()), Some("dvr_offline"));
            assert_eq!(suggest("drv", ctx.directives()), Some("dvr"));
        }
        assert!(Ctx::Source.knows("cache"));
        assert_eq!(suggest("cahce", Ctx::Source.directives()), Some("cache"));
        for ctx in [Ctx::Top, Ctx::Stream, Ctx::Peer] {
            assert!(!ctx.knows("cache"), "{ctx:?}");
        }
        assert_eq!(
            unknown_directive(Ctx::Peer, "storage_limit"),
            "`storage_limit` is not allowed in peer block; use it at top level or inside a `stream` block or inside a \
             `source` block"
        );
        assert_eq!(
            unknown_directive(Ctx::BalancerTop, "dvr_offline"),
            "`dvr_offline` is not allowed in a balancer config; it belongs in a node config"
        );
    }

    #[test]
    fn unique_suggestions() {
        assert_eq!(suggest_unique("s9", &["s1", "s2", "s3"]), None);
        assert_eq!(suggest_unique("s9", &["s1", "edge"]), Some("s1"));
        assert_eq!(suggest_unique("edge-2", &["edge-1", "origin"]), Some("edge-1"));
        assert_eq!(suggest_unique("edge-3", &["edge-1", "edge-2"]), None);
        assert_eq!(suggest_unique("x", &[]), None);
    }

    #[test]
    fn kinds_have_separate_tables() {
        assert!(is_directive(FileKind::Node.contexts(), "stream"));
        assert!(!is_directive(FileKind::Node.contexts(), "server"));
        assert!(is_directive(FileKind::Balancer.contexts(), "server"));
        assert!(!is_directive(FileKind::Balancer.contexts(), "peer"));
        for m in BALANCER_MARKERS {
            assert!(Ctx::BalancerTop.knows(m), "{m}");
            assert!(!is_directive(FileKind::Node.contexts(), m), "{m}");
        }
        assert_eq!(
            unknown_directive(Ctx::BalancerTop, "stream"),
            "`stream` is not allowed in a balancer config; it belongs in a node config"
        );
        assert_eq!(
            unknown_directive(Ctx::Top, "refresh"),
            "`refresh` is not allowed in a node config; it belongs in a balancer config"
        );
        assert_eq!(
            unknown_directive(Ctx::BalancerTop, "max_clients"),
            "`max_clients` is not allowed at top level; use it inside a `server` block"
        );
        assert_eq!(
            unknown_directive(Ctx::Server, "channel"),
            "`channel` is not allowed in server block; use it at top level (is a `}` missing before it?)"
        );
    }
}
