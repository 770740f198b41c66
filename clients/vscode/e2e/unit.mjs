// Plain-node checks of the extension's pure helpers (compiled to ../out by
// `npm run package`); run-tests.sh runs them before starting code-server.
import assert from "node:assert/strict";
import { createRequire } from "node:module";

const require = createRequire(import.meta.url);
const { tidyMarkdown, openFence } = require("../out/markdown.js");
const plan = require("../out/nextEditPlan.js");
const instruction = require("../out/instruction.js");

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

// -- next edits (src/nextEditPlan.ts) ---------------------------------------------------------

const at = (line, character) => ({ line, character });
const edit = (sl, sc, el, ec, text, id = 7) => ({
  text,
  range: { start: at(sl, sc), end: at(el, ec) },
  textDocument: { uri: "file:///w/a.py", version: 3 },
  command: { title: "Accept next edit", command: "mmlsp.acceptNextEdit", arguments: [{ uri: "file:///w/a.py", id }] },
});

check("a next-edit answer is read: uri, version, id, the accept command", () => {
  const p = plan.parsePrediction({ edits: [edit(1, 4, 1, 8, "tax_rate"), edit(3, 20, 3, 24, "tax_rate")] });
  assert.equal(p.uri, "file:///w/a.py");
  assert.equal(p.version, 3);
  assert.equal(p.id, 7);
  assert.equal(p.edits.length, 2);
  assert.equal(p.command.command, "mmlsp.acceptNextEdit");
  assert.deepEqual(p.command.arguments, [{ uri: "file:///w/a.py", id: 7 }]);
});

check("no edits, or malformed or overlapping ones, show nothing", () => {
  assert.equal(plan.parsePrediction({ edits: [] }), undefined);
  assert.equal(plan.parsePrediction(null), undefined);
  assert.equal(plan.parsePrediction({ edits: [{ text: "x" }] }), undefined);
  assert.equal(plan.parsePrediction({ edits: [edit(2, 0, 1, 0, "x")] }), undefined, "end before start");
  assert.equal(plan.parsePrediction({ edits: [edit(1, 0, 1, 9, "a"), edit(1, 5, 1, 6, "b")] }), undefined, "overlap");
  assert.equal(plan.parsePrediction({ edits: [edit(1, 0, 1, -1, "a")] }), undefined, "negative");
});

check("ghost text: an insertion at the cursor that extends the line", () => {
  const line = "    return price * (1 + tax_rate)";
  const cursor = line.indexOf(")");
  const fit = plan.ghostFit(line, 3, cursor, [edit(3, cursor, 3, cursor, " / 100")]);
  assert.deepEqual(fit, { start: cursor, end: cursor, insertText: " / 100" });
  const end = plan.ghostFit("x = ", 0, 4, [edit(0, 4, 0, 4, "compute()")]);
  assert.deepEqual(end, { start: 4, end: 4, insertText: "compute()" });
});

check("ghost text: a rewrite of the rest of the line that keeps what follows the insertion", () => {
  // "foo(a|)" -> "foo(a, b)" given as a replacement of "a)" by "a, b)"
  const fit = plan.ghostFit("foo(a)", 0, 5, [edit(0, 4, 0, 6, "a, b)")]);
  assert.deepEqual(fit, { start: 4, end: 6, insertText: "a, b)" });
  // an insertion after the cursor, later in the line
  const later = plan.ghostFit("call(x, y)", 0, 5, [edit(0, 9, 0, 9, ", z")]);
  assert.deepEqual(later, { start: 5, end: 9, insertText: "x, y, z" });
});

check("decorations, not ghost text: edits elsewhere, before the cursor, deletions, several edits", () => {
  const line = "def price_with_tax(price, tax_rate):";
  assert.equal(plan.ghostFit(line, 0, line.length, [edit(1, 7, 1, 11, "tax_rate")]), undefined, "another line");
  assert.equal(plan.ghostFit("x = rate", 0, 8, [edit(0, 4, 0, 8, "tax_rate")]), undefined, "before the cursor");
  assert.equal(plan.ghostFit("x = 1  # old", 0, 5, [edit(0, 5, 0, 12, "")]), undefined, "a deletion");
  assert.equal(plan.ghostFit("x = ab", 0, 4, [edit(0, 4, 0, 6, "cd")]), undefined, "a rewrite after the cursor");
  assert.equal(plan.ghostFit("x", 0, 1, [edit(0, 1, 0, 1, "a"), edit(0, 1, 0, 1, "b")]), undefined, "two edits");
  assert.equal(plan.ghostFit("x", 0, 1, [edit(0, 1, 1, 0, "a")]), undefined, "a range over two lines");
});

