"""`allo study`: a whole experiment (layouts x settings x seeds) declared in one TOML file.

spec.py expands the file into jobs (one configuration, its seeds batched into one model);
state.py keeps results/studies/<name>/study.json and classifies run directories;
jobs.py runs one job with the ordinary `allo train`; local.py and slurm.py are the two
executors; cli.py is the command. Nothing here imports torch: the trainer runs in its own
processes, and every run it makes is an ordinary run directory (docs/study.md).
"""
