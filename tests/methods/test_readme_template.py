"""Every method README follows the same template: the same ``##`` sections in the same order.

A heading is compared by its name, the text before any `` (`` or ``:`` (the rest may say which file or
run it is about). The "Paper setting" tables inside are checked by each method's config tests.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
METHODS = ("afrclip", "fbclip", "vtfusion", "clip", "linear")
TEMPLATE = (
    "What the paper says",
    "What the code does",
    "Resolutions of ambiguities",
    "Switches",
    "Paper setting, value by value",
    "Quick profile",
    "Learning",
    "Tests",
    "Left out, and why",
)


def section_names(text: str) -> list[str]:
    """``##`` headings outside code fences, cut at the first `` (`` or ``:``."""
    names, fence = [], False
    for line in text.splitlines():
        fence ^= line.startswith("```")
        if not fence and line.startswith("## "):
            names.append(re.split(r" \(|:", line[3:], maxsplit=1)[0].strip())
    return names


def test_section_names_by_hand() -> None:
    text = "# T\n## Learning: x (y)\n```\n## not a heading\n```\n## Tests\n"
    assert section_names(text) == ["Learning", "Tests"]


@pytest.mark.parametrize("method", METHODS)
def test_method_readme_follows_the_template(method: str) -> None:
    text = (ROOT / "src/methods" / method / "README.md").read_text()
    assert section_names(text) == list(TEMPLATE)
    assert not re.search(r"\bspec\b|§|shared/|conventions\.md", text), "a reference outside the repository"
