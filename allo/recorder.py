"""Host-side bookkeeping off the training thread: metric rows, exports, checkpoints.

The training loop only launches device work. At a log, export or checkpoint step it
takes a snapshot of what the host needs (an asynchronous copy on CUDA, a clone on the
CPU) and hands a job to one background thread, which waits for the copy and does the
numpy, JSON and file work in submission order. The queue is bounded: a host that cannot
keep up slows training down instead of holding ever more snapshots.
"""

from __future__ import annotations

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

    On CUDA the copy goes into pinned memory behind an event, so the training thread
    never waits for the device. On the CPU a clone keeps the values of this step,
    whatever in-place updates follow.
    """
    on_cuda = any(t.device.type == "cuda" for t in tensors.values())
    if not on_cuda:
        host = {name: t.detach().clone() for name, t in tensors.items()}
        return lambda: {name: t.numpy() for name, t in host.items()}
    host = {}
    for name, tensor in tensors.items():
        host[name] = torch.empty(tensor.shape, dtype=tensor.dtype, pin_memory=True)
        host[name].copy_(tensor.detach(), non_blocking=True)
    event = torch.cuda.Event()
    event.record()

    def ready() -> dict[str, np.ndarray]:
        event.synchronize()
        return {name: t.numpy() for name, t in host.items()}

    return ready
