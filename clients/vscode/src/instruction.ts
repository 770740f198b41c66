// Edit by instruction: the selection rewritten as the user's typed instruction says.
// The server's command `mmlsp.editSelection` takes [uri, range, instruction] and applies
// the edit itself with workspace/applyEdit, so VS Code records it as one undoable edit.
// Pure helpers, checked by e2e/unit.mjs without VS Code.

/** The server command (vscode-languageclient also registers it under this id). */
export const EDIT_COMMAND = "mmlsp.editSelection";

/** The input box's texts. */
export const INPUT = {
  title: "mmlsp: Edit Selection with AI",
  prompt: "How should the selection change?",
  placeHolder: "e.g. use pathlib, add type hints, handle the empty case",
};

/** The instruction typed, trimmed; undefined when the box was cancelled or left blank. */
export function instructionOf(input: string | undefined): string | undefined {
  const text = (input ?? "").trim();
  return text ? text : undefined;
}

/** The arguments of `mmlsp.editSelection`, or undefined when there is no instruction. */
export function editArguments(uri: string, range: object, input: string | undefined): unknown[] | undefined {
  const instruction = instructionOf(input);
  return instruction === undefined ? undefined : [uri, range, instruction];
}
