// Finding the Python (or the `mmlsp` command) that runs the server.
//
// VS Code (and code-server) build the extension host's PATH from a login shell, so a
// virtual environment activated in the terminal that started the editor is not on it:
// `python3` there is another Python, without mmlsp. Like the Python tool extensions
// (ruff, black-formatter, pylint), the extension therefore looks in this order:
//
//   1. `mmlsp.serverPath` (user settings): always wins, never falls through;
//   2. the interpreter selected in the Python extension (ms-python.python), else the
//      user's `python.defaultInterpreterPath`;
//   3. `$VIRTUAL_ENV` (and `$CONDA_PREFIX`) of the environment the editor was started with;
//   4. `mmlsp` on PATH, then `python3` and `python` on PATH.
//
// Each candidate is probed (`python -c "import mmlsp"`, a fraction of a second) before it
// is used; the first that imports mmlsp runs the server. When none does, the caller shows
// one error naming every interpreter tried and why it was passed over.
import { execFile } from "child_process";
import * as fs from "fs";
import * as path from "path";
import * as vscode from "vscode";

const IS_WINDOWS = process.platform === "win32";
const PROBE_TIMEOUT_MS = 20_000;

// `python -m mmlsp` puts the working directory first on sys.path, so a folder named
// `mmlsp` in the opened workspace would run instead of the installed package. These run
// the installed one whatever the working directory holds (sys.path[0] is "" with -c).
const SAFE_RUN =
  "import sys, runpy; sys.path[:] = [p for p in sys.path if p not in ('', '.')]; " +
  "runpy.run_module('mmlsp', run_name='__main__', alter_sys=True)";
const PROBE =
  "import sys; sys.path[:] = [p for p in sys.path if p not in ('', '.')]; " +
  "import mmlsp, mmlsp.cli; print(mmlsp.__version__, mmlsp.__file__)";

export interface Candidate {
  // Where it came from, for the log and the error message.
  source: string;
  // An interpreter (run with -c) or the `mmlsp` command itself.
  kind: "python" | "command";
  command: string;
}

export interface Found {
  command: string;
  args: string[];
  source: string;
  // What the probe printed (mmlsp's version and location), when probed.
  detail?: string;
}

export interface Tried {
  candidate: Candidate;
  reason: string;
}

export type Discovery = { found: Found; tried: Tried[] } | { found: undefined; tried: Tried[] };

export function onPath(name: string, envPath: string | undefined = process.env.PATH): string | undefined {
  const exts = IS_WINDOWS ? ["", ".exe", ".cmd", ".bat"] : [""];
  for (const dir of (envPath ?? "").split(path.delimiter)) {
    if (!dir) continue;
    for (const ext of exts) {
      const candidate = path.join(dir, name + ext);
      if (isExecutableFile(candidate)) return candidate;
    }
  }
  return undefined;
}

function isExecutableFile(file: string): boolean {
  try {
    fs.accessSync(file, fs.constants.X_OK);
    return fs.statSync(file).isFile();
  } catch {
    return false;
  }
}

function expandHome(value: string): string {
  return value.replace(/^~(?=$|[\\/])/, process.env.HOME ?? process.env.USERPROFILE ?? "~");
}

/** Whether a command names a Python interpreter (python, python3, python3.12, python.exe). */
export function isPython(command: string): boolean {
  return /^python(\d+(\.\d+)*)?(\.exe)?$/i.test(path.basename(command));
}

/** The interpreter inside an environment directory (a venv or conda prefix). */
function interpreterIn(prefix: string): string {
  return IS_WINDOWS ? path.join(prefix, "Scripts", "python.exe") : path.join(prefix, "bin", "python");
}

/** A path that may name an environment directory or an interpreter. */
function asInterpreter(value: string): string {
  const expanded = expandHome(value.trim());
  try {
    if (fs.statSync(expanded).isDirectory()) {
      const inside = interpreterIn(expanded);
      if (fs.existsSync(inside)) return inside;
      if (!IS_WINDOWS && fs.existsSync(path.join(expanded, "python"))) return path.join(expanded, "python");
    }
  } catch {
    // not a directory (or missing: the probe says so)
  }
  if (!path.isAbsolute(expanded) && !expanded.includes(path.sep)) return onPath(expanded) ?? expanded;
  return expanded;
}

/** The command line that starts the server with a candidate. */
export function launch(candidate: Candidate, extra: string[]): { command: string; args: string[] } {
  if (candidate.kind === "python") return { command: candidate.command, args: ["-c", SAFE_RUN, ...extra] };
  return { command: candidate.command, args: extra };
}

// -- the Python extension ---------------------------------------------------------------------

