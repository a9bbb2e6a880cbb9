//! The one error type of scenario loading, and the mapping from byte offsets to the
//! line:column positions users see.
//!
//! Owns: [`ScenarioError`] and its rustc-style rendering. Every problem with a scenario file —
//! unreadable, not UTF-8, not TOML, wrong shape, semantically wrong — ends
//! here with a 1-based line and a 1-based column counted in characters, so an editor can jump
//! to it.

use std::fmt;
use std::ops::Range;
use std::path::{Path, PathBuf};

/// Longest source line the rendering quotes; longer lines (minified or binary input) are
/// left out rather than flooding the terminal.
const MAX_QUOTED_LINE_CHARS: usize = 400;

/// A scenario file that cannot be run, with where and why.
#[derive(Clone, Debug)]
pub struct ScenarioError {
    pub file: PathBuf,
    /// 1-based line.
    pub line: usize,
    /// 1-based column, counted in characters.
    pub column: usize,
    pub message: String,
    /// The offending source line, when it is printable text; `Display` quotes it with a caret
    /// under `column`. `None` for errors without a meaningful line (I/O, binary input).
    pub source_line: Option<String>,
}

impl ScenarioError {
    /// An error at a known position, without a quoted source line.
    pub fn new(file: &Path, line: usize, column: usize, message: impl Into<String>) -> Self {
        ScenarioError {
            file: file.to_path_buf(),
            line,
            column,
            message: message.into(),
            source_line: None,
        }
    }

    /// An error at byte `offset` of `text` (clamped into the text), quoting its line.
    pub(crate) fn at_offset(
        file: &Path,
        text: &str,
        offset: usize,
        message: impl Into<String>,
    ) -> Self {
        let offset = floor_char_boundary(text, offset.min(text.len()));
        let line_start = text[..offset].rfind('\n').map_or(0, |i| i + 1);
        let line_end = text[offset..].find('\n').map_or(text.len(), |i| offset + i);
        let line = text[..line_start].matches('\n').count() + 1;
        let column = text[line_start..offset].chars().count() + 1;
        let quoted = text[line_start..line_end].trim_end_matches('\r');
        ScenarioError {
            source_line: printable(quoted).then(|| quoted.to_string()),
            ..ScenarioError::new(file, line, column, one_line(&message.into()))
        }
    }

    /// An error at the start of `span` of `text`. The empty span at the very start stands for
    /// the whole document (a missing top-level key): no line is quoted for it.
    pub(crate) fn at_span(
        file: &Path,
        text: &str,
        span: &Range<usize>,
        message: impl Into<String>,
    ) -> Self {
        let mut error = Self::at_offset(file, text, span.start, message);
        if *span == (0..0) {
            error.source_line = None;
        }
        error
    }
}

impl fmt::Display for ScenarioError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}:{}:{}: {}",
            self.file.display(),
            self.line,
            self.column,
            self.message
        )?;
        let Some(quoted) = &self.source_line else {
            return Ok(());
        };
        // Keep tabs before the caret so it lines up under the column in any tab width.
        let indent: String = quoted
            .chars()
            .take(self.column.saturating_sub(1))
            .map(|c| if c == '\t' { '\t' } else { ' ' })
            .collect();
        let gutter = " ".repeat(self.line.to_string().len());
        write!(
            f,
            "\n{gutter} |\n{} | {quoted}\n{gutter} | {indent}^",
            self.line
        )
    }
}

impl std::error::Error for ScenarioError {}

/// The message with control characters escaped: it may echo user text (a check name with a
/// newline in it), and a message is one line after `file:line:column:`.
fn one_line(message: &str) -> String {
    let mut line = String::with_capacity(message.len());
    for c in message.chars() {
        if c.is_control() {
            line.extend(c.escape_default());
        } else {
            line.push(c);
        }
    }
    line
}

/// Whether a line is worth quoting: non-blank text a terminal shows as it is.
fn printable(line: &str) -> bool {
    !line.trim().is_empty()
        && line.chars().count() <= MAX_QUOTED_LINE_CHARS
        && !line.chars().any(|c| c.is_control() && c != '\t')
}

/// The largest char boundary of `text` at or below `offset`.
fn floor_char_boundary(text: &str, mut offset: usize) -> usize {
    while !text.is_char_boundary(offset) {
        offset -= 1;
    }
    offset
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(text: &str, offset: usize) -> ScenarioError {
        ScenarioError::at_offset(Path::new("s.toml"), text, offset, "boom")
    }

    #[test]
    fn positions_are_one_based_and_count_characters() {
        let text = "a = 1\nname = \"é€x\"\n";
        let e = at(text, 0);
        assert_eq!((e.line, e.column), (1, 1));
        let x = text.find('x').unwrap();
        let e = at(text, x);
        assert_eq!((e.line, e.column), (2, 11), "é and € are one column each");
        let e = at(text, text.len());
        assert_eq!((e.line, e.column), (3, 1));
    }

    #[test]
    fn offsets_inside_a_character_or_past_the_end_are_clamped() {
        let text = "é";
        assert_eq!((at(text, 1).line, at(text, 1).column), (1, 1));
        assert_eq!((at(text, 99).line, at(text, 99).column), (1, 2));
    }

    #[test]
    fn display_quotes_the_line_with_a_caret_under_the_column() {
        let text = "name = \"x\"\n\tduration = 10\n";
        let e = at(text, text.find("10").unwrap());
        assert_eq!(
            e.to_string(),
            "s.toml:2:13: boom\n  |\n2 | \tduration = 10\n  | \t           ^"
        );
    }

    #[test]
    fn messages_are_one_line_even_when_they_echo_user_text() {
        let e = ScenarioError::at_offset(Path::new("s.toml"), "x", 0, "unknown check `a\nb\tc`");
        assert_eq!(e.message, "unknown check `a\\nb\\tc`");
    }

    #[test]
    fn display_leaves_out_lines_that_are_not_printable() {
        let e = at("a\0b = 1", 0);
        assert_eq!(e.source_line, None);
        assert_eq!(e.to_string(), "s.toml:1:1: boom");
        let crlf = at("name = 1\r\n", 7);
        assert_eq!(crlf.source_line.as_deref(), Some("name = 1"));
    }
}
