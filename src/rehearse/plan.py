"""The paper runbook (``experiments/runbook.yaml``): its entries, their stand-in form, and the doc table.

One list serves both the reader and the rehearsal: ``docs/reproduce.md`` holds the table rendered
by :func:`render_table` between two marker lines, and ``make rehearse`` runs every entry with
``/data/<name>`` pointed at a stand-in of ``<name>``.

Public API: ``RUNBOOK``, ``DOC``, ``Entry``, ``RunbookError``, ``load_runbook``, ``render_table``,
``doc_with_table``, ``to_standins``.
"""

from __future__ import annotations

import re
import shlex
from dataclasses import dataclass, field
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[2]
RUNBOOK = REPO / "experiments" / "runbook.yaml"
DOC = REPO / "docs" / "reproduce.md"
DOC_BEGIN = "<!-- runbook: generated from experiments/runbook.yaml by `python -m src.rehearse --write-doc` -->"
DOC_END = "<!-- runbook: end -->"
TARGETS = ("train", "ablate", "compare")
KEYS = {"name", "paper", "command", "rows", "resume"}
DATA_PREFIX = "/data/"
_DATA_PATH = re.compile(r"/data/([A-Za-z0-9_-]+)")


class RunbookError(ValueError):
    """The runbook file is malformed; the message names the entry and the field."""


@dataclass(frozen=True)
class Entry:
    """One paper command.

    Attributes:
        name: short unique id (``fb-mvtec-to-visa``).
        paper: what it reproduces, as shown in the doc.
        command: the ``make`` command a user types.
        target: ``train``, ``ablate`` or ``compare``.
        variables: the ``KEY=VALUE`` assignments of the command, in order.
        rows: ``all`` or ``first`` (``make ablate``: rows run by the rehearsal; all are checked).
        resume: the rehearsal interrupts the run and continues it with ``RESUME=``.
    """

    name: str
    paper: str
    command: str
    target: str
    variables: dict[str, str] = field(default_factory=dict)
    rows: str = "all"
    resume: bool = False

    @property
    def datasets(self) -> list[str]:
        """Names of the ``/data/<name>`` folders the command reads, in order of appearance."""
        return list(dict.fromkeys(_DATA_PATH.findall(self.command)))


def _entry(raw: object, index: int) -> Entry:
    if not isinstance(raw, dict):
        raise RunbookError(f"{RUNBOOK.name}: commands[{index}] must be a mapping, got {raw!r}")
    unknown = sorted(set(raw) - KEYS)
    if unknown or not {"name", "paper", "command"} <= set(raw):
        raise RunbookError(f"{RUNBOOK.name}: commands[{index}] has keys {sorted(raw)}; needs name, paper, "
                           f"command and may have rows, resume (unknown: {unknown})")
    words = shlex.split(str(raw["command"]))
    if len(words) < 2 or words[0] != "make" or words[1] not in TARGETS:
        raise RunbookError(f"{RUNBOOK.name}: {raw['name']}: command must start with make {'|'.join(TARGETS)}, "
                           f"got {raw['command']!r}")
    variables = {}
    for word in words[2:]:
        key, sep, value = word.partition("=")
        if not sep or not key.isupper():
            raise RunbookError(f"{RUNBOOK.name}: {raw['name']}: {word!r} is not a KEY=VALUE make variable")
        variables[key] = value
    rows = str(raw.get("rows", "all"))
    if rows not in {"all", "first"} or (rows == "first" and words[1] != "ablate"):
        raise RunbookError(f"{RUNBOOK.name}: {raw['name']}: rows must be all or first (first: make ablate only)")
    return Entry(str(raw["name"]), str(raw["paper"]), str(raw["command"]), words[1], variables, rows,
                 bool(raw.get("resume", False)))


def load_runbook(path: Path = RUNBOOK) -> list[Entry]:
    """The entries of the runbook file, validated (unique names, known targets and keys)."""
    data = yaml.safe_load(Path(path).read_text()) or {}
    entries = [_entry(raw, i) for i, raw in enumerate(data.get("commands") or [])]
    if not entries:
        raise RunbookError(f"{path}: no commands")
    names = [e.name for e in entries]
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        raise RunbookError(f"{path}: duplicate names {duplicates}")
    return entries


def render_table(entries: list[Entry]) -> str:
    """The markdown table of the doc: what each command reproduces and the command itself."""
    lines = ["| paper table | command |", "| --- | --- |"]
    for entry in entries:
        command = entry.command.replace("|", "\\|")
        if entry.resume:  # the interrupted run is one of the commands above; RESUME= is what is typed
            lines.append(f"| {entry.paper} | `make train RESUME=runs/<name>` (rehearsed on `{command}`) |")
            continue
        lines.append(f"| {entry.paper} | `{command}` |")
    return "\n".join(lines)


def doc_with_table(text: str, entries: list[Entry]) -> str:
    """``text`` (the doc) with the part between the marker lines replaced by the rendered table."""
    if DOC_BEGIN not in text or DOC_END not in text:
        raise RunbookError(f"{DOC}: the marker lines {DOC_BEGIN!r} and {DOC_END!r} are missing")
    head, rest = text.split(DOC_BEGIN, 1)
    _, tail = rest.split(DOC_END, 1)
    return f"{head}{DOC_BEGIN}\n{render_table(entries)}\n{DOC_END}{tail}"


def to_standins(value: str, standins: Path) -> str:
    """``value`` with every ``/data/<name>`` replaced by ``<standins>/<name>``."""
    return _DATA_PATH.sub(lambda m: str(standins / m.group(1)), value)
