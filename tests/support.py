"""Waiting for state: the suite's one way to poll a condition with a deadline.

A test waits on an event where the product offers one; where it cannot (another process, a
file, a socket), it asks ``eventually`` to check a condition until it holds or the deadline
passes, and the failure names what was awaited.
"""

from __future__ import annotations

import asyncio
import inspect
import time
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar, overload

T = TypeVar("T")
Why = str | Callable[[], object]


def _failure(what: Why, deadline: float) -> AssertionError:
    said = what() if callable(what) else what
    return AssertionError(f"not within {deadline} s: {said}")


def eventually(condition: Callable[[], T | None], deadline: float = 20.0, what: Why = "condition",
               *, every: float = 0.02, ignore: tuple[type[Exception], ...] = ()) -> T:
    """Call ``condition`` until it returns something true and return that; raise an
    AssertionError naming ``what`` (a string, or a callable for a late message such as a
    process's stderr) after ``deadline`` seconds. Exceptions in ``ignore`` count as "not yet"."""
    end = time.monotonic() + deadline
    while True:
        try:
            if result := condition():
                return result
        except ignore:
            pass
        if time.monotonic() >= end:
            raise _failure(what, deadline)
        time.sleep(every)  # polling a condition with a deadline, not waiting out a delay


@overload
async def eventually_async(condition: Callable[[], Awaitable[T | None]], deadline: float = ...,
                           what: Why = ..., *, every: float = ...,
                           ignore: tuple[type[Exception], ...] = ...) -> T: ...
@overload
async def eventually_async(condition: Callable[[], T | None], deadline: float = ...,
                           what: Why = ..., *, every: float = ...,
                           ignore: tuple[type[Exception], ...] = ...) -> T: ...
async def eventually_async(condition: Callable[[], Any], deadline: float = 20.0,
                           what: Why = "condition", *, every: float = 0.02,
                           ignore: tuple[type[Exception], ...] = ()) -> Any:
    """``eventually`` on the event loop: ``condition`` may be a plain or an async callable,
    and the loop keeps serving between checks."""
    end = time.monotonic() + deadline
    while True:
        try:
            result = condition()
            if inspect.isawaitable(result):
                result = await result
            if result:
                return result
        except ignore:
            pass
        if time.monotonic() >= end:
            raise _failure(what, deadline)
        await asyncio.sleep(every)  # polling a condition with a deadline
