//! Lexer: config text → words, `;`, `{`, `}` with positions.
//!
//! Rules (nginx/Flussonic style):
//! - whitespace separates tokens; `\n` starts a new line;
//! - `#` at the start of a token comments out the rest of the line, so
//!   `http://x/#frag` stays one word;
//! - a bare word is a run of anything but whitespace, `;`, `{`, `}` and `"`;
//!   control characters are only allowed inside quotes;
//! - a quoted string, in double or single quotes, may span lines; a
//!   backslash escapes the string's own quote and a backslash (`\"` and `\\`,
//!   or `\'` and `\\`), and any other backslash is kept literally;
//! - like `#`, a `'` starts a string only at the start of a token, so
//!   `it's` and URLs with a `'` stay one word.
//!
//! Invariants: never panics; every token and error position lies inside the
//! text; an unterminated string consumes the rest of the file and sets
//! [`Lexed::truncated`] so the parser does not pile further errors on top.

use crate::diag::{Diags, Pos};

/// What a token is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    Word,
    Semi,
    Open,
    Close,
}

/// One token. `end` is the position just after its last character.
#[derive(Debug, Clone)]
pub(crate) struct Token {
    pub kind: Kind,
    pub text: String,
    pub pos: Pos,
    pub end: Pos,
    /// Written as a quoted string (never a directive name by accident).
    pub quoted: bool,
}

/// The token stream of one file.
#[derive(Debug)]
pub(crate) struct Lexed {
    pub tokens: Vec<Token>,
    /// An unterminated string swallowed the end of the file.
    pub truncated: bool,
}

struct Cursor<'a> {
    chars: std::iter::Peekable<std::str::Chars<'a>>,
    line: u32,
    col: u32,
}

impl Cursor<'_> {
    fn pos(&self) -> Pos {
        Pos::new(self.line, self.col)
    }

    fn peek(&mut self) -> Option<char> {
        self.chars.peek().copied()
    }

    fn bump(&mut self) -> Option<char> {
        let c = self.chars.next()?;
        if c == '\n' {
            self.line = self.line.saturating_add(1);
            self.col = 1;
        } else {
            self.col = self.col.saturating_add(1);
        }
        Some(c)
    }
}

/// Characters that end a bare word.
pub(crate) fn is_delimiter(c: char) -> bool {
    c.is_whitespace() || matches!(c, ';' | '{' | '}' | '"')
}

