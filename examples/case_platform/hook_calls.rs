//! How the server runs its test hooks (listed only with `CASE_PLATFORM_TEST_HOOKS=1`):
//! crashing, sleeping with progress, adding a tool at run time, changing a tool's description,
//! and asking the client for something (`hooks.rs`).

use std::sync::PoisonError;

use rmcp::model::{CallToolResult, JsonObject, ProgressNotificationParam};
use rmcp::service::{RequestContext, RoleServer};
use serde_json::json;

use crate::server::{CasePlatform, CRASH_EXIT_CODE};
use crate::tools::{self, DEBUG_ADD_TOOL, DEBUG_CRASH, DEBUG_SLEEP, MAX_SLEEP_MS};

impl CasePlatform {
    /// `debug_redefine`: a tool's description changes under its clients.
    async fn redefine(
        &self,
        args: crate::hooks::RedefineArgs,
        ctx: &RequestContext<RoleServer>,
    ) -> CallToolResult {
        if !self.all_tools().iter().any(|t| t.name == args.name) {
            return tools::failure("not_found", &format!("no tool {}", args.name));
        }
        self.redefined
            .write()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(args.name.clone(), args.description);
        let notified = ctx.peer.notify_tool_list_changed().await.is_ok();
        tools::success_text(
            &format!("redefined {}", args.name),
            json!({ "redefined": args.name, "notified": notified }),
        )
    }

    /// Handles a test-hook or runtime-added tool; `None` if `name` is neither (or hooks are
    /// off).
    pub(crate) async fn call_test_tool(
        &self,
        name: &str,
        args: &JsonObject,
        ctx: &RequestContext<RoleServer>,
    ) -> Option<CallToolResult> {
        if !self.test_hooks {
            return None;
        }
        match name {
            DEBUG_CRASH => {
                tracing::warn!("debug_crash: exiting with code {CRASH_EXIT_CODE}");
                std::process::exit(CRASH_EXIT_CODE);
            }
            DEBUG_SLEEP => Some(match tools::parse::<tools::SleepArgs>(name, args) {
                Ok(a) => {
                    let ms = a.ms.min(MAX_SLEEP_MS);
                    let slept = self.sleep_with_progress(ms, ctx);
                    tokio::select! {
                        () = slept => tools::success_text("slept", json!({ "slept_ms": ms })),
                        () = ctx.ct.cancelled() => {
                            self.journal("cancelled", name, JsonObject::new(), None);
                            tools::failure("cancelled", "sleep cancelled")
                        }
                    }
                }
                Err(invalid) => *invalid,
            }),
            DEBUG_ADD_TOOL => Some(match tools::parse::<tools::AddToolArgs>(name, args) {
                Ok(a) => self.add_runtime_tool(&a.name, ctx).await,
                Err(invalid) => *invalid,
            }),
            crate::hooks::DEBUG_REDEFINE => Some(
                match tools::parse::<crate::hooks::RedefineArgs>(name, args) {
                    Ok(a) => self.redefine(a, ctx).await,
                    Err(invalid) => *invalid,
                },
            ),
            crate::hooks::DEBUG_ELICIT | crate::hooks::DEBUG_SAMPLE | crate::hooks::DEBUG_LOG => {
                crate::hooks::call(name, args, ctx).await
            }
            _ if self.runtime_tools().iter().any(|t| t.name == name) => Some(tools::success_text(
                &format!("called {name}"),
                json!({ "called": name }),
            )),
            _ => None,
        }
    }

    /// Sleeps `ms`, reporting progress every 100 ms when the caller asked for progress.
    async fn sleep_with_progress(&self, ms: u64, ctx: &RequestContext<RoleServer>) {
        let Some(token) = ctx.meta.get_progress_token() else {
            tokio::time::sleep(std::time::Duration::from_millis(ms)).await;
            return;
        };
        let mut done = 0;
        while done < ms {
            let step = (ms - done).min(100);
            tokio::time::sleep(std::time::Duration::from_millis(step)).await;
            done += step;
            let progress =
                ProgressNotificationParam::new(token.clone(), done as f64).with_total(ms as f64);
            if ctx.peer.notify_progress(progress).await.is_err() {
                return;
            }
        }
    }

    async fn add_runtime_tool(
        &self,
        name: &str,
        ctx: &RequestContext<RoleServer>,
    ) -> CallToolResult {
        if !tools::valid_tool_name(name) {
            return tools::failure("invalid_argument", &format!("invalid tool name: {name:?}"));
        }
        if self.all_tools().iter().any(|t| t.name == name) {
            return tools::failure("already_exists", &format!("tool already exists: {name}"));
        }
        let count = {
            let mut runtime = self
                .runtime_tools
                .write()
                .unwrap_or_else(PoisonError::into_inner);
            runtime.push(tools::runtime_tool(name));
            runtime.len()
        };
        let notified = match ctx.peer.notify_tool_list_changed().await {
            Ok(()) => true,
            Err(e) => {
                tracing::warn!(error = %e, "cannot send notifications/tools/list_changed");
                false
            }
        };
        tools::success(json!({
            "added": name,
            "runtime_tools": count,
            "list_changed_notified": notified,
        }))
    }
}
