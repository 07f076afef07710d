"""Ids: time-sortable, strictly increasing within a process, their time readable back."""

from __future__ import annotations

import re

import pytest

from toombos_edge import ids


def test_ids_increase_strictly_and_carry_their_creation_time() -> None:
    made = [ids.stamped_id("job") for _ in range(5000)]
    texts = [ident for ident, _ms in made]
    assert texts == sorted(texts) and len(set(texts)) == len(texts)
    for ident, ms in made:
        assert re.fullmatch(r"job_[0-9a-hjkmnp-tv-z]{26}", ident)
        assert ids.id_ms(ident) == ms


def test_an_increment_that_carries_past_the_last_character(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Many ids in one millisecond: the random part counts up, carrying like any number.
    first = ids.new_id("job")
    # As if the count had reached ...z, in a millisecond that is still "now" for the next id.
    monkeypatch.setattr(ids, "_last_text", ids._last_text[:-1] + "z")
    monkeypatch.setattr(ids, "_last_rand", ids._last_rand | 31)
    monkeypatch.setattr(ids, "_last_ms", ids._last_ms + 10_000)
    following = ids.new_id("job")
    value = int(following[4:].translate(ids._TO_INT), 32)
    assert value == (ids._last_ms << 80) | ids._last_rand
    assert following[-1] == "0" and following > first
