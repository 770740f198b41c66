// Next-edit suggestions: the follow-up edit the server predicts after your recent edits,
// anywhere in the lines around the cursor (`mmlsp/nextEdit`, see
// mmlsp/features/next_edit.py).
//
// When it asks: after you edit and pause (DEBOUNCE_MS; once the server's inline
// completion for that spot is done, and not when it shows ghost text), when the cursor
// moves to another line after an edit, right after a suggestion is applied (chained
// suggestions), and on "mmlsp: Next Edit". A newer request cancels the one in flight (its CancellationToken
// goes through the LanguageClient), and an answer for an older document version, or
// for a document that is no longer the active one, is dropped.
//
// How it shows one:
//   * an edit on the cursor's line that only inserts at or after the cursor (extends the
//     line, fills in before a closing bracket) is ghost text: an inline completion with a
//     range, from a provider registered while it shows (so it comes before the server's
//     own completions). Tab accepts it as any inline suggestion;
//   * anything else gets decorations: the removed text struck through on a red
//     background, the inserted text after it (with the count of further lines; the hover
//     has the whole diff), and a hint at the end of the cursor's line. While they show,
//     `mmlsp.nextEditVisible` is set, and `mmlsp.nextEditAway` when the cursor is off the
//     edit's lines: Tab jumps there, then Tab applies; Escape dismisses.
// Applied as one WorkspaceEdit (one undo step); then the server's accept command
// (`mmlsp.acceptNextEdit` with the edit's arguments) runs and the next one is asked for.
// `mmlsp/nextEditShown` goes once per prediction shown.
import * as vscode from "vscode";
import { ExecuteCommandRequest, LanguageClient } from "vscode-languageclient/node";
import {
  Prediction,
  Rng,
  WireCommand,
  changesSomething,
  diffMarkdown,
  editLook,
  ghostFit,
  hintText,
  isAway,
  offsetAfter,
  parsePrediction,
  visibleSpaces,
} from "./nextEditPlan";

export const NEXT_EDIT_REQUEST = "mmlsp/nextEdit";
export const SHOWN_NOTIFICATION = "mmlsp/nextEditShown";
export const ACCEPT_COMMAND = "mmlsp.acceptNextEdit";
export const VISIBLE_KEY = "mmlsp.nextEditVisible";
export const AWAY_KEY = "mmlsp.nextEditAway";
// The extension's commands (the server's own accept command is mmlsp.acceptNextEdit,
// which vscode-languageclient registers as a VS Code command of the same name).
export const COMMANDS = {
  request: "mmlsp.requestNextEdit",
  apply: "mmlsp.applyNextEdit",
  jump: "mmlsp.jumpToNextEdit",
  dismiss: "mmlsp.dismissNextEdit",
  // Run by VS Code after it inserted a next edit shown as ghost text.
  inlineAccepted: "mmlsp.nextEditInlineAccepted",
};
// The pause after an edit before asking.
const DEBOUNCE_MS = 400;

export interface NextEditHost {
  client(): LanguageClient | undefined;
  // Whether the server handles this document (the extension's document selector).
  handles(document: vscode.TextDocument): boolean;
  log: vscode.LogOutputChannel;
}

interface Showing {
  editor: vscode.TextEditor;
  document: vscode.TextDocument;
  version: number;
  prediction: Prediction;
  // Shown as ghost text: the provider that offers it while it shows.
  provider?: vscode.Disposable;
}

const toRange = (r: Rng) => new vscode.Range(r.start.line, r.start.character, r.end.line, r.end.character);

export class NextEdits implements vscode.Disposable {
  private readonly disposables: vscode.Disposable[] = [];
  private readonly removedType: vscode.TextEditorDecorationType;
  private readonly insertedType: vscode.TextEditorDecorationType;
  private readonly hintType: vscode.TextEditorDecorationType;
  private showing: Showing | undefined;
  private pending: vscode.CancellationTokenSource | undefined;
  private timer: ReturnType<typeof setTimeout> | undefined;
  // Where the last edit was, until the cursor leaves that line (then it asks).
  private edited: { document: vscode.TextDocument; line: number } | undefined;
  // The last prediction `mmlsp/nextEditShown` was sent for.
  private lastShown: string | undefined;
  // A prediction dismissed with Escape is not shown again for the same text.
  private dismissed: { document: vscode.TextDocument; version: number; id: unknown } | undefined;
  private applying = false;
  private contextSet = false;
  // The server's inline completions (seen through the client's middleware): the model
  // answers those first. After a pause, a next edit is not asked for while a completion
  // is on its way (it is asked once that one is done), nor when the completion for the
  // current text came back with a suggestion (ghost text shows at the cursor).
  private completing = new Map<vscode.TextDocument, number>();
  private completed: { document: vscode.TextDocument; version: number; shown: boolean } | undefined;
  private waiting: vscode.TextDocument | undefined;