/// Splits `text` into tokens, reporting lexical errors into `diags`.
pub(crate) fn lex(text: &str, diags: &mut Diags) -> Lexed {
    // A UTF-8 byte order mark is invisible in editors: skip it without
    // counting a column.
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let mut cur = Cursor {
        chars: text.chars().peekable(),
        line: 1,
        col: 1,
    };
    let mut tokens = Vec::new();
    let mut truncated = false;
    while let Some(c) = cur.peek() {
        let pos = cur.pos();
        let punct = match c {
            ';' => Some(Kind::Semi),
            '{' => Some(Kind::Open),
            '}' => Some(Kind::Close),
            _ => None,
        };
        if let Some(kind) = punct {
            cur.bump();
            tokens.push(Token {
                kind,
                text: c.to_string(),
                pos,
                end: cur.pos(),
                quoted: false,
            });
        } else if c.is_whitespace() {
            cur.bump();
        } else if c == '#' {
            while cur.peek().is_some_and(|c| c != '\n') {
                cur.bump();
            }
        } else if c == '"' || c == '\'' {
            let quote = c;
            cur.bump();
            let mut s = String::new();
            let mut closed = false;
            while let Some(c) = cur.bump() {
                match c {
                    c if c == quote => {
                        closed = true;
                        break;
                    }
                    '\\' => match cur.peek() {
                        Some(e) if e == quote || e == '\\' => {
                            cur.bump();
                            s.push(e);
                        }
                        _ => s.push('\\'),
                    },
                    c => s.push(c),
                }
            }
            if !closed {
                diags.error(pos, "unterminated string");
                truncated = true;
            }
            let end = cur.pos();
            if let Some(next) = cur.peek() {
                if !(next.is_whitespace() || matches!(next, ';' | '{' | '}' | '#')) {
                    diags.error(end, "expected a space, `;`, `{` or `}` after a quoted string");
                }
            }
            tokens.push(Token {
                kind: Kind::Word,
                text: s,
                pos,
                end,
                quoted: true,
            });
        } else {
            let mut s = String::new();
            while let Some(c) = cur.peek() {
                if is_delimiter(c) {
                    break;
                }
                if c.is_control() {
                    // Binary junk outside quotes: report and drop it.
                    diags.error(
                        cur.pos(),
                        format!("unexpected control character U+{:04X}", u32::from(c)),
                    );
                } else {
                    s.push(c);
                }
                cur.bump();
            }
            let end = cur.pos();
            if cur.peek() == Some('"') {
                diags.error(
                    end,
                    "unexpected `\"` in the middle of a word; quote the whole value instead",
                );
            }
            if !s.is_empty() {
                tokens.push(Token {
                    kind: Kind::Word,
                    text: s,
                    pos,
                    end,
                    quoted: false,
                });
            }
        }
    }
    Lexed { tokens, truncated }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn words(text: &str) -> Vec<(String, Pos, bool)> {
        let mut d = Diags::new("t");
        let l = lex(text, &mut d);
        assert!(d.is_empty(), "{:?}", d.into_sorted());
        l.tokens.into_iter().map(|t| (t.text, t.pos, t.quoted)).collect()
    }

    #[test]
    fn bare_words_keep_url_characters() {
        let t = words("input udp://239.0.0.1:1234?iface=10.0.0.1&source=1.2.3.4;");
        assert_eq!(t.len(), 3);
        assert_eq!(t[1].0, "udp://239.0.0.1:1234?iface=10.0.0.1&source=1.2.3.4");
        assert_eq!(t[2].0, ";");
        let t = words("only a/* b? [x],y ~z+1 @e%");
        let got: Vec<&str> = t.iter().map(|t| t.0.as_str()).collect();
        assert_eq!(got, ["only", "a/*", "b?", "[x],y", "~z+1", "@e%"]);
    }

    #[test]
    fn comments_only_at_token_start() {
        let t = words("a # comment ; { }\nb http://x/#frag;# c\n#last");
        let got: Vec<(&str, Pos)> = t.iter().map(|t| (t.0.as_str(), t.1)).collect();
        assert_eq!(
            got,
            [
                ("a", Pos::new(1, 1)),
                ("b", Pos::new(2, 1)),
                ("http://x/#frag", Pos::new(2, 3)),
                (";", Pos::new(2, 17)),
            ]
        );
    }

    #[test]
    fn quoted_strings_and_escapes() {
        let t = words(
            r#"k "a b" "q\"x\\y" "\n" "" "two
lines" z"#,
        );
        let got: Vec<(&str, bool)> = t.iter().map(|t| (t.0.as_str(), t.2)).collect();
        assert_eq!(
            got,
            [
                ("k", false),
                ("a b", true),
                ("q\"x\\y", true),
                ("\\n", true),
                ("", true),
                ("two\nlines", true),
                ("z", false),
            ]
        );
        assert_eq!(t[6].1, Pos::new(2, 8));
    }

    #[test]
    fn single_quoted_strings() {
        let t = words(
            r#"k 'a b' 'q\'x\\y' '"' "'" 'x\"' '' it's a'b 'two
lines';"#,
        );
        let got: Vec<(&str, bool)> = t.iter().map(|t| (t.0.as_str(), t.2)).collect();
        assert_eq!(
            got,
            [
                ("k", false),
                ("a b", true),
                ("q'x\\y", true),
                ("\"", true),
                ("'", true),
                ("x\\\"", true),
                ("", true),
                ("it's", false),
                ("a'b", false),
                ("two\nlines", true),
                (";", false),
            ]
        );
        let mut d = Diags::new("f");
        let l = lex("a 'b;\n", &mut d);
        assert!(l.truncated);
        let d: Vec<String> = d.into_sorted().iter().map(|d| d.to_string()).collect();
        assert_eq!(d, ["f:1:3: unterminated string"]);
    }

    #[test]
    fn columns_count_characters_not_bytes() {
        let t = words("é日本 x");
        assert_eq!(t[1].1, Pos::new(1, 5));
        let t = words("\u{feff}a\tb");
        assert_eq!(t[0].1, Pos::new(1, 1));
        assert_eq!(t[1].1, Pos::new(1, 3));
    }

    #[test]
    fn unterminated_string_is_reported_at_its_quote() {
        let mut d = Diags::new("f.conf");
        let l = lex("a;\n  b \"xyz\n;", &mut d);
        assert!(l.truncated);
        let d: Vec<String> = d.into_sorted().iter().map(|d| d.to_string()).collect();
        assert_eq!(d, ["f.conf:2:5: unterminated string"]);
    }

    #[test]
    fn control_characters_need_quotes() {
        let mut d = Diags::new("f");
        let l = lex("a\u{0}b \u{7f}; \"\u{0}\"", &mut d);
        let texts: Vec<&str> = l.tokens.iter().map(|t| t.text.as_str()).collect();
        assert_eq!(texts, ["ab", ";", "\u{0}"]);
        let d: Vec<String> = d.into_sorted().iter().map(|d| d.to_string()).collect();
        assert_eq!(
            d,
            [
                "f:1:2: unexpected control character U+0000",
                "f:1:5: unexpected control character U+007F",
            ]
        );
    }

    #[test]
    fn glued_quotes_are_reported() {
        let mut d = Diags::new("f");
        lex("a\"b\" \"c\"d;", &mut d);
        let d: Vec<String> = d.into_sorted().iter().map(|d| d.to_string()).collect();
        assert_eq!(
            d,
            [
                "f:1:2: unexpected `\"` in the middle of a word; quote the whole value instead",
                "f:1:9: expected a space, `;`, `{` or `}` after a quoted string",
            ]
        );
    }
}
