"""The trainer's parts; allo/train.py is the loop that puts them together.

- runs.py: which run directories a command trains, and what run.json says at the start
- batch.py: the seeds still training, as one batched learner (and its CUDA graphs)
- outputs.py: everything a training writes (rows, heartbeats, exports, checkpoints, a
  seed's end), queued on the recorder thread
- checkpoint.py: one seed's state on disk, never unpickled
"""


class TrainError(Exception):
    """A problem the user can fix; printed as one line, exit code 2."""
