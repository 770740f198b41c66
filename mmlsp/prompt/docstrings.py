"""Docstrings in the google, numpy and reST styles: skeletons, reply parsing, rendering.

The model is shown a skeleton in the configured style that lists exactly the
parameters, return value and exceptions the code has (``mmlsp.syntax.outline`` finds them),
and asked to fill it in. Its reply is only mined for prose: the summary and one
description per item. The docstring itself is always rendered here, so its
structure, its style and the items it lists never depend on the model's obedience.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from mmlsp.syntax.outline import DefinitionFacts

STYLES = ("google", "numpy", "rest")
_MAX_SUMMARY = 120
_MAX_DESCRIPTION = 160


@dataclass(frozen=True)
class DocstringContent:
    """The prose of a docstring; items without a description get a neutral default."""

    summary: str
    params: dict[str, str] = field(default_factory=dict)
    returns: str = ""
    raises: dict[str, str] = field(default_factory=dict)
    # True when the reply held no prose at all and ``summary`` is the stand-in.
    is_empty: bool = False


def _bare(name: str) -> str:
    return name.lstrip("*")


def _default_param(name: str, default: str | None) -> str:
    text = "The " + _bare(name).replace("_", " ").strip() + "."
    if name.startswith("**"):
        text = "Extra keyword arguments."
    elif name.startswith("*"):
        text = "Extra positional arguments."
    return text + (f" Defaults to ``{default}``." if default else "")


def _sentence(text: str, limit: int) -> str:
    text = " ".join(text.split()).strip(" -*:")
    if len(text) > limit:
        cut = text[:limit].rsplit(" ", 1)[0]
        text = cut.rstrip(",;:") + "..."
    if text and text[0].isalpha():
        text = text[0].upper() + text[1:]
    if text and text[-1] not in ".!?":
        text += "."
    return text


def _rtype(facts: DefinitionFacts) -> str | None:
    return facts.return_annotation


def skeleton(facts: DefinitionFacts, style: str) -> str:
    """The docstring to fill in, with ``...`` where prose belongs."""
    content = DocstringContent(
        summary="...",
        params={p.name: "..." for p in facts.params},
        returns="..." if facts.documents_return else "",
        raises={name: "..." for name in facts.raises},
    )
    return render_body(facts, content, style)


def render_body(facts: DefinitionFacts, content: DocstringContent, style: str) -> str:
    """The docstring's text (no quotes, no indentation) in ``style``."""
    sections: list[str] = []
    params = [
        (p, content.params.get(p.name) or _default_param(p.name, p.default)) for p in facts.params
    ]
    returns = content.returns or "The result."
    rtype = _rtype(facts)
    header = "Yields" if facts.yields else "Returns"
    raises = [
        (name, content.raises.get(name) or "If the operation fails.") for name in facts.raises
    ]
    if style == "numpy":
        if params:
            lines = ["Parameters", "----------"]
            for p, desc in params:
                lines += [f"{p.name} : {p.annotation}" if p.annotation else p.name, f"    {desc}"]
            sections.append("\n".join(lines))
        if facts.documents_return:
            lines = [header, "-" * len(header), rtype or "object", f"    {returns}"]
            sections.append("\n".join(lines))
        if raises:
            lines = ["Raises", "------"]
            for name, desc in raises:
                lines += [name, f"    {desc}"]
            sections.append("\n".join(lines))
    elif style == "rest":
        lines = []
        for p, desc in params:
            lines.append(f":param {_bare(p.name)}: {desc}")
            if p.annotation:
                lines.append(f":type {_bare(p.name)}: {p.annotation}")
        if facts.documents_return:
            lines.append(f":{'yields' if facts.yields else 'returns'}: {returns}")
            if rtype:
                lines.append(f":rtype: {rtype}")
        lines += [f":raises {name}: {desc}" for name, desc in raises]
        if lines:
            sections.append("\n".join(lines))
    else:  # google
        if params:
            lines = ["Args:"]
            for p, desc in params:
                label = f"{p.name} ({p.annotation})" if p.annotation else p.name
                lines.append(f"    {label}: {desc}")
            sections.append("\n".join(lines))
        if facts.documents_return:
            prefix = f"{rtype}: " if rtype else ""
            sections.append(f"{header}:\n    {prefix}{returns}")
        if raises:
            sections.append("\n".join(["Raises:", *(f"    {n}: {d}" for n, d in raises)]))
    return "\n\n".join([content.summary, *sections])


