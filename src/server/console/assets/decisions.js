// The decision log: filter by run, actor, tool, decision and time (newest first, page by page),
// a record's full detail (masked as it was logged), and the chain's verification status.

import {h, fill, message, table, section, when, field, code} from "./dom.js";

const DECISIONS = ["", "allow", "deny", "require_approval", "require_more_context", "replay", "summary"];
const FILTERS = ["tenant", "run", "actor", "tool", "decision", "refused_by", "since", "until", "shadow"];

function toInput(unix) {
  return unix ? new Date(Number(unix) * 1000).toISOString().slice(0, 16) : "";
}
function fromInput(text) {
  return text ? String(Math.floor(Date.parse(`${text}:00Z`) / 1000)) : "";
}

function chainStatus(answer, refusal) {
  if (!answer.ok) return message("error", refusal(answer));
  return h("div", {id: "chain-status"}, answer.body.chains.map((c) => h("div", {class: "card"},
    h("p", {}, h("span", {class: `badge ${c.intact ? "intact" : "broken"}`}, c.intact ? "verified" : "broken"),
      c.chain ? ` chain ${c.chain}: ` : " ",
      `verified up to record ${c.verified_up_to} of ${c.last_seq}`),
    h("p", {class: "muted"}, c.last_checkpoint
      ? `Last signed checkpoint: record ${c.last_checkpoint.seq}, ${when(c.last_checkpoint.time)}`
        + (c.last_seq > c.last_checkpoint.seq ? ` (${c.last_seq - c.last_checkpoint.seq} newer records not yet signed)` : "")
      : "No signed checkpoint yet."),
    c.problems.length ? table(`${c.problem_count} problem(s)`, [["Record", (p) => String(p.seq)], ["Problem", (p) => p.problem]], c.problems) : null)));
}

export async function render(main, {api, me, refusal, params}) {
  const values = Object.fromEntries(FILTERS.map((f) => [f, params.get(f) || ""]));
  if (!values.tenant) values.tenant = me.tenant;
  const detail = h("div", {id: "record-detail", tabindex: "-1"});
  const input = (name, label, attrs) => field(label, h("input", {name, value: values[name], size: "14", ...attrs}));
  const decision = h("select", {name: "decision"}, DECISIONS.map((d) => h("option", {value: d, selected: d === values.decision}, d || "any")));
  const since = h("input", {type: "datetime-local", id: "f-since", value: toInput(values.since)});
  const until = h("input", {type: "datetime-local", id: "f-until", value: toInput(values.until)});
  const sinceHidden = h("input", {type: "hidden", name: "since", value: values.since});
  const untilHidden = h("input", {type: "hidden", name: "until", value: values.until});
  const shadow = h("input", {type: "checkbox", name: "shadow", value: "differs", id: "f-shadow", checked: values.shadow === "differs"});
  const form = h("form", {class: "inline", method: "get", action: "/console/decisions", id: "decision-filters", on: {submit: () => {
    sinceHidden.value = fromInput(since.value);
    untilHidden.value = fromInput(until.value);
  }}},
    me.may.view_every_tenants_decisions ? input("tenant", "Tenant (* = every)") : h("input", {type: "hidden", name: "tenant", value: values.tenant}),
    input("run", "Run"), input("actor", "Actor (user/agent, part)"), input("tool", "Tool", {size: "22"}),
    field("Decision", decision), input("refused_by", "Refused by"),
    field("Since (UTC)", since), field("Until (UTC)", until), sinceHidden, untilHidden,
    h("div", {class: "field"}, h("label", {for: "f-shadow"}, "Shadow differs"), shadow),
    h("button", {type: "submit"}, "Filter"));
  const query = new URLSearchParams();
  for (const f of FILTERS) if (values[f]) query.set(f, values[f]);
  if (params.get("after")) query.set("after", params.get("after"));
  const [page, verification] = await Promise.all([
    api("GET", `/admin/decisions?${query}`),
    api("GET", "/admin/audit/verification"),
  ]);
  const show = (record) => async () => {
    const chain = record.chain ? `?chain=${encodeURIComponent(record.chain)}` : "";
    const answer = await api("GET", `/admin/decisions/${record.seq}${chain}`);
    fill(detail, answer.ok
      ? section(`Record ${record.seq}${record.chain ? ` of chain ${record.chain}` : ""}`,
        h("p", {class: "muted"}, `hash ${answer.body.hash}`), code(answer.body.record, `Decision record ${record.seq}`))
      : message("error", refusal(answer)));
    detail.focus();
  };
  const records = page.ok ? page.body.records : [];
  let older = null;
  if (page.ok && page.body.next) {
    const next = new URLSearchParams(query);
    next.set("after", page.body.next);
    older = h("p", {}, h("a", {href: `/console/decisions?${next}`}, "Older records"));
  }
  fill(main,
    h("h1", {}, "Decision log"),
    section("Chain verification", chainStatus(verification, refusal)),
    section("Records", form,
      page.ok ? table(`Records of ${page.body.tenant === "*" ? "every tenant" : `tenant ${page.body.tenant}`}, newest first`, [
        ["Time", (r) => when(r.time)],
        ["Seq", (r) => String(r.seq)],
        ["Actor", (r) => r.actor],
        ["Capability", (r) => h("code", {}, r.resource)],
        ["Decision", (r) => h("span", {class: `badge ${r.decision}`}, r.decision)],
        ["Refused by", (r) => r.refused_by || ""],
        ["Policy", (r) => r.policy_id || ""],
        ["Mode", (r) => r.mode],
        ["Outcome", (r) => r.downstream_outcome || ""],
        ["", (r) => h("button", {type: "button", class: "secondary", "aria-label": `Details of record ${r.seq}`, on: {click: show(r)}}, "Details")],
      ], records, (r) => ({"data-seq": r.seq, "data-request": r.request_id})) : message("error", refusal(page)),
      older),
    detail);
}
