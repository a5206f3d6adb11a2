// The dashboard in headless Chromium against a real `nofx serve`: login, submitting and
// watching a run, a failed gate's reason, cancelling, a dropped stream resumed, a revoked
// key, another project's run, the CSRF rule, and a 10,000-task run's graph.

import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { chromium } from "playwright-core";
import { startServer, CHROMIUM } from "./server.mjs";

let server;
let browser;
let key;

before(async () => {
  server = await startServer();
  key = server.key("acme");
  browser = await chromium.launch({ executablePath: CHROMIUM, args: ["--no-sandbox"] });
});

after(async () => {
  await browser?.close();
  await server?.stop();
});

/** A logged-in page, with every page error collected. */
async function loggedIn(k = key) {
  const context = await browser.newContext({ viewport: { width: 1280, height: 800 }, timezoneId: "UTC", reducedMotion: "reduce" });
  const page = await context.newPage();
  const errors = [];
  page.on("pageerror", (e) => errors.push(String(e)));
  await page.goto(server.base + "/");
  await page.getByLabel("API key").fill(k);
  await page.getByRole("button", { name: "Log in" }).click();
  await page.getByRole("heading", { name: "Runs" }).waitFor();
  return { page, context, errors };
}

async function submit(body, type = "application/yaml", k = key) {
  const r = await server.api(k, "POST", "/runs", body, type);
  assert.equal(r.status, 201, JSON.stringify(r.body));
  return r.body.id;
}

test("a wrong key says so; the right one opens the runs, and the key is in no storage or URL", async () => {
  const context = await browser.newContext();
  const page = await context.newPage();
  await page.goto(server.base + "/");
  await page.getByLabel("API key").fill("nofx_not_a_key");
  await page.getByRole("button", { name: "Log in" }).click();
  assert.match(await page.getByRole("alert").textContent(), /unknown or revoked/);
  await page.getByLabel("API key").fill(key);
  await page.getByRole("button", { name: "Log in" }).click();
  await page.getByRole("heading", { name: "Runs" }).waitFor();
  const stored = await page.evaluate(() => JSON.stringify([{ ...localStorage }, { ...sessionStorage }, document.cookie, location.href]));
  assert.ok(!stored.includes(key), stored);
  const cookies = await context.cookies();
  const session = cookies.find((c) => c.name === "nofx_session");
  assert.ok(session && session.httpOnly && session.sameSite === "Strict", JSON.stringify(cookies));
  await context.close();
});

test("a plan submitted from the page runs and is watched to success", async () => {
  const { page, context, errors } = await loggedIn();
  await page.getByRole("link", { name: "New run" }).click();
  await page.getByRole("textbox", { name: "Plan" }).fill("name: watched\ntasks:\n  - { id: a, tool: test:echo, inputs: { x: 1 } }\n  - { id: b, tool: test:echo, depends_on: [a] }\n");
  await page.getByRole("button", { name: "Submit" }).click();
  await page.getByRole("heading", { name: /watched/ }).waitFor();
  await page.getByRole("heading", { name: /succeeded/ }).waitFor();
  await page.getByText("2/2 done").waitFor();
  // The change is announced politely to screen readers.
  assert.equal(await page.locator('[aria-live="polite"]', { hasText: "Run succeeded" }).count(), 1);
  const id = page.url().split("/").pop();
  const doc = (await server.api(key, "GET", `/runs/${id}`)).body;
  assert.equal(doc.status, "succeeded");
  await page.getByRole("tab", { name: "Timeline" }).click();
  await page.getByText(/2 attempt\(s\) over/).waitFor();
  assert.equal(await page.locator("svg.timeline rect.bar.succeeded").count(), 2);
  await page.getByRole("tab", { name: "Cost" }).click();
  await page.getByText("0 model call(s), 0 tokens, $0").waitFor();
  assert.deepEqual(errors, []);
  await context.close();
});

test("a refused plan shows each problem at its task", async () => {
  const { page, context } = await loggedIn();
  await page.getByRole("link", { name: "New run" }).click();
  await page.getByRole("textbox", { name: "Plan" }).fill("name: bad\ntasks:\n  - { id: a, tool: no-such-tool }\n  - { id: b, tool: test:echo, depends_on: [zzz] }\n");
  await page.getByRole("button", { name: "Submit" }).click();
  const alert = page.getByRole("alert");
  await alert.waitFor();
  const text = await alert.textContent();
  assert.match(text, /task a/);
  assert.match(text, /task b/);
  await context.close();
});

