//! Obligations on what a downstream asks of the client while it serves a call, both ways:
//! the request (the elicitation's message, the sampling messages and system prompt) before
//! the client sees it, and the client's answer before the downstream sees it. Same rules as
//! for results: text is rewritten, binary content under a content-transforming obligation is
//! an error, and the caller refuses rather than pass it on.

#[allow(deprecated)] // sampling is how 2025-11-25 servers ask for completions.
use rmcp::model::{
    CreateMessageRequestParams, CreateMessageResult, ElicitRequestParams, ElicitResult,
    SamplingContent, SamplingMessage, SamplingMessageContentBlock,
};

use super::rules::Rules;
use super::{apply_to_block, apply_to_meta, ContentKind, ObligationError, Obligations};

impl Obligations {
    /// An elicitation's message (form and URL mode) before the client sees it.
    pub fn apply_to_elicitation(
        &self,
        request: &mut ElicitRequestParams,
    ) -> Result<(), ObligationError> {
        let Some(rules) = Rules::new(self) else {
            return Ok(());
        };
        let message = match request {
            ElicitRequestParams::FormElicitationParams { message, .. }
            | ElicitRequestParams::UrlElicitationParams { message, .. } => message,
            // A mode added later is refused, not passed on unredacted.
            _ => return Err(ObligationError::UnknownContentKind),
        };
        *message = rules
            .text(message)
            .map_err(|e| e.within(ContentKind::Text))?;
        Ok(())
    }

    /// The client's answer to an elicitation before the downstream sees it.
    pub fn apply_to_elicited(&self, result: &mut ElicitResult) -> Result<(), ObligationError> {
        let Some(rules) = Rules::new(self) else {
            return Ok(());
        };
        if let Some(content) = result.content.as_mut() {
            rules
                .value(content)
                .map_err(|e| e.within(ContentKind::StructuredContent))?;
        }
        apply_to_meta(&rules, &mut result.meta)
    }

    /// A sampling request's messages and system prompt before the client's model sees them.
    #[allow(deprecated)]
    pub fn apply_to_sampling(
        &self,
        request: &mut CreateMessageRequestParams,
    ) -> Result<(), ObligationError> {
        let Some(rules) = Rules::new(self) else {
            return Ok(());
        };
        if let Some(system) = request.system_prompt.as_mut() {
            *system = rules
                .text(system)
                .map_err(|e| e.within(ContentKind::Text))?;
        }
        for message in &mut request.messages {
            apply_to_sampling_message(&rules, message)?;
        }
        Ok(())
    }

    /// The client model's answer before the downstream sees it.
    #[allow(deprecated)]
    pub fn apply_to_sampled(
        &self,
        result: &mut CreateMessageResult,
    ) -> Result<(), ObligationError> {
        let Some(rules) = Rules::new(self) else {
            return Ok(());
        };
        apply_to_sampling_message(&rules, &mut result.message)
    }
}

#[allow(deprecated)]
fn apply_to_sampling_message(
    rules: &Rules<'_>,
    message: &mut SamplingMessage,
) -> Result<(), ObligationError> {
    let blocks = match &mut message.content {
        SamplingContent::Single(block) => std::slice::from_mut(block),
        SamplingContent::Multiple(blocks) => blocks.as_mut_slice(),
    };
    for block in blocks {
        match block {
            SamplingMessageContentBlock::Text(text) => {
                text.text = rules
                    .text(&text.text)
                    .map_err(|e| e.within(ContentKind::Text))?;
                apply_to_meta(rules, &mut text.meta)?;
            }
            SamplingMessageContentBlock::Image(_) => {
                return Err(ObligationError::Binary {
                    kind: ContentKind::Image,
                })
            }
            SamplingMessageContentBlock::Audio(_) => {
                return Err(ObligationError::Binary {
                    kind: ContentKind::Audio,
                })
            }
            SamplingMessageContentBlock::ToolUse(tool_use) => {
                rules
                    .object(&mut tool_use.input)
                    .map_err(|e| e.within(ContentKind::StructuredContent))?;
                apply_to_meta(rules, &mut tool_use.meta)?;
            }
            SamplingMessageContentBlock::ToolResult(tool_result) => {
                if let Some(structured) = tool_result.structured_content.as_mut() {
                    rules
                        .value(structured)
                        .map_err(|e| e.within(ContentKind::StructuredContent))?;
                }
                for block in &mut tool_result.content {
                    apply_to_block(rules, block)?;
                }
                apply_to_meta(rules, &mut tool_result.meta)?;
            }
            // rmcp's sampling union is non-exhaustive: a kind added later is refused.
            _ => return Err(ObligationError::UnknownContentKind),
        }
    }
    apply_to_meta(rules, &mut message.meta)
}
