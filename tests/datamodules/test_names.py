"""Prompt nouns for category names."""

from __future__ import annotations

import pytest

from datamodules.builtin import BUILTIN_CATEGORIES
from datamodules.names import object_name


@pytest.mark.parametrize(
    ("category", "name"),
    [
        ("metal_nut", "metal nut"),
        ("pcb3", "printed circuit board"),
        ("macaroni2", "macaroni"),
        ("chewinggum", "chewing gum"),
        ("pipe_fryum", "pipe fryum"),
        ("bottle", "bottle"),
        ("HeadCT", "head"),
        ("BrainMRI", "brain"),
        ("immunohistochemistry", "tissue"),
        ("chelsea", "cat"),
        ("astronaut", "person"),
        ("capsules", "capsules"),
        ("01", "object"),
        ("part_02-b", "part b"),
    ],
)
def test_object_name(category, name):
    assert object_name(category) == name


def test_every_builtin_category_has_a_noun():
    for category in BUILTIN_CATEGORIES:
        assert object_name(category).replace(" ", "").isalpha()
