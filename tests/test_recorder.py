"""The recorder thread: jobs run in order, errors reach the training thread, snapshots
keep the values of the step they were taken at."""

from __future__ import annotations

import threading

import numpy as np
import pytest
import torch

from allo.recorder import Recorder, pack, to_host, unpack


def test_jobs_run_in_submission_order_off_the_calling_thread():
    recorder, seen, threads = Recorder(max_pending=4), [], set()
    for number in range(50):
        recorder.submit(lambda n=number: (seen.append(n), threads.add(threading.get_ident())))
    recorder.close()
    assert seen == list(range(50))
    assert threading.get_ident() not in threads


def test_an_error_in_a_job_is_raised_in_the_training_thread():
    recorder, after = Recorder(), []

    def disk_full() -> None:
        raise OSError(28, "No space left on device", "metrics.jsonl")

    recorder.submit(disk_full)
    recorder.submit(lambda: after.append(1))  # skipped: nothing is written after a failure
    with pytest.raises(OSError, match="No space"):
        recorder.close()
    assert after == []


def test_snapshots_keep_the_values_of_their_step():
    duals = torch.zeros(3)
    ready = to_host({"duals": duals})
    duals.add_(1.0)  # the next step updates in place
    assert ready()["duals"].tolist() == [0.0, 0.0, 0.0]


def test_packed_values_unpack_to_their_names_shapes_and_values():
    tensors = {"scalars": torch.arange(6.0).reshape(2, 3), "tables": -torch.rand(2, 4, 5),
               "none": torch.zeros(2, 0), "one": torch.tensor(7.0)}
    flat, shapes = pack(tensors)
    assert flat.shape == (6 + 40 + 1,)
    arrays = unpack(flat.numpy(), shapes)
    assert list(arrays) == list(tensors)
    for name, tensor in tensors.items():
        assert arrays[name].shape == tuple(tensor.shape)
        np.testing.assert_array_equal(arrays[name], tensor.numpy())


def test_drain_waits_for_every_job_so_far_and_the_thread_goes_on():
    """The training thread drains before a CUDA graph capture: no job may still be
    copying from the device then."""
    recorder, done, gate = Recorder(), [], threading.Event()
    recorder.submit(lambda: (gate.wait(5), done.append("slow checkpoint")))
    threading.Timer(0.2, gate.set).start()
    recorder.drain()
    assert done == ["slow checkpoint"]
    recorder.submit(lambda: done.append("after"))
    recorder.close()
    assert done == ["slow checkpoint", "after"]


def test_drain_raises_a_jobs_error():
    recorder = Recorder()
    recorder.submit(lambda: 1 / 0)
    with pytest.raises(ZeroDivisionError):
        recorder.drain()
