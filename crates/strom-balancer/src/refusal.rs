//! Why a request could not be balanced, in the words middleware shows.
//!
//! Invariant: the reason strings and HTTP statuses are part of the contract
//! with MinistraPRO-style middleware and must not change.

/// A reasoned "no": no server may take this viewer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, thiserror::Error)]
pub enum Refusal {
    /// No server carries the stream, or none that does is Up.
    #[error("nothing_to_play")]
    NothingToPlay,
    /// Servers carry the stream, but none serves the client's network or country.
    #[error("not_available_for_zone")]
    NotAvailableForZone,
    /// Every Up server that may serve the client is full.
    #[error("limit")]
    Limit,
}

impl Refusal {
    /// The reason string middleware expects: `nothing_to_play`,
    /// `not_available_for_zone` or `limit`.
    pub fn as_str(self) -> &'static str {
        match self {
            Refusal::NothingToPlay => "nothing_to_play",
            Refusal::NotAvailableForZone => "not_available_for_zone",
            Refusal::Limit => "limit",
        }
    }

    /// The HTTP status to answer with: 404, 403 or 503 respectively.
    pub fn http_status(self) -> u16 {
        match self {
            Refusal::NothingToPlay => 404,
            Refusal::NotAvailableForZone => 403,
            Refusal::Limit => 503,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strings_and_statuses_are_the_middleware_contract() {
        let all = [
            (Refusal::NothingToPlay, "nothing_to_play", 404),
            (Refusal::NotAvailableForZone, "not_available_for_zone", 403),
            (Refusal::Limit, "limit", 503),
        ];
        for (r, s, code) in all {
            assert_eq!(r.as_str(), s);
            assert_eq!(r.to_string(), s);
            assert_eq!(r.http_status(), code);
        }
    }
}
