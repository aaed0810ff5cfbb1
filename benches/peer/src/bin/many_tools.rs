//! `many-tools`: a stdio MCP server with N tools, the downstream of the RSS benchmark
//! (`scripts/rss-bench.sh`, issue 14's "RSS ≤ 64 MB at 1,000 tools and 1,000 sessions").
//!
//! Tools `tool_00000` … `tool_<N-1>` (five digits), each with the same small input schema
//! (`{"text": string}`, required) and a one-line description; a call answers the short text
//! `<name>: <text>`. Read-only annotations. The list is built once at start.
//!
//! - `--tools N` (or `MANY_TOOLS`; default 1000): how many tools.
//! - `--page-size K` (or `MANY_TOOLS_PAGE_SIZE`; default 0 = every tool in one page): pages of
//!   `tools/list` of K tools, the cursor being the next page's first index.
//!
//! It speaks stdio only, as a gateway's child does; logs (warn and above, or
//! `MANY_TOOLS_LOG`) go to stderr.

use std::sync::Arc;

use anyhow::{bail, Context};
use rmcp::model::{
    CallToolRequestParams, CallToolResponse, CallToolResult, ContentBlock, Implementation,
    JsonObject, ListToolsResult, PaginatedRequestParams, ServerCapabilities, ServerConfig, Tool,
    ToolAnnotations,
};
use rmcp::service::RequestContext;
use rmcp::{ErrorData, RoleServer, ServerHandler, ServiceExt};
use serde_json::{json, Value};
use tracing_subscriber::EnvFilter;

/// The exposed name of tool `index`.
fn tool_name(index: usize) -> String {
    format!("tool_{index:05}")
}

#[derive(Clone)]
struct ManyTools {
    tools: Arc<Vec<Tool>>,
    /// 0: one page.
    page_size: usize,
}

impl ManyTools {
    fn new(count: usize, page_size: usize) -> Self {
        let schema: Arc<JsonObject> = Arc::new(
            json!({
                "type": "object",
                "properties": {
                    "text": {"type": "string", "description": "Text the tool answers with."}
                },
                "required": ["text"],
            })
            .as_object()
            .expect("an object")
            .clone(),
        );
        let annotations =
            ToolAnnotations::from_raw(None, Some(true), Some(false), Some(true), None);
        let tools = (0..count)
            .map(|index| {
                Tool::new(
                    tool_name(index),
                    format!(
                        "Benchmark tool {index} of {count}: answers with its name and the text."
                    ),
                    schema.clone(),
                )
                .with_annotations(annotations.clone())
            })
            .collect();
        Self {
            tools: Arc::new(tools),
            page_size,
        }
    }
}

impl ServerHandler for ManyTools {
    fn get_info(&self) -> ServerConfig {
        ServerConfig::new(ServerCapabilities::builder().enable_tools().build())
            .with_server_info(Implementation::new("many-tools", env!("CARGO_PKG_VERSION")))
    }

    async fn list_tools(
        &self,
        request: Option<PaginatedRequestParams>,
        _ctx: RequestContext<RoleServer>,
    ) -> Result<ListToolsResult, ErrorData> {
        if self.page_size == 0 {
            return Ok(ListToolsResult::with_all_items(self.tools.as_ref().clone()));
        }
        let start = match request.and_then(|r| r.cursor) {
            None => 0,
            Some(cursor) => cursor
                .parse::<usize>()
                .ok()
                .filter(|start| *start < self.tools.len())
                .ok_or_else(|| ErrorData::invalid_params("unknown cursor", None))?,
        };
        let end = (start + self.page_size).min(self.tools.len());
        let mut result = ListToolsResult::with_all_items(self.tools[start..end].to_vec());
        if end < self.tools.len() {
            result.next_cursor = Some(end.to_string());
        }
        Ok(result)
    }

    async fn call_tool(
        &self,
        request: CallToolRequestParams,
        _ctx: RequestContext<RoleServer>,
    ) -> Result<CallToolResponse, ErrorData> {
        let known = self.tools.iter().any(|tool| tool.name == request.name);
        if !known {
            return Err(ErrorData::invalid_params(
                format!("no tool {}", request.name),
                None,
            ));
        }
        let text = request
            .arguments
            .as_ref()
            .and_then(|args| args.get("text"))
            .and_then(Value::as_str);
        let result = match text {
            Some(text) => CallToolResult::success(vec![ContentBlock::text(format!(
                "{}: {text}",
                request.name
            ))]),
            None => CallToolResult::error(vec![ContentBlock::text(
                "the argument `text` (a string) is required",
            )]),
        };
        Ok(result.into())
    }
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_ansi(false)
        .with_env_filter(
            EnvFilter::try_from_env("MANY_TOOLS_LOG").unwrap_or_else(|_| EnvFilter::new("warn")),
        )
        .init();
    let args: Vec<String> = std::env::args().skip(1).collect();
    let setting = |flag: &str, env: &str, default: usize| -> anyhow::Result<usize> {
        let text = match args.iter().position(|a| a == flag) {
            Some(i) => Some(
                args.get(i + 1)
                    .with_context(|| format!("{flag} needs a value"))?
                    .clone(),
            ),
            None => std::env::var(env).ok(),
        };
        match text {
            Some(text) => text
                .trim()
                .parse()
                .with_context(|| format!("{flag} / {env}: not a count: {text:?}")),
            None => Ok(default),
        }
    };
    for arg in args.iter().filter(|a| a.starts_with("--")) {
        if arg != "--tools" && arg != "--page-size" {
            bail!("unknown option {arg} (--tools N, --page-size K)");
        }
    }
    let count = setting("--tools", "MANY_TOOLS", 1000)?;
    let page_size = setting("--page-size", "MANY_TOOLS_PAGE_SIZE", 0)?;
    if count > 100_000 {
        bail!("at most 100000 tools (names have five digits)");
    }
    let running = ManyTools::new(count, page_size)
        .serve(rmcp::transport::stdio())
        .await?;
    running.waiting().await?;
    Ok(())
}
