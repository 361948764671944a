//! Play authorization: the second step of the playback gate, after peer
//! redirects and before an output serves the request.
//!
//! This is where `on_play` (Flussonic's backend protocol: REFERENCE,
//! "Play authorization") plugs in, with its decision cache and sessions.
//! Until it lands every request is allowed, and `strom run` refuses a config
//! that sets `on_play` unless `--allow-unimplemented` is given, so a
//! migrated config cannot silently become open to everyone.

use super::request::PlayRequest;
use crate::stream::Stream;

/// What authorization decided for one request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// Serve it.
    Allow,
    /// 403.
    Deny,
    /// 302 to this URL.
    Redirect(String),
}

/// Decides whether `req` may play `stream`. Never called for segments of a
/// session already allowed (segments never cause a backend call).
pub fn authorize(_stream: &Stream, _req: &PlayRequest) -> Verdict {
    Verdict::Allow
}
