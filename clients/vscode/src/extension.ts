// The mmlsp VS Code extension: starts the server over stdio and wires its features in.
//
// Inline completions, code actions (with codeAction/resolve), hover and diagnostics come
// from vscode-languageclient's built-in features. This file adds the server command
// lookup, settings sync, the status bar item, load progress, and the commands.
import { ChildProcess, spawn } from "child_process";
import * as readline from "readline";
import * as vscode from "vscode";
import {
  CloseAction,
  DidChangeConfigurationNotification,
  ErrorAction,
  ExecuteCommandRequest,
  LanguageClient,
  LanguageClientOptions,
  RevealOutputChannelOn,
  ServerOptions,
  State,
  WorkDoneProgress,
  WorkDoneProgressCancelNotification,
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
  userFlags,
  userValue,
} from "./settings";
import { ServerStatus, StatusBar, describe } from "./status";
import { Discovery, discover, notFoundMessage, onPythonInterpreterChange } from "./server";
import { ExplanationStore, SCHEME as EXPLAIN_SCHEME, showExplanation } from "./explain";
import { NextEdits } from "./nextEdit";
import { EDIT_COMMAND, INPUT, editArguments } from "./instruction";

const STATUS_REQUEST = "mmlsp/status";
const EXPLAIN_COMMAND = "mmlsp.explain";
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
let explanations: ExplanationStore;
let nextEdits: NextEdits | undefined;
// When the server process stopped unasked, for the restart limit.
let crashes: number[] = [];
// The server process of the current client.
let serverProcess: ChildProcess | undefined;
// Counts startClient calls, so that a start overtaken by a newer one gives way.
let starts = 0;

// -- finding the server ------------------------------------------------------------

/** The working directory of the server (and of the probes): the first workspace folder. */
function serverCwd(): string | undefined {
  const folder = vscode.workspace.workspaceFolders?.find((f) => f.uri.scheme === "file");
  return folder?.uri.fsPath;
}

function serverEnv(): Record<string, string | undefined> {
  const env: Record<string, string | undefined> = {
    ...process.env,
    ...userValue<Record<string, string>>("serverEnv", {}),
  };
  // The server takes trustRemoteCode only from its environment or flags.
  if (userValue<boolean>("trustRemoteCode", false)) env.MMLSP_TRUST_REMOTE_CODE = "1";
  return env;
}

/**
 * The command that starts the server: `mmlsp.serverPath` when set, else the first
 * interpreter that has mmlsp (see server.ts). The command, its arguments and environment
 * come from the user's settings only, never a workspace's.
 */
