// Kill switches: the switches that are on (those the admin policy lets this person see), what
// each hides, flipping one (scope, target, tenant, reason) and lifting it. The gateway answers
// a flip only once nothing the switch covers is being forwarded.

import {h, fill, message, table, section, when, field} from "./dom.js";

const SCOPES = [
  ["tool", "A capability (tool, prompt or resource) by its exposed name"],
  ["server", "Every capability of one downstream server"],
  ["user", "Every call of one user"],
  ["agent_role", "Every call through one agent role"],
  ["tenant", "Every call of one tenant"],
  ["global", "Every call of everyone"],
];

function hides(kill) {
  const what = kill.hides || {};
  const capabilities = what.every_capability
    ? h("strong", {}, "every capability")
    : h("span", {}, (what.capabilities || []).map((c, i) => [i ? ", " : "", h("code", {}, c)]));
  return h("div", {}, capabilities, h("div", {class: "muted"}, `for ${what.callers || "every caller"}`));
}

export async function render(main, {api, me, refusal}) {
  const status = h("div", {id: "kill-status"});
  const load = async () => {
    const answer = await api("GET", "/admin/kill-switches");
    if (!answer.ok) {
      fill(main, h("h1", {}, "Kill switches"), message("error", refusal(answer)));
      return;
    }
    const switches = answer.body.kill_switches;
    const capabilities = answer.body.capabilities || [];
    const lift = (kill) => async () => {
      const body = {scope: kill.scope, target: kill.target, tenant: kill.tenant};
      const result = await api("POST", "/admin/kill-switches/lift", body);
      await load();
      fill(status, result.ok ? message("ok", `Lifted the ${kill.scope} switch${kill.target ? ` on ${kill.target}` : ""}.`)
        : message("error", refusal(result)));
    };
    const scope = h("select", {name: "scope", id: "kill-scope"}, SCOPES.map(([value, label]) => h("option", {value}, `${value} — ${label}`)));
    const target = h("input", {name: "target", id: "kill-target", list: "capability-names", size: "28", autocomplete: "off"});
    const tenant = h("input", {name: "tenant", id: "kill-tenant", size: "12", value: me.may.set_tool_kill_switch ? "" : me.tenant});
    const reason = h("input", {name: "reason", id: "kill-reason", size: "36", required: true});
    const flip = h("form", {class: "inline", id: "kill-form", on: {submit: async (event) => {
      event.preventDefault();
      const body = {scope: scope.value, reason: reason.value};
      if (scope.value !== "global") body.target = target.value.trim();
      if (tenant.value.trim()) body.tenant = tenant.value.trim();
      fill(status, message("info", "Flipping… (the gateway answers once nothing it covers is being forwarded)"));
      const result = await api("POST", "/admin/kill-switches", body);
      if (result.ok) {
        await load();
        fill(status, message("ok", `Kill switch on: ${body.scope}${body.target ? ` ${body.target}` : ""}${body.tenant ? ` in ${body.tenant}` : ""}.`));
      } else {
        fill(status, message("error", refusal(result)));
      }
    }}},
      field("Scope", scope),
      field("Target", target, "Tool, server, user, agent role or tenant; empty for global"),
      field("Limited to tenant", tenant, me.may.set_tool_kill_switch ? "Empty: every tenant" : "Your switches are limited to your tenant"),
      field("Reason", reason, "Shown to other admins and kept with the switch"),
      h("button", {type: "submit", class: "danger"}, "Flip kill switch"));
    fill(main,
      h("h1", {}, "Kill switches"),
      h("p", {class: "muted"}, "A switch hides what it covers from every discovery list and refuses every call of it, from the next request on, in every session."),
      status,
      section(`Switches that are on (${switches.length})`,
        table("Kill switches in force", [
          ["Scope", (k) => h("span", {class: "badge deny"}, k.scope)],
          ["Target", (k) => k.target ? h("code", {}, k.target) : "—"],
          ["Tenant", (k) => k.tenant || "every tenant"],
          ["Hides", hides],
          ["Reason", (k) => k.reason],
          ["Set by", (k) => h("div", {}, k.set_by, h("div", {class: "muted"}, when(k.set_at)))],
          ["", (k) => h("button", {type: "button", class: "secondary",
            "aria-label": `Lift the ${k.scope} switch${k.target ? ` on ${k.target}` : ""}`, on: {click: lift(k)}}, "Lift")],
        ], switches, (k) => ({"data-switch": `${k.scope}:${k.target || ""}:${k.tenant || ""}`}))),
      section("Flip a kill switch", flip,
        h("datalist", {id: "capability-names"}, capabilities.map((c) => h("option", {value: c.name}))),
        h("p", {class: "hint"}, `${capabilities.length} capabilities are registered.`)));
  };
  await load();
}
