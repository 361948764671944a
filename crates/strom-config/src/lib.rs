//! strom-config: the Flussonic-style config file parser and the typed config.
//!
//! Two kinds of file share the syntax: a node's ([`parse`] → [`Config`]) and
//! a balancer's ([`parse_balancer`] → [`BalancerConfig`]); [`parse_any`]
//! tells them apart by content.
//!
//! Pipeline, one pass per stage, no I/O: text → `lex` (tokens with
//! line/column) → `syntax` (directive tree) → `check` or `check_balancer`
//! (typed config), and back to text with `render` ([`Config::to_text`],
//! [`BalancerConfig::to_text`]). Every stage records errors and recovers,
//! so the parsers return all of a file's errors at once, sorted by
//! position, each as `FILE:LINE:COL: message`.
//!
//! A valid node config can still carry warnings ([`Config::warnings`],
//! displayed as `FILE:LINE:COL: warning: message`): directives that are
//! valid but will not do what they say ([`WarningKind`]).
//!
//! Invariants: the parsers never panic on any input; every diagnostic
//! and warning points inside the text; an `Ok` config satisfies the
//! invariants in [`model`] and its `to_text` renders it so that it parses
//! back equal.
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
//!
//! ```
//! use strom_config::AnyConfig;
//! let text = "server s1 { url http://10.0.0.1:8080; max_clients 1000; }";
//! let Ok(AnyConfig::Balancer(cfg)) = strom_config::parse_any("b.conf", text) else { panic!() };
//! assert_eq!(cfg.server("s1").unwrap().max_clients, 1000);
//! assert_eq!(strom_config::parse_balancer("b.conf", &cfg.to_text()), Ok(cfg));
//! ```

mod check;
mod check_balancer;
mod diag;
mod input;
mod lex;
pub mod model;
mod render;
mod schema;
mod server_kind;
mod syntax;
mod value;

#[cfg(test)]
mod tests;
#[cfg(test)]
mod tests_balancer;
#[cfg(test)]
mod tests_balancer_api;

pub use check_balancer::check_server_kind;
pub use diag::{Diagnostic, Pos, Warning, WarningKind};
pub use input::{Input, InputError, RTMP_DEFAULT_PORT, SRT_DEFAULT_LATENCY, SRT_LATENCY_MS};
pub use ipnet::IpNet;
pub use model::{
    ApiToken, AuthBackend, BalancerConfig, CacheConfig, ChannelConfig, Config, Cors, Credentials, DvrConfig,
    HealthCheck, LabelMatch, LoadFormat, LoadSource, PeerConfig, PrometheusSource, ServerConfig, ServerKind,
    SourceConfig, SrtListen, StreamConfig, StreamList, DEFAULT_BALANCER_PORT, DEFAULT_PORT,
};
use schema::{Ctx, FileKind, BALANCER_MARKERS};
pub use value::{
    check_stream_name, format_bitrate, format_duration, format_size, parse_bitrate, parse_duration, parse_net,
    parse_size, RESERVED_STREAM_PREFIXES,
};

/// Parses node config `text`; `file_name` only prefixes diagnostics.
///
/// Returns every error found (sorted by line and column), or the config
/// when there is none. A config may still carry warnings in
/// [`Config::warnings`] (directives that will not do what they say); a
/// caller must show them, as `strom check` and `strom run` do.
///
/// ```
/// let text = "dvr /storage 7d;\nstream s {\n  input publish://;\n  dvr /fast 1d;\n  storage_limit 500G;\n  dvr_offline;\n}";
/// let cfg = strom_config::parse("a.conf", text).unwrap();
/// let s = cfg.stream("s").unwrap();
/// let dvr = cfg.dvr_for(s, None).unwrap();
/// assert_eq!((dvr.root.to_str(), dvr.max_size, dvr.offline), (Some("/fast"), Some(500 << 30), true));
/// // `s` is not `ondemand`: it records without viewers anyway.
/// assert_eq!(cfg.warnings[0].kind, strom_config::WarningKind::DvrOfflineWithoutOndemand);
/// assert_eq!(
///     cfg.warnings[0].to_string(),
///     "a.conf:6:3: warning: `dvr_offline` changes nothing: stream `s` is not `ondemand`, so it runs and records without viewers anyway"
/// );
/// ```
pub fn parse(file_name: &str, text: &str) -> Result<Config, Vec<Diagnostic>> {
    let mut diags = diag::Diags::new(file_name);
    let lexed = lex::lex(text, &mut diags);
    node(&lexed, diags)
}

