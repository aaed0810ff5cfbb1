// A small browser driver for tests/suite/console.rs: reads one JSON command per line on stdin,
// runs it in headless Chromium (Debian's, never a downloaded one) through playwright-core, and
// answers one JSON line on stdout: {"ok": true, "result": ...} or {"ok": false, "error": ...}.
//
// Each person ("who") gets a browser context of their own (their own cookies), one page, at
// 1280x800. Every wait is for a condition, bounded by a timeout; none is a fixed sleep.

import {chromium} from "playwright-core";
import {readFileSync} from "node:fs";
import readline from "node:readline";

const axeSource = readFileSync(new URL("./node_modules/axe-core/axe.min.js", import.meta.url), "utf8");
const TIMEOUT = Number(process.env.CONSOLE_TEST_TIMEOUT_MS || 20000);

const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
  args: ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync"],
});

const people = new Map();

async function person(who) {
  let found = people.get(who);
  if (!found) {
    const context = await browser.newContext({viewport: {width: 1280, height: 800}});
    context.setDefaultTimeout(TIMEOUT);
    const page = await context.newPage();
    found = {context, page, problems: []};
    page.on("console", (msg) => {
      // A refused API call (401, 403, 409) is logged by Chromium as a failed resource load:
      // the page shows the refusal; that is not a fault of the page.
      if (msg.type() === "error" && !msg.text().startsWith("Failed to load resource")) {
        found.problems.push(`console: ${msg.text()}`);
      }
    });
    page.on("pageerror", (error) => found.problems.push(`page error: ${error.message}`));
    people.set(who, found);
  }
  return found;
}

/** Waits until the console's page has drawn itself (or the sign-in form is there). */
async function settled(page) {
  await page.waitForSelector("main[data-ready='true'], #sign-in-form", {timeout: TIMEOUT});
}

const commands = {
  async sign_in({who, base, token}) {
    const {page} = await person(who);
    await page.goto(`${base}/console/sign-in`);
    await page.fill("#token", token);
    await Promise.all([
      page.waitForURL((url) => !url.pathname.startsWith("/console/sign-in")),
      page.click("#sign-in-form button[type=submit]"),
    ]);
    await settled(page);
    return page.url();
  },
  async goto({who, url}) {
    const {page} = await person(who);
    await page.goto(url);
    await settled(page);
    return page.url();
  },
  async wait({who, selector, text, gone}) {
    const {page} = await person(who);
    let locator = page.locator(selector);
    if (text) locator = locator.filter({hasText: text});
    await locator.first().waitFor({state: gone ? "detached" : "visible"});
    return true;
  },
  async click({who, role, name, selector}) {
    const {page} = await person(who);
    const target = selector ? page.locator(selector).first() : page.getByRole(role, {name, exact: true});
    await target.click();
    return true;
  },
  async fill({who, selector, value}) {
    const {page} = await person(who);
    await page.fill(selector, value);
    return true;
  },
  async select({who, selector, value}) {
    const {page} = await person(who);
    await page.selectOption(selector, value);
    return true;
  },
  async text({who, selector}) {
    const {page} = await person(who);
    return (await page.locator(selector).allInnerTexts()).join("\n");
  },
  async count({who, selector}) {
    const {page} = await person(who);
    return await page.locator(selector).count();
  },
  async screenshot({who, path}) {
    const {page} = await person(who);
    await page.screenshot({path, fullPage: false});
    return path;
  },
  async axe({who}) {
    const {page} = await person(who);
    // Evaluated through the DevTools protocol, which the page's CSP does not govern: the page
    // itself keeps running under its strict policy.
    await page.evaluate(axeSource);
    const results = await page.evaluate(async () =>
      await window.axe.run(document, {resultTypes: ["violations"]}));
    return results.violations.map((v) => ({
      id: v.id, impact: v.impact, help: v.help,
      nodes: v.nodes.map((n) => n.target.join(" ")).slice(0, 5),
    }));
  },
  async fetch({who, method, path, headers, body}) {
    const {page} = await person(who);
    return await page.evaluate(async ({method, path, headers, body}) => {
      const response = await fetch(path, {method, headers: headers || {}, credentials: "same-origin",
        body: body === undefined || body === null ? undefined : JSON.stringify(body)});
      const text = await response.text();
      let json = null;
      try { json = JSON.parse(text); } catch { json = text; }
      return {status: response.status, body: json};
    }, {method, path, headers, body});
  },
  async cookies({who}) {
    const {page, context} = await person(who);
    return {
      document: await page.evaluate(() => document.cookie),
      jar: (await context.cookies()).map((c) => ({name: c.name, httpOnly: c.httpOnly, sameSite: c.sameSite, secure: c.secure})),
    };
  },
  async problems({who}) {
    const found = await person(who);
    const problems = found.problems;
    found.problems = [];
    return problems;
  },
  async url({who}) {
    const {page} = await person(who);
    return page.url();
  },
};

const lines = readline.createInterface({input: process.stdin});
for await (const line of lines) {
  if (!line.trim()) continue;
  let answer;
  try {
    const command = JSON.parse(line);
    if (command.cmd === "quit") break;
    const run = commands[command.cmd];
    if (!run) throw new Error(`no command ${command.cmd}`);
    answer = {ok: true, result: await run(command)};
  } catch (error) {
    answer = {ok: false, error: String(error && error.stack || error)};
  }
  process.stdout.write(`${JSON.stringify(answer)}\n`);
}
await browser.close();
