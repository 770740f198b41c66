// The mmlsp VS Code extension: starts the server over stdio and wires its features in.
//
// Inline completions, code actions (with codeAction/resolve), hover and diagnostics come
// from vscode-languageclient's built-in features. This file adds the server command
// lookup, settings sync, the status bar item, load progress, and the commands.
import * as fs from "fs";
import * as path from "path";
import * as vscode from "vscode";
import {
  CloseAction,
  DidChangeConfigurationNotification,
  ErrorAction,
  ExecuteCommandRequest,
  LanguageClient,
  LanguageClientOptions,
  ServerOptions,
  State,
  WorkDoneProgress,
  WorkDoneProgressCreateRequest,
} from "vscode-languageclient/node";
import {
  RESTART_KEYS,
  SECTION,
  ServerSettings,
  changedSettings,
  effectiveSettings,
  explicitSettings,
  Keys,
  serverKeys,
  userValue,
} from "./settings";
import { ServerStatus, StatusBar, describe } from "./status";

const STATUS_REQUEST = "mmlsp/status";
// Polling intervals of mmlsp/status: while starting or loading, and once ready.
const FAST_POLL_MS = 1000;
const SLOW_POLL_MS = 5000;

let client: LanguageClient | undefined;
let statusBar: StatusBar;
let output: vscode.LogOutputChannel;
let keys: Keys;
let sentSettings: ServerSettings = {};
let pollTimer: NodeJS.Timeout | undefined;
let extensionContext: vscode.ExtensionContext;
// When the server process stopped unasked, for the restart limit.
let crashes: number[] = [];

// -- finding the server ------------------------------------------------------------

function onPath(name: string): string | undefined {
  const exts = process.platform === "win32" ? ["", ".exe", ".cmd", ".bat"] : [""];
  for (const dir of (process.env.PATH ?? "").split(path.delimiter)) {
    if (!dir) continue;
    for (const ext of exts) {
      const candidate = path.join(dir, name + ext);
      try {
        fs.accessSync(candidate, fs.constants.X_OK);
        if (fs.statSync(candidate).isFile()) return candidate;
      } catch {
        // not here
      }
    }
  }
  return undefined;
}

/**
 * `mmlsp.serverPath`, else `mmlsp` on PATH, else `python3 -m mmlsp`. The command, its
 * arguments and environment come from the user's settings only, never a workspace's.
 */
export function serverCommand(): { command: string; args: string[] } {
  const extra = userValue<string[]>("serverArgs", []);
  const configured = userValue<string>("serverPath", "").trim();
  if (configured) {
    const expanded = configured.replace(/^~(?=$|[\\/])/, process.env.HOME ?? "~");
    return { command: expanded, args: extra };
  }
  const mmlsp = onPath("mmlsp");
  if (mmlsp) return { command: mmlsp, args: extra };
  const python = onPath("python3") ?? onPath("python") ?? "python3";
  return { command: python, args: ["-m", "mmlsp", ...extra] };
}

// -- the client ------------------------------------------------------------------------

function documentSelector(config: vscode.WorkspaceConfiguration): { scheme: string; language?: string }[] {
  const languages = config.get<string[]>("languages") ?? ["python"];
  if (languages.includes("*")) {
    return [{ scheme: "file" }, { scheme: "untitled" }];
  }
  return languages.flatMap((language) => [
    { scheme: "file", language },
    { scheme: "untitled", language },
  ]);
}

