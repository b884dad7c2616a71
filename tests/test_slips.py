"""``make slips``: the catalogue of single-line slips stays applicable to the current tree."""

from __future__ import annotations

from collections import Counter

import pytest

from tests.mutation.slip_runner import REPO
from tests.mutation.slips import CATALOGUE


def test_catalogue_is_large_and_ids_are_unique() -> None:
    assert len(CATALOGUE) >= 45
    repeated = [slip_id for slip_id, n in Counter(s.id for s in CATALOGUE).items() if n > 1]
    assert not repeated, repeated


@pytest.mark.parametrize("slip", CATALOGUE, ids=lambda s: s.id)
def test_old_text_occurs_exactly_once_and_the_slip_changes_it(slip) -> None:
    text = (REPO / slip.file).read_text()
    assert text.count(slip.old) == 1, f"{slip.id}: {slip.old!r} occurs {text.count(slip.old)} times in {slip.file}"
    assert slip.new != slip.old
    assert slip.file.startswith(("src/methods/", "experiments/methods/", "experiments/ablations/"))
    for path in slip.tests:
        assert (REPO / path).exists(), f"{slip.id}: judging test path {path} does not exist"


def test_node_id_is_read_from_pytest_summary_lines() -> None:
    from tests.mutation.slip_runner import node_id

    assert node_id("FAILED tests/a/test_b.py::test_c[x-1] - AssertionError: 1 != 2") == "tests/a/test_b.py::test_c[x-1]"
    assert node_id("ERROR tests/a/test_b.py - ImportError") == "tests/a/test_b.py"
    assert node_id("") == ""


def test_value_pinned_files_run_first_and_each_file_once() -> None:
    from tests.mutation.slip_runner import ordered

    files = ordered(("tests/methods/afrclip", "tests/methods/afrclip/test_mpfa.py"), REPO)
    assert len(files) == len(set(files))
    assert "tests/methods/afrclip/test_mpfa.py" in files
    values = [i for i, f in enumerate(files) if "value" in f.rsplit("/", 1)[-1]]
    assert values and values == list(range(len(values)))
