//! Resource URI templates: parsing arbitrary templates (`case://{tenant}/cases/{case_id}`) and
//! matching arbitrary URIs against them, and against the repository's resource contracts.
//!
//! Invariants: no panic; a parsed template starts with a scheme and names each variable once;
//! a URI matches only if putting the captured values back into the template gives that URI
//! exactly, every variable captured, each value non-empty and free of `/`, `?` and `#` (so the
//! entity a policy decides on is the one the URI names, and no other).

#![no_main]

use std::collections::HashMap;

use arbitrary::Arbitrary;
use capgate::registry::UriTemplate;
use capgate_fuzz::Text;
use libfuzzer_sys::fuzz_target;

#[derive(Debug, Arbitrary)]
struct Input {
    template: Text,
    uris: Vec<Text>,
    /// Values to put into the template, making a URI it should read back.
    values: Vec<Text>,
}

/// The template's source with `{name}` replaced by the values (as the template parser splits it).
fn fill(source: &str, values: &HashMap<String, String>) -> Option<String> {
    let mut out = String::new();
    let mut rest = source;
    while let Some(open) = rest.find('{') {
        out.push_str(&rest[..open]);
        let close = rest[open..].find('}')? + open;
        out.push_str(values.get(&rest[open + 1..close])?);
        rest = &rest[close + 1..];
    }
    out.push_str(rest);
    Some(out)
}

fn check(template: &UriTemplate, uri: &str) {
    let Some(captured) = template.capture(uri) else {
        return;
    };
    let names: Vec<&str> = template.variables().collect();
    assert_eq!(captured.len(), names.len(), "{:?} captured {captured:?} from {uri:?}", template.source);
    for name in &names {
        let value = captured.get(*name).expect("every variable is captured");
        assert!(!value.is_empty() && !value.contains(['/', '?', '#']), "{name} = {value:?}");
    }
    assert_eq!(
        fill(&template.source, &captured).as_deref(),
        Some(uri),
        "{:?} captured {captured:?} from {uri:?}, which do not give it back",
        template.source
    );
}

fuzz_target!(|input: Input| {
    let registry = capgate_fuzz::registry();
    for uri in &input.uris {
        if let Some((contract, _)) = registry.resource_for_uri(&uri.0) {
            check(&contract.template, &uri.0);
        }
    }
    let Ok(template) = UriTemplate::parse(&input.template.0) else {
        return;
    };
    assert_eq!(template.source, input.template.0);
    let names: Vec<&str> = template.variables().collect();
    for (i, name) in names.iter().enumerate() {
        assert!(!names[..i].contains(name), "{:?} names `{name}` twice", template.source);
    }
    for uri in &input.uris {
        check(&template, &uri.0);
    }
    let values: HashMap<String, String> = names
        .iter()
        .zip(input.values.iter().cycle())
        .map(|(name, value)| {
            let clean: String = value.0.chars().filter(|c| !matches!(c, '/' | '?' | '#')).collect();
            (name.to_string(), if clean.is_empty() { "v".into() } else { clean })
        })
        .collect();
    if let Some(uri) = fill(&template.source, &values) {
        check(&template, &uri);
    }
});