def render_literal(body: str, indent: str) -> str:
    """``body`` as a triple-quoted literal whose continuation lines carry ``indent``."""
    body = body.replace('"""', "'''").rstrip()
    if body.endswith('"'):
        body += " "
    prefix = "r" if "\\" in body else ""
    lines = body.split("\n")
    if len(lines) == 1:
        return f'{prefix}"""{lines[0]}"""'
    inner = "\n".join((indent + line) if line.strip() else "" for line in lines[1:])
    return f'{prefix}"""{lines[0]}\n{inner}\n{indent}"""'


_SECTION = re.compile(
    r"^\s*(args|arguments|parameters|params|returns?|yields?|raises|attributes|examples?"
    r"|notes?|keyword args)\s*:?\s*$",
    re.IGNORECASE,
)
_UNDERLINE = re.compile(r"^\s*-{3,}\s*$")
_CODE_LINE = re.compile(
    r"^(?:(?:async\s+)?def\s|class\s|return\b|import\s|from\s\S+\simport|@|`{3}|"
    r"(?:for|while|if|elif|with|try)\b.*:$|else:|\w+(?:\.\w+)*\s*[-+*/]?=\s)"
)


def _item_description(lines: list[str], name: str) -> str:
    """The prose after ``name`` on its line (or the indented line below it)."""
    pattern = re.compile(
        rf"^\s*[-*]?\s*(?::(?:param|raises?|type)\s+)?[*`]*{re.escape(name)}[*`]*"
        rf"\s*(?:\([^)]*\))?\s*(?::\s*(.*))?$"
    )
    for index, line in enumerate(lines):
        match = pattern.match(line)
        if not match:
            continue
        desc = (match.group(1) or "").strip()
        # numpy: "name : type" then the description indented on the next line.
        looks_like_type = desc and " " not in desc and not desc.endswith(".")
        if (not desc or looks_like_type) and index + 1 < len(lines):
            following = lines[index + 1]
            if following.startswith((" ", "\t")) and following.strip():
                desc = following.strip()
        if desc and desc != "...":
            return desc
    return ""


def _returns_description(lines: list[str]) -> str:
    for index, line in enumerate(lines):
        inline = re.match(r"^\s*:(?:returns?|yields?):\s*(.+)$", line)
        if inline:
            return inline.group(1).strip()
        if re.match(r"^\s*(returns?|yields?)\s*:?\s*$", line, re.IGNORECASE):
            for following in lines[index + 1 : index + 4]:
                text = following.strip()
                if not text or _UNDERLINE.match(following):
                    continue
                # google "int: the sum" / numpy type line followed by the description
                text = re.sub(r"^[\w\[\], .|]+:\s+", "", text)
                if text and text != "..." and (" " in text or text.endswith(".")):
                    return text
    return ""


def parse_reply(reply: str, facts: DefinitionFacts) -> DocstringContent:
    """Mine a model's docstring (any style, with or without quotes) for its prose."""
    text = reply.strip()
    quoted = re.search(r"(?s)(\"\"\"|''')(.*?)(\1|$)", text)
    if quoted:
        text = quoted.group(2)
    lines = [line.rstrip() for line in text.replace("\r\n", "\n").split("\n")]
    names = {p.name for p in facts.params} | {_bare(p.name) for p in facts.params}
    summary = ""
    for line in lines:
        stripped = line.strip()
        if not stripped or stripped == "..." or _SECTION.match(line) or _UNDERLINE.match(line):
            if summary:
                break
            continue
        if stripped.startswith(":") or stripped.split(" ")[0].strip("*`:(") in names:
            break
        if _CODE_LINE.match(stripped):
            continue  # a small model often echoes the code: that is no summary
        summary = f"{summary} {stripped}".strip()
        if summary.endswith("."):
            break
    params = {}
    for p in facts.params:
        desc = _item_description(lines, p.name) or _item_description(lines, _bare(p.name))
        if desc:
            params[p.name] = _sentence(desc, _MAX_DESCRIPTION)
    raises = {}
    for name in facts.raises:
        if desc := _item_description(lines, name):
            raises[name] = _sentence(desc, _MAX_DESCRIPTION)
    returns = _returns_description(lines) if facts.documents_return else ""
    fallback = f"{'Class' if facts.kind == 'class' else 'Function'} {facts.name}."
    summary = _sentence(summary, _MAX_SUMMARY)
    return DocstringContent(
        summary=summary or fallback,
        params=params,
        returns=_sentence(returns, _MAX_DESCRIPTION) if returns else "",
        raises=raises,
        is_empty=not (summary or params or returns or raises),
    )
