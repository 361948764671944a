//! Parser: tokens → a tree of directives, before any meaning is attached.
//!
//! Grammar: `items := directive*`, `directive := WORD WORD* (';' | '{' items '}')`.
//!
//! Recovery, so that one run reports every error:
//! - a stray `}` at top level, a stray `;` or a nameless `{ ... }` is
//!   reported and skipped;
//! - a directive that runs into `}`, the end of file, or a known directive
//!   name (of any block of the file's kind, so a missing `}` plus a missing
//!   `;` still splits right) at the start of a new line is reported as missing its `;` and
//!   ends there, so the next directive still parses;
//! - a block that reaches the end of file is reported at its `{`.
//!
//! Invariants: never panics; nesting is capped at [`MAX_DEPTH`] (deeper
//! blocks are reported and skipped without recursion), so hostile input can
//! neither overflow the stack here nor when the tree is dropped.

use crate::diag::{Diags, Pos};
use crate::lex::{Kind, Lexed, Token};
use crate::schema::{is_directive, Ctx};

/// Deepest block nesting kept in the tree; strom's grammar needs 2
/// (`stream NAME { on_play URL { ... } }`).
pub(crate) const MAX_DEPTH: usize = 8;

/// One directive: `name args... ;` or `name args... { items }`.
#[derive(Debug)]
pub(crate) struct Directive {
    pub name: Token,
    pub args: Vec<Token>,
    pub body: Body,
}

/// How a directive ended.
#[derive(Debug)]
pub(crate) enum Body {
    /// `;` at this position.
    Semi(Pos),
    /// `{ ... }` opened at `open`; `closed` is false when the file ended
    /// first (already reported).
    Block {
        open: Pos,
        items: Vec<Directive>,
        closed: bool,
    },
    /// The `;` was missing (already reported).
    Missing,
    /// An unterminated string swallowed the rest of the file, this
    /// directive's end included; only the string is reported.
    Truncated,
}

struct Parser<'a> {
    tokens: &'a [Token],
    next: usize,
    truncated: bool,
    /// The blocks of this kind of file, whose directive names end a
    /// directive missing its `;`.
    contexts: &'a [Ctx],
    diags: &'a mut Diags,
}

/// Parses the token stream into top-level directives; `contexts` are the
/// blocks of the file's kind (see [`crate::schema::FileKind::contexts`]).
pub(crate) fn parse_tree(lexed: &Lexed, contexts: &[Ctx], diags: &mut Diags) -> Vec<Directive> {
    let mut p = Parser {
        tokens: &lexed.tokens,
        next: 0,
        truncated: lexed.truncated,
        contexts,
        diags,
    };
    p.items(0)
}

impl Parser<'_> {
    fn peek(&self) -> Option<&Token> {
        self.tokens.get(self.next)
    }

    fn bump(&mut self) -> Option<Token> {
        let t = self.tokens.get(self.next).cloned();
        if t.is_some() {
            self.next += 1;
        }
        t
    }

    /// Directives until `}` (left for the caller) or end of file.
    fn items(&mut self, depth: usize) -> Vec<Directive> {
        let mut items = Vec::new();
        while let Some(t) = self.peek() {
            let pos = t.pos;
            match t.kind {
                Kind::Close if depth == 0 => {
                    self.diags.error(pos, "unexpected `}`");
                    self.bump();
                }
                Kind::Close => break,
                Kind::Semi => {
                    self.diags.error(pos, "unexpected `;` without a directive");
                    self.bump();
                }
                Kind::Open => {
                    self.diags.error(pos, "unexpected `{` without a directive name");
                    self.bump();
                    self.block(depth + 1, pos);
                }
                Kind::Word => {
                    if let Some(name) = self.bump() {
                        items.push(self.directive(name, depth));
                    }
                }
            }
        }
        items
    }

    /// The rest of a directive whose name was just consumed.
    fn directive(&mut self, name: Token, depth: usize) -> Directive {
        let mut args: Vec<Token> = Vec::new();
        let mut last_end = name.end;
        let missing = format!("missing `;` after `{}` directive", name.text);
        let body = loop {
            let Some(t) = self.peek() else {
                if self.truncated {
                    break Body::Truncated;
                }
                self.diags.error(last_end, missing);
                break Body::Missing;
            };
            match t.kind {
                Kind::Word => {
                    let starts_directive =
                        t.pos.line > last_end.line && !t.quoted && is_directive(self.contexts, &t.text);
                    if starts_directive {
                        self.diags.error(last_end, missing);
                        break Body::Missing;
                    }
                    last_end = t.end;
                    if let Some(t) = self.bump() {
                        args.push(t);
                    }
                }
                Kind::Semi => {
                    let pos = t.pos;
                    self.bump();
                    break Body::Semi(pos);
                }
                Kind::Open => {
                    let open = t.pos;
                    self.bump();
                    let (items, closed) = self.block(depth + 1, open);
                    break Body::Block { open, items, closed };
                }
                Kind::Close => {
                    self.diags.error(last_end, missing);
                    break Body::Missing;
                }
            }
        };
        Directive { name, args, body }
    }

    /// The contents of a block whose `{` at `open` was just consumed,
    /// including its closing `}`, and whether that `}` was found.
    fn block(&mut self, depth: usize, open: Pos) -> (Vec<Directive>, bool) {
        if depth > MAX_DEPTH {
            self.diags.error(open, "blocks are nested too deeply");
            let mut level = 1usize;
            while let Some(t) = self.bump() {
                match t.kind {
                    Kind::Open => level += 1,
                    Kind::Close => {
                        level -= 1;
                        if level == 0 {
                            return (Vec::new(), true);
                        }
                    }
                    _ => {}
                }
            }
            if !self.truncated {
                self.diags.error(open, "block opened here is never closed");
            }
            return (Vec::new(), false);
        }
        let items = self.items(depth);
        if self.peek().is_some_and(|t| t.kind == Kind::Close) {
            self.bump();
            return (items, true);
        }
        if !self.truncated {
            self.diags.error(open, "block opened here is never closed");
        }
        (items, false)
    }
}
