//! Resource URI templates (`case://{tenant}/cases/{case_id}`): parsed from contracts, matched
//! against the URIs agents read, and checked for overlaps between servers.

use std::collections::HashMap;

/// A URI template of literal text and `{variable}` parts; a variable matches one or more
/// characters other than `/`, `?` and `#`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UriTemplate {
    pub source: String,
    parts: Vec<TemplatePart>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum TemplatePart {
    Literal(String),
    Variable(String),
}

impl UriTemplate {
    pub fn parse(source: &str) -> Result<Self, String> {
        let mut parts = Vec::new();
        let mut rest = source;
        while let Some(open) = rest.find('{') {
            if open > 0 {
                parts.push(TemplatePart::Literal(rest[..open].to_string()));
            }
            let close = rest[open..]
                .find('}')
                .ok_or_else(|| format!("unclosed `{{` in `{source}`"))?
                + open;
            let name = &rest[open + 1..close];
            if name.is_empty() || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
                return Err(format!("`{{{name}}}` is not a simple variable"));
            }
            if matches!(parts.last(), Some(TemplatePart::Variable(_))) {
                return Err("two variables must be separated by literal text".into());
            }
            // One value per name: a second `{name}` would bind whichever part matched last.
            if parts
                .iter()
                .any(|p| matches!(p, TemplatePart::Variable(v) if v == name))
            {
                return Err(format!("`{{{name}}}` appears twice in `{source}`"));
            }
            parts.push(TemplatePart::Variable(name.to_string()));
            rest = &rest[close + 1..];
        }
        if !rest.is_empty() {
            parts.push(TemplatePart::Literal(rest.to_string()));
        }
        match parts.first() {
            Some(TemplatePart::Literal(prefix)) if prefix.contains("://") => {}
            _ => return Err(format!("`{source}` must start with a scheme, e.g. case://")),
        }
        Ok(Self {
            source: source.to_string(),
            parts,
        })
    }

    pub fn variables(&self) -> impl Iterator<Item = &str> {
        self.parts.iter().filter_map(|p| match p {
            TemplatePart::Variable(v) => Some(v.as_str()),
            TemplatePart::Literal(_) => None,
        })
    }

    /// The variables' values if `uri` matches the whole template.
    pub fn capture(&self, uri: &str) -> Option<HashMap<String, String>> {
        let mut vars = HashMap::new();
        let mut rest = uri;
        let mut parts = self.parts.iter().peekable();
        while let Some(part) = parts.next() {
            match part {
                TemplatePart::Literal(lit) => rest = rest.strip_prefix(lit.as_str())?,
                TemplatePart::Variable(name) => {
                    let end = match parts.peek() {
                        Some(TemplatePart::Literal(next)) => rest.find(next.as_str())?,
                        _ => rest.len(),
                    };
                    let value = &rest[..end];
                    if value.is_empty() || value.contains(['/', '?', '#']) {
                        return None;
                    }
                    vars.insert(name.clone(), value.to_string());
                    rest = &rest[end..];
                }
            }
        }
        rest.is_empty().then_some(vars)
    }

    /// Conservative overlap check: two templates overlap when one's literal prefix is a prefix
    /// of the other's.
    pub(super) fn overlaps(&self, other: &UriTemplate) -> bool {
        let prefix = |t: &UriTemplate| match t.parts.first() {
            Some(TemplatePart::Literal(p)) => p.clone(),
            _ => String::new(),
        };
        let (a, b) = (prefix(self), prefix(other));
        a.starts_with(&b) || b.starts_with(&a)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn template_captures_variables_and_rejects_extra_segments() {
        let t = UriTemplate::parse("case://{tenant}/cases/{case_id}").expect("valid");
        let vars = t.capture("case://acme/cases/case-101").expect("matches");
        assert_eq!(vars["tenant"], "acme");
        assert_eq!(vars["case_id"], "case-101");
        assert!(t.capture("case://acme/cases/case-101/evidence").is_none());
        assert!(t.capture("case://acme/cases/").is_none());
        assert!(t.capture("other://acme/cases/x").is_none());
    }

    /// Found by the `uri_template` fuzz target (fuzz/corpus/uri_template/crash-variable-named-twice): a
    /// template naming a variable twice parsed, and a URI bound it to whichever part matched
    /// last, so the entity a policy decided on was not the one the URI named first.
    #[test]
    fn a_variable_named_twice_is_refused() {
        for template in [
            "case://{se}/x/{se}",
            "case://acme/cases/case-101{cbcccasras0}}{se}se\u{1}\0\0\u{13}\u{13}\u{13}\u{13}\u{13}\0\r~\0cbcccasras0}}{se}se\u{1}\0\0\0",
        ] {
            let refused = UriTemplate::parse(template).expect_err("a variable named twice");
            assert!(refused.contains("`{se}` appears twice"), "{refused}");
        }
        let t = UriTemplate::parse("case://{tenant}/cases/{case_id}").expect("distinct names");
        assert_eq!(t.variables().collect::<Vec<_>>(), ["tenant", "case_id"]);
    }
}
