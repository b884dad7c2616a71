"""A fixed 1-in-N sample of a package's mutants, for packages too large to judge whole in an hour.

mutmut numbers the mutants of each function ``<function>__mutmut_1``, ``_2``, ...; the sample is
every mutant whose number ends in one of the given digits (``37``: one in five), so it takes the
same share of every function and every kind of slip, and the same names on every rerun. Its counts
come from mutmut's own records (``mutants/**/*.meta``) restricted to the sample, so mutants judged
outside it (an earlier full pass) never enter the score.
"""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

from mutmut.stats import status_by_exit_code  # mutmut's own exit code -> status table

#: An interrupted check (Ctrl-C) is as pending as one never started.
PENDING = ("not checked", "check was interrupted by user")


def parse_digits(text: str) -> str:
    """``"37"`` -> ``"37"``; one-line error for anything but distinct decimal digits."""
    digits = text.strip()
    if not digits or not digits.isdigit() or len(set(digits)) != len(digits):
        raise ValueError(f"--sample takes distinct last digits of mutant numbers, e.g. 37 (one in five); got {text!r}")
    return digits


def in_sample(name: str, digits: str) -> bool:
    """Whether mutant ``name`` (``...__mutmut_<n>``) is in the sample of those ``digits``."""
    return name.rpartition("__mutmut_")[2][-1:] in set(digits)


def pattern(digits: str) -> str:
    """The mutmut name pattern (fnmatch) of the sample."""
    return f"*__mutmut_*[{digits}]"


def sampled_status(mutants: Path, digits: str) -> dict[str, str]:
    """Status of every sampled mutant recorded under ``mutants`` (empty before the first run)."""
    status = {}
    for meta in sorted(mutants.glob("**/*.meta")):
        for name, code in json.loads(meta.read_text()).get("exit_code_by_key", {}).items():
            if in_sample(name, digits):
                status[name] = status_by_exit_code[code]
    return status


def counts(status: dict[str, str]) -> dict[str, int]:
    """mutmut's counts (the keys of ``export-cicd-stats``) over the sampled mutants."""
    c = Counter(status.values())
    return {"killed": c["killed"] + c["caught by type check"], "timeout": c["timeout"], "survived": c["survived"],
            "no_tests": c["no tests"], "suspicious": c["suspicious"], "skipped": c["skipped"], "total": len(status),
            "not_checked": sum(c[p] for p in PENDING)}
