//! Source positions and diagnostics.
//!
//! Invariants: lines and columns are 1-based, columns count Unicode scalar
//! values (not bytes), and every position the parser reports lies inside the
//! text it was given (at most one column past the end of a line, which is
//! where a missing `;` or the end of file is reported). `Pos::default()`
//! (0:0) marks a value that did not come from a file.
//!
//! Errors ([`Diagnostic`]) make a file invalid; warnings ([`Warning`]) do
//! not, and travel with the parsed config ([`crate::Config::warnings`]).

use std::fmt;

/// A 1-based line/column position in a config file; columns count characters.
#[derive(Copy, Clone, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Pos {
    /// 1-based line number.
    pub line: u32,
    /// 1-based column, counted in characters.
    pub col: u32,
}

impl Pos {
    /// A position from line and column.
    pub const fn new(line: u32, col: u32) -> Self {
        Pos { line, col }
    }
}

impl fmt::Display for Pos {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.line, self.col)
    }
}

/// One error found in a config file, displayed as `FILE:LINE:COL: message`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{file}:{line}:{col}: {message}")]
pub struct Diagnostic {
    /// The file name given to [`crate::parse`].
    pub file: String,
    /// 1-based line of the offending token.
    pub line: u32,
    /// 1-based column (in characters) of the offending token.
    pub col: u32,
    /// What is wrong, in one line.
    pub message: String,
}

impl Diagnostic {
    /// The diagnostic's position.
    pub fn pos(&self) -> Pos {
        Pos::new(self.line, self.col)
    }
}

/// What a [`Warning`] is about, so that a caller can act on some of them.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum WarningKind {
    /// `dvr_offline` in a `stream` block whose stream is not `ondemand`:
    /// such a stream runs, and records, without viewers anyway, so the
    /// directive changes nothing.
    DvrOfflineWithoutOndemand,
    /// A `dvr` with no depth, disk limit or size: nothing is ever deleted.
    DvrUnbounded,
    /// A balancer `server` that learns no stream list (`stream_list
    /// channels`, the default of Wowza, Nimble and generic servers) and is
    /// in no `channel` block: no viewer can ever be sent to it.
    ServerInNoChannel,
    /// A balancer file with `edit_auth` but no `state_file`, or the
    /// reverse: the admin API refuses every change.
    AdminChangesOff,
    /// A balancer's `geoip` file is missing (or not a file) on the machine
    /// that checked it; `strom balancer` refuses to start without it.
    GeoipMissing,
}

/// Something in a valid config file that does not do what it says,
/// displayed as `FILE:LINE:COL: warning: message`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Warning {
    /// The file name given to [`crate::parse`].
    pub file: String,
    /// 1-based line of the directive.
    pub line: u32,
    /// 1-based column (in characters) of the directive's name.
    pub col: u32,
    /// What the warning is about.
    pub kind: WarningKind,
    /// What happens instead, in one line (without the `warning: ` prefix).
    pub message: String,
}

impl Warning {
    /// The warning's position.
    pub fn pos(&self) -> Pos {
        Pos::new(self.line, self.col)
    }
}

impl fmt::Display for Warning {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}:{}: warning: {}", self.file, self.line, self.col, self.message)
    }
}

/// Collects diagnostics for one file; every stage pushes here so that all
/// errors are reported together, ordered by position.
#[derive(Debug)]
pub(crate) struct Diags {
    file: String,
    list: Vec<Diagnostic>,
    warnings: Vec<Warning>,
}

impl Diags {
    pub(crate) fn new(file: &str) -> Self {
        Diags {
            file: file.to_owned(),
            list: Vec::new(),
            warnings: Vec::new(),
        }
    }

    pub(crate) fn warn(&mut self, pos: Pos, kind: WarningKind, message: impl Into<String>) {
        self.warnings.push(Warning {
            file: self.file.clone(),
            line: pos.line,
            col: pos.col,
            kind,
            message: message.into(),
        });
    }

    /// The warnings so far, sorted by position, leaving none behind.
    pub(crate) fn take_warnings(&mut self) -> Vec<Warning> {
        let mut w = std::mem::take(&mut self.warnings);
        w.sort_by_key(|w| (w.line, w.col));
        w
    }

    pub(crate) fn error(&mut self, pos: Pos, message: impl Into<String>) {
        self.list.push(Diagnostic {
            file: self.file.clone(),
            line: pos.line,
            col: pos.col,
            message: message.into(),
        });
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.list.is_empty()
    }

    /// All diagnostics, sorted by position; equal positions keep discovery order.
    pub(crate) fn into_sorted(mut self) -> Vec<Diagnostic> {
        self.list.sort_by_key(|d| (d.line, d.col));
        self.list
    }
}
