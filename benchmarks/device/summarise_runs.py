"""Per variant: how many of the seeds end below 0.99 / collapse, and the early
trajectory (step, mean|cos|, grad norm, orth error, loss) of the runs that fail."""
import glob
import json
import sys
from pathlib import Path

finals, bad = [], []
for path in sorted(glob.glob(sys.argv[1] + "/*/*/run.json")):
    info = json.loads(Path(path).read_text())
    metrics = Path(path).with_name("metrics.jsonl").read_text().splitlines()
    rows = [json.loads(line) for line in metrics if line.strip()]
    hit = next((r for r in rows if (r["cos/mean"] or 0) >= 0.99), None)
    finals.append((info["seed"], info["status"], rows[-1]["cos/mean"], hit and hit["step"]))
    if info["status"] != "finished" or rows[-1]["cos/mean"] < 0.9:
        bad.append((info["seed"], info["status"], info.get("message"),
                    [(r["step"], round(r["cos/mean"], 3), round(r["grad/norm"], 1),
                      round(r["orth/error"], 2), round(r["loss/total"], 1))
                     for r in rows[:40]]))
print(sys.argv[2] if len(sys.argv) > 2 else "", "seeds", len(finals))
finals.sort()
print("below 0.99:", [(s, st, round(c, 4)) for s, st, c, _ in finals if c < 0.99])
print("steps to 0.99:", sorted(h for *_, h in finals if h))
for seed, status, message, trajectory in bad:
    print("seed", seed, status, message)
    print("  ", trajectory)
