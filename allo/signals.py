"""Signal handlers for the length of a block, the previous ones restored after.

torch-free, so `allo study` (which never imports torch) and the trainer share it. Python
sets handlers in the main thread only: callers that may run elsewhere check first.
"""

from __future__ import annotations

import contextlib
import signal
import threading
from collections.abc import Callable, Iterable, Iterator
from typing import Any


@contextlib.contextmanager
def handling(signals: Iterable[int], handle: Callable[[int, Any], None]) -> Iterator[None]:
    """`handle` for each of `signals` while inside; the previous handlers after."""
    previous = {sig: signal.signal(sig, handle) for sig in signals}
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


@contextlib.contextmanager
def handling_in_main_thread(signals: Iterable[int],
                            handle: Callable[[int, Any], None]) -> Iterator[None]:
    """`handling` in the main thread; elsewhere, where handlers cannot be set, the
    defaults stay."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    with handling(signals, handle):
        yield
