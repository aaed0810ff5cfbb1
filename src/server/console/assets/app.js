// The console's shell: the session (and its CSRF token), who is signed in, the navigation, and
// the page the path names. Every page asks the admin API with the session cookie; what a person
// may see and do is what the API answers, decided by the gateway's admin policy.

import {h, fill, message} from "./dom.js";

const PAGES = [
  {path: "/console/overview", title: "Overview", module: "overview.js", may: "view_decisions"},
  {path: "/console/approvals", title: "Approvals", module: "approvals.js", may: "list_approvals"},
  {path: "/console/kill-switches", title: "Kill switches", module: "kill-switches.js", may: "list_kill_switches"},
  {path: "/console/break-glass", title: "Break-glass", module: "break-glass.js", may: "list_break_glass"},
  {path: "/console/decisions", title: "Decision log", module: "decisions.js", may: "view_decisions"},
  {path: "/console/policy", title: "Policy", module: "policy.js", may: "view_policy"},
];

let csrf = "";

/** Calls the admin API as the signed-in person: {status, ok, body}. A 401 means the session
 * ended: back to the sign-in page. */
export async function api(method, path, body) {
  const headers = {"Accept": "application/json"};
  if (method !== "GET") {
    headers["X-CSRF-Token"] = csrf;
    headers["Content-Type"] = "application/json";
  }
  const response = await fetch(path, {
    method,
    headers,
    credentials: "same-origin",
    cache: "no-store",
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  let data = null;
  try { data = await response.json(); } catch { data = null; }
  if (response.status === 401 && !path.startsWith("/console/api/")) {
    location.assign(`/console/sign-in?next=${encodeURIComponent(location.pathname + location.search)}`);
  }
  return {status: response.status, ok: response.ok, body: data};
}

/** What an answer that is not 2xx says, for a person. */
export function refusal(answer) {
  const body = answer.body || {};
  const why = body.error_description || body.error || `HTTP ${answer.status}`;
  const policy = body.policy ? ` (policy ${body.policy})` : "";
  return answer.status === 403 ? `Not permitted: ${why}${policy}` : `${why}${policy}`;
}

function navigation(me, current) {
  const nav = document.getElementById("nav");
  fill(nav, h("ul", {}, PAGES.map((page) => h("li", {},
    h("a", {href: page.path, "aria-current": page.path === current ? "page" : null,
      class: me.may[page.may] ? null : "unavailable"}, page.title)))));
}

function who(me, session) {
  const signOut = h("button", {type: "button", class: "secondary", on: {click: async () => {
    await api("POST", "/console/api/sign-out");
    location.assign("/console/sign-in");
  }}}, "Sign out");
  const acting = me.agent ? h("span", {class: "warning-text"}, ` · an agent (${me.agent}) acts on this token`) : null;
  fill(document.getElementById("who"),
    h("span", {id: "signed-in-as"}, "Signed in as ", h("strong", {id: "who-user"}, me.user),
      " in tenant ", h("strong", {id: "who-tenant"}, me.tenant)),
    acting,
    h("span", {class: "muted"}, ` · session ends after ${Math.round(session.idle_seconds / 60)} min idle`),
    signOut);
}

async function boot() {
  const path = location.pathname.replace(/\/$/, "") || "/console";
  if (path === "/console/sign-in") {
    document.getElementById("nav").hidden = true;
    const module = await import("./sign-in.js");
    return module.render(document.getElementById("main"));
  }
  const session = await api("GET", "/console/api/session");
  if (!session.ok || !session.body.signed_in) {
    location.assign(`/console/sign-in?next=${encodeURIComponent(location.pathname + location.search)}`);
    return;
  }
  csrf = session.body.session.csrf;
  const me = await api("GET", "/admin/me");
  const main = document.getElementById("main");
  if (!me.ok) {
    fill(main, h("h1", {}, "capgate console"), message("error", refusal(me)));
    return;
  }
  if (path === "/console") {
    const first = PAGES.find((page) => me.body.may[page.may]) || PAGES[1];
    location.replace(first.path);
    return;
  }
  const page = PAGES.find((p) => p.path === path);
  navigation(me.body, path);
  who(me.body, session.body.session);
  if (!page) {
    fill(main, h("h1", {}, "Not found"), message("error", `No console page at ${path}.`));
    return;
  }
  document.title = `${page.title} · capgate console`;
  const module = await import(`./${page.module}`);
  await module.render(main, {api, me: me.body, refusal, params: new URLSearchParams(location.search)});
  main.setAttribute("data-ready", "true");
}

boot().catch((error) => {
  fill(document.getElementById("main"), h("h1", {}, "capgate console"),
    message("error", `The console could not start: ${error.message}`));
});
