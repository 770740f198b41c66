// Which `mmlsp.*` settings go to the server, and how they are sent.
//
// Every `mmlsp.*` setting contributed in package.json is a server setting (the
// camelCase key after `mmlsp.`, as mmlsp/config.py spells it), except the client's own
// keys below. Adding a server option therefore only needs a new entry in package.json.
import * as vscode from "vscode";

export const SECTION = "mmlsp";

// Server options the server takes only from its own command line or environment (its
// USER_LEVEL_ONLY: they decide where code is sent and with which key), never from
// settings it is sent: the extension passes the user's own values as these flags.
export const FLAG_KEYS: Record<string, string> = {
  backend: "--backend",
  baseUrl: "--base-url",
  apiKeyEnv: "--api-key-env",
};

// Settings the extension uses itself; they are never sent to the server.
export const CLIENT_KEYS = new Set([
  "serverPath",
  "serverArgs",
  "serverEnv",
  "languages",
  "trustRemoteCode",
  ...Object.keys(FLAG_KEYS),
  "trace",
  "trace.server",
]);

// Client keys whose change needs a new server process (or a new client).
export const RESTART_KEYS = ["serverPath", "serverArgs", "serverEnv", "languages", "trustRemoteCode", ...Object.keys(FLAG_KEYS)];

/** The flags for the user's own values of FLAG_KEYS (unset or empty: none). */
export function userFlags(): string[] {
  const flags: string[] = [];
  for (const [key, flag] of Object.entries(FLAG_KEYS)) {
    const value = vscode.workspace.getConfiguration(SECTION).inspect<string>(key)?.globalValue;
    if (typeof value === "string" && value.trim()) flags.push(flag, value.trim());
  }
  return flags;
}

// String settings where "" is a real value (chatModel: "" = same as model). For every
// other string setting an empty string means "not set": it is not sent.
const MAY_BE_EMPTY = new Set(["chatModel"]);

export type ServerSettings = Record<string, unknown>;

interface PropertySchema {
  default?: unknown;
  scope?: string;
}

export interface KeyInfo {
  // The default contributed in package.json (the server's own default).
  default: unknown;
  // Scope "machine" or "application": only the user's own settings count, never a
  // workspace's (what runs, and where code is sent, is the user's decision).
  userOnly: boolean;
}

export type Keys = Map<string, KeyInfo>;

/** The server setting keys, their contributed defaults and scopes, from package.json. */
export function serverKeys(packageJSON: any): Keys {
  const props: Record<string, PropertySchema> =
    packageJSON?.contributes?.configuration?.properties ?? {};
  const keys: Keys = new Map();
  for (const [name, schema] of Object.entries(props)) {
    if (!name.startsWith(SECTION + ".")) continue;
    const key = name.slice(SECTION.length + 1);
    if (CLIENT_KEYS.has(key) || CLIENT_KEYS.has(key.split(".")[0])) continue;
    keys.set(key, {
      default: schema.default,
      userOnly: schema.scope === "machine" || schema.scope === "application",
    });
  }
  return keys;
}

/** A setting from the user's own settings only (workspace values are ignored). */
export function userValue<T>(key: string, fallback: T): T {
  const info = vscode.workspace.getConfiguration(SECTION).inspect<T>(key);
  return info?.globalValue ?? info?.defaultValue ?? fallback;
}

function usable(key: string, value: unknown): boolean {
  if (value === undefined || value === null) return false;
  if (typeof value === "string" && value.trim() === "" && !MAY_BE_EMPTY.has(key)) return false;
  return true;
}

/** Values the user set explicitly (user, workspace or folder settings). */
export function explicitSettings(keys: Keys): ServerSettings {
  const config = vscode.workspace.getConfiguration(SECTION);
  const out: ServerSettings = {};
  for (const [key, spec] of keys) {
    const info = config.inspect(key);
    if (!info) continue;
    if (spec.userOnly) {
      if (info.globalValue !== undefined && usable(key, info.globalValue)) out[key] = info.globalValue;
      continue;
    }
    const set =
      info.workspaceFolderValue !== undefined ||
      info.workspaceValue !== undefined ||
      info.globalValue !== undefined ||
      (info as any).workspaceFolderLanguageValue !== undefined ||
      (info as any).workspaceLanguageValue !== undefined ||
      (info as any).globalLanguageValue !== undefined;
    const value = config.get(key);
    if (set && usable(key, value)) out[key] = value;
  }
  return out;
}

/** Every server setting's effective value (explicit or contributed default). */
export function effectiveSettings(keys: Keys): ServerSettings {
  const config = vscode.workspace.getConfiguration(SECTION);
  const out: ServerSettings = {};
  for (const [key, spec] of keys) {
    const value = spec.userOnly ? userValue(key, spec.default) : config.get(key);
    if (usable(key, value)) out[key] = value;
  }
  return out;
}

/**
 * What to send on didChangeConfiguration: the explicit values, plus the contributed
 * default for each key that was set before and no longer is (so removing a setting
 * takes the server back to its default instead of keeping the old value).
 */
export function changedSettings(keys: Keys, previous: ServerSettings): ServerSettings {
  const now = explicitSettings(keys);
  for (const key of Object.keys(previous)) {
    if (!(key in now)) {
      const fallback = keys.get(key)?.default;
      if (usable(key, fallback)) now[key] = fallback;
    }
  }
  return now;
}
