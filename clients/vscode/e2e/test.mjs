// Drives the mmlsp extension inside a running code-server with playwright-core and
// Debian's chromium, and checks each feature the way a user sees it, with the project's
// tiny random test model (fast; its suggestions are nonsense, which is enough to check
// that text arrives and is applied). journeys.mjs does a person's journeys with the
// real built-in models. Environment: see lib.mjs (run-tests.sh sets it).
// Exit status: 0 when every scenario passed, 1 otherwise.
import { spawnSync } from "node:child_process";
import fs from "node:fs";
import path from "node:path";
import {
  MOD,
  assertServerAlive,
  dismissNotifications,
  editMachineSettings,
  env,
  hoverAt,
  log,
  openFromExplorer,
  readFile,
  renderProblems,
  renderedExplanation,
  runCommand,
  runScenarios,
  save,
  screenshot,
  serverProcesses,
  sleep,
  statusItem,
  statusText,
  visibleText,
  waitFor,
  wordPosition,
} from "./lib.mjs";

const { URL, WORKSPACE } = env;
// The workspace's settings (edited by the settings scenario; VS Code watches the file).
const WORKSPACE_SETTINGS = path.join(WORKSPACE, ".vscode", "settings.json");

// -- the test files (written before code-server starts, see run-tests.sh) ---------------
const FILES = {
  broken: "broken.py",
  typing: "typing_demo.py",
  sample: "sample.py",
};

// -- scenarios -----------------------------------------------------------------------------

const scenarios = [];
const scenario = (name, timeoutMs, fn) => {
  const sc = { name, timeoutMs, fn };
  scenarios.push(sc);
  return sc;
};
const ctx = {};

scenario("workbench loads", 120000, async (page) => {
  await page.goto(URL, { waitUntil: "domcontentloaded" });
  await page.locator(".monaco-workbench").waitFor({ state: "visible", timeout: 90000 });
  await page.locator(".statusbar").waitFor({ state: "visible", timeout: 60000 });
  return "workbench and status bar visible";
}).always = true;

scenario("syntax error squiggle", 120000, async (page) => {
  const editor = await openFromExplorer(page, FILES.broken);
  const squiggle = editor.locator(".squiggly-error").first();
  await waitFor(
    "an error squiggle",
    async () => {
      if (await squiggle.isVisible().catch(() => false)) return true;
      await assertServerAlive(page);
      return false;
    },
    110000,
    500,
  );
  await sleep(300);
  const file = await screenshot(page, "01-syntax-error-squiggle");
  return `error squiggle shown in ${FILES.broken} (${file})`;
});

scenario("status bar shows the model ready", 180000, async (page) => {
  const item = page.locator(".statusbar-item", { hasText: "mmlsp:" }).first();
  await item.waitFor({ state: "visible", timeout: 30000 });
  const text = await waitFor(
    "the status bar item to say the model is ready",
    async () => {
      const t = (await item.innerText()).trim();
      if (/mmlsp: \S+ \((cpu|cuda)\)/.test(t)) return t;
      await assertServerAlive(page);
      return false;
    },
    170000,
  );
  await screenshot(page, "02-status-bar-ready");
  return `status bar: "${text}"`;
});

scenario("inline suggestion accepted with Tab", 180000, async (page) => {
  const editor = await openFromExplorer(page, FILES.typing);
  const before = readFile(FILES.typing);
  await page.keyboard.press(`${MOD}+End`);
  await page.keyboard.type(".");
  // VS Code asks by itself after typing; give it 3 s before triggering explicitly.
  ctx.lastTrigger = Date.now() - 5000;
  const ghost = editor.locator(".ghost-text-decoration, .ghost-text");
  let triggers = 0;
  await waitFor(
    "ghost text",
    async () => {
      if (await ghost.first().isVisible().catch(() => false)) return true;
      // VS Code asks on typing; ask again explicitly every few seconds if nothing came.
      if (Date.now() - (ctx.lastTrigger ?? 0) > 8000) {
        ctx.lastTrigger = Date.now();
        triggers += 1;
        await runCommand(page, "Trigger Inline Suggestion");
      }
      return false;
    },
    150000,
    500,
  );
  const ghostText = (await ghost.allInnerTexts()).join("⏎").replace(/\u00a0/g, " ");
  await screenshot(page, "03-inline-suggestion-ghost-text");
  await page.keyboard.press("Tab");
  await waitFor("ghost text gone after Tab", async () => !(await ghost.first().isVisible().catch(() => false)), 10000);
  await save(page);
  const after = await waitFor("the file saved with the suggestion", async () => {
    const text = readFile(FILES.typing);
    return text !== before && text.length > before.length + 1 ? text : false;
  }, 15000);
  await screenshot(page, "04-inline-suggestion-accepted");
  const typed = before.replace(/\n?$/, "") + ".";
  if (!after.startsWith(typed.trimEnd().slice(0, -1))) {
    throw new Error(`the saved text does not start with the original: ${JSON.stringify(after)}`);
  }
  const added = after.slice(before.length);
  // VS Code ran the item's command (mmlsp.accepted): `mmlsp stats` over the server's
  // cache directory (this profile's XDG_CACHE_HOME) shows the accept.
  const cache = path.join(path.dirname(WORKSPACE), "xdg-cache", "mmlsp");
  const total = await waitFor("the accept in mmlsp stats", async () => {
    const run = spawnSync(env.PYTHON || "python3", ["-m", "mmlsp", "stats", "--json"], {
      env: { ...process.env, MMLSP_CACHE_DIR: cache },
      encoding: "utf-8",
    });
    if (run.status !== 0 || !run.stdout.trim().startsWith("{")) return false;
    const stats = JSON.parse(run.stdout).total;
    return stats.whole >= 1 ? stats : false;
  }, 20000, 1000);
  return `ghost text ${JSON.stringify(ghostText.slice(0, 60))} (explicit triggers: ${triggers}); Tab inserted ${added.length} characters: ${JSON.stringify(added.slice(0, 60))}; mmlsp stats: ${total.whole} accepted of ${total.shown} shown`;
});

