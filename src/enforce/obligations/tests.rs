//! Obligations × content kinds: every kind a tool result, a resource read or a prompt can
//! hold, under each content-transforming obligation. A kind without a row is a hole.

use rmcp::model::{PromptMessage, Resource, Role};
use serde_json::json;

use super::*;

const SSN: &str = "123-45-6789";
const MASKED: &str = "*******6789";
const KEPT: &str = "Contoso";
const URI: &str = "case://acme/case-101";
/// Base64 of the SSN, so that a binary passed on would carry it.
const BLOB: &str = "MTIzLTQ1LTY3ODk=";

fn obligations(texts: &[&str]) -> Obligations {
    Obligations::parse(&texts.iter().map(|t| t.to_string()).collect::<Vec<_>>())
        .expect("enforceable")
}

/// The three result types, so that one table drives all three methods.
#[derive(Debug, Clone)]
enum Subject {
    Tool(CallToolResult),
    Resource(ReadResourceResult),
    Prompt(GetPromptResult),
}

impl Subject {
    fn apply(&mut self, obligations: &Obligations) -> Result<(), ObligationError> {
        match self {
            Subject::Tool(result) => obligations.apply_to_tool_result(result),
            Subject::Resource(result) => obligations.apply_to_resource(result),
            Subject::Prompt(result) => obligations.apply_to_prompt(result),
        }
    }

    fn serialized(&self) -> String {
        match self {
            Subject::Tool(result) => serde_json::to_string(result),
            Subject::Resource(result) => serde_json::to_string(result),
            Subject::Prompt(result) => serde_json::to_string(result),
        }
        .expect("results serialize")
    }
}

fn json_text() -> String {
    json!({"case": {"customer_ssn": SSN, "name": KEPT}}).to_string()
}

fn plain_text() -> String {
    format!("customer_ssn: {SSN}\nname: {KEPT}")
}

/// Text that names the field without a value that can be delimited.
fn mention_text() -> String {
    format!("the customer_ssn on file is {SSN}; name {KEPT}")
}

fn tool(content: Vec<ContentBlock>) -> Subject {
    Subject::Tool(CallToolResult::success(content))
}

fn prompt(content: ContentBlock) -> Subject {
    Subject::Prompt(GetPromptResult::new(vec![PromptMessage::new(
        Role::User,
        content,
    )]))
}

fn meta() -> MetaObject {
    MetaObject(
        json!({"customer_ssn": SSN, "name": KEPT})
            .as_object()
            .expect("an object")
            .clone(),
    )
}

enum Expect {
    /// The SSN is gone from the serialized result; the rest stays.
    Clean,
    /// Refused as binary content of this kind.
    Binary(ContentKind),
}

/// Every content kind, each holding the SSN under the field `customer_ssn`.
fn content_kinds() -> Vec<(&'static str, Subject, Expect)> {
    let embedded_blob = || ContentBlock::resource(ResourceContents::blob(BLOB, URI));
    let mut structured = CallToolResult::success(vec![]);
    structured.structured_content = Some(serde_json::from_str(&json_text()).expect("JSON"));
    let mut tool_meta = CallToolResult::success(vec![ContentBlock::text(KEPT)]);
    tool_meta.meta = Some(meta());
    let mut text_meta = rmcp::model::TextContent::new(KEPT);
    text_meta.meta = Some(meta());
    let mut resource_meta = ReadResourceResult::new(vec![ResourceContents::text(KEPT, URI)]);
    resource_meta.meta = Some(meta());
    // What a link says of itself reaches the model as it is: transformed like the rest (found
    // by the obligations fuzz target: a link's `_meta` kept the value).
    let mut link = Resource::new(URI, KEPT).with_description(plain_text());
    link.meta = Some(meta());
    vec![
        (
            "tool text, JSON",
            tool(vec![ContentBlock::text(json_text())]),
            Expect::Clean,
        ),
        (
            "tool text, plain",
            tool(vec![ContentBlock::text(plain_text())]),
            Expect::Clean,
        ),
        (
            "tool structured content",
            Subject::Tool(structured),
            Expect::Clean,
        ),
        ("tool result _meta", Subject::Tool(tool_meta), Expect::Clean),
        (
            "tool text block _meta",
            tool(vec![ContentBlock::Text(text_meta)]),
            Expect::Clean,
        ),
        (
            "tool embedded text resource, JSON",
            tool(vec![ContentBlock::embedded_text(URI, json_text())]),
            Expect::Clean,
        ),
        (
            "tool embedded text resource, plain",
            tool(vec![ContentBlock::embedded_text(URI, plain_text())]),
            Expect::Clean,
        ),
        (
            "tool embedded blob resource",
            tool(vec![ContentBlock::text(KEPT), embedded_blob()]),
            Expect::Binary(ContentKind::EmbeddedBlobResource),
        ),
        (
            "tool image",
            tool(vec![ContentBlock::image(BLOB, "image/png")]),
            Expect::Binary(ContentKind::Image),
        ),
        (
            "tool audio",
            tool(vec![ContentBlock::audio(BLOB, "audio/wav")]),
            Expect::Binary(ContentKind::Audio),
        ),
        (
            "tool resource link",
            tool(vec![ContentBlock::resource_link(link.clone())]),
            Expect::Clean,
        ),
        (
            "prompt message resource link",
            prompt(ContentBlock::resource_link(link)),
            Expect::Clean,
        ),
        (
            "resource text, JSON",
            Subject::Resource(ReadResourceResult::new(vec![ResourceContents::text(
                json_text(),
                URI,
            )])),
            Expect::Clean,
        ),
        (
            "resource text, plain",
            Subject::Resource(ReadResourceResult::new(vec![ResourceContents::text(
                plain_text(),
                URI,
            )])),
            Expect::Clean,
        ),
        (
            "resource _meta",
            Subject::Resource(resource_meta),
            Expect::Clean,
        ),
        (
            "resource blob",
            Subject::Resource(ReadResourceResult::new(vec![
                ResourceContents::text(KEPT, URI),
                ResourceContents::blob(BLOB, URI),
            ])),
            Expect::Binary(ContentKind::ResourceBlob),
        ),
        (
            "prompt message text, plain",
            prompt(ContentBlock::text(plain_text())),
            Expect::Clean,
        ),
        (
            "prompt message text, JSON",
            prompt(ContentBlock::text(json_text())),
            Expect::Clean,
        ),
        (
            "prompt message embedded text resource",
            prompt(ContentBlock::embedded_text(URI, json_text())),
            Expect::Clean,
        ),
        (
            "prompt message embedded blob resource",
            prompt(embedded_blob()),
            Expect::Binary(ContentKind::EmbeddedBlobResource),
        ),
        (
            "prompt message image",
            prompt(ContentBlock::image(BLOB, "image/png")),
            Expect::Binary(ContentKind::Image),
        ),
        (
            "prompt message audio",
            prompt(ContentBlock::audio(BLOB, "audio/wav")),
            Expect::Binary(ContentKind::Audio),
        ),
        (
            "prompt description",
            Subject::Prompt(GetPromptResult::new(vec![]).with_description(plain_text())),
            Expect::Clean,
        ),
    ]
}

