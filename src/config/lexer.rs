//! Lexer for the config language: source text in, words and `;` `{` `}` out, each with its
//! 1-based line:column (columns in chars). Drops whitespace and `#` comments.
//!
//! A word is either double-quoted (escapes `\"` and `\\` only; it cannot span lines) or bare:
//! a bare word runs until whitespace, `;`, `{`, `}` or `#`, so `auth://play-auth` and
//! `10.0.0.0/8` are single words. Problems (unterminated strings, bad escapes, control
//! characters) go to the diagnostics sink and lexing continues. One pass, no backtracking,
//! never panics.

use super::error::Diagnostics;
use super::model::Span;
use std::iter::Peekable;
use std::str::Chars;

/// A bare or quoted word.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Word {
    /// The value: quotes removed and escapes resolved.
    pub text: String,
    /// Written in double quotes. A quoted word is never taken for a directive name when the
    /// parser recovers from a missing `;`.
    pub quoted: bool,
    /// Where the word starts (the opening quote for a quoted word).
    pub span: Span,
    /// Just past the word's last char: where a missing `;` belongs.
    pub end: Span,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Token {
    Word(Word),
    Semicolon(Span),
    OpenBrace(Span),
    CloseBrace(Span),
}

#[cfg(test)]
impl Token {
    pub(crate) fn span(&self) -> Span {
        match self {
            Token::Word(w) => w.span,
            Token::Semicolon(s) | Token::OpenBrace(s) | Token::CloseBrace(s) => *s,
        }
    }
}

pub(crate) struct Lexer<'a> {
    chars: Peekable<Chars<'a>>,
    /// Position of the next char.
    line: u32,
    col: u32,
}

impl<'a> Lexer<'a> {
    pub(crate) fn new(source: &'a str) -> Self {
        // A UTF-8 byte order mark is not part of the config.
        let source = source.strip_prefix('\u{feff}').unwrap_or(source);
        Lexer {
            chars: source.chars().peekable(),
            line: 1,
            col: 1,
        }
    }