scenario("quick fix menu applies an mmlsp action", 180000, async (page) => {
  await dismissNotifications(page);
  const editor = await openFromExplorer(page, FILES.sample);
  const before = readFile(FILES.sample);
  await page.keyboard.press(`${MOD}+Home`);
  await page.keyboard.press(`${MOD}+.`);
  // The code action menu (the lightbulb's): its entries come from the server at once.
  const rows = page.locator(".action-widget .monaco-list-row");
  const item = rows.filter({ hasText: /docstring/i }).first();
  await item.waitFor({ state: "visible", timeout: 30000 });
  const titles = [...new Set((await rows.allInnerTexts()).map((t) => t.trim()).filter(Boolean))];
  await screenshot(page, "05-quick-fix-menu");
  await item.click();
  await waitFor("the docstring in the editor", async () => (await visibleText(editor)).includes('"""'), 150000, 500);
  await sleep(300);
  await screenshot(page, "06-quick-fix-docstring-applied");
  await save(page);
  const after = await waitFor("the saved docstring", async () => {
    const text = readFile(FILES.sample);
    return text !== before && text.includes('"""') ? text : false;
  }, 15000);
  const docstring = after.split('"""')[1] ?? "";
  return `menu: ${JSON.stringify(titles)}; applied "Add docstring": ${JSON.stringify(docstring.trim().slice(0, 80))}`;
});

scenario("hover shows content", 120000, async (page) => {
  const editor = await openFromExplorer(page, FILES.sample);
  const at = await wordPosition(editor, "def greet", "greet");
  let hover = await hoverAt(page, at, "greet", 100000);
  await sleep(300);
  let content = (await hover.innerText()).replace(/\s+/g, " ").trim();
  // The AI part is computed in the background: the server says so, and the next
  // hover has it. Hover again (a few times at most) to show it in the screenshot.
  for (let i = 0; i < 5 && /hover again/i.test(content); i++) {
    await page.mouse.move(5, 5);
    await page.keyboard.press("Escape");
    await sleep(1500);
    hover = await hoverAt(page, at, "greet", 10000);
    await sleep(300);
    content = (await hover.innerText()).replace(/\s+/g, " ").trim();
  }
  await screenshot(page, "07-hover");
  await page.mouse.move(5, 5);
  return `hover: ${JSON.stringify(content.slice(0, 120))}`;
});

scenario("add docstring command", 150000, async (page) => {
  await dismissNotifications(page);
  const editor = await openFromExplorer(page, FILES.sample);
  const count = (text) => text.split('"""').length - 1;
  const before = readFile(FILES.sample);
  const line = editor.locator(".view-line", { hasText: "def greet" }).first();
  await line.click({ position: { x: 10, y: 5 } });
  await runCommand(page, "mmlsp: Add or Update Docstring with AI");
  await waitFor("a second docstring in the editor", async () => count(await visibleText(editor)) >= 4, 140000, 500);
  await save(page);
  const after = await waitFor("the saved file", async () => {
    const text = readFile(FILES.sample);
    return count(text) > count(before) ? text : false;
  }, 15000);
  const greet = after.slice(after.indexOf("def greet"));
  await screenshot(page, "08-add-docstring-command");
  return `docstring added under greet: ${JSON.stringify(greet.split('"""')[1]?.trim().slice(0, 60))}`;
});

