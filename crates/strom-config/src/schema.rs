//! Which directives exist in which block, and did-you-mean suggestions.
//!
//! Invariant: this table is the single list of directive names. The parser
//! uses it to spot a missing `;` (a directive name at the start of a line),
//! and the checker uses it for "unknown" and "not allowed here" errors, so
//! they can never disagree.

/// A block context: where a directive appears.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Ctx {
    Top,
    Stream,
    Source,
    Peer,
}

impl Ctx {
    pub(crate) const ALL: [Ctx; 4] = [Ctx::Top, Ctx::Stream, Ctx::Source, Ctx::Peer];

    /// Directive names valid in this context.
    pub(crate) fn directives(self) -> &'static [&'static str] {
        match self {
            Ctx::Top => &[
                "http",
                "cluster_key",
                "state_dir",
                "max_clients",
                "max_bitrate",
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
                "dvr",
            ],
            Ctx::Source => &["cluster_key", "only", "except", "on_play", "backup", "dvr"],
            Ctx::Peer => &["public"],
        }
    }

    /// "at top level" / "in stream block", for messages.
    pub(crate) fn describe(self) -> &'static str {
        match self {
            Ctx::Top => "at top level",
            Ctx::Stream => "in stream block",
            Ctx::Source => "in source block",
            Ctx::Peer => "in peer block",
        }
    }

    /// Where a directive of this context is allowed, for hints ("a `stream` block").
    fn place(self) -> &'static str {
        match self {
            Ctx::Top => "at top level",
            Ctx::Stream => "inside a `stream` block",
            Ctx::Source => "inside a `source` block",
            Ctx::Peer => "inside a `peer` block",
        }
    }

    /// The context opened by a block of directive `name` written in `self`;
    /// `None` when such a block has no known contents.
    pub(crate) fn child(self, name: &str) -> Option<Ctx> {
        match (self, name) {
            (Ctx::Top, "stream") => Some(Ctx::Stream),
            (Ctx::Top, "source") => Some(Ctx::Source),
            (Ctx::Top, "peer") => Some(Ctx::Peer),
            _ => None,
        }
    }

    pub(crate) fn knows(self, name: &str) -> bool {
        self.directives().contains(&name)
    }
}

/// A directive name valid in some block.
pub(crate) fn is_directive(name: &str) -> bool {
    Ctx::ALL.iter().any(|c| c.knows(name))
}

/// The message for a directive that is not valid in `ctx`: either it belongs
/// elsewhere ("not allowed") or it is unknown, with a did-you-mean.
pub(crate) fn unknown_directive(ctx: Ctx, name: &str) -> String {
    let homes: Vec<&str> = Ctx::ALL.iter().filter(|c| c.knows(name)).map(|c| c.place()).collect();
    if !homes.is_empty() {
        let mut msg = format!(
            "`{name}` is not allowed {}; use it {}",
            ctx.describe(),
            homes.join(" or ")
        );
        if ctx != Ctx::Top && Ctx::Top.child(name).is_some() {
            msg.push_str(" (is a `}` missing before it?)");
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
        assert_eq!(suggest("strem", Ctx::Stream.directives()), None);
    }
}
