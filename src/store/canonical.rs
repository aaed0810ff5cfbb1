//! Canonical JSON: the one text of a JSON value that digests (actions, idempotency, tool
//! definitions) and the decision log's hashes are taken over.
//!
//! It is the JSON Canonicalization Scheme (RFC 8785) — keys sorted by their UTF-16 code units,
//! no whitespace, minimal string escapes, numbers in ECMAScript form — with one exception:
//! an integer is written with all its digits, and so is an integral double beyond 2^53 (its
//! exact value). RFC 8785 writes every number as the nearest IEEE double, so
//! `9007199254740993` and `9007199254740992` (and any two integers beyond 2^53 that round
//! alike) had one text, and so had a double and an integer it does not equal: an approval
//! granted for one call covered the other, and a decision record read back held another
//! number than the request had. Everywhere RFC 8785 is exact (every other float, every
//! integer of at most 2^53) the text is the same as before, so digests and records made
//! earlier still match.
//!
//! Numbers are compared by value, as RFC 8785 compares them: `1`, `1.0` and `1e0` are one
//! number (`1`), as are `0` and `-0.0` (`0`).

use std::cmp::Ordering;

use serde::Serialize;
use serde_json::{Number, Value};

/// The canonical form of `value` (see the module doc).
pub fn canonical_json(value: &Value) -> String {
    let mut out = Vec::with_capacity(256);
    write_value(value, &mut out);
    // Only whole UTF-8 texts and ASCII are written; were anything else to be, the text below
    // still differs from every real value's form.
    String::from_utf8(out).unwrap_or_else(|e| format!("<not UTF-8: {e}>"))
}

/// The canonical form of anything that serialises to JSON (a decision record, say): its JSON
/// value, written as [`canonical_json`] writes it.
pub fn canonical_json_of<T: Serialize + ?Sized>(value: &T) -> Result<String, serde_json::Error> {
    serde_json::to_value(value).map(|value| canonical_json(&value))
}

fn write_value(value: &Value, out: &mut Vec<u8>) {
    match value {
        Value::Null => out.extend_from_slice(b"null"),
        Value::Bool(true) => out.extend_from_slice(b"true"),
        Value::Bool(false) => out.extend_from_slice(b"false"),
        Value::Number(number) => write_number(number, out),
        Value::String(text) => write_string(text, out),
        Value::Array(items) => {
            out.push(b'[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                write_value(item, out);
            }
            out.push(b']');
        }
        Value::Object(map) => {
            let mut members: Vec<(&String, &Value)> = map.iter().collect();
            if members.iter().any(|(key, _)| above_bmp(key)) {
                members.sort_by(|a, b| utf16_order(a.0, b.0));
            } else {
                // Without characters above U+FFFF the two orders are one (see `utf16_order`).
                members.sort_unstable_by(|a, b| a.0.as_bytes().cmp(b.0.as_bytes()));
            }
            out.push(b'{');
            for (i, (key, item)) in members.into_iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                write_string(key, out);
                out.push(b':');
                write_value(item, out);
            }
            out.push(b'}');
        }
    }
}

/// RFC 8785 §3.2.3: member names in the order of their UTF-16 code units (which differs
/// from the order of their UTF-8 bytes, that is of their code points, only where a character
/// above U+FFFF meets one in U+E000..=U+FFFF: only then are the UTF-16 units compared).
fn utf16_order(a: &str, b: &str) -> Ordering {
    if above_bmp(a) || above_bmp(b) {
        a.encode_utf16().cmp(b.encode_utf16())
    } else {
        a.as_bytes().cmp(b.as_bytes())
    }
}

/// Whether `text` has a character above U+FFFF (the lead byte of its four UTF-8 bytes).
fn above_bmp(text: &str) -> bool {
    text.bytes().any(|byte| byte >= 0xF0)
}

/// 2^53, beyond which not every integer is a double.
const TWO_TO_53: f64 = 9_007_199_254_740_992.0;

fn write_number(number: &Number, out: &mut Vec<u8>) {
    if let Some(n) = number.as_u64() {
        write_plain(&n, out);
    } else if let Some(n) = number.as_i64() {
        write_plain(&n, out);
    } else if let Some(n) = number.as_f64() {
        // An integral double beyond 2^53 written by ECMAScript's rule looks like an integer of
        // another value (-2.8482463931417733e18 as -2848246393141773300, whose exact value is
        // -2848246393141773312): the integer it looks like would share its text. Its exact
        // value instead, which reads back as this very number. Below 1e21, where ECMAScript
        // stops writing all the digits, an i128 holds it exactly.
        if n.fract() == 0.0 && n.abs() >= TWO_TO_53 && n.abs() < 1e21 {
            write_plain(&(n as i128), out);
            return;
        }
        // RFC 8785 §3.2.2.3 (ECMAScript's Number.prototype.toString). A JSON value never holds
        // NaN or an infinity; were one to, its text still differs from every real value's.
        match serde_json_canonicalizer::to_string(&n) {
            Ok(text) => out.extend_from_slice(text.as_bytes()),
            Err(e) => out.extend_from_slice(
                format!("<a number that cannot be canonicalised: {e}>").as_bytes(),
            ),
        }
    }
}