test("a failed gate shows its reason", async () => {
  const id = await submit("name: gated\ntasks:\n  - { id: a, tool: test:echo, inputs: { x: abc }, gates: [ { kind: pattern, output: x, regex: \"^[0-9]+$\" } ] }\n");
  await server.until(key, id, ["failed"]);
  const { page, context } = await loggedIn();
  await page.goto(`${server.base}/ui/runs/${id}`);
  await page.getByRole("heading", { name: /failed/ }).waitFor();
  // The task's detail, picked on the graph: its gate's result and reason, its inputs.
  await page.getByText(/tasks · drag/).waitFor();
  const box = await page.locator("canvas").boundingBox();
  await page.mouse.click(box.x + 60, box.y + 33);
  const detail = page.getByRole("complementary", { name: "Selected task" });
  await detail.getByRole("heading", { name: "Gates" }).waitFor();
  const text = await detail.textContent();
  assert.match(text, /✕ failed: pattern/);
  assert.match(text, /"x": "abc"/);
  await page.getByRole("tab", { name: "Tasks" }).click();
  const row = page.getByRole("row").filter({ hasText: "a" }).last();
  assert.match(await row.textContent(), /failed/);
  assert.match(await row.textContent(), /\^\[0-9\]\+\$|pattern/);
  await context.close();
});

test("cancelling asks first, then the run ends cancelled", async () => {
  const id = await submit("name: held\ntasks:\n  - { id: a, tool: test:echo, gates: [ { kind: manual } ] }\n  - { id: b, tool: test:echo, depends_on: [a] }\n");
  await server.until(key, id, ["waiting"]);
  const { page, context } = await loggedIn();
  await page.goto(`${server.base}/ui/runs/${id}`);
  await page.getByRole("heading", { name: /waiting/ }).waitFor();
  await page.getByRole("button", { name: "Cancel run…" }).click();
  await page.getByRole("button", { name: "Keep running" }).click();
  assert.equal((await server.api(key, "GET", `/runs/${id}`)).body.status, "waiting");
  await page.getByRole("button", { name: "Cancel run…" }).click();
  await page.getByRole("button", { name: "Cancel run", exact: true }).click();
  await page.getByRole("heading", { name: /cancelled/ }).waitFor();
  await context.close();
});

test("a stream dropped mid-run resumes where it stopped", async () => {
  const id = await submit("name: resumed\ntasks:\n  - { id: a, tool: test:echo, gates: [ { kind: manual } ] }\n  - { id: b, tool: test:echo, depends_on: [a] }\n");
  await server.until(key, id, ["waiting"]);
  const { page, context, errors } = await loggedIn();
  await page.goto(`${server.base}/ui/runs/${id}`);
  await page.getByText("● live").waitFor();
  // The server goes away (its streams close); the run is decided meanwhile; it comes back.
  await server.restart(async () => {
    await page.getByText("○ reconnecting…").waitFor();
    server.cli("approve", id, "a", "--as", "alice");
  });
  await page.getByRole("heading", { name: /succeeded/ }).waitFor({ timeout: 30_000 });
  await page.getByRole("tab", { name: "Events" }).click();
  const seqs = await page.locator("ol.events li span.dim:first-child").allTextContents();
  const nums = seqs.map((s) => Number(s.slice(1)));
  const doc = (await server.api(key, "GET", `/runs/${id}`)).body;
  assert.equal(doc.status, "succeeded");
  assert.deepEqual(nums, Array.from({ length: doc.eventSeq }, (_, i) => i + 1), "every event once, in order");
  assert.deepEqual(errors, []);
  await context.close();
});

