//! Which of capgate's runtime facts (`context.runtime.<fact>`) a policy set can read, found in
//! the policies' JSON form at load. A fact no policy reads cannot change a decision, so the
//! decision cache leaves it out of its key (the run budget, which changes on every call).
//! Anything the walk does not recognise — the whole `context` or `context.runtime` used as a
//! value, a policy that cannot be rendered — counts as reading every fact.

use std::collections::BTreeSet;

use cedar_policy::PolicySet;
use serde_json::{Map, Value};

/// The runtime facts a policy set reads.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum RuntimeReads {
    /// Some policy may read any fact (it uses the record whole, or could not be analysed).
    Every,
    /// Only these facts, by name.
    Only(BTreeSet<String>),
}

impl RuntimeReads {
    /// What `policies` read.
    pub(super) fn of(policies: &PolicySet) -> Self {
        let mut reads = Self::Only(BTreeSet::new());
        for policy in policies.policies() {
            match policy.to_json() {
                Ok(json) => walk(&json, &mut reads),
                Err(_) => return Self::Every,
            }
            if reads == Self::Every {
                break;
            }
        }
        reads
    }

    /// Whether some policy may read `fact`.
    pub(super) fn reads(&self, fact: &str) -> bool {
        match self {
            Self::Every => true,
            Self::Only(facts) => facts.contains(fact),
        }
    }

    fn add(&mut self, fact: &str) {
        match self {
            Self::Every => {}
            Self::Only(facts) => {
                facts.insert(fact.to_string());
            }
        }
    }
}

/// `{".": {"left": L, "attr": a}}` or `{"has": {...}}`: the operator, `L` and `a`.
fn attribute_access(map: &Map<String, Value>) -> Option<(&str, &Value, &str)> {
    if map.len() != 1 {
        return None;
    }
    let (op, inner) = map.iter().next()?;
    if op != "." && op != "has" {
        return None;
    }
    let inner = inner.as_object()?;
    Some((
        op.as_str(),
        inner.get("left")?,
        inner.get("attr")?.as_str()?,
    ))
}

fn is_context(value: &Value) -> bool {
    value
        .as_object()
        .and_then(|m| m.get("Var"))
        .and_then(Value::as_str)
        == Some("context")
}

/// `context.runtime`, read as a value.
fn is_runtime(value: &Value) -> bool {
    value
        .as_object()
        .and_then(attribute_access)
        .is_some_and(|(op, left, attr)| op == "." && attr == "runtime" && is_context(left))
}

fn walk(value: &Value, reads: &mut RuntimeReads) {
    match value {
        Value::Object(map) => {
            if let Some((op, left, attr)) = attribute_access(map) {
                if is_runtime(left) {
                    // `context.runtime.<fact>` or `context.runtime has <fact>`.
                    reads.add(attr);
                } else if is_context(left) {
                    // `context.<other>`, or `context has runtime`: reads no runtime fact;
                    // `context.runtime` itself got here only when used as a whole value.
                    if op == "." && attr == "runtime" {
                        *reads = RuntimeReads::Every;
                    }
                } else {
                    walk(left, reads);
                }
                return;
            }
            if is_context(value) {
                // The whole context as a value (compared, or passed to a function).
                *reads = RuntimeReads::Every;
                return;
            }
            for inner in map.values() {
                walk(inner, reads);
            }
        }
        Value::Array(items) => {
            for item in items {
                walk(item, reads);
            }
        }
        Value::Null | Value::Bool(_) | Value::Number(_) | Value::String(_) => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reads(src: &str) -> RuntimeReads {
        RuntimeReads::of(&src.parse::<PolicySet>().expect("policies parse"))
    }

    fn only(facts: &[&str]) -> RuntimeReads {
        RuntimeReads::Only(facts.iter().map(|f| f.to_string()).collect())
    }

    #[test]
    fn each_way_of_reading_the_runtime_record_is_seen() {
        let cases: &[(&str, RuntimeReads)] = &[
            ("permit(principal, action, resource);", only(&[])),
            (
                "permit(principal, action, resource) when { context.runtime.budget_remaining > 0 };",
                only(&["budget_remaining"]),
            ),
            (
                "permit(principal, action, resource) unless { context.runtime has approval_granted && context.runtime.approval_granted };",
                only(&["approval_granted"]),
            ),
            (
                r#"permit(principal, action, resource) when { context["runtime"]["budget_remaining"] > 0 };"#,
                only(&["budget_remaining"]),
            ),
            (
                r#"permit(principal, action, resource) when { context.risk.score < 5 && context has runtime };"#,
                only(&[]),
            ),
            (
                r#"permit(principal, action, resource) when { context.runtime == {"budget_remaining": 3} };"#,
                RuntimeReads::Every,
            ),
            (
                r#"permit(principal, action, resource) when { context == {"runtime": {}} };"#,
                RuntimeReads::Every,
            ),
            (
                r#"permit(principal, action, resource) when { [context.runtime].contains(principal) };"#,
                RuntimeReads::Every,
            ),
        ];
        for (src, expected) in cases {
            assert_eq!(&reads(src), expected, "{src}");
        }
    }

    #[test]
    fn the_example_policies_do_not_read_the_budget() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("policies");
        let loaded = crate::policy::load_policies(&dir).expect("example policies load");
        let reads = RuntimeReads::of(&loaded.policies);
        assert!(!reads.reads("budget_remaining"), "{reads:?}");
        assert!(reads.reads("approval_granted"), "{reads:?}");
        assert!(reads.reads("workflow_node"), "{reads:?}");
    }
}
