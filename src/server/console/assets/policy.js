// Policy: the version in effect (and the latest loaded, the shadow set, the admin set), recent
// shadow differences, reloading with the validation errors by file and line, and a run's
// manifest.

import {h, fill, message, table, section, when, field} from "./dom.js";

export async function render(main, {api, me, refusal, params}) {
  const status = h("div", {id: "reload-status"});
  const manifest = h("div", {id: "run-manifest"});
  const [policy, shadow] = await Promise.all([
    api("GET", "/admin/policy"),
    me.may.view_decisions ? api("GET", `/admin/decisions?tenant=${encodeURIComponent(me.tenant)}&shadow=differs&limit=20`) : null,
  ]);
  const reload = h("button", {type: "button", id: "reload", on: {click: async () => {
    fill(status, message("info", "Reloading…"));
    const answer = await api("POST", "/admin/policy/reload", {});
    if (answer.ok) {
      fill(status, message("ok", `Reloaded: ${answer.body.reloaded} is loaded.`));
    } else if (answer.status === 422) {
      fill(status, message("error", answer.body.error),
        table("Validation errors", [["File", (p) => h("code", {}, p.file)], ["Line", (p) => p.line === null ? "—" : String(p.line)], ["Problem", (p) => p.message]], answer.body.problems || []));
    } else {
      fill(status, message("error", refusal(answer)));
    }
  }}}, "Reload policies");
  const runTenant = h("input", {name: "tenant", id: "run-tenant", value: params.get("tenant") || me.tenant, size: "12"});
  const run = h("input", {name: "run", id: "run-id", value: params.get("run") || "", size: "20", required: true});
  const showRun = async () => {
    const answer = await api("GET", `/admin/runs?tenant=${encodeURIComponent(runTenant.value)}&run=${encodeURIComponent(run.value)}`);
    if (!answer.ok) return fill(manifest, message("error", refusal(answer)));
    const m = answer.body;
    const rows = Object.entries(m.tools).map(([tool, decisions]) => ({tool, decisions}));
    fill(manifest,
      h("p", {}, `Run ${m.run} of ${m.tenant}: ${m.decisions} decisions, ${m.discovery_requests} discovery requests, under ${m.policy_versions.join(", ") || "no policy version"}.`),
      table("Capabilities called in the run", [["Capability", (r) => h("code", {}, r.tool)],
        ["Decisions", (r) => Object.entries(r.decisions).map(([k, v]) => `${k}: ${v}`).join(", ")]], rows));
  };
  const runForm = h("form", {class: "inline", id: "run-form", on: {submit: async (event) => { event.preventDefault(); await showRun(); }}},
    field("Tenant", runTenant), field("Run id", run), h("button", {type: "submit"}, "Show manifest"));
  let facts = message("error", refusal(policy));
  if (policy.ok) {
    const p = policy.body;
    facts = h("dl", {class: "facts", id: "policy-facts"},
      h("dt", {}, "In effect"), h("dd", {}, h("strong", {}, p.effective || "none (outside every set's window: everything is denied)")),
      h("dt", {}, "Latest loaded"), h("dd", {}, `${p.latest.version} (${p.latest.policies} policies, ${p.latest.digest})`),
      h("dt", {}, "Owner"), h("dd", {}, p.latest.owner || "—"),
      h("dt", {}, "Effective"), h("dd", {}, `${p.latest.effective_from || "always"} – ${p.latest.effective_until || "open-ended"}`),
      h("dt", {}, "Shadow set"), h("dd", {}, p.shadow || "none"),
      h("dt", {}, "Admin set"), h("dd", {}, p.admin ? `${p.admin.policies} policies, ${p.admin.digest}` : "none"),
      h("dt", {}, "Relationship entities"), h("dd", {}, String(p.relationship_entities)),
      h("dt", {}, "Warnings"), h("dd", {}, p.latest.warnings.length ? h("ul", {}, p.latest.warnings.map((w) => h("li", {}, w))) : "none"));
  }
  fill(main,
    h("h1", {}, "Policy"),
    section("Version", facts),
    section("Shadow differences",
      shadow === null ? h("p", {class: "muted"}, "Reading decision records is not permitted to you.")
        : shadow.ok ? table("Recent decisions the shadow set would decide otherwise", [
          ["Time", (r) => when(r.time)], ["Capability", (r) => h("code", {}, r.resource)], ["Actor", (r) => r.actor],
          ["Enforced", (r) => h("span", {class: `badge ${r.decision}`}, r.decision)],
          ["Shadow", (r) => h("span", {class: `badge ${r.shadow_decision}`}, r.shadow_decision)],
          ["Policy", (r) => r.policy_id || ""]], shadow.body.records)
          : message("error", refusal(shadow))),
    section("Reload",
      h("p", {class: "muted"}, "Re-reads the policies, schema, entity files and admin set; an invalid set is refused, naming file and line, and the running version stays."),
      me.may.reload_policy ? reload : h("p", {class: "muted"}, "Reloading is for platform admins."), status),
    section("Run manifest", runForm, manifest));
  if (run.value) await showRun();
}
