// Markdown clean-up for explanations, kept free of the vscode module so that the tests
// can run it under plain node (e2e/unit.mjs).

// The line the server puts between the model's answer and the code it explains:
// `*file.py, line 3:*` (older servers: `<sub>file:///…/file.py, line 3</sub>`).
const SOURCE_LINE = /^(?:<sub>.*<\/sub>|\*[^*\n].*, line \d+:?\*)\s*$/;

/** The fence still open at the end of `text`, if any ("```" or "~~~~", ...). */
export function openFence(text: string): string | undefined {
  let open: { char: string; size: number } | undefined;
  for (const line of text.split("\n")) {
    const match = /^ {0,3}(`{3,}|~{3,})(.*)$/.exec(line);
    if (!match) continue;
    const fence = match[1];
    if (!open) {
      if (fence[0] === "`" && match[2].includes("`")) continue; // inline code, not a fence
      open = { char: fence[0], size: fence.length };
    } else if (fence[0] === open.char && fence.length >= open.size && match[2].trim() === "") {
      // A closing fence has the same character, at least as many, and no info string.
      open = undefined;
    }
  }
  return open ? open.char.repeat(open.size) : undefined;
}

function closeFences(text: string): string {
  const fence = openFence(text);
  return fence ? text.replace(/\n*$/, "\n") + fence + "\n" : text;
}

/**
 * Markdown a preview renders as meant, whatever a small model wrote: a code fence the
 * answer left open is closed where the answer ends (else it swallows the source line
 * and turns the server's own code block inside out), and an HTML `<sub>` source line is
 * written as an italic line.
 */
export function tidyMarkdown(markdown: string): string {
  const lines = markdown.replace(/\r\n?/g, "\n").split("\n");
  let cut = -1;
  for (let i = lines.length - 1; i >= 0; i--) {
    if (SOURCE_LINE.test(lines[i])) {
      cut = i;
      break;
    }
  }
  let text: string;
  if (cut < 0) {
    text = closeFences(lines.join("\n"));
  } else {
    const answer = closeFences(lines.slice(0, cut).join("\n").replace(/\n+$/, ""));
    text = `${answer}\n\n${lines.slice(cut).join("\n")}`;
    text = closeFences(text);
  }
  return text.replace(/<sub>([\s\S]*?)<\/sub>/g, (_all, inner: string) => `*${inner.trim().replace(/\*/g, "\\*")}*`);
}
