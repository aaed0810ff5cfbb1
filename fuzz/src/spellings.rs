//! Spellings of the values `redact_pattern:` promises to catch (an SSN, an e-mail address, an
//! account number): any decimal digits, fullwidth forms, any dash, spaces and invisible
//! characters around separators and between digits, marks on digits; and values standing alone
//! between characters that are neither letters nor digits. What the `obligations` target
//! plants.

use arbitrary::Unstructured;

pub const PATTERNS: [&str; 3] = ["ssn", "email", "account"];

/// Zeros of scripts with decimal digits (`\p{Nd}`), as the patterns' `\d` matches them.
pub const ZEROS: &[u32] = &[0x30, 0x660, 0x6F0, 0x966, 0x9E6, 0xE50, 0xFF10, 0x1D7CE, 0x1D7EC];
/// Dashes of any kind, and the minus sign.
pub const DASHES: &[&str] = &["-", "\u{2010}", "\u{2011}", "\u{2012}", "\u{2013}", "\u{2014}", "\u{2212}", "\u{fe63}", "\u{ff0d}"];
/// Room around a separator: spacing and invisible characters.
pub const GAPS: &[&str] = &["", "", " ", "\u{a0}", "\u{3000}", "\u{200b}", "\t", "\u{2060}"];
/// Invisible or combining characters that may follow a digit.
pub const ON_DIGIT: &[&str] = &["\u{200b}", "\u{200c}", "\u{200d}", "\u{ad}", "\u{2060}", "\u{feff}", "\u{301}", "\u{20e3}"];

pub fn digit(u: &mut Unstructured) -> arbitrary::Result<String> {
    let zero = *u.choose(ZEROS)?;
    let value = u32::from(u.int_in_range(0u8..=9)?);
    let mut out = String::new();
    out.push(char::from_u32(zero + value).expect("a digit"));
    if u.ratio(1, 8)? {
        out.push_str(u.choose(ON_DIGIT)?);
    }
    Ok(out)
}

pub fn digits(u: &mut Unstructured, n: usize) -> arbitrary::Result<String> {
    let mut out = String::new();
    for _ in 0..n {
        out.push_str(&digit(u)?);
    }
    Ok(out)
}

pub fn separator(u: &mut Unstructured) -> arbitrary::Result<String> {
    Ok(format!(
        "{}{}{}",
        u.choose(GAPS)?,
        u.choose(DASHES)?,
        u.choose(GAPS)?
    ))
}

/// A letter or digit of an address: ASCII, accented, fullwidth, Cyrillic.
pub fn address_char(u: &mut Unstructured, digit_only: bool) -> arbitrary::Result<String> {
    if digit_only || u.ratio(1, 3)? {
        return digit(u);
    }
    Ok(u
        .choose(&["a", "b", "j", "o", "Z", "\u{e4}", "a\u{308}", "\u{ff4a}", "\u{434}", "\u{3042}"])?
        .to_string())
}

/// A value one of the built-in patterns must catch.
pub fn pattern_value(u: &mut Unstructured, pattern: &str) -> arbitrary::Result<String> {
    Ok(match pattern {
        "ssn" => format!(
            "{}{}{}{}{}",
            digits(u, 3)?,
            separator(u)?,
            digits(u, 2)?,
            separator(u)?,
            digits(u, 4)?
        ),
        "account" => {
            let acct = u.choose(&["acct", "ACCT", "Acct", "\u{ff41}\u{ff43}\u{ff43}\u{ff54}"])?;
            let n = usize::from(u.int_in_range(1u8..=12)?);
            format!("{acct}{}{}", separator(u)?, digits(u, n)?)
        }
        _ => {
            // local@label.tld: local and label each hold a digit; the TLD is letters.
            let mut local = address_char(u, true)?;
            for _ in 0..u.int_in_range(0u8..=5)? {
                if u.ratio(1, 6)? {
                    local.push_str(u.choose(&[".", "_", "+", "-"])?);
                }
                local.push_str(&address_char(u, false)?);
            }
            let mut label = address_char(u, true)?;
            for _ in 0..u.int_in_range(0u8..=5)? {
                label.push_str(&address_char(u, false)?);
            }
            let at = u.choose(&["@", "@", "\u{ff20}", "\u{fe6b}"])?;
            let dot = u.choose(&[".", ".", "\u{ff0e}", "\u{3002}", "\u{ff61}"])?;
            let tld = u.choose(&["com", "de", "\u{440}\u{444}", "co", "\u{5e7f}\u{544a}"])?;
            format!(
                "{local}{}{at}{}{label}{dot}{tld}",
                u.choose(GAPS)?,
                u.choose(GAPS)?
            )
        }
    })
}

/// Characters that may stand right before or after a pattern value: neither letters nor digits.
pub const NEIGHBOURS: &[&str] = &[
    " ", "\n", ":", ": ", "(", ")", "\"", "'", "#", "_", "[", "]", "/", "=", ",", ".", "<", ">",
    "\u{3000}", "\u{200d}", "\u{200b}", "\u{301}", "\u{ff1a}", "\u{3001}", "*", "~",
];

/// A pattern value with what stands before and after it.
pub fn standing_alone(u: &mut Unstructured, value: &str) -> arbitrary::Result<String> {
    // A space first: whatever clean text comes before never touches the value.
    Ok(format!(
        " {}{value}{} ",
        u.choose(NEIGHBOURS)?,
        u.choose(NEIGHBOURS)?
    ))
}