  constructor(private readonly host: NextEditHost) {
    this.removedType = vscode.window.createTextEditorDecorationType({
      backgroundColor: new vscode.ThemeColor("diffEditor.removedTextBackground"),
      textDecoration: "line-through",
      overviewRulerColor: new vscode.ThemeColor("editorOverviewRuler.deletedForeground"),
      overviewRulerLane: vscode.OverviewRulerLane.Right,
    });
    this.insertedType = vscode.window.createTextEditorDecorationType({
      overviewRulerColor: new vscode.ThemeColor("editorOverviewRuler.addedForeground"),
      overviewRulerLane: vscode.OverviewRulerLane.Right,
    });
    this.hintType = vscode.window.createTextEditorDecorationType({});
    this.disposables.push(
      this.removedType,
      this.insertedType,
      this.hintType,
      vscode.commands.registerCommand(COMMANDS.request, () => this.requestCommand()),
      vscode.commands.registerCommand(COMMANDS.apply, () => this.apply()),
      vscode.commands.registerCommand(COMMANDS.jump, () => this.jump()),
      vscode.commands.registerCommand(COMMANDS.dismiss, () => this.dismiss()),
      vscode.commands.registerCommand(COMMANDS.inlineAccepted, (command?: WireCommand) => this.inlineAccepted(command)),
      vscode.workspace.onDidChangeTextDocument((event) => this.onChange(event)),
      vscode.window.onDidChangeTextEditorSelection((event) => this.onSelection(event)),
      vscode.window.onDidChangeActiveTextEditor(() => {
        this.cancel();
        this.clear();
      }),
      vscode.workspace.onDidCloseTextDocument((document) => {
        this.completing.delete(document);
        if (this.completed?.document === document) this.completed = undefined;
        if (this.showing?.document === document) this.clear();
        if (this.edited?.document === document) this.edited = undefined;
      }),
      vscode.workspace.onDidChangeConfiguration((event) => {
        if (event.affectsConfiguration("mmlsp.nextEdit") && this.showing && !this.enabled(this.showing.document)) {
          this.cancel();
          this.clear();
        }
      }),
    );
  }

  dispose(): void {
    this.cancel();
    this.clear();
    for (const d of this.disposables) d.dispose();
  }

  // -- when to ask ------------------------------------------------------------------------

  private enabled(document: vscode.TextDocument): boolean {
    return vscode.workspace.getConfiguration("mmlsp", document).get<boolean>("nextEdit", true) !== false;
  }

  private usable(editor: vscode.TextEditor | undefined): editor is vscode.TextEditor {
    if (!editor || editor.document.isClosed) return false;
    const client = this.host.client();
    return !!client && client.isRunning() && this.host.handles(editor.document) && this.enabled(editor.document);
  }

  private onChange(event: vscode.TextDocumentChangeEvent): void {
    if (this.applying || event.contentChanges.length === 0) return;
    const editor = vscode.window.activeTextEditor;
    if (!editor || event.document !== editor.document) {
      if (this.showing?.document === event.document) this.clear();
      return;
    }
    // The shown edit was for the old text (typing what it proposed gets the rest of it
    // from the server, without a model call).
    this.cancel();
    this.clear();
    if (event.reason === vscode.TextDocumentChangeReason.Undo || event.reason === vscode.TextDocumentChangeReason.Redo) {
      this.edited = undefined;
      return;
    }
    if (!this.usable(editor)) return;
    const change = event.contentChanges[event.contentChanges.length - 1];
    const line = change.range.start.line + change.text.split("\n").length - 1;
    this.edited = { document: event.document, line };
    this.schedule(editor.document, DEBOUNCE_MS);
  }

  private onSelection(event: vscode.TextEditorSelectionChangeEvent): void {
    if (event.textEditor !== vscode.window.activeTextEditor) return;
    const line = event.selections[0]?.active.line;
    if (this.showing && this.showing.document === event.textEditor.document && !this.showing.provider) {
      this.showing.editor = event.textEditor;
      this.render();
    }
    const edited = this.edited;
    if (edited && edited.document === event.textEditor.document && line !== undefined && line !== edited.line) {
      // Moved to another line after an edit: ask now, from there.
      this.edited = undefined;
      void this.request(event.textEditor, "moved to another line after an edit");
    }
  }