export async function serverCommand(): Promise<Discovery> {
  const extra = [...userFlags(), ...userValue<string[]>("serverArgs", [])];
  const configured = userValue<string>("serverPath", "");
  return discover(configured, extra, serverEnv(), serverCwd(), (line) => output.info(line));
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

/** A client that leaves start failures to startFailed (one error, with the reason). */
class QuietStartClient extends LanguageClient {
  error(message: string, data?: any, showNotification?: boolean | "force"): void {
    super.error(message, data, this.state === State.Running ? showNotification : false);
  }
}

/** The server's last stderr lines: what a failed start says ("No module named ..."). */
const stderrTail: string[] = [];
const STDERR_KEEP = 30;
// The server's log format (mmlsp/cli.py): "2026-01-01 12:00:00,123 INFO mmlsp.x: ...".
const LOG_LINE = /^\d{4}-\d\d-\d\d[ T]\d\d:\d\d:\d\d[,.]\d+ (DEBUG|INFO|WARNING|ERROR|CRITICAL) /;

/** Server stderr into the output channel at each line's own level (not all as errors). */
function pipeStderr(input: NodeJS.ReadableStream, channel: vscode.LogOutputChannel): void {
  let level = "ERROR";
  readline.createInterface({ input, crlfDelay: Infinity, terminal: false, historySize: 0 }).on("line", (line) => {
    stderrTail.push(line);
    if (stderrTail.length > STDERR_KEEP) stderrTail.shift();
    const match = LOG_LINE.exec(line);
    if (match) level = match[1];
    else if (/\b\w*Warning: /.test(line)) level = "WARNING";
    else if (/^Traceback /.test(line)) level = "ERROR";
    // Lines without a level of their own continue the previous record.
    if (level === "DEBUG") channel.debug(line);
    else if (level === "INFO") channel.info(line);
    else if (level === "WARNING") channel.warn(line);
    else channel.error(line);
  });
}

/** What the server said last before it exited: the last line that names an error. */
function exitReason(): string | undefined {
  for (let i = stderrTail.length - 1; i >= 0; i--) {
    const line = stderrTail[i].trim();
    if (/(Error|Exception|error|failed|No module named)\b/.test(line) && !/^\s*File "/.test(line)) return line.slice(0, 300);
  }
  return undefined;
}

function createClient(command: string, args: string[], source: string): LanguageClient {
  const config = vscode.workspace.getConfiguration(SECTION);
  const env = serverEnv();
  stderrTail.length = 0;
  // Whether this server answered `initialize`: one that exits before is not restarted.
  let initialized = false;
  output.appendLine(`starting: ${command} ${args.map((a) => (/\s/.test(a) ? JSON.stringify(a) : a)).join(" ")}`);
  // The extension spawns the process itself, to see it exit before it answered
  // `initialize` (a missing dependency, a bad flag): that is reported once, with the
  // reason from its stderr, instead of a restart loop.
  const serverOptions: ServerOptions = async () => {
    const child = spawn(command, args, { env, cwd: serverCwd(), stdio: "pipe", windowsHide: true });
    serverProcess = child;
    child.on("error", (error) => startFailed(created, command, source, String(error)));
    child.on("exit", (code, signal) => {
      if (!initialized) {
        // Wait a moment for its last stderr lines.
        setTimeout(() => startFailed(created, command, source, `exit ${signal ?? code}`), 300);
      }
    });
    return child;
  };
  sentSettings = explicitSettings(keys);
  const clientOptions: LanguageClientOptions = {
    documentSelector: documentSelector(config),
    initializationOptions: sentSettings,
    outputChannel: output,
    stdioOptions: {
      // stdout is the LSP stream; this only sees it when it is not (never, for stdio).
      stdout: (input, channel) => {
        readline.createInterface({ input, crlfDelay: Infinity, terminal: false }).on("line", (line) => channel.info(line));
      },
      stderr: (input, channel) => pipeStderr(input, channel),
    },
    // startFailed shows one error of its own when the server does not start (the
    // client's default would add two more: the raw RPC error and "couldn't create
    // connection").
    revealOutputChannelOn: RevealOutputChannelOn.Never,
    initializationFailedHandler: () => false,
    // The server asks for the "mmlsp" section when it gets a pull-style change
    // notification; answer with the server keys only (never serverPath and friends).
    middleware: {
      // Next edits wait for the inline completion in flight, and are not asked for over
      // the ghost text it shows (see nextEdit.ts).
      provideInlineCompletionItems: async (document, position, context, token, next) => {
        nextEdits?.completionStarted(document);
        const version = document.version;
        let shown = false;
        try {
          const result = await next(document, position, context, token);
          const items = Array.isArray(result) ? result : result?.items;
          shown = !token.isCancellationRequested && !!items && items.length > 0;
          return result;
        } finally {
          nextEdits?.completionFinished(document, version, shown);
        }
      },
      // "Explain with AI" from the lightbulb runs the server's mmlsp.explain command:
      // show its answer as rendered Markdown here instead of the server's temporary file.
      executeCommand: (command, args, next) => {
        if (command === EXPLAIN_COMMAND) {
          return explain(args.slice(0, 2), (withOptions) => next(command, withOptions) as Thenable<unknown>);
        }
        return next(command, args);
      },
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
        // A server that exits before it answers `initialize` will do so again (a missing
        // dependency, a bad flag): startClient reports why, once.
        if (!initialized) return { action: CloseAction.DoNotRestart, handled: true };
        // Restart a crashed server, but not in a loop: at most 3 times in 3 minutes.
        const now = Date.now();
        crashes = crashes.filter((t) => now - t < 180_000);
        crashes.push(now);
        if (crashes.length <= 3) {
          output.warn(`the server stopped; restarting it (${crashes.length} of 3 in 3 minutes)`);
          return { action: CloseAction.Restart, handled: true };
        }
        statusBar.setPhase("error");
        const why = exitReason();
        return {
          action: CloseAction.DoNotRestart,
          message:
            "mmlsp: the server stopped 4 times in 3 minutes" +
            (why ? ` (last: ${why})` : "") +
            "; see the mmlsp output, then run 'mmlsp: Restart Server'.",
        };
      },
    },
  };
  const created: LanguageClient = new QuietStartClient("mmlsp", "mmlsp", serverOptions, clientOptions);
  created.onDidChangeState((event) => {
    if (event.newState === State.Running) {
      initialized = true;
      statusBar.setPhase("running");
      void vscode.commands.executeCommand("setContext", "mmlsp.running", true);
    } else if (event.newState === State.Starting) {
      statusBar.setPhase("starting");
    } else {
      void vscode.commands.executeCommand("setContext", "mmlsp.running", false);
      // An error the status bar shows stays until the next start.
      if ((event.oldState === State.Running || event.oldState === State.Starting) && statusBar.phase !== "error") {
        statusBar.setPhase("stopped");
      }
    }
  });
  return created;
}

/**
 * The server's $/progress as a notification. Registered after start, so it replaces
 * the client's default handler for window/workDoneProgress/create (which only shows the
 * notification). Loading the model (not cancellable) also shows in the status bar; an
 * AI action (cancellable) does not turn the status bar to "loading", and its
 * notification's Cancel button sends window/workDoneProgress/cancel, which stops the
 * model.
 */
function trackProgress(target: LanguageClient): void {
  target.onRequest(WorkDoneProgressCreateRequest.type, ({ token }) => {
    let report: ((message: string, increment: number) => void) | undefined;
    let finish: (() => void) | undefined;
    let last = 0;
    let load = true;
    const done = new Promise<void>((resolve) => (finish = resolve));
    const disposable = target.onProgress(WorkDoneProgress.type, token, (value) => {
      if (value.kind === "begin") {
        load = value.cancellable !== true;
        void vscode.window.withProgress(
          { location: vscode.ProgressLocation.Notification, title: value.title, cancellable: !load },
          (progress, cancel) => {
            cancel.onCancellationRequested(() => {
              void target.sendNotification(WorkDoneProgressCancelNotification.type, { token });
            });
            report = (message, percentage) => {
              progress.report({ message, increment: Math.max(0, percentage - last) });
              last = Math.max(last, percentage);
            };
            report(value.message ?? "", value.percentage ?? 0);
            return done;
          },
        );
        if (load) statusBar.progress(value.message, value.percentage);
      } else if (value.kind === "report") {
        report?.(value.message ?? "", value.percentage ?? last);
        if (load) statusBar.progress(value.message, value.percentage);
      } else {
        finish?.();
        disposable.dispose();
        if (load) statusBar.progress(undefined, undefined);
        void pollNow();
      }
    });
  });
}

// The client whose start failure was reported (one error per start, however it shows).
let reportedFailure: LanguageClient | undefined;

/** One error for a server that did not start: which command, and what it said. */
function startFailed(which: LanguageClient, command: string, source: string, error: string): void {
  if (which !== client || reportedFailure === which) return;
  reportedFailure = which;
  statusBar.setPhase("error", "server did not start");
  const why = exitReason() ?? error;
  output.error(`the server did not start: ${command} (${source}): ${why}`);
  void vscode.window
    .showErrorMessage(
      `mmlsp: the server did not start: ${command} (${source}) exited: ${why}. ` +
        `See the mmlsp output; install what is missing in that environment (pip install mmlsp), ` +
        `or set mmlsp.serverPath to another one.`,
      "Show Output",
      "Open Settings",
    )
    .then((choice) => {
      if (choice === "Show Output") output.show(true);
      else if (choice === "Open Settings") void vscode.commands.executeCommand("workbench.action.openSettings", "mmlsp.serverPath");
    });
}

async function startClient(): Promise<void> {
  const generation = ++starts;
  statusBar.setPhase("starting");
  const configured = userValue<string>("serverPath", "");
  const discovery = await serverCommand();
  // A restart (settings changed) while the interpreters were probed: that one wins.
  if (generation !== starts) return;
  if (!discovery.found) {
    const message = notFoundMessage(configured, discovery.tried);
    output.error(message);
    statusBar.setPhase("error", "server not found");
    void vscode.window.showErrorMessage(message, "Open Settings", "Show Output").then((choice) => {
      if (choice === "Open Settings") void vscode.commands.executeCommand("workbench.action.openSettings", "mmlsp.serverPath");
      else if (choice === "Show Output") output.show(true);
    });
    return;
  }
  const { command, args, source } = discovery.found;
  const started = createClient(command, args, source);
  client = started;
  try {
    await started.start();
  } catch (error) {
    startFailed(started, command, source, String(error));
    return;
  }
  trackProgress(client);
  schedulePoll(0);
}

async function stopClient(): Promise<void> {
  if (pollTimer) clearTimeout(pollTimer);
  pollTimer = undefined;
  nextEdits?.clear();
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
  // The client does not kill a process it did not spawn: end one that outlived stop().
  const child = serverProcess;
  serverProcess = undefined;
  if (child && child.exitCode === null && child.signalCode === null) {
    setTimeout(() => {
      if (child.exitCode === null && child.signalCode === null) child.kill();
    }, 2000);
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

/**
 * Asks the server for an explanation as Markdown only (`{"show": false}`) and shows it
 * rendered, in a virtual document that outlives server restarts (see explain.ts).
 */
async function explain(
  args: unknown[],
  send: (args: unknown[], token: vscode.CancellationToken) => Promise<unknown> | Thenable<unknown>,
): Promise<unknown> {
  const markdown = await vscode.window.withProgress(
    { location: vscode.ProgressLocation.Notification, title: "mmlsp: explaining…", cancellable: true },
    async (_progress, token) => {
      const cancelled = new Promise<undefined>((resolve) => token.onCancellationRequested(() => resolve(undefined)));
      try {
        return await Promise.race([send([...args, { show: false }], token), cancelled]);
      } catch (error: any) {
        // The server already shows its reason with window/showMessage; keep a trace here.
        output.appendLine(`${EXPLAIN_COMMAND} failed: ${error?.message ?? error}`);
        return undefined;
      }
    },
  );
  if (typeof markdown === "string" && markdown.trim()) {
    await showExplanation(explanations, markdown, (line) => output.warn(line));
  }
  return markdown;
}

async function explainSelection(): Promise<void> {
  const here = activeLocation();
  if (!here || !client) return;
  const running = client;
  await explain([here.uri, here.range], (args, token) =>
    running.sendRequest(ExecuteCommandRequest.type, { command: EXPLAIN_COMMAND, arguments: args }, token),
  );
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

/** Asks for an instruction, then has the server rewrite the selection (one undoable edit). */
async function editWithInstruction(): Promise<void> {
  const here = activeLocation();
  if (!here) return;
  const typed = await vscode.window.showInputBox({ ...INPUT, ignoreFocusOut: true });
  const args = editArguments(here.uri, here.range, typed);
  if (!args) return; // cancelled, or nothing typed
  await runServerCommand("editing", EDIT_COMMAND, args);
}

// -- KV warm-up ------------------------------------------------------------------------------

// How long the cursor rests before its prompt is warmed (a notification, no answer).
const WARM_REST_MS = 1500;
let warmTimer: ReturnType<typeof setTimeout> | undefined;

function warm(editor: vscode.TextEditor | undefined): void {
  if (!editor || !client || !client.isRunning()) return;
  const selector = documentSelector(vscode.workspace.getConfiguration(SECTION));
  if (!vscode.languages.match(selector, editor.document)) return;
  void client.sendNotification("mmlsp/warm", {
    textDocument: { uri: editor.document.uri.toString() },
    position: client.code2ProtocolConverter.asPosition(editor.selection.active),
  });
}

// -- activation --------------------------------------------------------------------------------

export async function activate(context: vscode.ExtensionContext): Promise<void> {
  extensionContext = context;
  output = vscode.window.createOutputChannel("mmlsp", { log: true });
  statusBar = new StatusBar();
  keys = serverKeys(context.extension.packageJSON);
  explanations = new ExplanationStore();
  // Next-edit suggestions (see nextEdit.ts): asked for after edits, shown as ghost text
  // or decorations, Tab to jump and apply.
  nextEdits = new NextEdits({
    client: () => client,
    handles: (document) => vscode.languages.match(documentSelector(vscode.workspace.getConfiguration(SECTION)), document) > 0,
    log: output,
  });
  context.subscriptions.push(
    output,
    statusBar,
    explanations,
    nextEdits,
    vscode.workspace.registerTextDocumentContentProvider(EXPLAIN_SCHEME, explanations),
    vscode.commands.registerCommand("mmlsp.explainSelection", explainSelection),
    vscode.commands.registerCommand("mmlsp.addDocstringHere", addDocstringHere),
    vscode.commands.registerCommand("mmlsp.fixHere", fixHere),
    // Not "mmlsp.editSelection": vscode-languageclient registers the server's own
    // commands under their ids.
    vscode.commands.registerCommand("mmlsp.editWithInstruction", editWithInstruction),
    vscode.commands.registerCommand("mmlsp.restartServer", restartClient),
    vscode.commands.registerCommand("mmlsp.showStatus", showStatus),
    // The user looks at a document (switched to it, or moved the cursor and rests):
    // ask the server to prefill its prompt there, so that the first suggestion does
    // not wait for a cold prefill.
    vscode.window.onDidChangeActiveTextEditor((editor) => warm(editor)),
    vscode.window.onDidChangeTextEditorSelection((event) => {
      if (warmTimer) clearTimeout(warmTimer);
      warmTimer = setTimeout(() => warm(event.textEditor), WARM_REST_MS);
    }),
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
  // The interpreter chosen in the Python extension is the server's when no serverPath
  // is set: follow the user's choice.
  void onPythonInterpreterChange(() => {
    if (userValue<string>("serverPath", "").trim()) return;
    output.info("the Python extension's interpreter changed: restarting the server");
    void restartClient();
  }).then((disposable) => disposable && context.subscriptions.push(disposable));
  await startClient();
}

export async function deactivate(): Promise<void> {
  await stopClient();
  void extensionContext;
}