function createClient(): LanguageClient {
  const config = vscode.workspace.getConfiguration(SECTION);
  const { command, args } = serverCommand();
  const env: Record<string, string | undefined> = {
    ...process.env,
    ...userValue<Record<string, string>>("serverEnv", {}),
  };
  // The server takes trustRemoteCode only from its environment or flags.
  if (userValue<boolean>("trustRemoteCode", false)) env.MMLSP_TRUST_REMOTE_CODE = "1";
  output.appendLine(`starting: ${command} ${args.join(" ")}`);
  // No `transport`: with TransportKind.stdio the client would append `--stdio`.
  const serverOptions: ServerOptions = { command, args, options: { env } };
  sentSettings = explicitSettings(keys);
  const clientOptions: LanguageClientOptions = {
    documentSelector: documentSelector(config),
    initializationOptions: sentSettings,
    outputChannel: output,
    // The server asks for the "mmlsp" section when it gets a pull-style change
    // notification; answer with the server keys only (never serverPath and friends).
    middleware: {
      workspace: {
        configuration: (params, token, next) => {
          const items = params.items ?? [];
          if (items.every((item) => item.section === SECTION)) {
            return items.map(() => effectiveSettings(keys));
          }
          return next(params, token);
        },
      },
    },
    errorHandler: {
      error: () => ({ action: ErrorAction.Continue }),
      closed: () => {
        // Restart a crashed server, but not in a loop: at most 3 times in 3 minutes.
        const now = Date.now();
        crashes = crashes.filter((t) => now - t < 180_000);
        crashes.push(now);
        if (crashes.length <= 3) {
          output.warn(`the server stopped; restarting it (${crashes.length} of 3 in 3 minutes)`);
          return { action: CloseAction.Restart, handled: true };
        }
        statusBar.setPhase("error");
        return {
          action: CloseAction.DoNotRestart,
          message: "mmlsp: the server stopped 4 times in 3 minutes; see the mmlsp output, then run 'mmlsp: Restart Server'.",
        };
      },
    },
  };
  const created = new LanguageClient("mmlsp", "mmlsp", serverOptions, clientOptions);
  created.onDidChangeState((event) => {
    if (event.newState === State.Running) {
      statusBar.setPhase("running");
      void vscode.commands.executeCommand("setContext", "mmlsp.running", true);
    } else if (event.newState === State.Starting) {
      statusBar.setPhase("starting");
    } else {
      void vscode.commands.executeCommand("setContext", "mmlsp.running", false);
      if (event.oldState === State.Running || event.oldState === State.Starting) {
        statusBar.setPhase("stopped");
      }
    }
  });
  return created;
}

/**
 * Load progress: show the server's $/progress as a notification and in the status bar.
 * Registered after start, so it replaces the client's default handler for
 * window/workDoneProgress/create (which only shows the notification).
 */
function trackProgress(target: LanguageClient): void {
  target.onRequest(WorkDoneProgressCreateRequest.type, ({ token }) => {
    let report: ((message: string, increment: number) => void) | undefined;
    let finish: (() => void) | undefined;
    let last = 0;
    const done = new Promise<void>((resolve) => (finish = resolve));
    const disposable = target.onProgress(WorkDoneProgress.type, token, (value) => {
      if (value.kind === "begin") {
        void vscode.window.withProgress(
          { location: vscode.ProgressLocation.Notification, title: value.title, cancellable: false },
          (progress) => {
            report = (message, percentage) => {
              progress.report({ message, increment: Math.max(0, percentage - last) });
              last = Math.max(last, percentage);
            };
            report(value.message ?? "", value.percentage ?? 0);
            return done;
          },
        );
        statusBar.progress(value.message, value.percentage);
      } else if (value.kind === "report") {
        report?.(value.message ?? "", value.percentage ?? last);
        statusBar.progress(value.message, value.percentage);
      } else {
        finish?.();
        disposable.dispose();
        statusBar.progress(undefined, undefined);
        void pollNow();
      }
    });
  });
}

async function startClient(): Promise<void> {
  client = createClient();
  statusBar.setPhase("starting");
  try {
    await client.start();
  } catch (error) {
    statusBar.setPhase("error");
    output.appendLine(`mmlsp failed to start: ${error}`);
    void vscode.window
      .showErrorMessage(
        `mmlsp: the server did not start (${error}). Set "mmlsp.serverPath" or install mmlsp (pip install mmlsp).`,
        "Open Settings",
      )
      .then((choice) => {
        if (choice) void vscode.commands.executeCommand("workbench.action.openSettings", "mmlsp.serverPath");
      });
    return;
  }
  trackProgress(client);
  schedulePoll(0);
}

async function stopClient(): Promise<void> {
  if (pollTimer) clearTimeout(pollTimer);
  pollTimer = undefined;
  const old = client;
  client = undefined;
  if (old) {
    try {
      if (old.isRunning()) await old.stop(5000);
    } catch (error) {
      output.appendLine(`stopping the server: ${error}`);
    }
    try {
      await old.dispose();
    } catch {
      // already gone
    }
  }
  statusBar.setPhase("stopped");
}

async function restartClient(): Promise<void> {
  crashes = [];
  await stopClient();
  await startClient();
}

// -- status ------------------------------------------------------------------------------

async function fetchStatus(): Promise<ServerStatus | undefined> {
  if (!client || !client.isRunning()) return undefined;
  try {
    return await client.sendRequest<ServerStatus>(STATUS_REQUEST, {});
  } catch (error) {
    output.appendLine(`mmlsp/status failed: ${error}`);
    return undefined;
  }
}

async function pollNow(): Promise<void> {
  const status = await fetchStatus();
  if (status) statusBar.update(status);
}

function schedulePoll(delay: number): void {
  if (pollTimer) clearTimeout(pollTimer);
  pollTimer = setTimeout(async () => {
    await pollNow();
    if (client) schedulePoll(statusBar.busy ? FAST_POLL_MS : SLOW_POLL_MS);
  }, delay);
}

