//! strom-config: the Flussonic-style config file parser and the typed config.
//!
//! Pipeline, one pass per stage, no I/O: text → `lex` (tokens with
//! line/column) → `syntax` (directive tree) → `check` (typed [`Config`]),
//! and back to text with `render` ([`Config::to_text`]).
//! Every stage records errors and recovers, so [`parse`] returns all of a
//! file's errors at once, sorted by position, each as `FILE:LINE:COL: message`.
//!
//! Invariants: [`parse`] never panics on any input; every diagnostic points
//! inside the text; an `Ok` config satisfies the invariants in [`model`] and
//! [`Config::to_text`] renders it so that it parses back equal.
//!
//! ```
//! let cfg = strom_config::parse("strom.conf", "stream news { input udp://239.0.0.1:1234; }").unwrap();
//! assert_eq!(cfg.stream("news").unwrap().inputs[0].to_string(), "udp://239.0.0.1:1234");
//! let errs = strom_config::parse("strom.conf", "stream news { inptu udp://239.0.0.1:1234; }").unwrap_err();
//! assert_eq!(
//!     errs[0].to_string(),
//!     "strom.conf:1:15: unknown directive `inptu` in stream block; did you mean `input`?"
//! );
//! ```

mod check;
mod diag;
mod input;
mod lex;
pub mod model;
mod render;
mod schema;
mod syntax;
mod value;

#[cfg(test)]
mod tests;

pub use diag::{Diagnostic, Pos};
pub use input::{Input, InputError};
pub use model::{Config, DvrConfig, PeerConfig, SourceConfig, StreamConfig, DEFAULT_PORT};
pub use value::{
    check_stream_name, format_bitrate, format_duration, format_size, parse_bitrate, parse_duration, parse_size,
    RESERVED_STREAM_PREFIXES,
};

/// Parses config `text`; `file_name` only prefixes diagnostics.
///
/// Returns every error found (sorted by line and column), or the config
/// when there is none.
pub fn parse(file_name: &str, text: &str) -> Result<Config, Vec<Diagnostic>> {
    let mut diags = diag::Diags::new(file_name);
    let lexed = lex::lex(text, &mut diags);
    let tree = syntax::parse_tree(&lexed, &mut diags);
    let config = check::check(&tree, &mut diags);
    if diags.is_empty() {
        Ok(config)
    } else {
        Err(diags.into_sorted())
    }
}
