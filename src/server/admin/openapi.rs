//! The admin API as an OpenAPI 3.1 document (`capgate admin openapi`), with who may call what
//! under the repository's admin policies.

use serde_json::{json, Value};

/// The admin API as an OpenAPI 3.1 document.
pub fn openapi() -> Value {
    let schema = |value: schemars::Schema| serde_json::to_value(value).unwrap_or(Value::Null);
    let bearer = json!([{"bearer": []}, {"console_session": []}]);
    let refusals = |ok: &str| {
        json!({
            "200": {"description": ok},
            "401": {"description": "no valid token"},
            "403": {"description": "the admin policy (or, for approvals and break-glass, the role they need) refuses it; the body names the deciding policy and why"},
        })
    };
    let op = |summary: &str, who: &str, ok: &str| json!({"summary": summary, "description": who, "security": bearer.clone(), "responses": refusals(ok)});
    let with_body = |summary: &str, who: &str, body: Value| {
        let mut responses = refusals("done");
        responses["422"] = json!({"description": "invalid request"});
        json!({
            "summary": summary,
            "description": who,
            "security": bearer.clone(),
            "requestBody": {"required": true, "content": {"application/json": {"schema": body}}},
            "responses": responses,
        })
    };
    let with_id = |summary: &str, who: &str, ok: &str, missing: &str| {
        let mut responses = refusals(ok);
        responses["404"] = json!({"description": missing});
        json!({"summary": summary, "description": who, "security": bearer.clone(),
               "parameters": [{"name": "id", "in": "path", "required": true, "schema": {"type": "string"}}],
               "responses": responses})
    };
    let kill_body = json!({
        "allOf": [{"$ref": "#/components/schemas/KillScope"}],
        "properties": {
            "tenant": {"type": "string", "description": "the tenant the switch is limited to; omitted: every tenant (a tenant switch is limited to its own tenant)"},
            "reason": {"type": "string"}
        }
    });
    let mut set_kill = kill_body.clone();
    set_kill["required"] = json!(["reason"]);
    const ANY_ADMIN: &str =
        "Tenant admins ([admin] role) and platform admins ([admin] platform_role).";
    const PLATFORM: &str = "Platform admins only.";
    const SWITCHES: &str = "Tenant admins: tenant, user and agent_role switches limited to their own tenant. Platform admins: every switch, including global, server and tool switches and switches without a tenant.";
    const TENANT_RECORDS: &str = "Tenant admins: the records of their own tenant. Platform admins: any tenant's, or every tenant's (`tenant=*`).";
    let query = |name: &str, description: &str| json!({"name": name, "in": "query", "required": false, "schema": {"type": "string"}, "description": description});
    const OWN_TENANT: &str =
        "Any person (no agent) for their own tenant; platform admins too stay within theirs.";
    json!({
        "openapi": "3.1.0",
        "info": {
            "title": "capgate admin API",
            "version": env!("CARGO_PKG_VERSION"),
            "description": "Served on the admin listener. Every path but /metrics needs a bearer token (or the web console's session cookie with its CSRF token); what its holder may do is decided by the admin policy set (policies/admin/). Admins are people: a token an agent acts on is refused everywhere (403). Tenant admins act on their own tenant only; platform admins on everything. Approvals and break-glass grants stay within the caller's tenant; deciding an approval also needs its approver role (not the requester), opening or revoking a grant the break-glass role."
        },
        "components": {
            "securitySchemes": {
                "bearer": {"type": "http", "scheme": "bearer", "bearerFormat": "JWT"},
                "console_session": {"type": "apiKey", "in": "cookie", "name": "capgate_console",
                    "description": "The web console's session (`__Host-capgate_console` over HTTPS), opened at POST /console/api/sign-in with a bearer token that is verified again on every request. Every request with it that changes state must carry the session's CSRF token in X-CSRF-Token (GET /console/api/session gives it) and come from the console's origin; otherwise 403 `csrf`. A bearer header, when present, is used instead."}
            },
            "schemas": {
                "KillSwitch": schema(schemars::schema_for!(crate::store::KillSwitch)),
                "KillScope": schema(schemars::schema_for!(crate::store::KillScope)),
                "Approval": schema(schemars::schema_for!(crate::store::Approval)),
                "BreakGlassGrant": schema(schemars::schema_for!(crate::store::BreakGlassGrant)),
                "ToolPin": schema(schemars::schema_for!(crate::store::ToolPin)),
                "Quarantined": schema(schemars::schema_for!(crate::enforce::Quarantined)),
            }
        },
        "paths": {
            "/admin/policy": {"get": op("Policy versions in effect, loaded and shadow, and the admin policy set", ANY_ADMIN, "status")},
            "/admin/policy/reload": {"post": op("Validate policies/ (and policies/admin/) and swap atomically (422 with file and line when invalid)", PLATFORM, "reloaded")},
            "/admin/relationships": {"post": with_body("Add or replace relationship entities (Cedar entity JSON); one refused entity refuses the whole update",
                "Tenant admins: entities that belong to their tenant (attrs.tenant names it, or it is their Tenant entity) and replace only entities of their tenant. Platform admins: any entity, including those of no tenant (users, roles).",
                json!({"type": "array", "minItems": 1, "items": {"type": "object"}}))},
            "/admin/kill-switches": {
                "get": op("Kill switches that are on, those the caller may see, each with what it hides (`hides`: the capabilities it covers and for which callers); and every registered capability a switch can name (`capabilities`)", SWITCHES, "list"),
                "post": with_body("Flip a kill switch (scope, target, tenant, reason)", SWITCHES, set_kill)
            },
            "/admin/kill-switches/lift": {"post": with_body("Lift the kill switch of this scope and tenant", SWITCHES, kill_body)},
            "/admin/health": {"get": op("The gateway's health in detail: policy version, downstream states and reasons, the decision log", PLATFORM, "health")},
            "/metrics": {"get": {"summary": "Prometheus metrics (no token: keep the admin listener off the agents' network)", "responses": {"200": {"description": "Prometheus text"}}}},
            "/admin/tools": {"get": op("Tool-definition pins and quarantined tools (pinned and listed digests, what changed)", PLATFORM, "pins")},
            "/admin/tools/accept": {"post": with_body("Accept the definition a downstream lists now for a quarantined tool, named by its digest",
                PLATFORM, schema(schemars::schema_for!(super::tools::AcceptBody)))},
            "/admin/audit/flush": {"post": op("Wait until every decision record logged so far is committed", PLATFORM, "flushed")},
            "/admin/runs": {"get": {"summary": "A run's manifest: policy versions used, tools called and their decisions (replicas on PostgreSQL: over every replica's chain, with the decisions per chain)",
                "description": "Tenant admins: runs of their own tenant. Platform admins: any tenant.", "security": bearer.clone(),
                "parameters": [{"name": "tenant", "in": "query", "required": true, "schema": {"type": "string"}},
                               {"name": "run", "in": "query", "required": true, "schema": {"type": "string"}}],
                "responses": refusals("manifest")}},
            "/admin/budgets": {"get": {"summary": "A run's budget usage",
                "description": "Tenant admins: runs of their own tenant. Platform admins: any tenant.", "security": bearer.clone(),
                "parameters": [{"name": "run", "in": "query", "required": true, "schema": {"type": "string"}},
                               {"name": "tenant", "in": "query", "required": false, "schema": {"type": "string"}, "description": "the run's tenant; the caller's own when omitted"},
                               {"name": "tool", "in": "query", "required": false, "schema": {"type": "string"}}],
                "responses": refusals("usage and limits")}},
            "/approvals": {"get": op("Approval requests of the caller's tenant: arguments masked as the decision log masks them ([audit] mask_arguments); for a pending one, `request`: who asked (user, agent, service, run) and the policy and reason that required approval", OWN_TENANT, "list")},
            "/approvals/{id}/approve": {"post": with_id("Grant a pending approval (optional body: {\"note\": \"...\"}, at most 500 characters, logged with the decision)",
                "A person of the approval's tenant with its approver role who is not its requester.", "approved", "no such approval")},
            "/approvals/{id}/reject": {"post": with_id("Reject a pending approval (optional body: {\"note\": \"...\"})",
                "A person of the approval's tenant with its approver role who is not its requester.", "rejected", "no such approval")},
            "/break-glass": {
                "get": op("Break-glass grants of the caller's tenant, open and expired, with uses", OWN_TENANT, "list"),
                "post": with_body("Open a time-limited break-glass grant in the caller's tenant (it never overrides a tenant-isolation forbid)",
                    "A person with the break-glass role, for their own tenant.",
                    json!({"type": "object", "required": ["user", "reason", "expires_in_seconds"],
                    "properties": {"user": {"type": "string"}, "agent_role": {"type": "string"}, "tool": {"type": "string"},
                                   "reason": {"type": "string", "minLength": 10}, "expires_in_seconds": {"type": "integer", "minimum": 1}}}))
            },
            "/admin/me": {"get": op("Who the caller is (user, tenant, roles, agent) and, operation by operation, what the admin policy lets them do in their own tenant",
                "Anyone with a valid token (the answers are the admin PDP's).", "the caller and their permissions")},
            "/admin/decisions": {"get": {"summary": "Decision records newest first, filtered; `next` is the cursor of the following page (absent once the log is read to its start)",
                "description": TENANT_RECORDS, "security": bearer.clone(),
                "parameters": [query("tenant", "the records' tenant; the caller's own when omitted; `*`: every tenant"),
                               query("run", "run id"), query("actor", "a part of the actor (`user/agent`)"),
                               query("tool", "the capability's exposed name"), query("decision", "allow, deny, require_approval, require_more_context, replay, summary"),
                               query("refused_by", "the control that refused"), query("since", "unix seconds, inclusive"), query("until", "unix seconds, exclusive"),
                               query("shadow", "`differs`: only decisions the shadow policy set would decide otherwise"),
                               query("after", "the `next` cursor of the page before"), query("limit", "records per page, 1 to 200 (default 50)")],
                "responses": refusals("a page of records")}},
            "/admin/decisions/{seq}": {"get": {"summary": "One decision record in full (arguments masked as logged), with its hash",
                "description": TENANT_RECORDS, "security": bearer.clone(),
                "parameters": [{"name": "seq", "in": "path", "required": true, "schema": {"type": "integer"}},
                               query("chain", "the replica's chain id (PostgreSQL only)")],
                "responses": {"200": {"description": "the record"}, "401": {"description": "no valid token"},
                              "403": {"description": "the admin policy refuses it"}, "404": {"description": "no such record"}}}},
            "/admin/audit/verification": {"get": op("Whether each chain of the decision log verifies with this gateway's checkpoint key: verified up to which record, the last signed checkpoint, the problems found",
                "Tenant admins and platform admins (sequence numbers and counts only, no record's content).", "the status of every chain")},
            "/admin/overview": {"get": {"summary": "The last hour: requests per minute by final outcome, the most refused capabilities, pending approvals, store, downstream and decision-log health (with reasons for those who may see health details)",
                "description": TENANT_RECORDS, "security": bearer.clone(),
                "parameters": [query("tenant", "the caller's own when omitted; `*`: every tenant")],
                "responses": refusals("the overview")}},
            "/break-glass/{id}/revoke": {"post": with_id("Revoke a break-glass grant (effective on the next request)",
                "A person with the break-glass role, for grants of their own tenant.", "revoked", "no such open grant")}
        }
    })
}

#[cfg(test)]
mod tests {
    use super::super::Endpoint;

    /// The document describes exactly the endpoints the router serves.
    #[test]
    fn every_endpoint_and_only_those_are_described() {
        let doc = super::openapi();
        let paths = doc["paths"].as_object().expect("paths");
        let described: usize = paths
            .values()
            .map(|operations| operations.as_object().map_or(0, |o| o.len()))
            .sum();
        assert_eq!(described, Endpoint::ALL.len());
        for endpoint in Endpoint::ALL {
            let (method, path) = endpoint.route();
            assert!(
                doc["paths"][path][method.to_lowercase()].is_object(),
                "{method} {path} is not described"
            );
        }
    }
}
