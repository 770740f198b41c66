// The pure part of next-edit suggestions (no `vscode` import, so that e2e/unit.mjs can
// check it in plain node): reading the server's answer, deciding whether an edit can be
// shown as ghost text, what the decorations say, and where the cursor lands after one
// is applied. nextEdit.ts does the editor side.

export interface Pos {
  line: number;
  character: number;
}

export interface Rng {
  start: Pos;
  end: Pos;
}

export interface WireCommand {
  title?: string;
  command: string;
  arguments?: unknown[];
}

/** One edit of `mmlsp/nextEdit`'s answer. */
export interface WireEdit {
  text: string;
  range: Rng;
  textDocument?: { uri?: string; version?: number | null };
  command?: WireCommand;
}

/** One prediction: the edits the server answered, for one document version. */
export interface Prediction {
  uri: string | undefined;
  version: number | undefined;
  // The prediction's id (the accept command's argument), for `mmlsp/nextEditShown`.
  id: number | string | undefined;
  edits: WireEdit[];
  // The command to run once it is applied (`mmlsp.acceptNextEdit` with `[{uri, id}]`).
  command: WireCommand | undefined;
}

const isInt = (n: unknown): n is number => typeof n === "number" && Number.isInteger(n) && n >= 0;

function isPos(p: any): p is Pos {
  return !!p && isInt(p.line) && isInt(p.character);
}

function before(a: Pos, b: Pos): boolean {
  return a.line < b.line || (a.line === b.line && a.character < b.character);
}

/**
 * The prediction in a `mmlsp/nextEdit` result, or undefined when there is none
 * (`edits: []`) or the answer is malformed (missing fields, ranges out of order or
 * overlapping: nothing is applied that the client cannot apply in one go).
 */
export function parsePrediction(result: unknown): Prediction | undefined {
  const raw = (result as any)?.edits;
  if (!Array.isArray(raw) || raw.length === 0) return undefined;
  const edits: WireEdit[] = [];
  for (const e of raw) {
    if (!e || typeof e.text !== "string" || !isPos(e.range?.start) || !isPos(e.range?.end)) return undefined;
    if (before(e.range.end, e.range.start)) return undefined;
    const previous = edits[edits.length - 1];
    if (previous && before(e.range.start, previous.range.end)) return undefined;
    edits.push(e as WireEdit);
  }
  const first = edits[0];
  const command = edits.find((e) => e.command && typeof e.command.command === "string")?.command;
  const argument = command?.arguments?.[0] as any;
  const id = typeof argument?.id === "number" || typeof argument?.id === "string" ? argument.id : undefined;
  const version = first.textDocument?.version;
  return {
    uri: typeof first.textDocument?.uri === "string" ? first.textDocument.uri : undefined,
    version: typeof version === "number" ? version : undefined,
    id,
    edits,
    command,
  };
}

/** A prediction that changes nothing (every edit puts back what is there) is not shown. */
export function changesSomething(edits: WireEdit[], textAt: (range: Rng) => string): boolean {
  return edits.some((e) => textAt(e.range) !== e.text);
}

export interface GhostFit {
  // The replaced part of the cursor's line (columns), and what replaces it.
  start: number;
  end: number;
  insertText: string;
}

/**
 * Whether a prediction can be shown as ghost text (an inline completion with a range):
 * one edit, on the cursor's line, that leaves the text before the cursor as it is and
 * only inserts (one piece, at or after the cursor) into the rest of the line: it extends
 * the line, or fills in before a closing bracket. Other edits get decorations.
 */
export function ghostFit(lineText: string, line: number, cursor: number, edits: WireEdit[]): GhostFit | undefined {
  if (edits.length !== 1) return undefined;
  const { range, text } = edits[0];
  if (range.start.line !== line || range.end.line !== line) return undefined;
  const s = range.start.character;
  const e = range.end.character;
  if (e > lineText.length || cursor > lineText.length) return undefined;
  const lo = Math.min(s, cursor);
  const hi = Math.max(e, cursor);
  const old = lineText.slice(lo, hi);
  const replaced = lineText.slice(lo, s) + text + lineText.slice(e, hi);
  const c = cursor - lo;
  if (replaced.slice(0, c) !== old.slice(0, c)) return undefined;
  const oldRest = old.slice(c);
  const newRest = replaced.slice(c);
  if (newRest.length <= oldRest.length) return undefined;
  let k = 0;
  while (k < oldRest.length && oldRest[k] === newRest[k]) k++;
  if (!newRest.endsWith(oldRest.slice(k))) return undefined;
  return { start: lo, end: hi, insertText: replaced };
}

