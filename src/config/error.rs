//! Config errors as values: `ConfigError` (one problem, with file, line and column) and
//! `ConfigErrors` (every problem found in one file, in source order). Also the internal
//! `Diagnostics` sink the lexer and parser push into, and the "did you mean" hint.

use super::model::Span;
use std::fmt;

/// One problem in a config file.
///
/// Displays as `FILE:LINE:COL: error: MESSAGE`, or `FILE: error: MESSAGE` when there is no
/// position (the file could not be read). The message is always one line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    pub file: String,
    /// 1-based line and column (in chars); `None` for errors about the file as a whole.
    pub span: Option<Span>,
    pub message: String,
}

impl ConfigError {
    pub fn new(file: impl Into<String>, span: Option<Span>, message: impl Into<String>) -> Self {
        ConfigError {
            file: file.into(),
            span,
            message: message.into(),
        }
    }
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.span {
            Some(span) => write!(
                f,
                "{}:{}:{}: error: {}",
                self.file, span.line, span.col, self.message
            ),
            None => write!(f, "{}: error: {}", self.file, self.message),
        }
    }
}

impl std::error::Error for ConfigError {}

/// Every error found in one config file, sorted by position. Never empty.
///
/// Displays one line per error (joined with `\n`, no trailing newline).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigErrors {
    errors: Vec<ConfigError>,
}

impl ConfigErrors {
    pub fn errors(&self) -> &[ConfigError] {
        &self.errors
    }

    pub fn iter(&self) -> std::slice::Iter<'_, ConfigError> {
        self.errors.iter()
    }

    pub fn len(&self) -> usize {
        self.errors.len()
    }

    /// Always false: a `ConfigErrors` holds at least one error.
    pub fn is_empty(&self) -> bool {
        self.errors.is_empty()
    }

    pub fn into_vec(self) -> Vec<ConfigError> {
        self.errors
    }

    /// `errors` as a `ConfigErrors`; `None` when there are none.
    pub(crate) fn from_vec(errors: Vec<ConfigError>) -> Option<Self> {
        (!errors.is_empty()).then_some(ConfigErrors { errors })
    }
}

impl From<ConfigError> for ConfigErrors {
    fn from(error: ConfigError) -> Self {
        ConfigErrors {
            errors: vec![error],
        }
    }
}

impl IntoIterator for ConfigErrors {
    type Item = ConfigError;
    type IntoIter = std::vec::IntoIter<ConfigError>;

    fn into_iter(self) -> Self::IntoIter {
        self.errors.into_iter()
    }
}

impl<'a> IntoIterator for &'a ConfigErrors {
    type Item = &'a ConfigError;
    type IntoIter = std::slice::Iter<'a, ConfigError>;

    fn into_iter(self) -> Self::IntoIter {
        self.errors.iter()
    }
}

impl fmt::Display for ConfigErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, error) in self.errors.iter().enumerate() {
            if i > 0 {
                f.write_str("\n")?;
            }
            write!(f, "{error}")?;
        }
        Ok(())
    }
}

impl std::error::Error for ConfigErrors {}

/// Where the lexer and parser report problems; turned into `ConfigErrors` at the end.
#[derive(Debug, Default)]
pub(crate) struct Diagnostics {
    items: Vec<(Span, String)>,
}

impl Diagnostics {
    pub(crate) fn error(&mut self, span: Span, message: impl Into<String>) {
        self.items.push((span, message.into()));
    }

    /// `None` when nothing was reported.
    pub(crate) fn into_errors(mut self, file: &str) -> Option<ConfigErrors> {
        if self.items.is_empty() {
            return None;
        }
        // Stable: two errors at one position keep the order they were found in.
        self.items.sort_by_key(|(span, _)| *span);
        let errors = self
            .items
            .into_iter()
            .map(|(span, message)| ConfigError::new(file, Some(span), message))
            .collect();
        Some(ConfigErrors { errors })
    }
}

/// Longest user text quoted in full inside a message; longer text is cut with `…`.
const MAX_QUOTED_CHARS: usize = 64;

/// User text for a message: cut to a readable length. (The lexer never lets a newline or a
/// control character into a word, so messages stay one line.)
pub(crate) fn show(text: &str) -> String {
    match text.char_indices().nth(MAX_QUOTED_CHARS) {
        Some((cut, _)) => format!("{}…", &text[..cut]),
        None => text.to_owned(),
    }
}

