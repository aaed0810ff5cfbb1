//! Where a value in plain text begins and ends: after `key:` or `key=`, a quoted string, a
//! bracketed list or object, or the rest of the line; and the labels redaction leaves, which
//! are not a value's own brackets.

use std::ops::Range;

use unicode_normalization::{is_nfkc_quick, IsNormalized, UnicodeNormalization};

use super::Pattern;

/// What a redacted field's value becomes.
pub(super) const REDACTED: &str = "[redacted]";

/// The span of the value after the key at `start..name_end` (the key possibly quoted, then
/// `:` or `=`), if it can be delimited.
pub(super) fn value_after_key(text: &[u8], start: usize, name_end: usize) -> Option<Range<usize>> {
    let mut at = name_end;
    if start > 0
        && matches!(text[start - 1], b'"' | b'\'')
        && text.get(at) == Some(&text[start - 1])
    {
        at += 1;
    }
    let skip_blanks = |mut at: usize| {
        while matches!(text.get(at), Some(b' ' | b'\t')) {
            at += 1;
        }
        at
    };
    at = skip_blanks(at);
    if !matches!(text.get(at), Some(b':' | b'=')) {
        return None;
    }
    let value_start = skip_blanks(at + 1);
    let value_end = match text.get(value_start)? {
        // The value starts on a later line (a YAML block, say): it cannot be delimited.
        b'\n' | b'\r' => return None,
        quote @ (b'"' | b'\'') => closing_quote(text, value_start + 1, *quote)? + 1,
        // A label that redaction left at the value's start is not a bracket of the value's own
        // (`f: a@b.example more` became `f: [redacted email] more`): the value is the line's.
        b'[' if starts_with_label(&text[value_start..]) => line_value_end(text, value_start),
        b'[' | b'{' | b'(' => closing_bracket(text, value_start)? + 1,
        _ => line_value_end(text, value_start),
    };
    Some(value_start..value_end)
}

/// Whether what follows a value ending at `end` leaves no doubt that it ended there: blanks
/// and closing brackets (`{f: 'x'}]`), then the end of the line or of the text, or a
/// separator (`,` `;`). A "value" followed by `:` or `=` is a key (`f: 'f': [...]`), and a
/// quoted or bracketed value followed by more on its line (`f: (y)secret`, `f: (y)]secret`)
/// may run on: in either case what follows cannot be told apart from the field's value.
pub(super) fn ends_cleanly(text: &[u8], end: usize) -> bool {
    let mut rest = text[end..]
        .iter()
        .skip_while(|b| matches!(b, b' ' | b'\t' | b')' | b']' | b'}'));
    match rest.next() {
        None | Some(b'\n' | b'\r' | b',' | b';') => true,
        Some(_) => false,
    }
}

/// Whether NFKC turns characters of `text` into quotes, brackets or separators that are not
/// in it as written (`⒴` becomes `(y)`, `＂` becomes `"`, `＼` an escape): where a value seems to end in the
/// normalized text, the text as written may go on.
pub(super) fn normalizing_invents_delimiters(text: &str) -> bool {
    let delimiter = |c: &char| {
        matches!(
            c,
            '"' | '\'' | '\\' | '(' | ')' | '[' | ']' | '{' | '}' | ',' | ';'
        )
    };
    match is_nfkc_quick(text.chars()) {
        IsNormalized::Yes => false,
        IsNormalized::No | IsNormalized::Maybe => {
            text.nfkc().filter(delimiter).count() > text.chars().filter(delimiter).count()
        }
    }
}

/// Where an unquoted value starting at `value_start` ends: at its line's end, less blanks.
fn line_value_end(text: &[u8], value_start: usize) -> usize {
    let line_end = text[value_start..]
        .iter()
        .position(|b| matches!(b, b'\n' | b'\r'))
        .map_or(text.len(), |p| value_start + p);
    value_start
        + text[value_start..line_end]
            .iter()
            .rposition(|b| !matches!(b, b' ' | b'\t'))
            .map_or(0, |p| p + 1)
}

/// Whether `text` starts with a label a pattern or a field's redaction leaves.
fn starts_with_label(text: &[u8]) -> bool {
    Pattern::LABELS
        .iter()
        .chain([&REDACTED])
        .any(|label| text.starts_with(label.as_bytes()))
}

/// The offset of the quote closing a string that starts at `from`, honouring `\` escapes.
fn closing_quote(text: &[u8], from: usize, quote: u8) -> Option<usize> {
    let mut at = from;
    while at < text.len() {
        match text[at] {
            b'\\' => at += 2,
            byte if byte == quote => return Some(at),
            _ => at += 1,
        }
    }
    None
}

/// The offset of the bracket closing the one at `open`: brackets close in order and each by its
/// own kind, and brackets inside quoted strings (double or single) do not count. A bracket
/// closed by another kind (`(a]`) or a string left open leaves the value undelimited.
fn closing_bracket(text: &[u8], open: usize) -> Option<usize> {
    let mut expected: Vec<u8> = Vec::new();
    let mut at = open;
    while at < text.len() {
        match text[at] {
            quote @ (b'"' | b'\'') => at = closing_quote(text, at + 1, quote)?,
            b'[' => expected.push(b']'),
            b'{' => expected.push(b'}'),
            b'(' => expected.push(b')'),
            closer @ (b']' | b'}' | b')') => {
                if expected.pop()? != closer {
                    return None;
                }
                if expected.is_empty() {
                    return Some(at);
                }
            }
            _ => {}
        }
        at += 1;
    }
    None
}