  private schedule(document: vscode.TextDocument, delay: number): void {
    if (this.timer) clearTimeout(this.timer);
    this.timer = setTimeout(() => {
      this.timer = undefined;
      const editor = vscode.window.activeTextEditor;
      if (editor?.document !== document) return;
      if (this.completing.get(document)) {
        this.waiting = document;
        return;
      }
      const completed = this.completed;
      if (completed?.shown && completed.document === document && completed.version === document.version) {
        this.host.log.debug("next edit: not asked, an inline completion shows at the cursor");
        return;
      }
      void this.request(editor, "pause after an edit");
    }, delay);
  }

  /** An inline completion request of the server's started (client middleware). */
  completionStarted(document: vscode.TextDocument): void {
    this.completing.set(document, (this.completing.get(document) ?? 0) + 1);
  }

  /** ... and ended; `shown`: it answered with a suggestion for `version` of the text. */
  completionFinished(document: vscode.TextDocument, version: number, shown: boolean): void {
    const left = (this.completing.get(document) ?? 1) - 1;
    if (left > 0) this.completing.set(document, left);
    else this.completing.delete(document);
    this.completed = { document, version, shown };
    if (left <= 0 && this.waiting === document) {
      this.waiting = undefined;
      this.schedule(document, 50);
    }
  }

  private cancel(): void {
    if (this.timer) clearTimeout(this.timer);
    this.timer = undefined;
    this.waiting = undefined;
    this.pending?.cancel();
    this.pending = undefined;
  }

  /** Asks for a next edit at the cursor; whether one is shown. */
  async request(editor: vscode.TextEditor, why: string, explicit = false): Promise<boolean> {
    this.cancel();
    if (!this.usable(editor)) return false;
    const client = this.host.client()!;
    const document = editor.document;
    const version = document.version;
    const position = editor.selection.active;
    const source = new vscode.CancellationTokenSource();
    this.pending = source;
    this.host.log.debug(`next edit: asking at ${position.line + 1}:${position.character + 1} (version ${version}, ${why})`);
    let result: unknown;
    try {
      result = await client.sendRequest(
        NEXT_EDIT_REQUEST,
        {
          textDocument: { uri: client.code2ProtocolConverter.asUri(document.uri), version },
          position: { line: position.line, character: position.character },
        },
        source.token,
      );
    } catch (error: any) {
      if (!source.token.isCancellationRequested) this.host.log.debug(`${NEXT_EDIT_REQUEST} failed: ${error?.message ?? error}`);
      return false;
    } finally {
      if (this.pending === source) this.pending = undefined;
    }
    const cancelled = source.token.isCancellationRequested;
    source.dispose();
    // Superseded, or the text changed meanwhile: the answer is for text that is gone.
    if (cancelled || document.isClosed || document.version !== version) {
      this.host.log.debug(`next edit: answer for version ${version} dropped (${cancelled ? "superseded" : "the text changed"})`);
      return false;
    }
    const active = vscode.window.activeTextEditor;
    if (!active || active.document !== document) return false;
    const prediction = parsePrediction(result);
    if (!prediction) return false;
    if (prediction.version !== undefined && prediction.version !== version) return false;
    const last = document.lineCount - 1;
    if (prediction.edits.some((e) => e.range.end.line > last)) return false;
    if (!changesSomething(prediction.edits, (r) => document.getText(toRange(r)))) return false;
    // Escape dismissed this one: not again for the same text, unless asked for.
    const dismissed = this.dismissed;
    if (!explicit && dismissed && dismissed.document === document && dismissed.version === version && dismissed.id === prediction.id) return false;
    this.show(active, prediction, version);
    return true;
  }

  // -- showing it ----------------------------------------------------------------------------

