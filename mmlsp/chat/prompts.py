"""What the code actions, hover and review say to the chat model: one instruction
prompt per task, as messages in the ``role``/``content`` form that
``Engine.render_chat`` turns into the model's own chat template. Pure functions.
"""

from __future__ import annotations

Messages = list[dict[str, str]]

SYSTEM = (
    "You are a careful senior {language} engineer. Answer exactly in the format asked "
    "for, with no greeting and no extra commentary."
)


def _system(language: str) -> dict[str, str]:
    return {"role": "system", "content": SYSTEM.format(language=language.title())}


def _block(code: str, language: str = "") -> str:
    fence = "````" if "```" in code else "```"
    return f"{fence}{language}\n{code.rstrip()}\n{fence}"


def fix_messages(language: str, code: str, problem: str, before: str, after: str) -> Messages:
    """Ask for a corrected version of ``code`` only (its surroundings are context)."""
    parts = [f"Problem to fix: {problem.strip()}", ""]
    if before.strip():
        parts += ["Code just before (context, do not repeat it):", _block(before, language), ""]
    parts += ["Code to fix:", _block(code, language), ""]
    if after.strip():
        parts += ["Code just after (context, do not repeat it):", _block(after, language), ""]
    parts.append(
        "Reply with the corrected version of the code to fix, complete, in one code block, "
        "and nothing else. Keep everything that is not part of the problem unchanged."
    )
    return [_system(language), {"role": "user", "content": "\n".join(parts)}]


def generate_messages(language: str, description: str, before: str, after: str) -> Messages:
    """Ask for the code a comment describes, to go right below it."""
    parts = [f"Write the {language} code that this comment describes:", description.strip(), ""]
    if before.strip():
        parts += ["Code before it (context, do not repeat it):", _block(before, language), ""]
    if after.strip():
        parts += ["Code after it (context, do not repeat it):", _block(after, language), ""]
    parts.append(
        "Reply with only the new code, which goes right below the comment, in one code "
        "block, and nothing else. Do not repeat the comment or the code around it."
    )
    return [_system(language), {"role": "user", "content": "\n".join(parts)}]


def implement_messages(
    language: str, stub: str, before: str, after: str, definitions: str
) -> Messages:
    """Ask for a whole function, from its signature and docstring (its body is kept)."""
    parts = []
    if definitions.strip():
        parts += ["Definitions from other files it may use:", _block(definitions, language), ""]
    if before.strip():
        parts += ["Code before it (context, do not repeat it):", _block(before, language), ""]
    parts += ["Implement this function:", _block(stub, language), ""]
    if after.strip():
        parts += ["Code after it (context, do not repeat it):", _block(after, language), ""]
    parts.append(
        "Reply with the complete function, its signature unchanged and its body "
        "implemented, in one code block, and nothing else."
    )
    return [_system(language), {"role": "user", "content": "\n".join(parts)}]


def instruction_messages(
    language: str, code: str, instruction: str, before: str, after: str
) -> Messages:
    """Ask for ``code`` rewritten as the user's instruction says."""
    parts = [f"Instruction: {instruction.strip()}", ""]
    if before.strip():
        parts += ["Code just before (context, do not repeat it):", _block(before, language), ""]
    parts += ["Code to change:", _block(code, language), ""]
    if after.strip():
        parts += ["Code just after (context, do not repeat it):", _block(after, language), ""]
    parts.append(
        "Reply with the code to change rewritten as the instruction says, complete, in one "
        "code block, and nothing else. Change nothing the instruction does not ask for."
    )
    return [_system(language), {"role": "user", "content": "\n".join(parts)}]


def docstring_messages(
    language: str, code: str, kind: str, style: str, skeleton: str, existing: str | None
) -> Messages:
    """Ask for the prose of a docstring, given the skeleton of the exact items."""
    style_name = {"google": "Google", "numpy": "NumPy", "rest": "reStructuredText"}[style]
    parts = [f"Write the docstring of this {kind}.", "", _block(code, language), ""]
    if existing:
        parts += ["Its current docstring, which may be out of date:", _block(existing), ""]
    parts += [
        f"Fill in this {style_name}-style docstring, replacing every ... with a short, "
        "precise description. Keep its layout and its items exactly:",
        _block(skeleton),
        "",
        "Reply with the filled-in docstring text only, without quotes.",
    ]
    return [_system(language), {"role": "user", "content": "\n".join(parts)}]


def explain_messages(language: str, code: str, name: str | None) -> Messages:
    what = f"`{name}`" if name else "this code"
    content = "\n".join(
        [
            f"Explain {what} to a colleague who is reading it for the first time.",
            "",
            _block(code, language),
            "",
            "Answer in Markdown: one short paragraph on what it does, then a bullet list "
            "of its inputs and outputs, then a bullet list of pitfalls or likely bugs "
            "(write 'None found.' if there are none). At most 200 words.",
        ]
    )
    return [_system(language), {"role": "user", "content": content}]


def hover_messages(language: str, code: str, name: str) -> Messages:
    content = "\n".join(
        [
            f"Summarise `{name}` for a tooltip.",
            "",
            _block(code, language),
            "",
            "Answer in Markdown with at most four short bullet points: what it does, "
            "its parameters, what it returns, and one pitfall if there is one.",
        ]
    )
    return [_system(language), {"role": "user", "content": content}]


REVIEW_FORMAT = "LINE|SEVERITY|MESSAGE"


def numbered(code: str) -> str:
    """``code`` with 1-based line numbers, as the review prompt shows it."""
    return "\n".join(f"{i}: {line}" for i, line in enumerate(code.split("\n"), start=1))


# The prompt's example finding; a small model sometimes copies it as its answer.
REVIEW_EXAMPLE = "3|warning|Divides by zero when `items` is empty."


def review_messages(language: str, code: str) -> Messages:
    content = "\n".join(
        [
            "Review this function for likely bugs: wrong results, crashes, unhandled "
            "edge cases, resource leaks. Ignore style and naming.",
            "",
            _block(numbered(code), language),
            "",
            f"Reply with one line per bug, exactly `{REVIEW_FORMAT}`, where LINE is the line "
            "number shown above, SEVERITY is `warning` (a likely bug) or `info` (a risk), "
            "and MESSAGE is one short sentence. At most 3 lines. If there is no bug, reply "
            "`NONE`.",
            "Example:",
            REVIEW_EXAMPLE,
        ]
    )
    return [_system(language), {"role": "user", "content": content}]


def retry_messages(messages: Messages, reply: str, error: str) -> Messages:
    """The conversation so far plus the model's rejected reply and why it was rejected."""
    return [
        *messages,
        {"role": "assistant", "content": reply.strip() or "(empty)"},
        {
            "role": "user",
            "content": f"That reply is not usable: {error}. Reply with the corrected code "
            "only, in one code block.",
        },
    ]
