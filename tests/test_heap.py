"""The started server's heap is settled: full collections no longer walk what the start made."""

from __future__ import annotations

import gc

from toombos_edge.serving import settle_heap


class _Component:
    """Stands for anything the start makes and keeps (a module, the app, a store)."""


def test_what_exists_at_the_start_is_out_of_the_collectors_walks() -> None:
    started = _Component()
    assert any(obj is started for obj in gc.get_objects())
    try:
        settle_heap()
        later = _Component()
        tracked = gc.get_objects()
        assert not any(obj is started for obj in tracked)  # frozen: never walked again
        assert any(obj is later for obj in tracked)  # made later: collected as before
        del later
    finally:
        gc.unfreeze()  # the rest of the suite runs with the collector as it was
