// Shared by test.mjs (the feature scenarios with the tiny random model) and
// journeys.mjs (a person's journeys with the real built-in models): the workbench
// helpers, the scenario runner, and the fail-fast watch on the server.
//
// run-tests.sh starts code-server and sets:
//   MMLSP_E2E_URL        the workbench URL (folder included)
//   MMLSP_E2E_WORKSPACE  the folder opened in it (the test files live there)
//   MMLSP_E2E_ARTIFACTS  where screenshots and results go
//   MMLSP_E2E_PROFILE    a fresh chromium user-data-dir
//   MMLSP_E2E_CHROMIUM   the browser (default /usr/bin/chromium)
//   MMLSP_E2E_MACHINE_SETTINGS  code-server's Machine settings.json (serverPath lives there)
//   MMLSP_E2E_PYTHON     the interpreter run-tests.sh was run with (its sys.executable)
import { chromium } from "playwright-core";
import fs from "node:fs";
import path from "node:path";

export const env = {
  URL: must("MMLSP_E2E_URL"),
  WORKSPACE: must("MMLSP_E2E_WORKSPACE"),
  ARTIFACTS: must("MMLSP_E2E_ARTIFACTS"),
  PROFILE: must("MMLSP_E2E_PROFILE"),
  CHROMIUM: process.env.MMLSP_E2E_CHROMIUM || "/usr/bin/chromium",
  MACHINE_SETTINGS: process.env.MMLSP_E2E_MACHINE_SETTINGS || "",
  PYTHON: process.env.MMLSP_E2E_PYTHON || "",
};
export const MOD = process.platform === "darwin" ? "Meta" : "Control";

function must(name) {
  const value = process.env[name];
  if (!value) {
    console.error(`e2e: ${name} is not set (run it through run-tests.sh)`);
    process.exit(2);
  }
  return value;
}

const t0 = Date.now();
export const log = (...args) => console.log(`[${((Date.now() - t0) / 1000).toFixed(1).padStart(6)}s]`, ...args);
export const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
export const readFile = (name) => fs.readFileSync(path.join(env.WORKSPACE, name), "utf8");

// -- helpers over the workbench ------------------------------------------------------------

export async function screenshot(page, name) {
  const file = path.join(env.ARTIFACTS, `${name}.png`);
  await page.screenshot({ path: file });
  log(`screenshot ${file}`);
  return file;
}

