// The status bar item: server and model state, from polling `mmlsp/status`.
import * as vscode from "vscode";

/** The engine state part of mmlsp/status (see mmlsp/engine/host.py Status). */
export interface EngineStatus {
  state?: "idle" | "loading" | "ready" | "failed";
  model?: string | null;
  device?: string | null;
  dtype?: string | null;
  template?: string | null;
  message?: string;
  load_seconds?: number | null;
  last_latency_ms?: number | null;
  last_finish_reason?: string | null;
  last_generated_tokens?: number | null;
  generations?: number;
  cancelled?: number;
}

export interface ServerStatus extends EngineStatus {
  chat?: EngineStatus;
  version?: string;
  settings?: Record<string, unknown>;
  completion?: Record<string, unknown>;
  // Next-edit suggestions (mmlsp/features/next_edit.py stats): counts by event.
  nextEdit?: { enabled?: boolean; format?: string; requests?: number; predicted?: number; shown?: number; accepted?: number };
}

export type ClientPhase = "stopped" | "starting" | "running" | "error";

export function shortModel(model: string | null | undefined): string {
  if (!model) return "no model";
  const trimmed = model.replace(/[\\/]+$/, "");
  const parts = trimmed.split(/[\\/]/);
  return parts[parts.length - 1] || trimmed;
}

function percent(message: string | undefined): string {
  const match = /(\d{1,3})\s*%/.exec(message ?? "");
  return match ? ` ${match[1]}%` : "";
}

/** One-paragraph summary for the status command and the tooltip. */
export function describe(status: ServerStatus | undefined, phase: ClientPhase): string[] {
  if (!status) return [`mmlsp server: ${phase}`];
  const lines = [
    `mmlsp ${status.version ?? "?"} — model ${status.model ?? "(none)"}: ${status.state ?? "?"}` +
      (status.message && status.message !== status.state ? ` (${status.message})` : ""),
    `device: ${status.device ?? "-"}, dtype: ${status.dtype ?? "-"}, FIM template: ${status.template ?? "-"}`,
    `load time: ${status.load_seconds != null ? status.load_seconds.toFixed(1) + " s" : "-"}, ` +
      `last latency: ${status.last_latency_ms != null ? Math.round(status.last_latency_ms) + " ms" : "-"}, ` +
      `generations: ${status.generations ?? 0}`,
  ];
  // A separate chat model only when chatModel names another model.
  if (status.chat && status.chat.state && status.chat.state !== "idle" && status.chat.model !== status.model) {
    lines.push(
      `chat model ${status.chat.model ?? "-"}: ${status.chat.state}` +
        (status.chat.message && status.chat.message !== status.chat.state ? ` (${status.chat.message})` : ""),
    );
  }
  const next = status.nextEdit;
  if (next && next.enabled !== undefined) {
    lines.push(
      next.enabled
        ? `next edits: on (${next.format || "format not chosen yet"}), ${next.requests ?? 0} asked, ` +
            `${next.predicted ?? 0} predicted, ${next.shown ?? 0} shown, ${next.accepted ?? 0} accepted`
        : "next edits: off",
    );
  }
  return lines;
}

export class StatusBar implements vscode.Disposable {
  readonly item: vscode.StatusBarItem;
  private status: ServerStatus | undefined;
  private currentPhase: ClientPhase = "stopped";
  // The server's latest $/progress report while the model loads.
  private progressText: string | undefined;

  constructor() {
    this.item = vscode.window.createStatusBarItem("mmlsp.status", vscode.StatusBarAlignment.Right, 100);
    this.item.name = "mmlsp";
    this.item.command = "mmlsp.showStatus";
    this.render();
    this.item.show();
  }

  get phase(): ClientPhase {
    return this.currentPhase;
  }

  get last(): ServerStatus | undefined {
    return this.status;
  }

  // Why the phase is "error", for the status bar ("server not found").
  private reason: string | undefined;

  setPhase(phase: ClientPhase, reason?: string): void {
    this.currentPhase = phase;
    this.reason = phase === "error" ? reason : undefined;
    if (phase !== "running") this.status = undefined;
    this.render();
  }

  update(status: ServerStatus | undefined): void {
    this.status = status;
    this.render();
  }

  progress(message: string | undefined, percentage: number | undefined): void {
    // A model path is long: the status bar shows its last part (the tooltip has it all).
    let text = message ?? "";
    if (/[\\/]/.test(text) && !/\s/.test(text)) text = shortModel(text);
    if (text.length > 40) text = text.slice(0, 39) + "…";
    this.progressText =
      message === undefined && percentage === undefined
        ? undefined
        : `${percentage !== undefined ? percentage + "% " : ""}${text}`.trim();
    if (this.progressText !== undefined && this.status && this.status.state !== "loading") {
      this.status = { ...this.status, state: "loading" };
    }
    this.render();
  }

  /** Whether the model is still on its way (poll faster). */
  get busy(): boolean {
    return this.currentPhase === "starting" || this.status?.state === "loading" || this.status === undefined;
  }

  private render(): void {
    const item = this.item;
    item.backgroundColor = undefined;
    const s = this.status;
    if (this.currentPhase === "stopped") {
      item.text = "$(circle-slash) mmlsp: stopped";
    } else if (this.currentPhase === "error") {
      item.text = `$(error) mmlsp: ${this.reason ?? "server error"}`;
      item.backgroundColor = new vscode.ThemeColor("statusBarItem.errorBackground");
    } else if (this.currentPhase === "starting" || !s) {
      item.text = this.progressText ? `$(sync~spin) mmlsp: loading ${this.progressText}` : "$(sync~spin) mmlsp: starting";
    } else if (s.state === "loading") {
      item.text = `$(sync~spin) mmlsp: loading` + (this.progressText ? ` ${this.progressText}` : percent(s.message));
    } else if (s.state === "ready") {
      item.text = `$(check) mmlsp: ${shortModel(s.model)}` + (s.device ? ` (${s.device})` : "");
    } else if (s.state === "failed") {
      item.text = "$(error) mmlsp: model failed";
      item.backgroundColor = new vscode.ThemeColor("statusBarItem.errorBackground");
    } else {
      item.text = "$(circle-outline) mmlsp: idle";
    }
    const tip = new vscode.MarkdownString(describe(s, this.currentPhase).join("  \n"));
    tip.appendMarkdown("\n\n_Click for details._");
    item.tooltip = tip;
  }

  dispose(): void {
    this.item.dispose();
  }
}