/** Spaces shown in an `after` decoration (CSS would collapse them). */
export function visibleSpaces(text: string): string {
  return text.replace(/\t/g, "    ").replace(/ /g, "\u00a0");
}

export interface EditLook {
  // The text that goes (struck through), when the edit removes any.
  removes: boolean;
  // What the inserted text shows as, after the edit's end ("" for a pure deletion).
  label: string;
  // Lines of inserted text beyond the one shown.
  extraLines: number;
}

const LABEL_MAX = 80;

/**
 * How one edit is drawn: the removed range struck through, and the inserted text after
 * it: its first line (the first non-blank one when it starts with a line break), with
 * the count of further lines; the hover has all of it.
 */
export function editLook(edit: WireEdit): EditLook {
  const removes = before(edit.range.start, edit.range.end);
  let pieces = edit.text.split(/\r?\n/);
  // A whole line inserted at a line start ends with its line break: that is no extra line.
  if (pieces.length > 1 && pieces[pieces.length - 1] === "" && edit.range.start.character === 0) pieces = pieces.slice(0, -1);
  if (edit.text === "") return { removes, label: "", extraLines: 0 };
  const shown = pieces.findIndex((p) => p.trim() !== "");
  const index = shown < 0 ? 0 : shown;
  let label = pieces[index];
  // Leading indentation of a new line says little next to existing text.
  if (index > 0 || edit.range.start.character === 0) label = label.trimStart();
  if (index > 0) label = "⏎ " + label;
  // New lines before a line's text: mark where they end.
  if (edit.range.start.character === 0 && /\n$/.test(edit.text) && pieces.length === 1) label += " ⏎";
  if (label.length > LABEL_MAX) label = label.slice(0, LABEL_MAX - 1) + "…";
  return { removes, label, extraLines: pieces.length - 1 };
}

/** The lines a prediction touches: from its first edit's start to its last edit's end. */
export function editSpan(edits: WireEdit[]): { first: number; last: number } {
  return { first: edits[0].range.start.line, last: edits[edits.length - 1].range.end.line };
}

/** Whether the cursor is off the lines the prediction touches (Tab jumps, then applies). */
export function isAway(cursorLine: number, edits: WireEdit[]): boolean {
  const { first, last } = editSpan(edits);
  return cursorLine < first || cursorLine > last;
}

/** The hint at the cursor's line. */
export function hintText(cursorLine: number, edits: WireEdit[]): string {
  if (!isAway(cursorLine, edits)) return "Tab: apply the suggested edit · Esc: dismiss";
  const { first } = editSpan(edits);
  const arrow = first < cursorLine ? "↑" : "↓";
  return `${arrow} suggested edit at line ${first + 1} · Tab: go there · Esc: dismiss`;
}

/**
 * Where the end of the last edit is once all are applied, as an offset in the new
 * text: each edit is `{start, end}` offsets in the old text (in document order) and its
 * new text.
 */
export function offsetAfter(edits: { start: number; end: number; text: string }[]): number {
  let shift = 0;
  for (let i = 0; i < edits.length - 1; i++) shift += edits[i].text.length - (edits[i].end - edits[i].start);
  const last = edits[edits.length - 1];
  return last.start + shift + last.text.length;
}

/**
 * A Markdown diff of one prediction, for the decorations' hover: the whole lines each
 * edit touches, before and after. `lineText(n)` is line n of the document.
 */
export function diffMarkdown(edits: WireEdit[], lineText: (line: number) => string): string {
  const lines: string[] = [];
  for (const { range, text } of edits) {
    const old: string[] = [];
    for (let n = range.start.line; n <= range.end.line; n++) old.push(lineText(n));
    const prefix = old[0].slice(0, range.start.character);
    const suffix = old[old.length - 1].slice(range.end.character);
    const replaced = (prefix + text + suffix).split(/\r?\n/);
    for (const l of old) lines.push(`- ${l}`);
    for (const l of replaced) lines.push(`+ ${l}`);
  }
  const fence = lines.some((l) => l.includes("```")) ? "~~~~" : "```";
  return `**Suggested edit** (Tab: apply, Esc: dismiss)\n\n${fence}diff\n${lines.join("\n")}\n${fence}\n`;
}