scenario("fix command reaches the server", 150000, async (page) => {
  await dismissNotifications(page);
  const editor = await openFromExplorer(page, FILES.broken);
  const before = readFile(FILES.broken);
  const line = editor.locator(".view-line", { hasText: "x = = 2" }).first();
  await line.click({ position: { x: 10, y: 5 } });
  await runCommand(page, "mmlsp: Fix with AI");
  // Random weights rarely write code that parses: the server then refuses the edit
  // with a message. Either outcome shows the command went through the server.
  const toast = page.locator(".notification-toast", { hasText: /mmlsp\.fix:/ }).first();
  const outcome = await waitFor(
    "the fix applied or the server's answer",
    async () => {
      const text = (await visibleText(editor)).trim();
      if (!text.includes("x = = 2")) return `applied: ${JSON.stringify(text.slice(-60))}`;
      if (await toast.isVisible().catch(() => false)) {
        return `server answered: ${JSON.stringify((await toast.innerText()).replace(/\s+/g, " ").slice(0, 160))}`;
      }
      return false;
    },
    140000,
    500,
  );
  // Let the command's progress toast close first (the request ends after the edit).
  await page
    .locator(".notification-toast", { hasText: "fixing" })
    .first()
    .waitFor({ state: "hidden", timeout: 20000 })
    .catch(() => {});
  await screenshot(page, "09-fix-command");
  // Leave the file as it was for the next scenarios.
  if (readFile(FILES.broken) !== before || !outcome.startsWith("server")) {
    await runCommand(page, "File: Revert File");
  }
  return outcome;
});

scenario("settings change reaches the server", 120000, async (page) => {
  await dismissNotifications(page);
  // Edit .vscode/settings.json on disk, as a user would in the editor: the extension sends
  // workspace/didChangeConfiguration and the action titles follow the new style.
  const settings = JSON.parse(fs.readFileSync(WORKSPACE_SETTINGS, "utf8"));
  settings["mmlsp.docstringStyle"] = "numpy";
  fs.writeFileSync(WORKSPACE_SETTINGS, JSON.stringify(settings, null, 2));
  const editor = await openFromExplorer(page, FILES.sample);
  const line = editor.locator(".view-line", { hasText: "def add" }).first();
  const rows = page.locator(".action-widget .monaco-list-row");
  const title = await waitFor(
    "a numpy docstring action",
    async () => {
      await line.click({ position: { x: 10, y: 5 } });
      await page.keyboard.press(`${MOD}+.`);
      const found = rows.filter({ hasText: /docstring \(numpy\)/ }).first();
      try {
        await found.waitFor({ state: "visible", timeout: 3000 });
        return (await found.innerText()).trim();
      } catch {
        await page.keyboard.press("Escape");
        return false;
      }
    },
    110000,
    1000,
  );
  await screenshot(page, "10-settings-change-numpy");
  await page.keyboard.press("Escape");
  return `after setting mmlsp.docstringStyle to numpy the menu offers "${title}"`;
});

scenario("explain selection command", 150000, async (page) => {
  await dismissNotifications(page);
  await openFromExplorer(page, FILES.sample);
  await page.keyboard.press(`${MOD}+Home`);
  await page.keyboard.press("Shift+ArrowDown");
  await page.keyboard.press("Shift+ArrowDown");
  await runCommand(page, "mmlsp: Explain Selection with AI");
  // Shown rendered, in VS Code's Markdown preview beside the code (not as .md source).
  const tab = page.locator(".tabs-container .tab", { hasText: /Explanation of/ }).first();
  await tab.waitFor({ state: "visible", timeout: 140000 });
  const rendered = await renderedExplanation(page, 30000);
  await sleep(500);
  await screenshot(page, "11-explain-selection");
  const problems = renderProblems(rendered);
  if (problems.length) throw new Error(`the explanation is not rendered: ${problems.join(", ")}: ${JSON.stringify(rendered.text.slice(0, 200))}`);
  const title = (await tab.innerText()).trim();
  // The explanation is the extension's own: it outlives a server restart (the restart
  // scenario below checks that the tab is still there).
  return `explanation rendered in tab ${JSON.stringify(title)}: heading ${JSON.stringify(rendered.heading)}, ${rendered.codeBlocks} code block(s), no raw Markdown`;
});

scenario("show status command", 60000, async (page) => {
  await dismissNotifications(page);
  await runCommand(page, "mmlsp: Show Status");
  const toast = page.locator(".notification-toast", { hasText: "last latency" }).first();
  await toast.waitFor({ state: "visible", timeout: 30000 });
  const text = (await toast.innerText()).replace(/\s+/g, " ").trim();
  await sleep(800); // the toast slides in
  await screenshot(page, "12-show-status");
  return JSON.stringify(text.slice(0, 200));
});

