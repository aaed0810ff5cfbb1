//! The built-in `redact_pattern:` patterns (`ssn`, `email`, `account`) and how they are matched.
//!
//! A value can be written in many ways that read the same: `john＠example.com` (fullwidth
//! `@`), `１２３-４５-６７８９` (fullwidth digits), `ex\u{e4}mple` or `exa\u{308}mple`
//! (composed or decomposed `ä`), `john @ example.com`. So the text is first brought to
//! Unicode normalization form NFKC, which folds compatibility variants (fullwidth and
//! small forms, ligatures, no-break spaces) into their plain characters and composes
//! accents; the patterns then match Unicode letters, marks and digits, with spaces allowed
//! around `@` and the separators of an SSN or account number, and any dash. An `@` followed by
//! a domain is an address even without a local part (another address may have taken it:
//! `a@b.cc@d9.com`). A digit may carry
//! marks and invisible format characters (`1\u{200b}2\u{301}3-...`): they are part of it, so
//! they neither hide a number nor leave its digits shown. An SSN or account number counts when
//! it stands alone: the characters around it are not letters or digits (a mark, `_` or a
//! zero-width joiner next to it does not hide it, as `\b` did). The text the agent gets is the
//! normalized text with every match replaced by its label: a text with no match may still
//! differ from the original in those compatibility characters.

use std::sync::OnceLock;

use regex::Regex;
use unicode_normalization::{is_nfkc_quick, IsNormalized, UnicodeNormalization};

use super::Pattern;

/// Characters of an address's local part or domain label: letters and combining marks of any
/// script, digits, and invisible format characters (a zero-width space inside an address must
/// not cut it in two and leave half of it shown).
const ADDRESS_CHAR: &str = r"\p{L}\p{M}\p{N}\p{Cf}";

/// A domain's label separator: `.`, or the ideographic full stop that IDNA reads as one
/// (U+3002; NFKC has made U+FF0E a `.` and U+FF61 a U+3002 already).
const DOT: &str = r".\x{3002}";

/// Room around `@` or a separator: any spacing, invisible format characters included.
const GAP: &str = r"[\s\p{Cf}]*";

/// A dash of any kind (`\p{Pd}`: hyphen, en and em dash, ...) or the minus sign.
const DASH: &str = r"[\p{Pd}\x{2212}]";

/// A decimal digit of any script (`\d` is `\p{Nd}`) with the marks and invisible format
/// characters that follow it.
const DIGIT: &str = r"\d[\p{M}\p{Cf}]*";

impl Pattern {
    fn regex(self) -> &'static Regex {
        static SSN: OnceLock<Regex> = OnceLock::new();
        static EMAIL: OnceLock<Regex> = OnceLock::new();
        static ACCOUNT: OnceLock<Regex> = OnceLock::new();
        let (cell, source) = match self {
            // Whether it stands alone is `stands_alone`'s to check.
            Pattern::Ssn => (
                &SSN,
                format!(
                    r"(?:{DIGIT}){{3}}{GAP}{DASH}{GAP}(?:{DIGIT}){{2}}{GAP}{DASH}{GAP}(?:{DIGIT}){{4}}"
                ),
            ),
            Pattern::Email => (
                &EMAIL,
                format!(
                    r"[{ADDRESS_CHAR}._%+\-]*{GAP}@{GAP}[{ADDRESS_CHAR}{DOT}\-]+[{DOT}][\p{{L}}\p{{M}}\p{{Cf}}][{ADDRESS_CHAR}\-]*[{ADDRESS_CHAR}]"
                ),
            ),
            Pattern::Account => (&ACCOUNT, format!(r"(?i)acct{GAP}{DASH}{GAP}(?:{DIGIT})+")),
        };
        cell.get_or_init(|| Regex::new(&source).expect("built-in redaction patterns are valid"))
    }

    /// Whether a match counts only when no letter or digit stands right before or after it
    /// (an address's own pattern takes every address character there is).
    fn must_stand_alone(self) -> bool {
        match self {
            Pattern::Ssn | Pattern::Account => true,
            Pattern::Email => false,
        }
    }

    /// Whether the pattern is a number's (an SSN or account number), not an address's.
    fn is_number(self) -> bool {
        match self {
            Pattern::Ssn | Pattern::Account => true,
            Pattern::Email => false,
        }
    }

    /// Every pattern's label.
    pub(super) const LABELS: [&'static str; 3] =
        ["[redacted ssn]", "[redacted email]", "[redacted account]"];

    fn label(self) -> &'static str {
        match self {
            Pattern::Ssn => Self::LABELS[0],
            Pattern::Email => Self::LABELS[1],
            Pattern::Account => Self::LABELS[2],
        }
    }
}