test("approvals are decided by keyboard alone: one approved, one rejected with a reason", async () => {
  const gated = (name) => `name: ${name}\ntasks:\n  - { id: deploy, tool: test:echo, gates: [ { kind: manual, approvers: [alice] } ] }\n`;
  const first = await submit(gated("first"));
  await server.until(key, first, ["waiting"]);
  const second = await submit(gated("second"));
  await server.until(key, second, ["waiting"]);
  const { page, context } = await loggedIn();
  await page.goto(`${server.base}/ui/waiting`);
  await page.getByRole("heading", { name: "Approvals (2)" }).waitFor();
  // From the name field on, only keys.
  await page.getByLabel("Decide as").focus();
  await page.keyboard.type("alice");
  await page.keyboard.press("Tab");
  await page.keyboard.press("Tab"); // the first card's run link, then its reason
  await page.keyboard.type("looks good");
  await page.keyboard.press("Tab");
  await page.keyboard.press("Enter"); // Approve
  await page.getByRole("status").filter({ hasText: "deploy: approved." }).waitFor();
  await server.until(key, first, ["succeeded"]);
  await page.getByRole("heading", { name: "Approvals (1)" }).waitFor();
  await page.getByLabel("Decide as").focus();
  await page.keyboard.press("Tab");
  await page.keyboard.press("Tab");
  await page.keyboard.type("not today");
  await page.keyboard.press("Tab");
  await page.keyboard.press("Tab");
  await page.keyboard.press("Enter"); // Reject
  await page.getByRole("status").filter({ hasText: "deploy: rejected." }).waitFor();
  const run = await server.until(key, second, ["failed"]);
  assert.match(JSON.stringify(run.tasks), /not today/);
  await page.getByRole("heading", { name: "Approvals (0)" }).waitFor();
  await context.close();
});

test("a template is started from a form of its inputs; agents and usage show", async () => {
  const tpl = {
    id: "greet",
    name: "Greeting",
    description: "Says hello",
    category: "examples",
    plan: { name: "greet", inputs: { who: { type: "string", description: "Whom to greet" }, times: { type: "integer", default: 2 } }, tasks: [{ id: "say", tool: "test:echo", inputs: { who: "${inputs.who}", times: "${inputs.times}" } }] },
  };
  const made = await server.api(key, "POST", "/templates", tpl);
  assert.equal(made.status, 201, JSON.stringify(made.body));
  const { page, context, errors } = await loggedIn();
  await page.getByRole("link", { name: "Templates" }).click();
  await page.getByRole("heading", { name: "Greeting" }).waitFor();
  await page.getByRole("button", { name: "Use…" }).click();
  await page.getByLabel(/^who/).fill("ada");
  await page.getByLabel(/^times/).fill("3");
  await page.getByRole("button", { name: "Start run" }).click();
  await page.getByRole("heading", { name: /greet .*succeeded/ }).waitFor();
  const id = page.url().split("/").pop();
  const doc = (await server.api(key, "GET", `/runs/${id}`)).body;
  assert.deepEqual(doc.tasks[0].outputs, { who: "ada", times: 3 });
  await page.getByRole("link", { name: "Agents" }).click();
  await page.getByRole("row", { name: /^worker worker/ }).waitFor();
  await page.getByRole("link", { name: "Usage" }).click();
  await page.getByText("Tasks", { exact: true }).first().waitFor();
  assert.deepEqual(errors, []);
  await context.close();
});

test("a revoked key sends the page to login", async () => {
  const k = server.key("acme");
  const { page, context } = await loggedIn(k);
  server.revoke(k);
  // The page's next request is refused (its live stream may be the first to find out):
  // either way it ends on the login form.
  await page.goto(`${server.base}/ui/agents`);
  await page.getByLabel("API key").waitFor();
  assert.equal(await page.getByRole("heading", { name: "Agents" }).count(), 0);
  await context.close();
});

test("another project's run is not found", async () => {
  const theirs = server.key("globex");
  const id = await submit("name: theirs\ntasks:\n  - { id: a, tool: test:echo }\n", "application/yaml", theirs);
  const { page, context } = await loggedIn();
  await page.goto(`${server.base}/ui/runs/${id}`);
  assert.match(await page.getByRole("alert").textContent(), /No run .* in this project/);
  await context.close();
});

test("a change without the CSRF token is refused", async () => {
  const { page, context } = await loggedIn();
  const status = await page.evaluate(async () => {
    const r = await fetch("/runs", { method: "POST", headers: { "content-type": "application/yaml" }, body: "name: x\ntasks:\n  - { id: a, tool: test:echo }\n" });
    return r.status;
  });
  assert.equal(status, 403);
  await context.close();
});