check("what a decoration shows: struck text, the inserted text, the count of further lines", () => {
  assert.deepEqual(plan.editLook(edit(1, 7, 1, 11, "tax_rate")), { removes: true, label: "tax_rate", extraLines: 0 });
  assert.deepEqual(plan.editLook(edit(1, 7, 1, 11, "")), { removes: true, label: "", extraLines: 0 });
  const lines = plan.editLook(edit(2, 0, 2, 0, "    if x:\n        y()\n"));
  assert.deepEqual(lines, { removes: false, label: "if x:", extraLines: 1 });
  const one = plan.editLook(edit(2, 0, 2, 0, "    log()\n"));
  assert.deepEqual(one, { removes: false, label: "log() ⏎", extraLines: 0 });
  const afterBreak = plan.editLook(edit(2, 9, 2, 9, "\n    return x"));
  assert.deepEqual(afterBreak, { removes: false, label: "⏎ return x", extraLines: 1 });
  assert.equal(plan.visibleSpaces("a  b"), "a\u00a0\u00a0b");
});

check("the hint says where the edit is, and whether Tab goes there or applies it", () => {
  const edits = [edit(5, 4, 5, 8, "tax_rate"), edit(7, 20, 7, 24, "tax_rate")];
  assert.equal(plan.isAway(2, edits), true);
  assert.equal(plan.isAway(6, edits), false);
  assert.match(plan.hintText(2, edits), /↓ suggested edit at line 6 · Tab: go there/);
  assert.match(plan.hintText(9, edits), /↑ suggested edit at line 6/);
  assert.match(plan.hintText(5, edits), /Tab: apply/);
});

check("after applying, the cursor goes to the end of the last edit", () => {
  // "ab rate cd rate" -> both "rate" become "tax_rate": the last one ends at 23
  const edits = [
    { start: 3, end: 7, text: "tax_rate" },
    { start: 11, end: 15, text: "tax_rate" },
  ];
  const out = "ab tax_rate cd tax_rate";
  assert.equal(plan.offsetAfter(edits), out.length);
  assert.equal(plan.offsetAfter([{ start: 2, end: 2, text: "xy" }]), 4);
});

check("the hover diff shows whole lines before and after", () => {
  const lines = ["def f(price, tax_rate):", "    return price * (1 + rate)"];
  const md = plan.diffMarkdown([edit(1, 24, 1, 28, "tax_rate")], (n) => lines[n]);
  assert.ok(md.includes("-     return price * (1 + rate)\n+     return price * (1 + tax_rate)"), md);
  assert.equal(plan.changesSomething([edit(1, 24, 1, 28, "rate")], () => "rate"), false);
  assert.equal(plan.changesSomething([edit(1, 24, 1, 28, "tax_rate")], () => "rate"), true);
});

check("edit by instruction: the typed instruction goes to mmlsp.editSelection", () => {
  const range = { start: { line: 3, character: 0 }, end: { line: 5, character: 0 } };
  assert.equal(instruction.EDIT_COMMAND, "mmlsp.editSelection");
  assert.deepEqual(instruction.editArguments("file:///a.py", range, "  use pathlib \n"), [
    "file:///a.py",
    range,
    "use pathlib",
  ]);
  // A cancelled box (undefined) or a blank one sends nothing.
  assert.equal(instruction.editArguments("file:///a.py", range, undefined), undefined);
  assert.equal(instruction.editArguments("file:///a.py", range, "   "), undefined);
});

if (failures) {
  console.log(`unit: ${failures} failed`);
  process.exit(1);
}
console.log("unit: all passed");
