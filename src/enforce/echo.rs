//! Agent input as capgate repeats it back: cut to a bounded length, so a megabyte-long name
//! cannot make every refusal, log line and span a megabyte long.

/// The longest piece of agent input capgate echoes back.
const ECHO_LIMIT: usize = 128;

/// Agent input as a refusal may repeat it: at most [`ECHO_LIMIT`] characters.
pub fn echo(text: &str) -> String {
    match text.char_indices().nth(ECHO_LIMIT) {
        Some((cut, _)) => format!("{}…", &text[..cut]),
        None => text.to_string(),
    }
}
