// Sign-in: paste a bearer token from your identity provider (verified by the gateway exactly
// like any admin token), or, where an authenticating proxy passes one, sign in through it.

import {h, fill, field, message} from "./dom.js";

async function signIn(body) {
  const response = await fetch("/console/api/sign-in", {
    method: "POST",
    credentials: "same-origin",
    headers: {"Content-Type": "application/json", "Accept": "application/json"},
    body: JSON.stringify(body),
  });
  let data = null;
  try { data = await response.json(); } catch { data = null; }
  return {ok: response.ok, status: response.status, body: data};
}

function next() {
  const wanted = new URLSearchParams(location.search).get("next") || "/console";
  // Only a path of this console: never another origin.
  return wanted.startsWith("/console") && !wanted.startsWith("//") ? wanted : "/console";
}

export async function render(main) {
  document.title = "Sign in · capgate console";
  const state = await fetch("/console/api/session", {credentials: "same-origin"}).then((r) => r.json()).catch(() => ({}));
  const status = h("div", {id: "sign-in-status"});
  const token = h("textarea", {id: "token", name: "token", rows: "5", required: true,
    autocomplete: "off", spellcheck: "false"});
  const form = h("form", {id: "sign-in-form", on: {submit: async (event) => {
    event.preventDefault();
    fill(status, message("info", "Signing in…"));
    const answer = await signIn({token: token.value});
    if (answer.ok) {
      location.assign(next());
    } else {
      const body = answer.body || {};
      fill(status, message("error", `Sign-in refused: ${body.error_description || body.error || answer.status}`));
    }
  }}},
    field("Bearer token", token, "A token from your organisation's identity provider. It is verified by the gateway and kept on the server; your browser keeps only a session cookie."),
    h("button", {type: "submit"}, "Sign in"));
  const proxy = state.proxy_sign_in ? h("p", {},
    h("button", {type: "button", class: "secondary", on: {click: async () => {
      const answer = await signIn({});
      if (answer.ok) location.assign(next());
      else fill(status, message("error", "Your sign-in proxy passed no valid token."));
    }}}, "Sign in through your organisation's proxy")) : null;
  fill(main,
    h("h1", {}, "Sign in to the capgate console"),
    state.signed_in ? message("info", "You are already signed in; signing in again replaces the session.") : null,
    proxy, form, status);
}
