"""Review replies: ``Finding`` and ``parse_review``, which reads the prompt's strict
``LINE|SEVERITY|MESSAGE`` lines leniently. Pure functions.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal

from mmlsp.chat.prompts import REVIEW_EXAMPLE


@dataclass(frozen=True)
class Finding:
    """One review finding: a 1-based line within the function, a severity and a message."""

    line: int
    severity: Literal["warning", "info"]
    message: str


_SEVERITIES = {
    "warning": "warning",
    "warn": "warning",
    "error": "warning",
    "bug": "warning",
    "high": "warning",
    "info": "info",
    "information": "info",
    "note": "info",
    "hint": "info",
    "low": "info",
    "risk": "info",
}
_FINDING = re.compile(
    r"^\s*(?:[-*•]|\d+[.)])?\s*(?:line\s*|l)?(\d+)\s*[|:,;\-–]\s*"
    r"\[?([a-z]+)\]?\s*[|:,;\-–]\s*(.+?)\s*$",
    re.IGNORECASE,
)


def parse_review(text: str, line_count: int, limit: int = 5) -> list[Finding]:
    """Findings in ``LINE|SEVERITY|MESSAGE`` lines; anything else is ignored.

    Tolerates bullets, backticks, ``Line 3:``, other separators and severity synonyms;
    drops lines outside the function, empty messages and duplicates.
    """
    findings: list[Finding] = []
    seen: set[tuple[int, str]] = set()
    for raw in text.split("\n"):
        raw = raw.strip()
        if raw.count("`") == 2 and raw.startswith("`") and raw.endswith("`"):
            raw = raw[1:-1]  # the whole line in backticks
        match = _FINDING.match(raw)
        if not match:
            continue
        line, severity, message = int(match.group(1)), match.group(2).lower(), match.group(3)
        if severity not in _SEVERITIES or not 1 <= line <= line_count:
            continue
        message = " ".join(message.strip(" |").split())
        if len(message) < 3 or message.upper() == "NONE" or REVIEW_EXAMPLE.endswith("|" + message):
            continue
        message = message[:200]
        if (line, message) in seen:
            continue
        seen.add((line, message))
        findings.append(Finding(line, _SEVERITIES[severity], message))  # type: ignore[arg-type]
        if len(findings) >= limit:
            break
    return findings
