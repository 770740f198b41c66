// Explanations shown as rendered Markdown.
//
// The server can show an explanation itself (window/showDocument of a temporary .md
// file), but VS Code opens such a file as source text (raw `**` and `<sub>` tags), and
// after a server restart the file is gone and the tab shows it as deleted. The
// extension therefore asks for the Markdown only (`mmlsp.explain` with `{"show": false}`)
// and keeps it in a virtual document of its own scheme, shown in VS Code's Markdown
// preview. The documents live in the extension, so they outlive server restarts.
import * as vscode from "vscode";
import { tidyMarkdown } from "./markdown";

export const SCHEME = "mmlsp-explain";
// Explanations kept for the preview (the oldest are dropped beyond this).
const KEEP = 20;

export class ExplanationStore implements vscode.TextDocumentContentProvider, vscode.Disposable {
  private readonly docs = new Map<string, string>();
  private readonly changed = new vscode.EventEmitter<vscode.Uri>();
  readonly onDidChange = this.changed.event;
  private counter = 0;

  provideTextDocumentContent(uri: vscode.Uri): string {
    return (
      this.docs.get(uri.toString()) ??
      "# Explanation no longer available\n\nThe editor was reloaded since it was written. Run *mmlsp: Explain Selection with AI* again.\n"
    );
  }

  /** A new virtual document holding the explanation; its name follows the title. */
  add(title: string, markdown: string): vscode.Uri {
    this.counter += 1;
    const name = (title.replace(/[`\s]+/g, " ").trim().replace(/[^\w. -]+/g, "_") || "explanation").slice(0, 60);
    const uri = vscode.Uri.from({ scheme: SCHEME, path: `/${this.counter}/Explanation of ${name}.md` });
    this.docs.set(uri.toString(), tidyMarkdown(markdown));
    while (this.docs.size > KEEP) {
      const oldest = this.docs.keys().next().value as string;
      this.docs.delete(oldest);
    }
    this.changed.fire(uri);
    return uri;
  }

  dispose(): void {
    this.changed.dispose();
    this.docs.clear();
  }
}

/** The title the server gives an explanation ("# Explanation of `name`"), for the tab. */
export function titleOf(markdown: string): string {
  const heading = /^#\s+Explanation of\s+(.+)$/m.exec(markdown);
  return heading ? heading[1].trim() : "selection";
}

/** Shows an explanation in the Markdown preview (falls back to the source beside it). */
export async function showExplanation(store: ExplanationStore, markdown: string, log: (line: string) => void): Promise<void> {
  const uri = store.add(titleOf(markdown), markdown);
  try {
    // The preview needs the document loaded once so that it can follow it.
    await vscode.workspace.openTextDocument(uri);
    await vscode.commands.executeCommand("markdown.showLockedPreviewToSide", uri);
    return;
  } catch (error) {
    log(`the Markdown preview is not available (${error}); showing the explanation as text`);
  }
  const doc = await vscode.workspace.openTextDocument(uri);
  await vscode.languages.setTextDocumentLanguage(doc, "markdown");
  await vscode.window.showTextDocument(doc, { viewColumn: vscode.ViewColumn.Beside, preview: true });
}
