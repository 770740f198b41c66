// Plain-node checks of the extension's pure helpers (compiled to ../out by
// `npm run package`); run-tests.sh runs them before starting code-server.
import assert from "node:assert/strict";
import { createRequire } from "node:module";

const require = createRequire(import.meta.url);
const { tidyMarkdown, openFence } = require("../out/markdown.js");

let failures = 0;
function check(name, fn) {
  try {
    fn();
    console.log(`  ok   ${name}`);
  } catch (error) {
    failures += 1;
    console.log(`  FAIL ${name}\n${String(error.message).replace(/^/gm, "       ")}`);
  }
}

const trailer = "*shop.py, line 15:*\n\n```python\ndef low_stock(items):\n    return []\n```\n";

check("a well-formed explanation is unchanged", () => {
  const md = `# Explanation of \`low_stock\`\n\nIt returns **names**.\n\n${trailer}`;
  assert.equal(tidyMarkdown(md), md);
});

check("an answer cut off inside a code fence is closed before the source line", () => {
  const md = `# Explanation of \`low_stock\`\n\nLike this:\n\n\`\`\`python\nfor item in items:\n\n${trailer}`;
  const out = tidyMarkdown(md);
  const [answer, rest] = out.split("*shop.py, line 15:*");
  assert.equal(openFence(answer), undefined, `the answer still has an open fence:\n${answer}`);
  assert.ok(answer.trimEnd().endsWith("```"), answer);
  assert.ok(rest.startsWith("\n\n```python\ndef low_stock"), rest);
  assert.equal(openFence(out), undefined);
});

check("a fence with an info string does not close an open one", () => {
  assert.equal(openFence("```\ncode\n```python\nmore\n"), "```");
  assert.equal(openFence("````\n```\n````\n"), undefined);
  assert.equal(openFence("~~~\ncode\n```\n"), "~~~");
});

check("inline code with backticks is not a fence", () => {
  assert.equal(openFence("```a` b```\ntext\n"), undefined);
});

check("an old server's <sub> source line becomes an italic line", () => {
  const md = "# Explanation of line 1\n\nText.\n\n<sub>file:///w/a.py, line 1</sub>\n\n```python\nx = 1\n```\n";
  const out = tidyMarkdown(md);
  assert.ok(!out.includes("<sub>"), out);
  assert.ok(out.includes("*file:///w/a.py, line 1*"), out);
});

check("without a source line, an unclosed fence is closed at the end", () => {
  const out = tidyMarkdown("Text\n\n```js\nlet a = 1;");
  assert.equal(openFence(out), undefined);
  assert.ok(out.endsWith("```\n"), out);
});

if (failures) {
  console.log(`unit: ${failures} failed`);
  process.exit(1);
}
console.log("unit: all passed");
