"""The shape convention (issue 12, item 1): a function in src/ over MAX_LINES lines says why in
its docstring, in a paragraph of its own that starts with "Long:". Pure: reads the sources with
``ast``, imports and runs nothing."""

from __future__ import annotations

import ast

from tests.conftest import ROOT

MAX_LINES = 60
REASON = "Long:"

Function = ast.FunctionDef | ast.AsyncFunctionDef


def length(node: Function) -> int:
    """Lines from ``def`` to the last line of the body, docstring included (decorators not)."""
    assert node.end_lineno is not None
    return node.end_lineno - node.lineno + 1


def states_reason(node: Function) -> bool:
    """Whether one paragraph of the docstring starts with "Long:"."""
    doc = ast.get_docstring(node) or ""
    return any(par.strip().startswith(REASON) for par in doc.split("\n\n"))


def long_functions(source: str) -> list[tuple[int, str, int, bool]]:
    """(line, name, length, reason stated) of each function or method over MAX_LINES lines,
    nested ones included."""
    found = [
        (node.lineno, node.name, length(node), states_reason(node))
        for node in ast.walk(ast.parse(source))
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef) and length(node) > MAX_LINES
    ]
    return sorted(found)


def test_every_long_function_states_its_reason() -> None:
    missing = [
        f"{path.relative_to(ROOT)}:{line} {name} ({lines} lines)"
        for path in sorted((ROOT / "src").rglob("*.py"))
        for line, name, lines, stated in long_functions(path.read_text(encoding="utf-8"))
        if not stated
    ]
    assert not missing, (
        f"over {MAX_LINES} lines without a '{REASON} <reason>' paragraph in the docstring "
        "(make it shorter or say why):\n  " + "\n  ".join(missing)
    )


def test_the_check_sees_length_and_reason() -> None:
    """The rule itself: the count includes the docstring, the reason must be its own paragraph
    starting with "Long:", and methods and async functions count too."""
    body = "    x = 1\n" * (MAX_LINES - 2)

    def function(doc: str, head: str = "def f():") -> str:
        return f'{head}\n    """{doc}"""\n{body}'

    assert long_functions(function("Short.")) == []
    assert long_functions(function("Short.\n\n    More.")) == [(1, "f", MAX_LINES + 2, False)]
    assert long_functions(function("Long: a flag each.\n    More.")) == [
        (1, "f", MAX_LINES + 1, True)
    ]
    assert long_functions(function("Flags.\n\n    Long: a flag each.")) == [
        (1, "f", MAX_LINES + 2, True)
    ]
    assert long_functions(function("Flags. Long because a flag each.\n\n    More.")) == [
        (1, "f", MAX_LINES + 2, False)
    ]
    assert long_functions(function("Flags (long: a flag each).\n")) == [
        (1, "f", MAX_LINES + 1, False)
    ]
    method = "class C:\n" + "\n".join(
        "    " + line for line in function("Docs.\n", "async def m(self):").splitlines()
    )
    assert long_functions(method) == [(2, "m", MAX_LINES + 1, False)]