  private show(editor: vscode.TextEditor, prediction: Prediction, version: number): void {
    this.clear();
    // Shown for this text: moving to its line (Tab) is no reason to ask again.
    this.edited = undefined;
    const document = editor.document;
    const showing: Showing = { editor, document, version, prediction };
    this.showing = showing;
    const cursor = editor.selection.active;
    const ghostOn = vscode.workspace.getConfiguration("editor", document).get<boolean>("inlineSuggest.enabled", true);
    const fit =
      ghostOn && editor.selection.isEmpty
        ? ghostFit(document.lineAt(cursor.line).text, cursor.line, cursor.character, prediction.edits)
        : undefined;
    this.host.log.debug(
      `next edit ${prediction.id}: ${prediction.edits.length} edit(s) from line ${prediction.edits[0].range.start.line + 1}, ` +
        (fit ? "as ghost text" : "as decorations"),
    );
    if (fit) {
      // Registered while it shows, so that it is the newest inline completion provider:
      // VS Code shows its item before the server's own completion.
      showing.provider = vscode.languages.registerInlineCompletionItemProvider(
        { scheme: document.uri.scheme, language: document.languageId },
        { provideInlineCompletionItems: (doc, position) => this.ghostItems(doc, position) },
      );
      void vscode.commands.executeCommand("editor.action.inlineSuggest.trigger");
      return;
    }
    this.render();
    this.markShown(prediction);
  }

  private ghostItems(document: vscode.TextDocument, position: vscode.Position): vscode.InlineCompletionItem[] | undefined {
    const showing = this.showing;
    if (!showing?.provider || showing.document !== document || document.version !== showing.version) return undefined;
    const line = document.lineAt(position.line).text;
    const fit = ghostFit(line, position.line, position.character, showing.prediction.edits);
    if (!fit) return undefined;
    const item = new vscode.InlineCompletionItem(fit.insertText, new vscode.Range(position.line, fit.start, position.line, fit.end), {
      title: "Accept next edit",
      command: COMMANDS.inlineAccepted,
      arguments: [showing.prediction.command],
    });
    this.markShown(showing.prediction);
    return [item];
  }

  /** Draws the decorations and the hint of the prediction shown (again, when the cursor moves). */
  private render(): void {
    const showing = this.showing;
    if (!showing || showing.provider) return;
    const { editor, document, prediction } = showing;
    const hover = new vscode.MarkdownString(diffMarkdown(prediction.edits, (n) => document.lineAt(n).text));
    const removed: vscode.DecorationOptions[] = [];
    const inserted: vscode.DecorationOptions[] = [];
    for (const edit of prediction.edits) {
      const range = toRange(edit.range);
      const look = editLook(edit);
      if (look.removes) removed.push({ range, hoverMessage: hover });
      const more = look.extraLines ? `  (+${look.extraLines} more line${look.extraLines === 1 ? "" : "s"})` : "";
      if (look.label || more) {
        inserted.push({
          range: new vscode.Range(range.end, range.end),
          hoverMessage: hover,
          renderOptions: {
            after: {
              contentText: visibleSpaces(look.label + more),
              backgroundColor: new vscode.ThemeColor("diffEditor.insertedTextBackground"),
              border: "1px solid",
              borderColor: new vscode.ThemeColor("diffEditor.insertedLineBackground"),
            },
          },
        });
      }
    }
    const cursorLine = editor.selection.active.line;
    const end = document.lineAt(cursorLine).range.end;
    const hint: vscode.DecorationOptions = {
      range: new vscode.Range(end, end),
      hoverMessage: hover,
      renderOptions: {
        after: {
          contentText: visibleSpaces(hintText(cursorLine, prediction.edits)),
          color: new vscode.ThemeColor("editorCodeLens.foreground"),
          fontStyle: "italic",
          margin: "0 0 0 2em",
        },
      },
    };
    editor.setDecorations(this.removedType, removed);
    editor.setDecorations(this.insertedType, inserted);
    editor.setDecorations(this.hintType, [hint]);
    this.setContext(true, isAway(cursorLine, prediction.edits));
  }

  private setContext(visible: boolean, away: boolean): void {
    if (!visible && !this.contextSet) return;
    this.contextSet = visible;
    void vscode.commands.executeCommand("setContext", VISIBLE_KEY, visible);
    void vscode.commands.executeCommand("setContext", AWAY_KEY, away);
  }

  private markShown(prediction: Prediction): void {
    const key = `${prediction.uri}#${prediction.id}`;
    if (prediction.id === undefined || key === this.lastShown) return;
    this.lastShown = key;
    const client = this.host.client();
    if (client?.isRunning()) void client.sendNotification(SHOWN_NOTIFICATION, { id: prediction.id }).catch(() => undefined);
  }

