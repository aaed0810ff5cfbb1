// Overview: the last hour's requests by outcome (chart and totals), the most refused
// capabilities, approvals waiting, and the health of the store, the downstreams and the log.

import {h, fill, message, table, section, field} from "./dom.js";
import {decisionsChart, OUTCOMES} from "./chart.js";

function badge(state) {
  return h("span", {class: `badge ${state}`}, state);
}

export async function render(main, {api, me, refusal, params}) {
  const tenant = params.get("tenant") || me.tenant;
  const answer = await api("GET", `/admin/overview?tenant=${encodeURIComponent(tenant)}`);
  const heading = h("h1", {}, "Overview");
  const scope = me.may.view_every_tenants_decisions ? h("form", {class: "inline", method: "get", action: "/console/overview"},
    field("Tenant (* for every tenant)", h("input", {name: "tenant", value: tenant, size: "16"})),
    h("button", {type: "submit", class: "secondary"}, "Show")) : null;
  if (!answer.ok) {
    fill(main, heading, scope, message("error", refusal(answer)),
      me.may.list_approvals ? h("p", {}, h("a", {href: "/console/approvals"}, "Go to your approvals inbox")) : null);
    return;
  }
  const o = answer.body;
  const health = o.health;
  const totals = OUTCOMES.filter((k) => o.totals[k]).map((k) => ({outcome: k, count: o.totals[k]}));
  fill(main, heading,
    h("p", {class: "muted"}, `Tenant ${o.tenant === "*" ? "every tenant" : o.tenant}, the last hour`,
      o.complete ? "" : " (more records than one overview reads: counts are partial)"),
    scope,
    h("div", {class: "grid"},
      h("div", {class: "card"}, h("h2", {}, "Pending approvals"),
        h("p", {class: "stat", id: "pending-approvals"}, o.pending_approvals === null ? "unknown" : String(o.pending_approvals)),
        h("a", {href: "/console/approvals"}, "Open the approvals inbox")),
      h("div", {class: "card"}, h("h2", {}, "Health"),
        h("dl", {class: "facts"},
          h("dt", {}, "Enforcement store"), h("dd", {}, badge(health.store.state), health.store.reason ? ` ${health.store.reason}` : ""),
          health.downstreams.map((d) => [h("dt", {}, `Downstream ${d.id}`), h("dd", {}, badge(d.state), d.reason ? ` ${d.reason}` : "")]),
          h("dt", {}, "Decision log"), h("dd", {},
            health.decision_log.failed_records === 0 && health.decision_log.unwritten_records === 0
              ? badge("ok") : badge("down"),
            ` ${health.decision_log.failed_records} lost, ${health.decision_log.unwritten_records} waiting`)),
        health.detailed ? null : h("p", {class: "hint"}, "Reasons are shown to those the admin policy lets see health details."))),
    section("Decisions in the last hour",
      decisionsChart(o.minutes, o.bucket_seconds),
      table("Requests by final outcome", [["Outcome", (r) => badge(r.outcome)], ["Requests", (r) => String(r.count)]], totals)),
    section("Most refused capabilities",
      table("Refusals in the last hour", [
        ["Capability", (r) => h("a", {href: `/console/decisions?tool=${encodeURIComponent(r.tool)}&tenant=${encodeURIComponent(o.tenant)}`}, r.tool)],
        ["Refusals", (r) => String(r.refusals)],
        ["By outcome", (r) => Object.entries(r.by_outcome).map(([k, v]) => `${k.replaceAll("_", " ")}: ${v}`).join(", ")],
      ], o.top_refused)));
}
