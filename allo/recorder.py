"""Host-side bookkeeping off the training thread: metric rows, exports, checkpoints.

The training loop only launches device work. At a log, export or checkpoint step it
takes a snapshot of what the host needs (an asynchronous copy on CUDA, a clone on the
CPU) and hands a job to one background thread, which waits for the copy and does the
numpy, JSON and file work in submission order. The queue is bounded: a host that cannot
keep up slows training down instead of holding ever more snapshots.
"""

from __future__ import annotations

import math
import queue
import threading
import time
from collections.abc import Callable

import numpy as np
import torch

MAX_PENDING = 64


class Recorder:
    """One worker thread running jobs in order; its first error is raised in the
    training thread (at the next submit, or at close)."""

    def __init__(self, max_pending: int = MAX_PENDING):
        self.jobs: queue.Queue[Callable[[], None] | None] = queue.Queue(max_pending)
        self.error: BaseException | None = None
        self.busy_seconds = 0.0
        self.thread = threading.Thread(target=self._work, name="allo-recorder", daemon=True)
        self.thread.start()

    def submit(self, job: Callable[[], None]) -> None:
        self.raise_error()
        self.jobs.put(job)

    def _work(self) -> None:
        while (job := self.jobs.get()) is not None:
            if self.error is None:  # after a failure, only drain
                began = time.perf_counter()
                try:
                    job()
                except BaseException as err:  # noqa: BLE001 - handed to the training thread
                    self.error = err
                self.busy_seconds += time.perf_counter() - began
            self.jobs.task_done()

    def drain(self) -> None:
        """Wait until every job submitted so far has run; the thread goes on.

        A CUDA graph capture in the training thread forbids other threads' CUDA calls
        (a checkpoint's copy to the host fails with 'operation not permitted when stream
        is capturing'), so the training thread drains before it captures again."""
        self.jobs.join()
        self.raise_error()

    def raise_error(self) -> None:
        if self.error is not None:
            raise self.error

    def close(self) -> None:
        """Wait until every submitted job has run."""
        self.jobs.put(None)
        self.thread.join()
        self.raise_error()


def to_host(tensors: dict[str, torch.Tensor]) -> Callable[[], dict[str, np.ndarray]]:
    """Start moving tensors to the host now; the returned function waits for them.

    The tensors travel packed into one flat tensor: a fresh copy, so in-place updates of
    later steps never reach it, and on CUDA one copy to the host instead of one each."""
    flat, shapes = pack(tensors)
    return flat_to_host(flat, shapes)


def pack(tensors: dict[str, torch.Tensor]) -> tuple[torch.Tensor, dict[str, torch.Size]]:
    """Every tensor flattened into one new 1-D tensor (a common dtype), and their shapes."""
    flat = torch.cat([t.detach().reshape(-1) for t in tensors.values()])
    return flat, {name: t.shape for name, t in tensors.items()}


def unpack(flat: np.ndarray, shapes: dict[str, torch.Size]) -> dict[str, np.ndarray]:
    """The inverse of pack, as views of `flat`."""
    arrays, start = {}, 0
    for name, shape in shapes.items():
        size = math.prod(shape)
        arrays[name] = flat[start : start + size].reshape(tuple(shape))
        start += size
    return arrays


def flat_to_host(flat: torch.Tensor, shapes: dict[str, torch.Size]
                 ) -> Callable[[], dict[str, np.ndarray]]:
    """`flat`'s values of now on the host, by the returned function, unpacked.

    On CUDA the copy goes into pinned memory behind an event, so the training thread
    never waits for the device; `flat` may be overwritten by later work on the same
    stream (a CUDA graph's output). On the CPU `flat` must be a tensor of its own."""
    if flat.device.type != "cuda":
        return lambda: unpack(flat.numpy(), shapes)
    host = torch.empty(flat.shape, dtype=flat.dtype, pin_memory=True)
    host.copy_(flat, non_blocking=True)
    event = torch.cuda.Event()
    event.record()

    def ready() -> dict[str, np.ndarray]:
        event.synchronize()
        return unpack(host.numpy(), shapes)

    return ready
