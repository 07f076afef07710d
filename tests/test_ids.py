"""Ids: time-sortable, strictly increasing within a process, their time readable back."""

from __future__ import annotations

import re
from itertools import pairwise

from support import eventually

from toombos_edge import ids


def test_ids_increase_strictly_and_carry_their_creation_time() -> None:
    made = [ids.stamped_id("job") for _ in range(5000)]
    texts = [ident for ident, _ms in made]
    assert texts == sorted(texts) and len(set(texts)) == len(texts)
    for ident, ms in made:
        assert re.fullmatch(r"job_[0-9a-hjkmnp-tv-z]{26}", ident)
        assert ids.id_ms(ident) == ms


CROCKFORD = "0123456789abcdefghjkmnpqrstvwxyz"


def value(ident: str) -> int:
    """The 130 bits an id's 26 characters spell (decoded here, not by the module tested)."""
    number = 0
    for char in ident.partition("_")[2]:
        number = number * 32 + CROCKFORD.index(char)
    return number


def carried_pair() -> tuple[str, str] | None:
    """Two ids made in a row in one millisecond, the first ending in its last digit."""
    made = [ids.new_id("job") for _ in range(2000)]
    return next(((a, b) for a, b in pairwise(made)
                 if a.endswith("z") and ids.id_ms(a) == ids.id_ms(b)), None)


def test_an_increment_that_carries_past_the_last_character() -> None:
    # Many ids in one millisecond: the random part counts up, carrying like any number.
    first, following = eventually(carried_pair, 30, "two ids in one ms across a carry",
                                  every=0)
    assert value(following) == value(first) + 1
    assert following[-1] == "0" and following > first