  /** Takes the shown prediction off the screen. */
  clear(): void {
    const showing = this.showing;
    this.showing = undefined;
    if (showing) {
      showing.provider?.dispose();
      const editors = new Set([showing.editor, ...vscode.window.visibleTextEditors.filter((e) => e.document === showing.document)]);
      for (const editor of editors) {
        editor.setDecorations(this.removedType, []);
        editor.setDecorations(this.insertedType, []);
        editor.setDecorations(this.hintType, []);
      }
    }
    this.setContext(false, false);
  }

  // -- the commands -----------------------------------------------------------------------------

  private async requestCommand(): Promise<void> {
    const editor = vscode.window.activeTextEditor;
    if (!editor) return;
    if (!this.enabled(editor.document)) {
      void vscode.window.showInformationMessage("mmlsp: next-edit suggestions are off (setting mmlsp.nextEdit).");
      return;
    }
    if (!this.usable(editor)) {
      void vscode.window.showWarningMessage("mmlsp: open a file the server handles first (is the server running?)");
      return;
    }
    const message = vscode.window.setStatusBarMessage("$(sync~spin) mmlsp: asking for a next edit…");
    const shown = await this.request(editor, "command", true);
    message.dispose();
    if (!shown && !this.showing) vscode.window.setStatusBarMessage("mmlsp: no next edit suggested here", 4000);
  }

  /** Tab away from the edit: the cursor goes to where the edit starts. */
  private jump(): void {
    const showing = this.showing;
    if (!showing || showing.provider) return;
    const editor = vscode.window.activeTextEditor;
    if (!editor || editor.document !== showing.document) return;
    const start = toRange(showing.prediction.edits[0].range).start;
    editor.selection = new vscode.Selection(start, start);
    editor.revealRange(new vscode.Range(start, start), vscode.TextEditorRevealType.InCenterIfOutsideViewport);
  }

  private dismiss(): void {
    const showing = this.showing;
    if (showing) this.dismissed = { document: showing.document, version: showing.version, id: showing.prediction.id };
    this.cancel();
    this.clear();
  }

  /** Applies the shown prediction: one WorkspaceEdit, then the accept command, then the next one. */
  async apply(): Promise<boolean> {
    const showing = this.showing;
    if (!showing) {
      vscode.window.setStatusBarMessage("mmlsp: no next edit is shown", 3000);
      return false;
    }
    if (showing.provider) {
      await vscode.commands.executeCommand("editor.action.inlineSuggest.commit");
      return true;
    }
    const { document, prediction } = showing;
    if (document.version !== showing.version) {
      this.clear();
      return false;
    }
    const edit = new vscode.WorkspaceEdit();
    const offsets = prediction.edits.map((e) => {
      const range = toRange(e.range);
      edit.replace(document.uri, range, e.text);
      return { start: document.offsetAt(range.start), end: document.offsetAt(range.end), text: e.text };
    });
    this.cancel();
    this.clear();
    this.applying = true;
    let applied = false;
    try {
      applied = await vscode.workspace.applyEdit(edit);
    } finally {
      this.applying = false;
    }
    if (!applied) return false;
    this.edited = undefined;
    // The cursor goes to the end of the (last) edit.
    const editor = vscode.window.activeTextEditor;
    if (editor?.document === document) {
      const at = document.positionAt(offsetAfter(offsets));
      editor.selection = new vscode.Selection(at, at);
      editor.revealRange(new vscode.Range(at, at), vscode.TextEditorRevealType.InCenterIfOutsideViewport);
    }
    await this.accepted(prediction.command);
    if (editor?.document === document) void this.request(editor, "after an accepted one");
    return true;
  }

  /** VS Code inserted a next edit shown as ghost text. */
  private async inlineAccepted(command: WireCommand | undefined): Promise<void> {
    this.edited = undefined;
    this.clear();
    await this.accepted(command);
    const editor = vscode.window.activeTextEditor;
    if (editor) void this.request(editor, "after an accepted one");
  }

  /** Tells the server its prediction was applied (`mmlsp.acceptNextEdit`). */
  private async accepted(command: WireCommand | undefined): Promise<void> {
    const client = this.host.client();
    if (!command || !client?.isRunning()) return;
    try {
      await client.sendRequest(ExecuteCommandRequest.type, {
        command: command.command || ACCEPT_COMMAND,
        arguments: command.arguments ?? [],
      });
    } catch (error: any) {
      this.host.log.warn(`${command.command} failed: ${error?.message ?? error}`);
    }
  }
}