interface PythonEnvironmentApi {
  environments?: {
    getActiveEnvironmentPath(resource?: vscode.Uri): { id?: string; path: string } | undefined;
    resolveEnvironment?(env: unknown): Promise<{ executable?: { uri?: vscode.Uri } } | undefined>;
    onDidChangeActiveEnvironmentPath?: vscode.Event<unknown>;
  };
  ready?: Promise<void>;
}

const PYTHON_EXTENSION = "ms-python.python";

async function pythonApi(): Promise<PythonEnvironmentApi | undefined> {
  const extension = vscode.extensions.getExtension<PythonEnvironmentApi>(PYTHON_EXTENSION);
  if (!extension) return undefined;
  try {
    const api = extension.isActive ? extension.exports : await extension.activate();
    if (api?.ready) await Promise.race([api.ready, new Promise((r) => setTimeout(r, 10_000))]);
    return api;
  } catch {
    return undefined;
  }
}

/** The interpreter the Python extension has selected for the workspace, if any. */
async function selectedInterpreter(): Promise<string | undefined> {
  const api = await pythonApi();
  const environments = api?.environments;
  if (!environments) return undefined;
  try {
    const resource = vscode.workspace.workspaceFolders?.[0]?.uri;
    const active = environments.getActiveEnvironmentPath(resource);
    if (!active?.path) return undefined;
    const resolved = environments.resolveEnvironment ? await environments.resolveEnvironment(active) : undefined;
    return resolved?.executable?.uri?.fsPath ?? asInterpreter(active.path);
  } catch {
    return undefined;
  }
}

/** Calls back when the Python extension's selected interpreter changes. */
export async function onPythonInterpreterChange(listener: () => void): Promise<vscode.Disposable | undefined> {
  const api = await pythonApi();
  const event = api?.environments?.onDidChangeActiveEnvironmentPath;
  return event ? event(() => listener()) : undefined;
}

// -- candidates and probing ------------------------------------------------------------------------

/**
 * Every candidate in order, without the configured serverPath (which the caller handles:
 * it always wins). `env` is the extension host's environment.
 */
export async function candidates(env: NodeJS.ProcessEnv = process.env): Promise<Candidate[]> {
  const out: Candidate[] = [];
  const add = (source: string, kind: Candidate["kind"], command: string | undefined) => {
    if (!command) return;
    if (out.some((c) => c.command === command && c.kind === kind)) return;
    out.push({ source, kind, command });
  };
  const selected = await selectedInterpreter();
  add("the Python extension's selected interpreter", "python", selected);
  // The user's own default interpreter (never a workspace's: opening a folder must not
  // choose what runs). The contributed default "python" means "not set".
  const inspected = vscode.workspace.getConfiguration("python").inspect<string>("defaultInterpreterPath");
  const defaultInterpreter = inspected?.globalValue?.trim();
  if (defaultInterpreter && defaultInterpreter !== "python") {
    add("python.defaultInterpreterPath", "python", asInterpreter(defaultInterpreter));
  }
  if (env.VIRTUAL_ENV) add(`VIRTUAL_ENV (${env.VIRTUAL_ENV})`, "python", interpreterIn(env.VIRTUAL_ENV));
  if (env.CONDA_PREFIX) add(`CONDA_PREFIX (${env.CONDA_PREFIX})`, "python", interpreterIn(env.CONDA_PREFIX));
  add("mmlsp on PATH", "command", onPath("mmlsp", env.PATH));
  add("python3 on PATH", "python", onPath("python3", env.PATH));
  add("python on PATH", "python", onPath("python", env.PATH));
  return out;
}

function run(command: string, args: string[], env: NodeJS.ProcessEnv, cwd: string | undefined): Promise<{ ok: boolean; out: string }> {
  return new Promise((resolve) => {
    execFile(
      command,
      args,
      { env, cwd, timeout: PROBE_TIMEOUT_MS, windowsHide: true, maxBuffer: 1 << 20 },
      (error, stdout, stderr) => {
        if (!error) {
          resolve({ ok: true, out: String(stdout).trim() });
          return;
        }
        const text = `${stderr}`.trim().split("\n").filter(Boolean);
        // The last line of a traceback says what is missing ("No module named 'mmlsp'").
        const why =
          (error as NodeJS.ErrnoException).code === "ENOENT"
            ? "not found"
            : (error as any).killed
              ? `no answer in ${PROBE_TIMEOUT_MS / 1000} s`
              : text[text.length - 1] ?? error.message;
        resolve({ ok: false, out: why });
      },
    );
  });
}

