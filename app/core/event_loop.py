"""Calling libraries whose synchronous API runs its own event loop (pyHanko's `sign_pdf` and
`validate_pdf_signature` call `asyncio.run`).

`asyncio.run` refuses to start inside a thread that already runs a loop: an async caller, a
procrastinate worker coroutine, or a test process in which Playwright's sync API keeps one. Such
a call is then made on a short-lived thread of its own; elsewhere it runs in place.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

T = TypeVar("T")


def _loop_running() -> bool:
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return False
    return True


def outside_event_loop(call: Callable[..., T], *args: object, **kwargs: object) -> T:
    """`call(*args, **kwargs)`, on another thread when this one runs an event loop."""
    if not _loop_running():
        return call(*args, **kwargs)
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="lims-sync") as pool:
        return pool.submit(call, *args, **kwargs).result()