async function showStatus(): Promise<void> {
  const status = await fetchStatus();
  if (status) statusBar.update(status);
  const lines = describe(status, client?.isRunning() ? "running" : "stopped");
  output.appendLine(lines.join("\n"));
  const choice = await vscode.window.showInformationMessage(lines.join(" · "), "Show Details", "Restart Server");
  if (choice === "Show Details") {
    const doc = await vscode.workspace.openTextDocument({
      language: "json",
      content: JSON.stringify(status ?? { state: "not running" }, null, 2),
    });
    await vscode.window.showTextDocument(doc, { preview: true });
  } else if (choice === "Restart Server") {
    await restartClient();
  }
}

// -- commands -------------------------------------------------------------------------------

function activeLocation(): { editor: vscode.TextEditor; uri: string; range: object } | undefined {
  const editor = vscode.window.activeTextEditor;
  if (!editor || !client || !client.isRunning()) {
    void vscode.window.showWarningMessage("mmlsp: open a file the server handles first (is the server running?)");
    return undefined;
  }
  const selection = editor.selection;
  const uri = client.code2ProtocolConverter.asUri(editor.document.uri);
  const range = client.code2ProtocolConverter.asRange(new vscode.Range(selection.start, selection.end));
  return { editor, uri, range };
}

async function runServerCommand(title: string, command: string, args: unknown[]): Promise<unknown> {
  if (!client) return undefined;
  const running = client;
  return vscode.window.withProgress(
    { location: vscode.ProgressLocation.Notification, title: `mmlsp: ${title}…`, cancellable: true },
    async (_progress, token) => {
      try {
        return await running.sendRequest(ExecuteCommandRequest.type, { command, arguments: args }, token);
      } catch (error: any) {
        // The server already shows its reason with window/showMessage; keep a trace here.
        output.appendLine(`${command} failed: ${error?.message ?? error}`);
        return undefined;
      }
    },
  );
}

async function explainSelection(): Promise<void> {
  const here = activeLocation();
  if (!here) return;
  await runServerCommand("explaining", "mmlsp.explain", [here.uri, here.range]);
}

async function addDocstringHere(): Promise<void> {
  const here = activeLocation();
  if (!here) return;
  const position = client!.code2ProtocolConverter.asPosition(here.editor.selection.active);
  await runServerCommand("writing a docstring", "mmlsp.addDocstring", [here.uri, position]);
}

async function fixHere(): Promise<void> {
  const here = activeLocation();
  if (!here) return;
  const { editor } = here;
  // The problem to fix: the diagnostics under the selection (or on the cursor's line).
  const selection = editor.selection;
  const area = selection.isEmpty ? editor.document.lineAt(selection.active.line).range : selection;
  const problems = vscode.languages
    .getDiagnostics(editor.document.uri)
    .filter((d) => d.range.intersection(area) !== undefined)
    .map((d) => d.message);
  const range = selection.isEmpty
    ? client!.code2ProtocolConverter.asRange(problems.length ? area : selection)
    : here.range;
  await runServerCommand("fixing", "mmlsp.fix", [here.uri, range, problems.join("\n")]);
}

// -- activation --------------------------------------------------------------------------------

export async function activate(context: vscode.ExtensionContext): Promise<void> {
  extensionContext = context;
  output = vscode.window.createOutputChannel("mmlsp", { log: true });
  statusBar = new StatusBar();
  keys = serverKeys(context.extension.packageJSON);
  context.subscriptions.push(
    output,
    statusBar,
    vscode.commands.registerCommand("mmlsp.explainSelection", explainSelection),
    vscode.commands.registerCommand("mmlsp.addDocstringHere", addDocstringHere),
    vscode.commands.registerCommand("mmlsp.fixHere", fixHere),
    vscode.commands.registerCommand("mmlsp.restartServer", restartClient),
    vscode.commands.registerCommand("mmlsp.showStatus", showStatus),
    vscode.workspace.onDidChangeConfiguration(async (event) => {
      if (!event.affectsConfiguration(SECTION)) return;
      if (RESTART_KEYS.some((key) => event.affectsConfiguration(`${SECTION}.${key}`))) {
        output.appendLine("server command or languages changed: restarting");
        await restartClient();
        return;
      }
      if (!client || !client.isRunning()) return;
      const settings = changedSettings(keys, sentSettings);
      sentSettings = explicitSettings(keys);
      output.info(`settings changed: sending ${JSON.stringify(settings)}`);
      await client.sendNotification(DidChangeConfigurationNotification.type, {
        settings: { [SECTION]: settings },
      });
      schedulePoll(200);
    }),
  );
  await startClient();
}

export async function deactivate(): Promise<void> {
  await stopClient();
  void extensionContext;
}