/** The first line of a script, when it is a `#!/abs/path/python...` shebang. */
function shebangInterpreter(script: string): string | undefined {
  try {
    const fd = fs.openSync(script, "r");
    const buffer = Buffer.alloc(512);
    const n = fs.readSync(fd, buffer, 0, buffer.length, 0);
    fs.closeSync(fd);
    const first = buffer.subarray(0, n).toString("utf8").split("\n")[0];
    const match = /^#!\s*(\S+)\s*$/.exec(first);
    if (match && path.isAbsolute(match[1]) && isPython(match[1])) return match[1];
  } catch {
    // unreadable: probe the script itself
  }
  return undefined;
}

/** Whether a candidate can run mmlsp: an empty reason when it can. */
export async function probe(candidate: Candidate, env: NodeJS.ProcessEnv, cwd: string | undefined): Promise<{ ok: boolean; detail: string }> {
  if (candidate.kind === "python") {
    if (path.isAbsolute(candidate.command) && !fs.existsSync(candidate.command)) return { ok: false, detail: "not found" };
    const result = await run(candidate.command, ["-c", PROBE], env, cwd);
    return { ok: result.ok, detail: result.out };
  }
  if (!isExecutableFile(candidate.command)) return { ok: false, detail: "not found or not executable" };
  // A pip-installed `mmlsp` script names its interpreter: probing that is quicker than
  // starting the CLI, and says the same.
  const interpreter = shebangInterpreter(candidate.command);
  if (interpreter) {
    const result = await run(interpreter, ["-c", PROBE], env, cwd);
    return { ok: result.ok, detail: result.ok ? result.out : `its Python ${interpreter}: ${result.out}` };
  }
  const result = await run(candidate.command, ["--version"], env, cwd);
  return { ok: result.ok, detail: result.out };
}

/**
 * The server command: the configured `serverPath` when set (checked, never replaced),
 * else the first candidate that can import mmlsp.
 */
export async function discover(
  configured: string,
  extra: string[],
  env: NodeJS.ProcessEnv,
  cwd: string | undefined,
  log: (line: string) => void,
): Promise<Discovery> {
  const tried: Tried[] = [];
  if (configured.trim()) {
    const expanded = expandHome(configured.trim());
    const resolved = path.isAbsolute(expanded) || expanded.includes("/") ? expanded : onPath(expanded, env.PATH) ?? expanded;
    const candidate: Candidate = { source: "mmlsp.serverPath", kind: isPython(resolved) ? "python" : "command", command: resolved };
    // A configured command that is not Python (a wrapper script, `mmlsp`) is used as
    // given; only check that it exists, so a typo gets a clear message.
    if (candidate.kind === "command") {
      if (!isExecutableFile(resolved)) {
        tried.push({ candidate, reason: "not found or not executable" });
        return { found: undefined, tried };
      }
      return { found: { ...launch(candidate, extra), source: candidate.source }, tried };
    }
    const result = await probe(candidate, env, cwd);
    if (!result.ok) {
      tried.push({ candidate, reason: result.detail });
      return { found: undefined, tried };
    }
    return { found: { ...launch(candidate, extra), source: candidate.source, detail: result.detail }, tried };
  }
  for (const candidate of await candidates(env)) {
    const result = await probe(candidate, env, cwd);
    if (result.ok) {
      log(`using ${candidate.command} (${candidate.source}): mmlsp ${result.detail}`);
      return { found: { ...launch(candidate, extra), source: candidate.source, detail: result.detail }, tried };
    }
    log(`passed over ${candidate.command} (${candidate.source}): ${result.detail}`);
    tried.push({ candidate, reason: result.detail });
  }
  return { found: undefined, tried };
}

/** One message for the user: what was tried, and how to fix it. */
export function notFoundMessage(configured: string, tried: Tried[]): string {
  const list = tried.map((t) => `${t.candidate.command} (${t.candidate.source}: ${t.reason})`).join("; ");
  if (configured.trim()) {
    return (
      `mmlsp: the server cannot start: mmlsp.serverPath is "${configured}", which ` +
      (tried[0]?.reason ? `fails: ${tried[0].reason}. ` : "does not work. ") +
      `Point it at the mmlsp command or the Python of the environment where mmlsp is installed ` +
      `(e.g. /path/to/venv/bin/mmlsp), or clear it to let the extension look for one.`
    );
  }
  return (
    `mmlsp: the server cannot start: no Python with mmlsp installed was found. Tried: ${list || "nothing (no Python on PATH)"}. ` +
    `Install it (pip install mmlsp) into one of them, select the environment that has it with ` +
    `"Python: Select Interpreter", or set mmlsp.serverPath to /path/to/venv/bin/mmlsp.`
  );
}
