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
