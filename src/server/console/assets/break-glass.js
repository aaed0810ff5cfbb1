// Break-glass: the grants of one's tenant (open, expired, revoked) with their uses, revoking
// one, and opening one — which needs a reason and shows when it will expire before it is opened.

import {h, fill, message, table, section, when, relative, field} from "./dom.js";

function state(entry) {
  if (entry.grant.revoked_at) return "revoked";
  return entry.open ? "open" : "expired";
}

export async function render(main, {api, me, refusal}) {
  const status = h("div", {id: "grant-status"});
  const load = async () => {
    const answer = await api("GET", "/break-glass");
    if (!answer.ok) {
      fill(main, h("h1", {}, "Break-glass"), message("error", refusal(answer)));
      return;
    }
    const grants = answer.body.grants;
    const revoke = (grant) => async () => {
      const result = await api("POST", `/break-glass/${encodeURIComponent(grant.id)}/revoke`, {});
      await load();
      fill(status, result.ok ? message("ok", `Revoked ${grant.id}: it covers nothing from the next request on.`)
        : message("error", refusal(result)));
    };
    const user = h("input", {name: "user", id: "grant-user", required: true, size: "14"});
    const agentRole = h("input", {name: "agent_role", id: "grant-agent-role", size: "14"});
    const tool = h("input", {name: "tool", id: "grant-tool", size: "24"});
    const reason = h("input", {name: "reason", id: "grant-reason", required: true, minlength: "10", size: "36"});
    const minutes = h("input", {name: "minutes", id: "grant-minutes", type: "number", min: "1", value: "30", required: true, size: "5"});
    const expiry = h("output", {for: minutes.id, id: "grant-expiry"});
    const showExpiry = () => fill(expiry, `Expires ${when(Math.floor(Date.now() / 1000) + 60 * Number(minutes.value || 0))}`);
    minutes.addEventListener("input", showExpiry);
    showExpiry();
    const open = h("form", {class: "inline", id: "grant-form", on: {submit: async (event) => {
      event.preventDefault();
      const body = {user: user.value.trim(), reason: reason.value, expires_in_seconds: 60 * Number(minutes.value)};
      if (agentRole.value.trim()) body.agent_role = agentRole.value.trim();
      if (tool.value.trim()) body.tool = tool.value.trim();
      const result = await api("POST", "/break-glass", body);
      if (result.ok) {
        await load();
        const grant = result.body.grant;
        fill(status, message("ok", `Opened ${grant.id} for ${grant.user}; it expires ${when(grant.expires_at)} (${relative(grant.expires_at)}).`));
      } else {
        fill(status, message("error", refusal(result)));
      }
    }}},
      field("User", user), field("Agent role (optional)", agentRole), field("Capability (optional)", tool, "Empty: every capability"),
      field("Reason (10 characters at least)", reason), field("Minutes", minutes), expiry,
      h("button", {type: "submit", class: "danger"}, "Open break-glass grant"));
    fill(main,
      h("h1", {}, "Break-glass"),
      h("p", {class: "muted"}, `Grants of tenant ${me.tenant}. A grant allows, for a limited time and loudly, what policy refused; it never crosses tenants nor overrides a tenant-isolation forbid.`),
      status,
      section("Grants",
        table("Break-glass grants, newest first", [
          ["Grant", (e) => h("code", {}, e.grant.id)],
          ["Status", (e) => h("span", {class: `badge ${state(e)}`}, state(e))],
          ["Covers", (e) => h("div", {}, `user ${e.grant.user}`, e.grant.agent_role ? ` via ${e.grant.agent_role}` : "",
            h("div", {class: "muted"}, e.grant.tool || "every capability"))],
          ["Reason", (e) => e.grant.reason],
          ["Opened", (e) => h("div", {}, e.grant.opened_by, h("div", {class: "muted"}, when(e.grant.opened_at)))],
          ["Expires", (e) => h("div", {}, relative(e.grant.expires_at), h("div", {class: "muted"}, when(e.grant.expires_at)))],
          ["Uses", (e) => String(e.grant.uses)],
          ["Revoked", (e) => e.grant.revoked_at ? `${e.grant.revoked_by} ${when(e.grant.revoked_at)}` : "—"],
          ["", (e) => e.open && !e.grant.revoked_at ? h("button", {type: "button", class: "secondary",
            "aria-label": `Revoke ${e.grant.id}`, on: {click: revoke(e.grant)}}, "Revoke") : ""],
        ], [...grants].sort((a, b) => b.grant.opened_at - a.grant.opened_at), (e) => ({"data-grant": e.grant.id}))),
      me.may.open_break_glass ? section("Open a grant", open) : null);
  };
  await load();
}