export async function waitFor(what, fn, timeoutMs, intervalMs = 250) {
  const deadline = Date.now() + timeoutMs;
  let last;
  while (Date.now() < deadline) {
    try {
      last = await fn();
      if (last) return last;
    } catch (error) {
      if (error instanceof Fatal) throw error;
      last = error;
    }
    await sleep(intervalMs);
  }
  throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}` + (last instanceof Error ? ` (${last.message})` : ""));
}

export const statusItem = (page) => page.locator(".statusbar-item", { hasText: "mmlsp:" }).first();

/** The text of the mmlsp status bar item ("" when there is none yet). */
export async function statusText(page) {
  return (await statusItem(page).innerText({ timeout: 2000 }).catch(() => "")).trim();
}

// What the extension shows when the server cannot run: the status bar item, and the
// error notification (see src/server.ts notFoundMessage and the crash handler).
const DEAD_STATUS = /server not found|server did not start|server error|model failed/;
const DEAD_TOAST = /mmlsp: (the server cannot start|the server did not start|the server stopped \d+ times)/;

/** Why the server is down, from what the window shows; undefined while it is fine. */
export async function serverDown(page) {
  const status = await statusText(page);
  if (DEAD_STATUS.test(status)) {
    const toast = page.locator(".notification-toast", { hasText: DEAD_TOAST }).first();
    const message = (await toast.innerText({ timeout: 1000 }).catch(() => "")).replace(/\s+/g, " ").trim();
    return `the status bar says "${status}"` + (message ? `; the notification says "${message}"` : "");
  }
  const toast = page.locator(".notification-toast", { hasText: DEAD_TOAST }).first();
  if (await toast.isVisible().catch(() => false)) {
    return `the notification says "${(await toast.innerText().catch(() => "")).replace(/\s+/g, " ").trim()}"`;
  }
  return undefined;
}

/** Fails at once when the status bar or a notification says the server is down. */
export async function assertServerAlive(page) {
  const down = await serverDown(page);
  if (down) throw new Fatal(down);
  return statusText(page);
}

/** The server cannot run: every later scenario would only wait for its timeout. */
export class Fatal extends Error {}

/**
 * Runs a command from the Command Palette: the first row listed, or with `{ exact: true }`
 * the row whose title starts with `label` (the palette may list "mmlsp: Accept Next Edit"
 * before "mmlsp: Next Edit").
 */
export async function runCommand(page, label, { exact = false } = {}) {
  await page.keyboard.press("F1");
  const input = page.locator(".quick-input-widget .quick-input-box input");
  await input.waitFor({ state: "visible", timeout: 10000 });
  await input.fill(`>${label}`);
  const rows = page.locator(".quick-input-widget .monaco-list-row");
  const pattern = exact ? new RegExp(`^\\s*${label.replace(/[.*+?^${}()|[\]\\]/g, "\\$&")}`) : undefined;
  const row = (exact ? rows.filter({ hasText: pattern }) : rows.filter({ hasText: label })).first();
  await row.waitFor({ state: "visible", timeout: 10000 });
  if (exact) await row.click();
  else await page.keyboard.press("Enter");
  await page.locator(".quick-input-widget").waitFor({ state: "hidden", timeout: 10000 });
}

export async function dismissNotifications(page) {
  // Clears toasts so they do not cover the editor in the next screenshot.
  try {
    await runCommand(page, "Notifications: Clear All Notifications");
  } catch {
    // nothing to clear
  }
}

export async function showExplorer(page) {
  const view = page.locator(".explorer-folders-view");
  if (!(await view.isVisible().catch(() => false))) {
    await runCommand(page, "View: Show Explorer");
  }
  await view.waitFor({ state: "visible", timeout: 30000 });
}

/** Opens a file from the Explorer (quick-open needs ripgrep, which code-server lacks offline). */
export async function openFromExplorer(page, name) {
  await showExplorer(page);
  const row = page.locator(".explorer-folders-view .monaco-list-row", {
    has: page.locator(".label-name", { hasText: new RegExp(`^${name.replace(".", "\\.")}$`) }),
  });
  await row.first().waitFor({ state: "visible", timeout: 30000 });
  await row.first().dblclick();
  const tab = page.locator(".tabs-container .tab.active", { hasText: name });
  await tab.waitFor({ state: "visible", timeout: 20000 });
  const editor = page.locator(".editor-group-container.active .monaco-editor").first();
  await editor.waitFor({ state: "visible", timeout: 20000 });
  // Focus the text area without moving the cursor somewhere unexpected.
  await editor.locator(".view-lines").click({ position: { x: 5, y: 5 } });
  return editor;
}

/** Closes every editor (and preview) without saving, so the next file opens in the first group. */
export async function closeAllEditors(page) {
  await runCommand(page, "View: Close All Editor Groups").catch(() => {});
  // A file left modified (a failed scenario) asks whether to save it: it is not saved.
  const dontSave = page.locator(".monaco-dialog-box .monaco-button", { hasText: /Don't Save/ }).first();
  for (let i = 0; i < 5; i++) {
    const asked = await dontSave.waitFor({ state: "visible", timeout: 1500 }).then(() => true, () => false);
    if (!asked) break;
    await dontSave.click();
    await sleep(300);
  }
  await sleep(300);
}

export async function save(page) {
  await page.keyboard.press(`${MOD}+S`);
  await sleep(800);
}

export function visibleText(editor) {
  // Monaco renders spaces as non-breaking spaces.
  return editor.locator(".view-lines").innerText().then((t) => t.replace(/\u00a0/g, " "));
}

/** The centre of a word on a visible editor line, for hovering. */
export async function wordPosition(editor, lineText, word) {
  const line = editor.locator(".view-line", { hasText: lineText }).first();
  await line.waitFor({ state: "visible", timeout: 10000 });
  const span = line.locator("span span", { hasText: new RegExp(`^${word}$`) }).first();
  if (await span.isVisible().catch(() => false)) {
    const box = await span.boundingBox();
    return { x: box.x + box.width / 2, y: box.y + box.height / 2 };
  }
  const box = await line.boundingBox();
  const text = (await line.innerText()).replace(/\u00a0/g, " ");
  const perChar = box.width / Math.max(1, text.length);
  return { x: box.x + perChar * (text.indexOf(word) + word.length / 2), y: box.y + box.height / 2 };
}

/** Hovers until a hover containing `hasText` shows; returns its locator. */
export async function hoverAt(page, { x, y }, hasText, timeoutMs) {
  const hover = page.locator(".monaco-hover:not(.hidden)", { hasText }).first();
  await waitFor(
    `a hover with ${hasText}`,
    async () => {
      await page.mouse.move(x - 3, y);
      await page.mouse.move(x, y);
      try {
        await hover.waitFor({ state: "visible", timeout: 4000 });
        return true;
      } catch {
        await assertServerAlive(page);
        return false;
      }
    },
    timeoutMs,
    500,
  );
  return hover;
}

/**
 * The rendered Markdown preview (a webview: an iframe in an iframe): the frame whose body
 * holds `hasText`, or undefined.
 */
export async function previewFrame(page, hasText) {
  for (const frame of page.frames()) {
    if (frame === page.mainFrame()) continue;
    const body = await frame.locator("body").innerText({ timeout: 500 }).catch(() => "");
    if (body.includes(hasText)) return frame;
  }
  return undefined;
}

/** The rendered explanation: its text and the HTML elements it was rendered into. */
export async function renderedExplanation(page, timeoutMs) {
  const frame = await waitFor(
    "the rendered explanation (Markdown preview)",
    async () => {
      await assertServerAlive(page);
      return (await previewFrame(page, "Explanation of")) ?? false;
    },
    timeoutMs,
    1000,
  );
  const text = await frame.locator("body").innerText();
  const heading = (await frame.locator("h1").first().innerText({ timeout: 2000 }).catch(() => "")).trim();
  const codeBlocks = await frame.locator("pre code").count();
  return { frame, text, heading, codeBlocks };
}

/** Complaints about an explanation that does not look rendered, or an empty list. */
export function renderProblems({ text, heading }) {
  const problems = [];
  if (!/^Explanation of/.test(heading)) problems.push(`no rendered heading (h1 is ${JSON.stringify(heading)})`);
  if (/<\/?sub>/.test(text)) problems.push("raw <sub> tags");
  if (/^#+\s/m.test(text)) problems.push("raw '#' heading markers");
  if (/\*\*/.test(text)) problems.push("raw ** markers");
  if (/^\s*```/m.test(text)) problems.push("raw ``` fence lines");
  return problems;
}