test("a 10,000-task run's graph opens and pans", async () => {
  let plan = "name: wide\ntasks:\n  - { id: root, tool: test:echo }\n";
  for (let i = 0; i < 10_000; i++) plan += `  - { id: w${i}, tool: test:echo, depends_on: [root] }\n`;
  plan += "  - { id: join, tool: test:echo, depends_on: [" + Array.from({ length: 10_000 }, (_, i) => `w${i}`).join(", ") + "] }\n";
  const id = await submit(plan);
  await server.until(key, id, ["succeeded"], 120_000);
  const { page, context, errors } = await loggedIn();
  const t0 = Date.now();
  await page.goto(`${server.base}/ui/runs/${id}`);
  await page.getByText("10002 tasks").waitFor({ timeout: 30_000 });
  const opened = Date.now() - t0;
  const canvas = page.locator("canvas");
  const box = await canvas.boundingBox();
  await page.mouse.move(box.x + 300, box.y + 200);
  await page.mouse.down();
  await page.mouse.move(box.x + 100, box.y + 150, { steps: 10 });
  await page.mouse.up();
  await page.mouse.wheel(0, 400);
  await canvas.focus();
  await page.keyboard.press("ArrowRight");
  await page.keyboard.press("Enter");
  assert.deepEqual(errors, []);
  console.log(`10,000-task graph opened in ${opened} ms`);
  await context.close();
});

test("no page has a serious or critical accessibility violation, light or dark", async () => {
  const id = await submit("name: a11y\ntasks:\n  - { id: a, tool: test:echo }\n  - { id: b, tool: test:echo, depends_on: [a], gates: [ { kind: manual } ] }\n");
  await server.until(key, id, ["waiting"]);
  const axe = new URL("../node_modules/axe-core/axe.min.js", import.meta.url).pathname;
  const found = [];
  for (const colorScheme of ["light", "dark"]) {
    // axe is injected as a script of the test's own: the page's policy allows none inline.
    const context = await browser.newContext({ viewport: { width: 1280, height: 800 }, colorScheme, bypassCSP: true });
    const page = await context.newPage();
    const check = async (what) => {
      await page.addScriptTag({ path: axe });
      const result = await page.evaluate(() =>
        window.axe.run(document, { runOnly: ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa"] }),
      );
      for (const v of result.violations) {
        if (v.impact === "serious" || v.impact === "critical") {
          found.push(`${colorScheme} ${what}: ${v.id} (${v.impact}) ${v.nodes.map((n) => n.target.join(" ")).slice(0, 3).join(", ")}`);
        }
      }
    };
    await page.goto(server.base + "/");
    await page.getByLabel("API key").waitFor();
    await check("login");
    await page.getByLabel("API key").fill(key);
    await page.getByRole("button", { name: "Log in" }).click();
    await page.getByRole("heading", { name: "Runs" }).waitFor();
    await page.getByRole("cell", { name: /a11y/ }).first().waitFor();
    await check("runs");
    await page.getByRole("link", { name: "New run" }).click();
    await check("new run");
    await page.getByRole("link", { name: "Approvals" }).click();
    await page.getByRole("heading", { name: /Approvals \(/ }).waitFor();
    await check("approvals");
    for (const [link, ready] of [["Templates", "Templates"], ["Agents", "Agents"], ["Usage", "Usage"]]) {
      await page.getByRole("link", { name: link }).click();
      await page.getByRole("heading", { name: ready, exact: true }).waitFor();
      await check(link.toLowerCase());
    }
    await page.goto(`${server.base}/ui/runs/${id}`);
    await page.getByText(/tasks · drag/).waitFor();
    await check("run graph");
    await page.getByRole("tab", { name: "Tasks" }).click();
    await check("run tasks");
    await page.getByRole("tab", { name: "Timeline" }).click();
    await page.getByText(/attempt\(s\) over/).waitFor();
    await check("run timeline");
    await page.getByRole("tab", { name: "Events" }).click();
    await check("run events");
    await page.getByRole("tab", { name: "Cost" }).click();
    await page.getByText(/model call\(s\)/).waitFor();
    await check("run cost");
    await context.close();
  }
  assert.deepEqual(found, []);
});
