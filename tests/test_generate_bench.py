"""bench/generate.py without a model: HumanEval prompts turned into a comment above an
empty body, and the plain baseline's naive insertion."""

from __future__ import annotations

import ast

from bench.generate import Case, comment_case, plain_insert

PROBLEM = {
    "task_id": "HumanEval/0",
    "entry_point": "has_close_elements",
    "prompt": (
        "from typing import List\n\n\n"
        "def has_close_elements(numbers: List[float], threshold: float) -> bool:\n"
        '    """ Check if any two numbers are closer than threshold.\n'
        "    >>> has_close_elements([1.0, 2.0], 0.5)\n"
        "    False\n"
        '    """\n'
    ),
}


def test_the_docstring_becomes_the_comment_that_is_the_body() -> None:
    case = comment_case(PROBLEM)
    assert case is not None and case.comment_line == 4 and case.indent == "    "
    assert case.text == (
        "from typing import List\n\n\n"
        "def has_close_elements(numbers: List[float], threshold: float) -> bool:\n"
        "    # Check if any two numbers are closer than threshold.\n"
        "    # >>> has_close_elements([1.0, 2.0], 0.5)\n"
        "    # False\n"
    )
    # A body of code after the docstring is no empty body.
    assert comment_case(dict(PROBLEM, prompt=PROBLEM["prompt"] + "    x = 1\n")) is None


def test_the_plain_baseline_inserts_the_first_code_block_below_the_comment() -> None:
    case = Case("t", "def f(x):\n    # double it\n", 1, "    ")
    program = plain_insert(case, "Sure:\n```python\nreturn x * 2\n```\nDone.")
    assert program == "def f(x):\n    # double it\n    return x * 2\n"
    ast.parse(program)