/// `text` in NFKC with every match of `patterns` replaced by its label.
pub(super) fn redact_patterns(patterns: &[Pattern], text: &str) -> String {
    let mut out = match is_nfkc_quick(text.chars()) {
        IsNormalized::Yes => text.to_string(),
        IsNormalized::No | IsNormalized::Maybe => text.nfkc().collect(),
    };
    // Numbers before addresses: an address's local part may run into a number written just
    // before it (across the room `@` allows), and take its last group, so that the number's
    // pattern no longer matches the rest.
    for number_first in [true, false] {
        for pattern in patterns.iter().filter(|p| p.is_number() == number_first) {
            out = replace_matches(*pattern, &out);
        }
    }
    out
}

/// `text` with every match of `pattern` (standing alone, where it must) replaced by its label.
fn replace_matches(pattern: Pattern, text: &str) -> String {
    let letter_or_digit = |c: char| c.is_alphanumeric();
    let mut out = String::new();
    let mut copied = 0;
    let mut from = 0;
    while let Some(found) = pattern.regex().find_at(text, from) {
        let alone = !pattern.must_stand_alone()
            || (!text[..found.start()]
                .chars()
                .next_back()
                .is_some_and(letter_or_digit)
                && !text[found.end()..]
                    .chars()
                    .next()
                    .is_some_and(letter_or_digit));
        if alone {
            out.push_str(&text[copied..found.start()]);
            out.push_str(pattern.label());
            copied = found.end();
            from = found.end();
        } else {
            // A longer number or a word holds it: look again one character on.
            from = found.start()
                + text[found.start()..]
                    .chars()
                    .next()
                    .map_or(1, char::len_utf8);
        }
        if from > text.len() {
            break;
        }
    }
    out.push_str(&text[copied..]);
    out
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;
    use unicode_normalization::UnicodeNormalization;

    use super::*;

    /// Found by the obligations fuzz target (its text, replayed): two addresses sharing a
    /// label (`K@1४.ああ@9あああああ。广告`): the first match took the shared label, and the
    /// second address, left without a local part, was not matched; its digit was shown. An
    /// `@` and a domain are now an address with or without a local part.
    #[test]
    fn an_address_whose_local_part_another_took_is_redacted() {
        let text =
            "KKKKK\nK@ \u{200d}1\u{96a}.ああ@ \u{1d7f5}あああああ\u{ff61}广告\u{200d} \n@T.TT";
        let out = redact_patterns(&[Pattern::Email], text);
        assert!(!out.chars().any(char::is_numeric), "{out:?}");
        assert_eq!(out.matches("[redacted email]").count(), 3, "{out:?}");
        // An `@` with no domain after it is not an address.
        assert_eq!(
            redact_patterns(&[Pattern::Email], "@alice, a@b"),
            "@alice, a@b"
        );
    }

    /// Found by the obligations fuzz target (its text, replayed): an SSN standing right before
    /// an address, across line breaks, lost its last group to the address's local part, so the
    /// SSN pattern no longer matched and its first digits were shown. Numbers now go first, in
    /// whatever order the obligations name the patterns.
    #[test]
    fn a_number_before_an_address_is_redacted_whole() {
        let text = "K@ \u{200d}\u{96b}4\u{200b}3\u{200b}\u{2013}\u{200b}\u{9e9}0\u{200b}-\t\
                    \u{96b}\u{966}\u{660}\u{660}\u{200d} \n\n\n\n\n@TTTT.TTTT@TTTTTTT";
        for patterns in [
            [Pattern::Email, Pattern::Ssn],
            [Pattern::Ssn, Pattern::Email],
        ] {
            let out = redact_patterns(&patterns, text);
            assert!(!out.chars().any(char::is_numeric), "{patterns:?}: {out:?}");
            assert!(out.contains("[redacted ssn]"), "{patterns:?}: {out:?}");
        }
    }

    /// Each way of writing a value, and the value that must not be left in the output.
    #[test]
    fn every_variant_of_a_value_is_redacted() {
        let table: &[(Pattern, &str, &str)] = &[
            (Pattern::Email, "john@example.com", "john"),
            (Pattern::Email, "john＠example.com", "john"),
            (Pattern::Email, "john﹫example.com", "john"),
            (Pattern::Email, "john@ex\u{e4}mple.com", "mple"),
            (Pattern::Email, "john@exa\u{308}mple.com", "mple"),
            (Pattern::Email, "jöhn.müller@bücher.de", "müller"),
            (Pattern::Email, "john @ example.com", "john"),
            (Pattern::Email, "john\u{a0}@\u{3000}example.com", "john"),
            (Pattern::Email, "john\t@\u{200b}example.com", "john"),
            (Pattern::Email, "jo\u{200b}hn@example.com", "jo"),
            // Found by the obligations fuzz target: the ideographic full stop, which IDNA
            // reads as a dot, hid a domain ("۳@๘。com" was left as it was).
            (Pattern::Email, "۳@๘\u{3002}com", "\u{6f3}"),
            (Pattern::Email, "john@example\u{ff61}com", "john"),
            (Pattern::Email, "john@example\u{ff0e}com", "john"),
            (Pattern::Email, "ｊｏｈｎ＠ｅｘａｍｐｌｅ．ｃｏｍ", "john"),
            (Pattern::Email, "用户@例子.广告", "用户"),
            (Pattern::Email, "иван@пример.рф", "иван"),
            (Pattern::Email, "john@xn--80ak6aa92e.xn--p1ai", "p1ai"),
            (Pattern::Email, "first.last+tag@mail.example.co.uk", "first"),
            (Pattern::Ssn, "123-45-6789", "6789"),
            (Pattern::Ssn, "１２３-４５-６７８９", "6789"),
            (Pattern::Ssn, "１２３－４５－６７８９", "6789"),
            (Pattern::Ssn, "123 – 45 – 6789", "6789"),
            (Pattern::Ssn, "123\u{2011}45\u{2212}6789", "6789"),
            (Pattern::Ssn, "١٢٣-٤٥-٦٧٨٩", "٦٧٨٩"),
            (Pattern::Account, "acct-20931", "20931"),
            (Pattern::Account, "ACCT-20931", "20931"),
            (Pattern::Account, "ａｃｃｔ－２０９３１", "20931"),
            (Pattern::Account, "acct – 20931", "20931"),
        ];
        for &(pattern, value, secret) in table {
            let text = format!("Contact: {value}, thanks.");
            let out = redact_patterns(&[pattern], &text);
            assert_eq!(
                out,
                format!("Contact: {}, thanks.", pattern.label()),
                "{value:?}"
            );
            assert!(
                !out.contains(secret),
                "{value:?} left {secret:?} in {out:?}"
            );
        }
    }

    /// Found by the `obligations` fuzz target (fuzz/corpus/obligations/crash-ssn-zero-width-spaces):
    /// invisible characters between the digits, marks on them, or a joiner, mark or `_` next to
    /// the number hid it from `\d{3}` and `\b`, and every digit reached the agent.
    #[test]
    fn invisible_characters_and_marks_never_hide_a_number() {
        let fuzzed = "  0\u{200b}0\u{200b}0\u{200b}-0\u{200b}0\u{200b}-0\u{200b}0\u{200b}0\u{200b}0\u{200b}  ";
        assert_eq!(
            redact_patterns(&[Pattern::Ssn], fuzzed),
            format!("  {}  ", Pattern::Ssn.label())
        );
        for (pattern, value) in [
            (Pattern::Ssn, "1\u{301}23-45-6789\u{20e3}"),
            (Pattern::Ssn, "1\u{ad}2\u{2060}3 \u{2011} 45-67\u{feff}89"),
            (Pattern::Account, "acct-2\u{200d}0931"),
        ] {
            for around in ["\u{200d}", "\u{301}", "_", " ", "\u{200b}"] {
                let text = format!("x {around}{value}{around} y");
                let out = redact_patterns(&[pattern], &text);
                assert!(out.contains(pattern.label()), "{text:?} gave {out:?}");
                assert!(!out.chars().any(char::is_numeric), "{text:?} gave {out:?}");
            }
        }
        // Still only numbers standing alone: inside a longer number or a word, nothing matches.
        for (pattern, text) in [
            (Pattern::Ssn, "11123-45-6789"),
            (Pattern::Ssn, "123-45-67890"),
            (Pattern::Ssn, "a123-45-6789"),
            (Pattern::Account, "racct-12"),
            (Pattern::Account, "acct-12x"),
        ] {
            assert_eq!(redact_patterns(&[pattern], text), text);
        }
    }

    #[test]
    fn text_without_a_match_is_left_as_it_reads() {
        for (pattern, text) in [
            (
                Pattern::Email,
                "write to us @ the office, or at example.com",
            ),
            (Pattern::Email, "version 1.2 @ 3pm"),
            (Pattern::Ssn, "order 1234-56-7890 and 12-345-6789"),
            (Pattern::Account, "account acct-x and racct-12"),
        ] {
            assert_eq!(redact_patterns(&[pattern], text), text, "{text}");
        }
        // Compatibility characters are folded even where nothing matches.
        assert_eq!(redact_patterns(&[Pattern::Ssn], "ﬁle ①"), "file 1");
    }

    /// Pieces an address is built from: ASCII, accented Latin (composed), fullwidth and
    /// Cyrillic letters, ASCII and fullwidth digits.
    const ADDRESS_PIECES: &[&str] = &[
        "a", "b", "j", "o", "Z", "0", "7", "\u{e4}", "\u{e9}", "\u{f1}", "\u{f8}", "\u{1e9b}",
        "ｊ", "ｏ", "Ａ", "５", "д", "Ж",
    ];
    /// What separates an address from the words around it: no letter of any address.
    const FILLER: &[&str] = &["日本語", "の", "テキスト", "。", "、", "!", "?", "(", ")"];

    fn piece_string(min: usize, max: usize) -> impl Strategy<Value = String> {
        prop::collection::vec(prop::sample::select(ADDRESS_PIECES), min..=max)
            .prop_map(|pieces| pieces.concat())
    }

    prop_compose! {
        /// An address (local part, domain) and the way it is written in the text.
        fn address()(
            local in piece_string(1, 8),
            extra in prop::collection::vec(piece_string(1, 6), 0..=2),
            label in piece_string(1, 8),
            tld in prop::collection::vec(prop::sample::select(&["c", "o", "m", "д", "ｅ", "\u{e9}"][..]), 2..=4),
            at in prop::sample::select(&["@", "＠", "﹫", " @ ", "\u{a0}@", "@\u{3000}"][..]),
        ) -> (String, String, String) {
            let mut labels = vec![label];
            labels.extend(extra);
            labels.push(tld.concat());
            let domain = labels.join(".");
            let written = format!("{local}{at}{domain}");
            (local, domain, written)
        }
    }

    fn normalize(form: usize, text: &str) -> String {
        match form {
            0 => text.nfc().collect(),
            1 => text.nfd().collect(),
            2 => text.nfkc().collect(),
            _ => text.nfkd().collect(),
        }
    }

    proptest! {
        /// However the input is normalized, no address of the set is left in the output:
        /// not whole, not its local part, not its domain (in any normalization form).
        #[test]
        fn no_address_survives_redaction_under_any_normalization(
            addresses in prop::collection::vec(address(), 1..=4),
            filler in prop::collection::vec(prop::sample::select(FILLER), 5),
            form in 0usize..4,
        ) {
            let mut text = String::new();
            for (i, (_, _, written)) in addresses.iter().enumerate() {
                text.push_str(filler[i % filler.len()]);
                text.push(' ');
                text.push_str(written);
                text.push(' ');
            }
            text.push_str(filler[4]);
            let input = normalize(form, &text);
            let out = redact_patterns(&[Pattern::Email], &input);
            let rest = out.replace(Pattern::Email.label(), "");
            for (local, domain, written) in &addresses {
                for shown_form in 0..4 {
                    for value in [local, domain, written] {
                        let value = normalize(shown_form, value);
                        prop_assert!(
                            !rest.contains(&value),
                            "{value:?} left in {out:?} (input {input:?})"
                        );
                    }
                }
            }
        }
    }
}
