//! Log lines a reader can trust: how capgate's stderr log writes field values.
//!
//! Many logged values come from outside (a tool name a downstream lists, a user id from a token,
//! a kill switch's reason, an error that quotes its input). Written as they are, a value holding
//! a newline forges a second log line and an escape sequence rewrites the terminal. Every field,
//! the message included, therefore goes through [`escaped_fields`]: its control characters are
//! written as Rust escapes (`\n`, `\u{1b}`), so one event is always one line, whatever its fields
//! hold and however they were recorded (`%` Display, `?` Debug or plain).

use std::fmt::{self, Write as _};

use tracing_subscriber::field::MakeExt;
use tracing_subscriber::fmt::format::Writer;
use tracing_subscriber::fmt::FormatFields;

/// The field formatter for capgate's text log: `name=value` pairs separated by spaces and the
/// message bare, as `tracing_subscriber`'s default fields write them, with every character that
/// breaks the line (see `breaks_the_line`) escaped.
pub fn escaped_fields() -> impl for<'writer> FormatFields<'writer> + Send + Sync + 'static {
    tracing_subscriber::fmt::format::debug_fn(|writer, field, value| {
        if field.name() != "message" {
            write!(writer, "{}=", field.name())?;
        }
        write!(Escaping(writer), "{value:?}")
    })
    .delimited(" ")
}

/// Writes through to the log line, turning each control character into its escape.
struct Escaping<'a, 'writer>(&'a mut Writer<'writer>);

impl fmt::Write for Escaping<'_, '_> {
    fn write_str(&mut self, text: &str) -> fmt::Result {
        let mut clean = 0;
        for (at, c) in text.char_indices() {
            if breaks_the_line(c) {
                self.0.write_str(&text[clean..at])?;
                if c.is_control() {
                    write!(self.0, "{}", c.escape_debug())?;
                } else {
                    write!(self.0, "{}", c.escape_unicode())?;
                }
                clean = at + c.len_utf8();
            }
        }
        self.0.write_str(&text[clean..])
    }
}

/// Characters that end or disguise a line: controls (`\n`, `\r`, ESC), the Unicode line and
/// paragraph separators, and the bidirectional overrides that reorder what a reader sees.
fn breaks_the_line(c: char) -> bool {
    c.is_control()
        || matches!(c, '\u{2028}' | '\u{2029}' | '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}')
}

#[cfg(test)]
mod tests {
    use std::io;
    use std::sync::{Arc, Mutex};

    use tracing_subscriber::layer::SubscriberExt;

    #[derive(Clone, Default)]
    struct Captured(Arc<Mutex<Vec<u8>>>);

    impl io::Write for Captured {
        fn write(&mut self, bytes: &[u8]) -> io::Result<usize> {
            self.0
                .lock()
                .map_err(|_| io::Error::other("poisoned"))?
                .extend_from_slice(bytes);
            Ok(bytes.len())
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    /// The log text one event makes through the field formatter.
    fn logged(event: impl FnOnce()) -> String {
        let captured = Captured::default();
        let writer = captured.clone();
        let layer = tracing_subscriber::fmt::layer()
            .with_ansi(false)
            .without_time()
            .fmt_fields(super::escaped_fields())
            .with_writer(move || writer.clone());
        let subscriber = tracing_subscriber::registry().with(layer);
        tracing::subscriber::with_default(subscriber, event);
        let bytes = captured.0.lock().expect("not poisoned").clone();
        String::from_utf8(bytes).expect("UTF-8")
    }

    #[test]
    fn a_value_from_outside_cannot_break_the_line() {
        // (how the value is recorded, the value, what the line must show for it)
        let forged = "x\n2026-12-01T00:00:00Z  WARN forged";
        type Case = (&'static str, &'static str, fn(&str), &'static str);
        let cases: [Case; 7] = [
            (
                "display, newline",
                forged,
                |v| tracing::warn!(tool = %v, "m"),
                r"tool=x\n2026",
            ),
            (
                "debug, newline",
                forged,
                |v| tracing::warn!(tool = ?v, "m"),
                r#"tool="x\n2026"#,
            ),
            (
                "plain str, newline",
                forged,
                |v| tracing::warn!(tool = v, "m"),
                r#"tool="x\n2026"#,
            ),
            (
                "display, carriage return",
                "a\rb",
                |v| tracing::warn!(reason = %v, "m"),
                r"reason=a\rb",
            ),
            (
                "display, escape sequence",
                "a\u{1b}[2Jb",
                |v| tracing::warn!(user = %v, "m"),
                r"user=a\u{1b}[2Jb",
            ),
            (
                "message argument",
                "a\nb",
                |v| tracing::warn!("refused: {v}"),
                r"refused: a\nb",
            ),
            (
                "display, line separator and bidi override",
                "a\u{2028}b\u{202E}c",
                |v| tracing::warn!(tool = %v, "m"),
                r"tool=a\u{2028}b\u{202e}c",
            ),
        ];
        for (kind, value, event, shown) in cases {
            let line = logged(|| event(value));
            assert_eq!(
                line.matches('\n').count(),
                1,
                "{kind}: one event, one line: {line:?}"
            );
            assert!(line.ends_with('\n'), "{kind}: {line:?}");
            assert!(
                !line
                    .trim_end_matches('\n')
                    .chars()
                    .any(super::breaks_the_line),
                "{kind}: {line:?}"
            );
            assert!(line.contains(shown), "{kind}: {line:?} should show {shown}");
        }
    }

    #[test]
    fn ordinary_fields_read_as_before() {
        let line =
            logged(|| tracing::info!(user = %"alice", count = 3, ok = true, "policy reloaded"));
        assert!(
            line.contains("policy reloaded user=alice count=3 ok=true\n"),
            "{line:?}"
        );
        let unicode = logged(|| tracing::info!(tool = %"café-工具", "m"));
        assert!(unicode.contains("tool=café-工具"), "{unicode:?}");
    }
}