/// RFC 8785 §3.2.2.2: `"` and `\` escaped, control characters as `\b \t \n \f \r` or
/// `\u00xx`, everything else as it is. serde_json escapes exactly so.
fn write_string(text: &str, out: &mut Vec<u8>) {
    write_plain(text, out);
}

/// serde_json's own text of a string or an integer (digits only, for integers).
fn write_plain<T: Serialize + ?Sized>(value: &T, out: &mut Vec<u8>) {
    if serde_json::to_writer(&mut *out, value).is_err() {
        // Writing a string or an integer into memory does not fail; were it to, the text
        // still differs from every real value's form.
        out.extend_from_slice(b"<a value that cannot be written>");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// RFC 8785's own examples: §3.2.2 (numbers, strings, literals) and §3.2.3 (key order by
    /// UTF-16 code units).
    #[test]
    fn canonical_json_is_rfc_8785() {
        let input = r#"{
          "numbers": [333333333.33333329, 1E30, 4.50, 2e-3, 0.000000000000000000000000001],
          "string": "\u20ac$\u000F\u000aA'\u0042\u0022\u005c\\\"\/",
          "literals": [null, true, false]
        }"#;
        let value: serde_json::Value = serde_json::from_str(input).expect("json");
        assert_eq!(
            canonical_json(&value),
            r#"{"literals":[null,true,false],"numbers":[333333333.3333333,1e+30,4.5,0.002,1e-27],"string":"€$\u000f\nA'B\"\\\\\"/"}"#
        );
        let sorting = r#"{"\u20ac": "Euro Sign", "\r": "Carriage Return", "\ufb33": "Hebrew Letter Dalet With Dagesh",
          "1": "One", "\ud83d\ude00": "Emoji: Grinning Face", "\u0080": "Control", "\u00f6": "Latin Small Letter O With Diaeresis"}"#;
        let value: serde_json::Value = serde_json::from_str(sorting).expect("json");
        // The values appear in the RFC's key order.
        let text = canonical_json(&value);
        let positions: Vec<usize> = [
            "Carriage Return",
            "One",
            "Control",
            "Latin Small Letter O With Diaeresis",
            "Euro Sign",
            "Emoji: Grinning Face",
            "Hebrew Letter Dalet With Dagesh",
        ]
        .iter()
        .map(|name| text.find(name).expect("present"))
        .collect();
        assert!(positions.windows(2).all(|w| w[0] < w[1]), "{text}");
    }

    #[test]
    fn canonical_json_ignores_key_order() {
        let a = serde_json::json!({"b": 1, "a": {"d": [1, {"y": 2, "x": 1}], "c": null}});
        let b = serde_json::json!({"a": {"c": null, "d": [1, {"x": 1, "y": 2}]}, "b": 1});
        assert_eq!(canonical_json(&a), canonical_json(&b));
        assert_eq!(
            canonical_json(&a),
            r#"{"a":{"c":null,"d":[1,{"x":1,"y":2}]},"b":1}"#
        );
    }

    /// Found by the `canonical_digest` fuzz target on its own seed (fuzz/corpus/canonical_digest/numbers.json):
    /// RFC 8785 wrote 18446744073709551615 as 18446744073709552000, which reads back as
    /// another number, and gave 2^53 + 1 the text of 2^53.
    #[test]
    fn integers_keep_every_digit() {
        let seed =
            r#"{"n": 18446744073709551615, "m": -9223372036854775808, "f": 1.5e+300, "z": -0.0}"#;
        let value: Value = serde_json::from_str(seed).expect("json");
        let text = canonical_json(&value);
        assert_eq!(
            text,
            r#"{"f":1.5e+300,"m":-9223372036854775808,"n":18446744073709551615,"z":0}"#
        );
        let read: Value = serde_json::from_str(&text).expect("canonical JSON is JSON");
        assert_eq!(read["n"], value["n"]);
        assert_eq!(read["m"], value["m"]);
        assert_eq!(canonical_json(&read), text, "a fixed point");
        let call = |n: u64| canonical_json(&serde_json::json!({ "amount": n }));
        assert_ne!(call((1 << 53) + 1), call(1 << 53));
        // Where RFC 8785 is exact, the text is RFC 8785's.
        for n in [0i64, 1, -1, 1 << 53, -(1 << 53), 4_294_967_296] {
            let value = serde_json::json!(n);
            let jcs = serde_json_canonicalizer::to_string(&value).expect("jcs");
            assert_eq!(canonical_json(&value), jcs);
        }
        // Numbers are compared by value: 1.0 is 1, and -0.0 is 0.
        assert_eq!(canonical_json(&serde_json::json!(1.0)), "1");
        assert_eq!(canonical_json(&serde_json::json!(-0.0)), "0");
    }

    /// Found by the `canonical_digest` fuzz target (the input is kept in its corpus,
    /// `regression-double-beyond-2-53`; the value it built is replayed here): a double beyond
    /// 2^53 was written as ECMAScript writes it, -2848246393141773300, the text of the integer
    /// -2848246393141773300, another value (the double is -2848246393141773312): two calls
    /// had one digest, and the text read back as another number.
    #[test]
    fn an_integral_double_beyond_2_to_53_is_written_as_its_exact_value() {
        let double = serde_json::json!({ "\"": -2.8482463931417733e18 });
        let integer: Value = serde_json::from_str(r#"{"\"": -2848246393141773300}"#).expect("json");
        assert_ne!(canonical_json(&double), canonical_json(&integer));
        let text = canonical_json(&double);
        assert_eq!(text, r#"{"\"":-2848246393141773312}"#);
        let read: Value = serde_json::from_str(&text).expect("json");
        assert_eq!(read["\""].as_f64(), double["\""].as_f64());
        assert_eq!(canonical_json(&read), text, "a fixed point");
        // Doubles RFC 8785 writes exactly keep its text.
        for n in [1.5e300, 1e21, 123.5, -(2f64.powi(52))] {
            let value = serde_json::json!(n);
            let jcs = serde_json_canonicalizer::to_string(&value).expect("jcs");
            assert_eq!(canonical_json(&value), jcs, "{n}");
        }
    }

    /// Member names are sorted by UTF-16 code units; the byte order taken when no name has a
    /// character above U+FFFF is that order, and names with such characters meet names in
    /// U+E000..=U+FFFF (where the two orders part) in the RFC's own example above.
    #[test]
    fn utf16_order_is_the_order_of_code_units_for_every_kind_of_character() {
        let names = [
            "",
            "a",
            "b",
            "ab",
            "\u{7f}",
            "\u{80}",
            "\u{7ff}",
            "\u{800}",
            "\u{d7ff}",
            "\u{e000}",
            "\u{fb33}",
            "\u{ffff}",
            "\u{10000}",
            "\u{1f600}",
            "a\u{1f600}",
            "a\u{ffff}",
            "\u{10ffff}",
        ];
        for a in names {
            for b in names {
                assert_eq!(
                    utf16_order(a, b),
                    a.encode_utf16().cmp(b.encode_utf16()),
                    "{a:?} {b:?}"
                );
            }
        }
    }

    /// Names and texts with every kind of character: ASCII, two- and three-byte ones (both
    /// sides of U+E000), four-byte ones, quotes, backslashes and control characters.
    fn name() -> impl proptest::strategy::Strategy<Value = String> {
        proptest::string::string_regex(
            "[a-z\\u{80}-\\u{7ff}\\u{e000}-\\u{ffff}\\u{10000}-\\u{10ffff}\"\\\\\\x00-\\x1f]{0,4}",
        )
        .expect("a pattern")
    }

    fn json_value() -> impl proptest::strategy::Strategy<Value = Value> {
        use proptest::prelude::*;
        let leaf = prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::Bool),
            (-(1i64 << 53)..=(1i64 << 53)).prop_map(|n| serde_json::json!(n)),
            // Doubles with fractions, with exponents either way, and beyond 1e21.
            prop_oneof![-1e6f64..1e6, -1e-6f64..1e-6, 1e21f64..1e300]
                .prop_map(|f| serde_json::json!(f)),
            name().prop_map(Value::String),
        ];
        leaf.prop_recursive(3, 24, 4, move |inner| {
            prop_oneof![
                proptest::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
                proptest::collection::vec((name(), inner), 0..4)
                    .prop_map(|members| Value::Object(members.into_iter().collect())),
            ]
        })
    }

    proptest::proptest! {
        /// Where RFC 8785 is exact (every value but integers and integral doubles beyond 2^53),
        /// the text is RFC 8785's, as serde_json_canonicalizer writes it.
        #[test]
        fn canonical_json_is_serde_json_canonicalizers_text_where_rfc_8785_is_exact(value in json_value()) {
            let exact = |n: &Value| n.as_f64().is_none_or(|f| f.fract() != 0.0 || f.abs() < TWO_TO_53);
            fn all(value: &Value, ok: &dyn Fn(&Value) -> bool) -> bool {
                match value {
                    Value::Number(_) => ok(value),
                    Value::Array(items) => items.iter().all(|i| all(i, ok)),
                    Value::Object(map) => map.values().all(|i| all(i, ok)),
                    _ => true,
                }
            }
            proptest::prop_assume!(all(&value, &exact));
            let jcs = serde_json_canonicalizer::to_string(&value).expect("jcs");
            proptest::prop_assert_eq!(canonical_json(&value), jcs);
        }
    }
}
