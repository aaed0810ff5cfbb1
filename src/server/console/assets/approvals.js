// The approvals inbox: the requests of one's tenant waiting for a decision, with the tool, who
// asked (user and agent), the arguments (masked as the log masks them), the policy and reason
// that required approval, and the expiry. Approve or reject with a note; the gateway decides
// whether this person may (approver role, same tenant, not the requester), as for the API.

import {h, fill, message, table, section, when, relative, field} from "./dom.js";

function requester(approval) {
  const request = approval.request || {};
  return h("div", {},
    h("div", {}, "User ", h("strong", {}, approval.requester)),
    request.agent ? h("div", {}, "Agent ", h("strong", {}, request.agent),
      request.agent_role && request.agent_role !== request.agent ? ` (${request.agent_role})` : "") : h("div", {class: "muted"}, "No agent"),
    request.service ? h("div", {class: "muted"}, `Service ${request.service}`) : null,
    request.run_id ? h("div", {class: "muted"}, `Run ${request.run_id}`) : null);
}

function arguments_(approval) {
  let shown = approval.arguments;
  try { shown = JSON.stringify(JSON.parse(approval.arguments), null, 1); } catch { /* shown as stored */ }
  return h("code", {}, shown);
}

function why(approval) {
  const request = approval.request;
  if (!request) return h("span", {class: "muted"}, `Policy version ${approval.policy_version}`);
  return h("div", {},
    h("div", {}, "Policy ", h("strong", {}, request.policy_id || "—"), h("span", {class: "muted"}, ` @ ${request.policy_version}`)),
    h("div", {class: "reason"}, request.reason));
}

export async function render(main, {api, me, refusal}) {
  const status = h("div", {id: "approvals-status"});
  const load = async () => {
    const answer = await api("GET", "/approvals");
    if (!answer.ok) {
      fill(main, h("h1", {}, "Approvals inbox"), message("error", refusal(answer)));
      return;
    }
    const now = Date.now() / 1000;
    const all = answer.body.approvals;
    const pending = all.filter((a) => a.status === "pending" && a.expires_at > now);
    const done = all.filter((a) => !pending.includes(a));
    const decide = (approval, verb, note) => async () => {
      const answer = await api("POST", `/approvals/${encodeURIComponent(approval.id)}/${verb}`, {note: note.value});
      if (answer.ok) {
        await load();
        fill(status, message("ok", `${verb === "approve" ? "Approved" : "Rejected"} ${approval.id} (${approval.tool}).`));
      } else {
        fill(status, message("error", `${approval.id} was not ${verb === "approve" ? "approved" : "rejected"}. ${refusal(answer)}`));
      }
    };
    const actions = (approval) => {
      const note = h("input", {type: "text", name: "note", maxlength: "500", size: "18", id: `note-${approval.id}`});
      return h("div", {class: "actions"},
        field(`Note for ${approval.id}`, note),
        h("button", {type: "button", class: "approve", "aria-label": `Approve ${approval.id}`, on: {click: decide(approval, "approve", note)}}, "Approve"),
        h("button", {type: "button", class: "danger", "aria-label": `Reject ${approval.id}`, on: {click: decide(approval, "reject", note)}}, "Reject"));
    };
    fill(main,
      h("h1", {}, "Approvals inbox"),
      h("p", {class: "muted"}, `Requests of tenant ${me.tenant} that need a person's approval before the agent may retry them. `
        + "Approving needs the approval's approver role, and nobody may approve their own request."),
      status,
      section(`Waiting for a decision (${pending.length})`,
        table("Pending approval requests, oldest expiry first", [
          ["Request", (a) => h("div", {}, h("code", {}, a.id), h("div", {class: "muted"}, `asked ${when(a.created_at)}`))],
          ["Tool", (a) => h("code", {}, a.tool)],
          ["Requested by", requester],
          ["Arguments (masked)", arguments_],
          ["Required by", why],
          ["Approver role", (a) => a.approver_role],
          ["Expires", (a) => h("div", {}, relative(a.expires_at), h("div", {class: "muted"}, when(a.expires_at)))],
          ["Decision", actions],
        ], pending.sort((a, b) => a.expires_at - b.expires_at), (a) => ({"data-approval": a.id}))),
      section("Decided and expired",
        table("Earlier approval requests", [
          ["Request", (a) => h("code", {}, a.id)],
          ["Tool", (a) => h("code", {}, a.tool)],
          ["Requested by", (a) => a.requester],
          ["Status", (a) => h("span", {class: `badge ${a.status === "pending" ? "expired" : a.status}`}, a.status === "pending" ? "expired" : a.status)],
          ["Decided by", (a) => a.decided_by || "—"],
          ["Note", (a) => a.note || "—"],
          ["Expires", (a) => when(a.expires_at)],
        ], done, (a) => ({"data-approval": a.id}))));
  };
  await load();
}
