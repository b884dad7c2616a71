"""Module and function sizes of ``src/`` and ``datamodules/`` (the developers' guide's limits).

* A module has at most ``MAX_MODULE_LINES`` physical lines.
* A function has at most ``MAX_FUNCTION_LINES`` lines of real logic: the lines of its body
  (signature and decorators excluded) that are not blank, not a comment and not part of its
  docstring. A nested function counts towards its enclosing function as well as on its own.

Exempt (``EXEMPT``): data generation only, whose length is tables of drawing parameters rather
than logic: ``datamodules/builtin.py`` (the built-in benchmark's defect generator).
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
MAX_MODULE_LINES = 300
MAX_FUNCTION_LINES = 60
EXEMPT = frozenset({"datamodules/builtin.py"})


def python_files() -> list[str]:
    files = sorted((*ROOT.joinpath("src").rglob("*.py"), *ROOT.joinpath("datamodules").rglob("*.py")))
    return [p.relative_to(ROOT).as_posix() for p in files]


def logic_lines(node: ast.FunctionDef | ast.AsyncFunctionDef, lines: list[str]) -> int:
    """Non-blank, non-comment lines of ``node``'s body after its docstring (1-based ``lines`` via index)."""
    first = node.body[0]
    docstring = isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant) and isinstance(
        first.value.value, str)
    start = first.end_lineno if docstring else first.lineno - 1  # 0-based index of the first counted line
    body = (line.strip() for line in lines[start:node.end_lineno])
    return sum(1 for line in body if line and not line.startswith("#"))


def long_functions(source: str) -> list[tuple[str, int]]:
    """``(name, logic lines)`` of every function in ``source`` over the limit."""
    lines = source.splitlines()
    return [(node.name, n) for node in ast.walk(ast.parse(source))
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef)
            and (n := logic_lines(node, lines)) > MAX_FUNCTION_LINES]


def test_the_counting_rule_by_hand() -> None:
    body = ["    x = 1", "", "    # why", "    y = 2  # trailing comment counts"]
    short = 'def f():\n    """Doc\n\n    more doc."""\n' + "\n".join(body) + "\n"
    node = ast.parse(short).body[0]
    assert logic_lines(node, short.splitlines()) == 2
    no_doc = "def g(\n    a,\n):\n    return a\n"
    assert logic_lines(ast.parse(no_doc).body[0], no_doc.splitlines()) == 1
    at_limit = "def h():\n" + "".join(f"    v{i} = {i}\n" for i in range(MAX_FUNCTION_LINES))
    assert long_functions(at_limit) == []
    over = at_limit + "    return v0\n"
    assert long_functions(over) == [("h", MAX_FUNCTION_LINES + 1)]


def test_the_exemptions_exist() -> None:
    assert EXEMPT <= set(python_files()), "an exempt module was moved or removed: update EXEMPT"


@pytest.mark.parametrize("path", python_files())
def test_module_and_function_sizes(path: str) -> None:
    if path in EXEMPT:
        pytest.skip("data generation (documented exemption)")
    source = (ROOT / path).read_text()
    n_lines = len(source.splitlines())
    assert n_lines <= MAX_MODULE_LINES, f"{path}: {n_lines} lines > {MAX_MODULE_LINES}: split it by concept"
    long = long_functions(source)
    assert not long, f"{path}: functions over {MAX_FUNCTION_LINES} lines of logic: {long}"
