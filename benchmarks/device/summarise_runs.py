"""Per variant: how many of the seeds end below 0.99 / collapse, and the early
trajectory (step, mean|cos|, grad norm, orth error, loss) of the runs that fail."""
import glob
import sys
from pathlib import Path

from allo import rundir
from allo.rundir import Metric

finals, bad = [], []
for path in sorted(glob.glob(sys.argv[1] + "/*/*/run.json")):
    reader = rundir.RunReader(Path(path).parent)
    info, rows = reader.info(), reader.metrics()
    hit = next((r for r in rows if (r[Metric.COS_MEAN] or 0) >= 0.99), None)
    finals.append((info.seed, info.status, rows[-1][Metric.COS_MEAN], hit and hit["step"]))
    if info.status != "finished" or rows[-1][Metric.COS_MEAN] < 0.9:
        bad.append((info.seed, info.status, info.message,
                    [(r["step"], round(r[Metric.COS_MEAN], 3), round(r[Metric.GRAD_NORM], 1),
                      round(r[Metric.ORTH_ERROR], 2), round(r[Metric.LOSS_TOTAL], 1))
                     for r in rows[:40]]))
print(sys.argv[2] if len(sys.argv) > 2 else "", "seeds", len(finals))
finals.sort()
print("below 0.99:", [(s, st, round(c, 4)) for s, st, c, _ in finals if c < 0.99])
print("steps to 0.99:", sorted(h for *_, h in finals if h))
for seed, status, message, trajectory in bad:
    print("seed", seed, status, message)
    print("  ", trajectory)
