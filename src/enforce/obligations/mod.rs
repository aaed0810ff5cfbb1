//! Obligations applied to what capgate returns. The obligation types and their parser live in
//! `policy::obligation` (every `@obligation` is parsed when the policy set loads); this module
//! holds the PEP's side: applying the content-transforming ones (`redact:`, `mask:`,
//! `redact_pattern:`) to every content kind of a tool result, a resource read and a prompt.
//!
//! Text of every kind (text blocks, embedded text resources, resource contents, prompt
//! messages and descriptions, structured content, `_meta`) goes through one text rule
//! (`rules/`). Binary content (images, audio, blobs) cannot be redacted: under a
//! content-transforming obligation it is an [`ObligationError`], and the caller refuses the
//! result rather than pass it on. Resource links carry no content and are left as they are.
//! The `redact_pattern:` patterns match text in Unicode normalization form NFKC, so that
//! fullwidth and other look-alike spellings of a value are caught too (`patterns.rs`).

mod asks;
mod delimit;
mod patterns;
mod rules;
#[cfg(test)]
mod tests;

use std::fmt;

use rmcp::model::{
    CallToolResult, ContentBlock, GetPromptResult, MetaObject, ReadResourceResult, ResourceContents,
};
use serde_json::Value;

pub use crate::policy::obligation::{Obligation, Obligations, Pattern};
use rules::{Rules, Unredactable};

/// Where in a result a content kind was met, as the refusal names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ContentKind {
    Text,
    StructuredContent,
    Image,
    Audio,
    EmbeddedTextResource,
    EmbeddedBlobResource,
    ResourceLink,
    ResourceText,
    ResourceBlob,
    PromptDescription,
    Meta,
}

impl fmt::Display for ContentKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ContentKind::Text => "text",
            ContentKind::StructuredContent => "structured",
            ContentKind::Image => "image",
            ContentKind::Audio => "audio",
            ContentKind::EmbeddedTextResource => "embedded text resource",
            ContentKind::EmbeddedBlobResource => "embedded blob resource",
            ContentKind::ResourceLink => "resource link",
            ContentKind::ResourceText => "resource text",
            ContentKind::ResourceBlob => "resource blob",
            ContentKind::PromptDescription => "prompt description",
            ContentKind::Meta => "_meta",
        })
    }
}

/// Why a result cannot be shown under its obligations. The caller must withhold the whole
/// result (it may be partly transformed). The messages are safe for the agent: they name the
/// content kind, never a value or the policy; `field` is for the operator's log.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ObligationError {
    /// Images, audio and blobs cannot be redacted, masked or searched for patterns.
    #[error("the result holds {kind} content, which cannot be redacted as the policy requires; it was withheld")]
    Binary { kind: ContentKind },
    /// A content kind this gateway does not know (the MCP content union is open).
    #[error("the result holds a content kind this gateway cannot redact as the policy requires; it was withheld")]
    UnknownContentKind,
    /// Text that names a field to be redacted or masked in a form that cannot be rewritten
    /// safely (the name alone, a value on the following lines, an unclosed quote).
    #[error("the result's {kind} content names a field the policy requires redacted, in a form that cannot be redacted safely; it was withheld")]
    UnredactableText { kind: ContentKind, field: String },
}

impl Unredactable {
    fn within(self, kind: ContentKind) -> ObligationError {
        ObligationError::UnredactableText {
            kind,
            field: self.field,
        }
    }
}

/// Every content kind, under the content-transforming obligations. With none, each method is
/// a no-op.
impl Obligations {
    /// A tool result: structured content, every content block, `_meta`.
    pub fn apply_to_tool_result(&self, result: &mut CallToolResult) -> Result<(), ObligationError> {
        let Some(rules) = Rules::new(self) else {
            return Ok(());
        };
        if let Some(structured) = result.structured_content.as_mut() {
            rules
                .value(structured)
                .map_err(|e| e.within(ContentKind::StructuredContent))?;
        }
        for block in &mut result.content {
            apply_to_block(&rules, block)?;
        }
        apply_to_meta(&rules, &mut result.meta)
    }

