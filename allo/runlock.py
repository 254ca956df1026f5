"""One writer per run directory: an exclusive OS lock held for the writer's lifetime.

The lock is `fcntl.flock` on `RUN/.writer.lock`. The kernel drops it when the process
ends however it ends (SIGKILL and OOM kills included), so a killed run never leaves a
stale lock behind, and nothing ever has to delete the lock file (deleting a lock file
that someone holds would let a third writer in). Linux emulates flock with byte-range
locks on NFS, so writers on several machines of one shared filesystem exclude each
other too. The holder writes its pid, host and start time into the file, so the second
writer can say whom it waits for. Readers never take it.

Standard library only (allo.rundir imports it, and rundir stays torch- and numpy-free).
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

LOCK_NAME = ".writer.lock"

try:  # Windows has no flock; there the lock is a no-op (documented in run-format.md)
    import fcntl
except ImportError:  # pragma: no cover
    fcntl = None  # type: ignore[assignment]


class RunLockedError(Exception):
    """Another live process writes this directory; the message is one line naming it."""


_scopes = threading.local()


class RunLock:
    """An exclusive lock on one folder, taken at construction (never waits)."""

    def __init__(self, folder: Path | str, what: str = "run"):
        self.folder = Path(folder)
        self.path = self.folder / LOCK_NAME
        self._fd: int | None = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        if fcntl is not None:
            try:
                fcntl.flock(self._fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError:
                holder = describe_holder(self._fd)
                os.close(self._fd)
                self._fd = None
                raise RunLockedError(
                    f"{self.folder}: locked: this {what} is being written by {holder}; "
                    "one writer at a time (wait for it to end, or stop it)") from None
        record = json.dumps({"pid": os.getpid(), "host": socket.gethostname(),
                             "since": time.time()}).encode()
        os.ftruncate(self._fd, 0)
        os.pwrite(self._fd, record, 0)
        for scope in getattr(_scopes, "stack", []):
            scope.append(self)

    @property
    def held(self) -> bool:
        return self._fd is not None

    def release(self) -> None:
        """Give the lock up (the file stays: see the module docstring)."""
        if self._fd is not None:
            fd, self._fd = self._fd, None
            os.close(fd)  # closing the last descriptor drops the flock

    def __enter__(self) -> RunLock:
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()

    def __del__(self) -> None:
        with contextlib.suppress(Exception):
            self.release()


def describe_holder(fd: int) -> str:
    """'pid 123 on host h (since 12:00:01)' from the holder's record, as far as readable."""
    try:
        data = os.pread(fd, 4096, 0)
        record = json.loads(data.decode("utf-8"))
        pid, host = int(record["pid"]), str(record["host"])[:100]
    except (OSError, ValueError, KeyError, TypeError, UnicodeDecodeError):
        return "another process"
    since = record.get("since")
    when = (f" since {time.strftime('%Y-%m-%d %H:%M:%S', time.localtime(since))}"
            if isinstance(since, (int, float)) and 0 < since < 1e11 else "")
    return f"pid {pid} on host {host}{when}"


@contextlib.contextmanager
def released_on_exit() -> Iterator[list[RunLock]]:
    """Every lock this thread takes inside the block is released when it ends, however
    it ends: a training that raises half-way through frees its run directories."""
    stack = _scopes.__dict__.setdefault("stack", [])
    taken: list[RunLock] = []
    stack.append(taken)
    try:
        yield taken
    finally:
        stack.remove(taken)
        for lock in taken:
            lock.release()