/// What each transforming obligation leaves in place of the SSN.
const TRANSFORMING: [(&str, Option<&str>); 3] = [
    ("redact:customer_ssn", None),
    ("mask:customer_ssn", Some(MASKED)),
    ("redact_pattern:ssn", Some("[redacted ssn]")),
];

fn assert_agent_safe(error: &ObligationError, row: &str) {
    let shown = error.to_string();
    assert!(
        !shown.contains(SSN) && !shown.contains("customer_ssn"),
        "{row}: {shown}"
    );
}

#[test]
fn every_content_kind_is_transformed_or_refused() {
    for (obligation, marker) in TRANSFORMING {
        let obligations = obligations(&[obligation, "audit:case-read"]);
        for (row, original, expect) in content_kinds() {
            let mut subject = original.clone();
            let applied = subject.apply(&obligations);
            let shown = subject.serialized();
            let row = format!("{row} × {obligation}");
            match expect {
                Expect::Clean => {
                    assert_eq!(applied, Ok(()), "{row}");
                    assert!(!shown.contains(SSN), "{row}: {shown}");
                    assert!(shown.contains(KEPT), "{row}: the rest stays: {shown}");
                    if let Some(marker) = marker {
                        assert!(shown.contains(marker), "{row}: {shown}");
                    }
                }
                Expect::Binary(kind) => {
                    assert_eq!(applied, Err(ObligationError::Binary { kind }), "{row}");
                    assert_agent_safe(&ObligationError::Binary { kind }, &row);
                }
            }
        }
    }
}

#[test]
fn without_a_transforming_obligation_every_kind_passes_unchanged() {
    for texts in [
        &[][..],
        &["audit:case-read", "max_calls:3", "require_idempotency"][..],
    ] {
        let obligations = obligations(texts);
        for (row, original, _) in content_kinds() {
            let mut subject = original.clone();
            assert_eq!(subject.apply(&obligations), Ok(()), "{row}");
            assert_eq!(subject.serialized(), original.serialized(), "{row}");
        }
    }
}

/// Text of every kind that names the field in a form that cannot be redacted: refused for
/// `redact:`/`mask:` (naming the kind), while a pattern still applies.
#[test]
fn a_field_named_where_it_cannot_be_redacted_refuses_the_result() {
    let mut structured = CallToolResult::success(vec![]);
    structured.structured_content = Some(json!({"note": mention_text()}));
    let mut tool_meta = CallToolResult::success(vec![]);
    tool_meta.meta = Some(MetaObject(
        json!({"note": mention_text()})
            .as_object()
            .expect("an object")
            .clone(),
    ));
    let rows = [
        (
            tool(vec![ContentBlock::text(mention_text())]),
            ContentKind::Text,
        ),
        (Subject::Tool(structured), ContentKind::StructuredContent),
        (Subject::Tool(tool_meta), ContentKind::Meta),
        (
            tool(vec![ContentBlock::embedded_text(URI, mention_text())]),
            ContentKind::EmbeddedTextResource,
        ),
        (
            Subject::Resource(ReadResourceResult::new(vec![ResourceContents::text(
                mention_text(),
                URI,
            )])),
            ContentKind::ResourceText,
        ),
        (
            prompt(ContentBlock::text(mention_text())),
            ContentKind::Text,
        ),
        (
            Subject::Prompt(GetPromptResult::new(vec![]).with_description(mention_text())),
            ContentKind::PromptDescription,
        ),
    ];
    for (original, kind) in rows {
        for obligation in ["redact:customer_ssn", "mask:customer_ssn"] {
            let expected = ObligationError::UnredactableText {
                kind,
                field: "customer_ssn".into(),
            };
            let mut subject = original.clone();
            assert_eq!(
                subject.apply(&obligations(&[obligation])),
                Err(expected.clone()),
                "{kind} × {obligation}"
            );
            assert_agent_safe(&expected, &format!("{kind} × {obligation}"));
        }
        let mut subject = original.clone();
        assert_eq!(subject.apply(&obligations(&["redact_pattern:ssn"])), Ok(()));
        assert!(!subject.serialized().contains(SSN), "{kind}");
    }
}
