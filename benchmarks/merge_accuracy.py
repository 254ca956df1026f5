"""Merge results files of benchmarks/accuracy.py into one (a benchmark tool, not a test).

    python benchmarks/merge_accuracy.py OUT.json IN.json [IN.json ...]

For runs made side by side, one command per core or machine (say ALLO on one core and
GGDO on the other). Runs are keyed by layout, objective and seed; a later file's run
replaces an earlier one's. Commands, machines and layouts are kept from every file; the
summary and the table are recomputed over all runs, as `accuracy.py --append` does.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

from accuracy import run_key, summaries, table  # noqa: E402

from allo import rundir  # noqa: E402


def merge(parts: list[dict]) -> dict:
    merged: dict = {**parts[0], "runs": [], "layouts": {}, "commands": [], "machines": [],
                    "notes": []}
    runs: dict[tuple, dict] = {}
    for part in parts:
        for run in part["runs"]:
            runs[run_key(run)] = run
        merged["layouts"].update(part["layouts"])
        merged["commands"] += part.get("commands", [part["command"]])
        merged["machines"] += part.get("machines", [part["machine"]])
        merged["notes"] += part.get("notes", [])
    merged["runs"] = list(runs.values())
    merged["summary"] = summaries(merged)
    merged["table"] = table(merged["summary"])
    return merged


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if len(args) < 2:
        print("usage: merge_accuracy.py OUT.json IN.json [IN.json ...]", file=sys.stderr)
        return 2
    parts = []
    for name in args[1:]:
        try:
            parts.append(json.loads(Path(name).read_text()))
        except (OSError, ValueError) as error:
            print(f"merge_accuracy: cannot read {name}: {error}", file=sys.stderr)
            return 2
    merged = merge(parts)
    out = Path(args[0])
    rundir.atomic_write_text(out, json.dumps(rundir.to_json_safe(merged), indent=2) + "\n")
    print(merged["table"])
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
