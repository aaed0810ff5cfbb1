//! What the case prompts say. A prompt is read by an agent behind capgate, so the tools it names
//! must be named as that agent can call them: through the gateway's namespacing
//! (`case__read_case`), never by this server's own names (`read_case`), which no agent sees.

use crate::state::Case;

/// The prefix capgate puts before this server's tool names under the repository's
/// `capgate.toml`: downstream id `case`, the default `prefix` namespacing and `__` separator.
/// A gateway that registers this server under another id or namespacing must change it too.
pub const EXPOSED_TOOL_PREFIX: &str = "case__";

pub const SUMMARIZE_CASE: &str = "summarize_case";
pub const DRAFT_NOTICE: &str = "draft_notice";

/// The description and the user message of prompt `name` about `case`, whose evidence ids are
/// `evidence`; `None` for a prompt this server does not have.
pub fn render(name: &str, case: &Case, evidence: &[&str]) -> Option<(String, String)> {
    let evidence = if evidence.is_empty() {
        "none".to_owned()
    } else {
        evidence.join(", ")
    };
    let header = format!(
        "enforcement case {} \"{}\" (status: {}, risk: {})",
        case.id,
        case.title,
        case.status.as_str(),
        case.risk.as_str()
    );
    let tool = |name: &str| format!("{EXPOSED_TOOL_PREFIX}{name}");
    match name {
        SUMMARIZE_CASE => Some((
            format!("Summarize {}", case.id),
            format!(
                "Summarize {header}. Cover the suspected breach, the evidence on file \
                 ({evidence}) and the recommended next step. Use {} and {} to consult the \
                 record; do not change the case.",
                tool("read_case"),
                tool("search_evidence"),
            ),
        )),
        DRAFT_NOTICE => Some((
            format!("Draft a notice for {}", case.id),
            format!(
                "Draft a formal notice for {header}. State the suspected breach, the evidence \
                 relied upon ({evidence}) and a 14-day deadline to respond. Save it with {} and \
                 ask for its approval with {}; do not send it before it is approved.",
                tool("create_notice_draft"),
                tool("request_approval"),
            ),
        )),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::seed;

    /// Every tool a prompt mentions is mentioned by its exposed name, and each prompt mentions
    /// at least one.
    #[test]
    fn prompts_name_tools_as_agents_see_them() {
        let platform = seed::platform();
        let case = &platform.tenant("acme").cases["case-101"];
        let tools = crate::tools::domain_tools().expect("the tool catalogue");
        for prompt in [SUMMARIZE_CASE, DRAFT_NOTICE] {
            let (_, text) = render(prompt, case, &["ev-1001"]).expect("a known prompt");
            let mut named = 0;
            for tool in &tools {
                for (at, _) in text.match_indices(tool.name.as_ref()) {
                    assert!(
                        text[..at].ends_with(EXPOSED_TOOL_PREFIX),
                        "{prompt} names `{}` as no agent sees it: {text}",
                        tool.name
                    );
                    named += 1;
                }
            }
            assert!(named > 0, "{prompt} names no tool: {text}");
        }
        assert!(render("other", case, &[]).is_none());
    }
}