// -- the runner ---------------------------------------------------------------------------------

/**
 * Runs the scenarios in order against one browser page; writes `<name>.json` with each
 * scenario's status and seconds, prints a table, and exits 0 only when all passed.
 * A scenario may set `watch: false` to turn the fail-fast watch off while it runs (it
 * breaks the server on purpose). Once the server is down (Fatal, or the watch sees the
 * error notification / status), the remaining scenarios are skipped at once.
 */
export async function runScenarios(name, scenarios) {
  fs.mkdirSync(env.ARTIFACTS, { recursive: true });
  const consoleLog = fs.createWriteStream(path.join(env.ARTIFACTS, `${name}-browser-console.log`));
  const context = await chromium.launchPersistentContext(env.PROFILE, {
    executablePath: env.CHROMIUM,
    headless: true,
    args: [
      "--headless",
      "--no-sandbox",
      "--disable-gpu",
      "--disable-background-networking",
      "--disable-component-update",
      "--disable-sync",
      "--no-first-run",
    ],
    viewport: { width: 1440, height: 900 },
  });
  const page = context.pages()[0] ?? (await context.newPage());
  page.on("console", (msg) => consoleLog.write(`[${msg.type()}] ${msg.text()}\n`));
  page.on("pageerror", (err) => consoleLog.write(`[pageerror] ${err.message}\n`));

  const results = [];
  let failed = false;
  let fatal;
  // MMLSP_E2E_ONLY: a regular expression; only the scenarios it matches run (and those
  // marked `always`, which the others need). Skipped ones do not count as passed.
  const only = process.env.MMLSP_E2E_ONLY ? new RegExp(process.env.MMLSP_E2E_ONLY, "i") : undefined;
  for (const sc of scenarios) {
    const start = Date.now();
    log(`scenario: ${sc.name}`);
    let status = "pass";
    let detail;
    if (fatal) {
      status = "skip";
      detail = `the server is down: ${fatal}`;
    } else if (only && !sc.always && !only.test(sc.name)) {
      status = "skip";
      detail = `not in MMLSP_E2E_ONLY (${only.source})`;
    } else if (failed && sc.name === "workbench loads") {
      status = "skip";
    } else {
      let watcher;
      let stopWatch = () => {};
      try {
        const watch = new Promise((_resolve, reject) => {
          if (sc.watch === false) return;
          let stopped = false;
          stopWatch = () => (stopped = true);
          const tick = async () => {
            if (stopped) return;
            const down = await serverDown(page).catch(() => undefined);
            if (stopped) return;
            if (down) reject(new Fatal(down));
            else watcher = setTimeout(tick, 2000);
          };
          watcher = setTimeout(tick, 2000);
        });
        detail = await Promise.race([
          sc.fn(page),
          watch,
          sleep(sc.timeoutMs).then(() => {
            throw new Error(`scenario timed out after ${sc.timeoutMs} ms`);
          }),
        ]);
      } catch (error) {
        status = "fail";
        detail = String(error?.message ?? error).split("\n")[0];
        failed = true;
        if (error instanceof Fatal) fatal = detail;
        const safe = sc.name.replace(/[^a-z0-9]+/gi, "-");
        if (error instanceof Fatal) await sleep(1500); // let the error notification slide in
        await screenshot(page, `FAIL-${name}-${safe}`).catch(() => {});
        // Leave menus and widgets so the next scenario starts clean.
        await page.keyboard.press("Escape").catch(() => {});
        await page.keyboard.press("Escape").catch(() => {});
      } finally {
        stopWatch();
        clearTimeout(watcher);
      }
    }
    const seconds = (Date.now() - start) / 1000;
    results.push({ name: sc.name, status, seconds, detail });
    log(`  ${status.toUpperCase()} (${seconds.toFixed(1)} s): ${detail ?? ""}`);
    if (sc.name === "workbench loads" && status !== "pass") break;
  }
  await context.close();
  consoleLog.end();
  fs.writeFileSync(path.join(env.ARTIFACTS, `${name}.json`), JSON.stringify(results, null, 2));
  const passed = results.filter((r) => r.status === "pass").length;
  console.log(`\n${name}: ${passed}/${scenarios.length} scenarios passed`);
  for (const r of results) console.log(`  ${r.status.padEnd(4)} ${r.seconds.toFixed(1).padStart(6)} s  ${r.name}`);
  if (fatal) console.log(`\n${name}: stopped early: ${fatal}`);
  const ok = results.every((r) => r.status === "pass" || (r.status === "skip" && only && !fatal));
  return ok ? 0 : 1;
}

/** Reads and rewrites code-server's Machine settings (where mmlsp.serverPath lives). */
export function editMachineSettings(edit) {
  if (!env.MACHINE_SETTINGS) throw new Error("MMLSP_E2E_MACHINE_SETTINGS is not set");
  const settings = JSON.parse(fs.readFileSync(env.MACHINE_SETTINGS, "utf8"));
  edit(settings);
  fs.writeFileSync(env.MACHINE_SETTINGS, JSON.stringify(settings, null, 2));
  return settings;
}

/** The command lines of running mmlsp servers (Linux /proc), to see which Python runs one. */
export function serverProcesses() {
  const out = [];
  let entries = [];
  try {
    entries = fs.readdirSync("/proc");
  } catch {
    return out;
  }
  for (const pid of entries) {
    if (!/^\d+$/.test(pid)) continue;
    try {
      const argv = fs.readFileSync(`/proc/${pid}/cmdline`, "utf8").split("\0").filter(Boolean);
      if (argv.some((a) => a.includes("run_module('mmlsp'")) || /(^|\/)mmlsp$/.test(argv[1] ?? argv[0] ?? "")) {
        out.push({ pid: Number(pid), argv });
      }
    } catch {
      // gone
    }
  }
  return out;
}