scenario("restart server command", 180000, async (page) => {
  await dismissNotifications(page);
  await runCommand(page, "mmlsp: Restart Server");
  const item = statusItem(page);
  const seen = [];
  const text = await waitFor(
    "the model ready again after the restart",
    async () => {
      const t = (await item.innerText()).trim();
      if (seen[seen.length - 1] !== t) seen.push(t);
      return /mmlsp: \S+ \((cpu|cuda)\)/.test(t) && seen.length > 1 ? t : false;
    },
    170000,
    100,
  );
  // The explanation opened before the restart is still rendered (it is not a file the
  // old server wrote and the new one removed).
  const explanationTab = page.locator(".tabs-container .tab", { hasText: /Explanation of/ }).first();
  let explanation = "no explanation tab open";
  if (await explanationTab.isVisible().catch(() => false)) {
    await explanationTab.click();
    const rendered = await renderedExplanation(page, 20000);
    const problems = renderProblems(rendered);
    if (problems.length) throw new Error(`after the restart the explanation shows ${problems.join(", ")}`);
    const tabText = (await explanationTab.innerText()).trim();
    if (/deleted/i.test(tabText) || (await explanationTab.getAttribute("class"))?.includes("deleted")) {
      throw new Error(`after the restart the explanation tab shows as deleted: ${JSON.stringify(tabText)}`);
    }
    explanation = `explanation still rendered in ${JSON.stringify(tabText)}`;
  }
  await screenshot(page, "13-after-restart");
  return `status bar went ${seen.map((t) => JSON.stringify(t)).join(" -> ")}; ${explanation}`;
});

// Scenarios on how the server is found. They change mmlsp.serverPath in code-server's
// Machine settings (where run-tests.sh put the interpreter it was run with); the
// extension restarts the server on that change.

scenario("a missing server gives one clear error", 90000, async (page) => {
  await dismissNotifications(page);
  const missing = "/nonexistent/venv/bin/python3";
  editMachineSettings((s) => (s["mmlsp.serverPath"] = missing));
  const toast = page.locator(".notification-toast", { hasText: "mmlsp: the server cannot start" });
  await toast.first().waitFor({ state: "visible", timeout: 60000 });
  const status = await waitFor("the status bar to say the server is not found", async () => {
    const t = await statusText(page);
    return /server not found/.test(t) ? t : false;
  }, 20000);
  await sleep(2000); // a crash loop would add more notifications meanwhile
  const count = await toast.count();
  const text = (await toast.first().innerText()).replace(/\s+/g, " ").trim();
  await screenshot(page, "14-server-not-found");
  if (count !== 1) throw new Error(`expected one error notification, saw ${count}`);
  if (!text.includes(missing) || !/serverPath/.test(text)) throw new Error(`the error does not say what to fix: ${JSON.stringify(text)}`);
  return `status bar "${status}"; one notification: ${JSON.stringify(text.slice(0, 220))}`;
}).watch = false;

scenario("the server is found without mmlsp.serverPath", 180000, async (page) => {
  await dismissNotifications(page);
  const before = new Set(serverProcesses().map((p) => p.pid));
  editMachineSettings((s) => delete s["mmlsp.serverPath"]);
  const text = await waitFor(
    "the model ready with the discovered interpreter",
    async () => {
      const t = await statusText(page);
      if (/mmlsp: \S+ \((cpu|cuda)\)/.test(t)) return t;
      if (/server not found/.test(t) && (await page.locator(".notification-toast", { hasText: "Tried:" }).count()) > 0) {
        const message = await page.locator(".notification-toast", { hasText: "Tried:" }).first().innerText();
        throw new Error(`discovery found no interpreter: ${message.replace(/\s+/g, " ").slice(0, 400)}`);
      }
      return false;
    },
    170000,
    500,
  );
  const started = serverProcesses().filter((p) => !before.has(p.pid));
  const interpreter = started[0]?.argv[0] ?? "(process not seen)";
  await screenshot(page, "15-found-without-server-path");
  const expected = process.env.MMLSP_E2E_EXPECT_INTERPRETER;
  if (expected && interpreter !== expected) {
    throw new Error(`the server runs with ${interpreter}, expected ${expected} (VIRTUAL_ENV)`);
  }
  return `no serverPath: status bar "${text}", server run by ${interpreter} (VIRTUAL_ENV=${process.env.VIRTUAL_ENV ?? "unset"})`;
});

// -- runner ----------------------------------------------------------------------------------

runScenarios("tiny", scenarios).then(
  (code) => process.exit(code),
  (error) => {
    console.error(error);
    process.exit(1);
  },
);