    fn pos(&self) -> Span {
        Span {
            line: self.line,
            col: self.col,
        }
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

    /// The next token, or `None` at end of input.
    pub(crate) fn next_token(&mut self, diags: &mut Diagnostics) -> Option<Token> {
        loop {
            let start = self.pos();
            let c = self.peek()?;
            match c {
                '#' => {
                    while self.peek().is_some_and(|c| c != '\n') {
                        self.bump();
                    }
                }
                c if c.is_whitespace() => {
                    self.bump();
                }
                ';' => {
                    self.bump();
                    return Some(Token::Semicolon(start));
                }
                '{' => {
                    self.bump();
                    return Some(Token::OpenBrace(start));
                }
                '}' => {
                    self.bump();
                    return Some(Token::CloseBrace(start));
                }
                '"' => return Some(Token::Word(self.quoted(diags))),
                c if c.is_control() => {
                    self.bump();
                    diags.error(start, control_char_message(c));
                }
                _ => return Some(Token::Word(self.bare(diags))),
            }
        }
    }

    fn bare(&mut self, diags: &mut Diagnostics) -> Word {
        let span = self.pos();
        let mut text = String::new();
        while let Some(c) = self.peek() {
            if c.is_whitespace() || matches!(c, ';' | '{' | '}' | '#') {
                break;
            }
            let at = self.pos();
            self.bump();
            if c.is_control() {
                diags.error(at, control_char_message(c));
            } else {
                if c == '"' {
                    diags.error(
                        at,
                        "unexpected `\"` inside a word; quote the whole value instead",
                    );
                }
                text.push(c);
            }
        }
        Word {
            text,
            quoted: false,
            span,
            end: self.pos(),
        }
    }

    fn quoted(&mut self, diags: &mut Diagnostics) -> Word {
        let span = self.pos();
        self.bump(); // the opening quote
        let mut text = String::new();
        loop {
            let at = self.pos();
            match self.peek() {
                None | Some('\n') => {
                    diags.error(
                        span,
                        "unterminated string: missing closing `\"` on this line",
                    );
                    break;
                }
                Some('"') => {
                    self.bump();
                    break;
                }
                Some('\\') => {
                    self.bump();
                    match self.peek() {
                        Some(c @ ('"' | '\\')) => {
                            self.bump();
                            text.push(c);
                        }
                        // Reported as unterminated on the next turn; keep the backslash.
                        None | Some('\n') => text.push('\\'),
                        Some(c) => {
                            self.bump();
                            if c.is_control() {
                                diags.error(at, control_char_message(c));
                            } else {
                                diags.error(
                                    at,
                                    format!("unknown escape `\\{c}` in string (only `\\\"` and `\\\\` are allowed)"),
                                );
                                text.push('\\');
                                text.push(c);
                            }
                        }
                    }
                }
                Some(c) => {
                    self.bump();
                    if c.is_control() && c != '\t' {
                        diags.error(at, control_char_message(c));
                    } else {
                        text.push(c);
                    }
                }
            }
        }
        Word {
            text,
            quoted: true,
            span,
            end: self.pos(),
        }
    }
}

fn control_char_message(c: char) -> String {
    format!("invalid control character U+{:04X}", u32::from(c))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lex(src: &str) -> (Vec<Token>, Vec<String>) {
        let mut diags = Diagnostics::default();
        let mut lexer = Lexer::new(src);
        let mut tokens = Vec::new();
        while let Some(t) = lexer.next_token(&mut diags) {
            tokens.push(t);
        }
        let errors = diags
            .into_errors("t")
            .map(|e| e.iter().map(ToString::to_string).collect())
            .unwrap_or_default();
        (tokens, errors)
    }

    /// Tokens as compact text: words as-is (quoted ones in `"`), punctuation as itself.
    fn texts(src: &str) -> Vec<String> {
        let (tokens, errors) = lex(src);
        assert!(errors.is_empty(), "{errors:?}");
        tokens
            .iter()
            .map(|t| match t {
                Token::Word(w) if w.quoted => format!("\"{}\"", w.text),
                Token::Word(w) => w.text.clone(),
                Token::Semicolon(_) => ";".into(),
                Token::OpenBrace(_) => "{".into(),
                Token::CloseBrace(_) => "}".into(),
            })
            .collect()
    }

    #[test]
    fn words_and_punctuation() {
        assert_eq!(
            texts("stream live/cam1 {input fake://fake;on_play auth://play-auth;}"),
            [
                "stream",
                "live/cam1",
                "{",
                "input",
                "fake://fake",
                ";",
                "on_play",
                "auth://play-auth",
                ";",
                "}"
            ]
        );
        assert_eq!(
            texts("allow ip 10.0.0.0/8 ::1;"),
            ["allow", "ip", "10.0.0.0/8", "::1", ";"]
        );
        assert_eq!(texts("http [::1]:8080;"), ["http", "[::1]:8080", ";"]);
    }

    #[test]
    fn comments_and_whitespace() {
        assert_eq!(texts("# only a comment"), Vec::<String>::new());
        assert_eq!(
            texts("http 80; # trailing { } ;\r\n\trtmp 1935;"),
            ["http", "80", ";", "rtmp", "1935", ";"]
        );
        assert_eq!(texts("a#comment\nb"), ["a", "b"]);
        assert_eq!(texts("\u{feff}http 80;"), ["http", "80", ";"]);
    }

    #[test]
    fn quoted_strings() {
        assert_eq!(
            texts(r#"allow ua "VLC media player";"#),
            ["allow", "ua", "\"VLC media player\"", ";"]
        );
        assert_eq!(texts(r#""a\"b\\c""#), [r#""a"b\c""#]);
        assert_eq!(texts(r##""" "#;""##), ["\"\"", "\"#;\""]);
        assert_eq!(texts("\"tab\there\""), ["\"tab\there\""]);
    }

    #[test]
    fn spans_count_chars() {
        let (tokens, _) = lex("  héllo wörld;\n\t\"x\" }");
        let spans: Vec<(u32, u32)> = tokens
            .iter()
            .map(|t| (t.span().line, t.span().col))
            .collect();
        assert_eq!(spans, [(1, 3), (1, 9), (1, 14), (2, 2), (2, 6)]);
        let Token::Word(w) = &tokens[1] else { panic!() };
        assert_eq!((w.end.line, w.end.col), (1, 14));
        let Token::Word(q) = &tokens[3] else { panic!() };
        assert_eq!((q.end.line, q.end.col), (2, 5));
    }

    #[test]
    fn errors_are_reported_and_lexing_continues() {
        let (tokens, errors) = lex("a \"open\nb \"x\\qy\" c\u{1}d \u{7f} e\"f;");
        assert_eq!(
            errors,
            [
                "t:1:3: error: unterminated string: missing closing `\"` on this line",
                "t:2:5: error: unknown escape `\\q` in string (only `\\\"` and `\\\\` are allowed)",
                "t:2:11: error: invalid control character U+0001",
                "t:2:14: error: invalid control character U+007F",
                "t:2:17: error: unexpected `\"` inside a word; quote the whole value instead",
            ]
        );
        let words: Vec<&str> = tokens
            .iter()
            .filter_map(|t| match t {
                Token::Word(w) => Some(w.text.as_str()),
                _ => None,
            })
            .collect();
        assert_eq!(words, ["a", "open", "b", "x\\qy", "cd", "e\"f"]);
    }

    #[test]
    fn unterminated_at_end_of_input() {
        let (tokens, errors) = lex("\"abc\\");
        assert_eq!(
            errors,
            ["t:1:1: error: unterminated string: missing closing `\"` on this line"]
        );
        assert_eq!(tokens.len(), 1);
    }
}