    /// A resource read: every text contents; blob contents are refused.
    pub fn apply_to_resource(
        &self,
        result: &mut ReadResourceResult,
    ) -> Result<(), ObligationError> {
        let Some(rules) = Rules::new(self) else {
            return Ok(());
        };
        for contents in &mut result.contents {
            apply_to_contents(
                &rules,
                contents,
                ContentKind::ResourceText,
                ContentKind::ResourceBlob,
            )?;
        }
        apply_to_meta(&rules, &mut result.meta)
    }

    /// A prompt: its description and every message's content.
    pub fn apply_to_prompt(&self, result: &mut GetPromptResult) -> Result<(), ObligationError> {
        let Some(rules) = Rules::new(self) else {
            return Ok(());
        };
        if let Some(description) = result.description.as_mut() {
            *description = rules
                .text(description)
                .map_err(|e| e.within(ContentKind::PromptDescription))?;
        }
        for message in &mut result.messages {
            apply_to_block(&rules, &mut message.content)?;
        }
        apply_to_meta(&rules, &mut result.meta)
    }
}

fn apply_to_block(rules: &Rules<'_>, block: &mut ContentBlock) -> Result<(), ObligationError> {
    match block {
        ContentBlock::Text(text) => {
            text.text = rules
                .text(&text.text)
                .map_err(|e| e.within(ContentKind::Text))?;
            apply_to_meta(rules, &mut text.meta)
        }
        ContentBlock::Resource(embedded) => {
            apply_to_contents(
                rules,
                &mut embedded.resource,
                ContentKind::EmbeddedTextResource,
                ContentKind::EmbeddedBlobResource,
            )?;
            apply_to_meta(rules, &mut embedded.meta)
        }
        // Reading the linked resource is decided on its own, but what the link says of itself
        // (URI, name, title, description, icons, `_meta`) reaches the model now: every string
        // in it, member names included, under the same rules. A link the rules leave without
        // what a link must hold (its URI or name redacted away) is withheld.
        ContentBlock::ResourceLink(link) => {
            let withheld = || Unredactable {
                field: "resource link".into(),
            };
            let mut json = serde_json::to_value(&*link)
                .map_err(|_| withheld().within(ContentKind::ResourceLink))?;
            rules
                .value(&mut json)
                .map_err(|e| e.within(ContentKind::ResourceLink))?;
            *link = serde_json::from_value(json)
                .map_err(|_| withheld().within(ContentKind::ResourceLink))?;
            Ok(())
        }
        ContentBlock::Image(_) => Err(ObligationError::Binary {
            kind: ContentKind::Image,
        }),
        ContentBlock::Audio(_) => Err(ObligationError::Binary {
            kind: ContentKind::Audio,
        }),
        // rmcp's content union is non-exhaustive: a kind added later is refused, not passed on.
        _ => Err(ObligationError::UnknownContentKind),
    }
}

fn apply_to_contents(
    rules: &Rules<'_>,
    contents: &mut ResourceContents,
    text_kind: ContentKind,
    blob_kind: ContentKind,
) -> Result<(), ObligationError> {
    match contents {
        ResourceContents::TextResourceContents { text, meta, .. } => {
            *text = rules.text(text).map_err(|e| e.within(text_kind))?;
            apply_to_meta(rules, meta)
        }
        ResourceContents::BlobResourceContents { .. } => {
            Err(ObligationError::Binary { kind: blob_kind })
        }
        // Non-exhaustive as well: refused, not passed on.
        _ => Err(ObligationError::UnknownContentKind),
    }
}

/// `_meta` is free-form JSON a downstream server fills: the same rules as structured content.
fn apply_to_meta(rules: &Rules<'_>, meta: &mut Option<MetaObject>) -> Result<(), ObligationError> {
    match meta {
        Some(meta) => rules
            .object(&mut meta.0)
            .map_err(|e| e.within(ContentKind::Meta)),
        None => Ok(()),
    }
}

fn mask(value: &Value) -> String {
    mask_text(&match value {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    })
}

/// Keeps the last four characters of a value.
fn mask_text(text: &str) -> String {
    let chars: Vec<char> = text.chars().collect();
    let keep = chars.len().min(4);
    let tail: String = chars[chars.len() - keep..].iter().collect();
    format!("{}{tail}", "*".repeat(chars.len() - keep))
}