/// The candidate closest to `word` if it is a plausible typo: at most 2 edits (insert,
/// delete, substitute, swap two neighbours), fewer edits than `word` has chars, ignoring
/// ASCII case. Ties go to the earlier candidate. Cost is bounded: long words get no hint.
pub(crate) fn did_you_mean<'a>(
    word: &str,
    candidates: impl IntoIterator<Item = &'a str>,
) -> Option<&'a str> {
    const MAX_EDITS: usize = 2;
    let word: Vec<char> = word.chars().map(|c| c.to_ascii_lowercase()).collect();
    if word.is_empty() || word.len() > MAX_QUOTED_CHARS {
        return None;
    }
    let mut best: Option<(usize, &str)> = None;
    for candidate in candidates {
        let cand: Vec<char> = candidate.chars().collect();
        if cand.len().abs_diff(word.len()) > MAX_EDITS || cand.len() > MAX_QUOTED_CHARS {
            continue;
        }
        let d = edit_distance(&word, &cand);
        if d <= MAX_EDITS && d < word.len() && best.is_none_or(|(bd, _)| d < bd) {
            best = Some((d, candidate));
        }
    }
    best.map(|(_, c)| c)
}

/// Optimal string alignment distance (Levenshtein plus adjacent transpositions).
fn edit_distance(a: &[char], b: &[char]) -> usize {
    let width = b.len() + 1;
    let mut rows = vec![0usize; width * (a.len() + 1)];
    for (j, cell) in rows.iter_mut().enumerate().take(width) {
        *cell = j;
    }
    for i in 1..=a.len() {
        rows[i * width] = i;
        for j in 1..=b.len() {
            let cost = usize::from(a[i - 1] != b[j - 1]);
            let mut d = (rows[(i - 1) * width + j] + 1)
                .min(rows[i * width + j - 1] + 1)
                .min(rows[(i - 1) * width + j - 1] + cost);
            if i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] {
                d = d.min(rows[(i - 2) * width + j - 2] + 1);
            }
            rows[i * width + j] = d;
        }
    }
    rows[a.len() * width + b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn display_one_line_per_error() {
        let mut diags = Diagnostics::default();
        diags.error(Span { line: 3, col: 5 }, "second");
        diags.error(Span { line: 1, col: 7 }, "first");
        let errors = diags.into_errors("a.conf").unwrap();
        assert_eq!(errors.len(), 2);
        assert_eq!(
            errors.to_string(),
            "a.conf:1:7: error: first\na.conf:3:5: error: second"
        );
        let io = ConfigError::new("/etc/x.conf", None, "cannot read: No such file");
        assert_eq!(
            io.to_string(),
            "/etc/x.conf: error: cannot read: No such file"
        );
        assert!(Diagnostics::default().into_errors("a").is_none());
    }

    #[test]
    fn hints() {
        let top = ["http", "rtmp", "rtsp", "srt", "stream", "auth_backend"];
        assert_eq!(did_you_mean("htp", top), Some("http"));
        assert_eq!(did_you_mean("HTTP", top), Some("http"));
        assert_eq!(did_you_mean("rmtp", top), Some("rtmp"));
        assert_eq!(did_you_mean("strem", top), Some("stream"));
        assert_eq!(did_you_mean("auth-backend", top), Some("auth_backend"));
        assert_eq!(did_you_mean("x", top), None);
        assert_eq!(did_you_mean("ab", top), None);
        assert_eq!(did_you_mean("", top), None);
        assert_eq!(did_you_mean("completely", top), None);
        assert_eq!(did_you_mean(&"h".repeat(10_000), top), None);
    }

    #[test]
    fn edit_distances() {
        let d = |a: &str, b: &str| {
            let a: Vec<char> = a.chars().collect();
            let b: Vec<char> = b.chars().collect();
            edit_distance(&a, &b)
        };
        assert_eq!(d("", ""), 0);
        assert_eq!(d("abc", ""), 3);
        assert_eq!(d("kitten", "sitting"), 3);
        assert_eq!(d("ab", "ba"), 1);
        assert_eq!(d("stram", "stream"), 1);
    }

    #[test]
    fn show_cuts_long_text() {
        assert_eq!(show("short"), "short");
        let long = "é".repeat(100);
        let shown = show(&long);
        assert_eq!(shown.chars().count(), MAX_QUOTED_CHARS + 1);
        assert!(shown.ends_with('…'));
    }
}