/// Parses balancer config `text` (`strom balancer -c FILE`); `file_name`
/// only prefixes diagnostics.
///
/// Returns every error found (sorted by line and column), or the config
/// when there is none. A config may still carry warnings in
/// [`BalancerConfig::warnings`] (such as a server no viewer can be sent
/// to); a caller must show them.
pub fn parse_balancer(file_name: &str, text: &str) -> Result<BalancerConfig, Vec<Diagnostic>> {
    let mut diags = diag::Diags::new(file_name);
    let lexed = lex::lex(text, &mut diags);
    balancer(&lexed, diags)
}

/// A node or a balancer config, as told apart by [`parse_any`].
// A node config is several times the size of a balancer's; boxing it would
// buy nothing for a value made once per parse and moved a few times.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, PartialEq)]
pub enum AnyConfig {
    /// A node's config (`strom -c FILE`).
    Node(Config),
    /// A balancer's config (`strom balancer -c FILE`).
    Balancer(BalancerConfig),
}

impl AnyConfig {
    /// The config's canonical text (see [`Config::to_text`] and
    /// [`BalancerConfig::to_text`]); [`parse_any`] reads it back as the
    /// same kind.
    pub fn to_text(&self) -> String {
        match self {
            AnyConfig::Node(c) => c.to_text(),
            AnyConfig::Balancer(c) => c.to_text(),
        }
    }
}

/// Parses a node or a balancer config, decided by content: a file whose top
/// level uses any of `server`, `channel`, `refresh`, `geoip`, `trusted_proxies`
/// or `zone_fallback` is a balancer file, any other a node file (an empty
/// one too). Errors are those of the chosen kind, exactly as [`parse`] or
/// [`parse_balancer`] report them.
pub fn parse_any(file_name: &str, text: &str) -> Result<AnyConfig, Vec<Diagnostic>> {
    let mut diags = diag::Diags::new(file_name);
    let lexed = lex::lex(text, &mut diags);
    // The structure is read once with both kinds' directive names (so a
    // missing `;` before `server` splits as in a balancer file) only to look
    // at the top level; the chosen kind then parses it for real.
    let mut scratch = diag::Diags::new(file_name);
    let tree = syntax::parse_tree(&lexed, &Ctx::ALL, &mut scratch);
    if tree.iter().any(|d| BALANCER_MARKERS.contains(&d.name.text.as_str())) {
        balancer(&lexed, diags).map(AnyConfig::Balancer)
    } else {
        node(&lexed, diags).map(AnyConfig::Node)
    }
}

fn node(lexed: &lex::Lexed, mut diags: diag::Diags) -> Result<Config, Vec<Diagnostic>> {
    let tree = syntax::parse_tree(lexed, FileKind::Node.contexts(), &mut diags);
    let mut config = check::check(&tree, &mut diags);
    config.warnings = diags.take_warnings();
    finish(config, diags)
}

fn balancer(lexed: &lex::Lexed, mut diags: diag::Diags) -> Result<BalancerConfig, Vec<Diagnostic>> {
    let tree = syntax::parse_tree(lexed, FileKind::Balancer.contexts(), &mut diags);
    let mut config = check_balancer::check_balancer(&tree, &mut diags);
    config.warnings = diags.take_warnings();
    finish(config, diags)
}

fn finish<T>(config: T, diags: diag::Diags) -> Result<T, Vec<Diagnostic>> {
    if diags.is_empty() {
        Ok(config)
    } else {
        Err(diags.into_sorted())
    }
}
