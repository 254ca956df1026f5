"""Accuracy across layouts: ALLO beside GGDO and the other baselines (a benchmark, not a test).

The published grids' table (../shared/reference-layouts, 5 seeds, four settings) is the
study files benchmarks/studies/accuracy-{paper,defaults,pixels,exact}.toml, run by
`allo study` and tabulated by `allo compare STUDY --format md`; this script is the
in-process runner for the built-in and benchmarks/layouts grids. Both train with the same
`TrainConfig` presets (`apply_protocol`), so a setting means the same run in either.

    python benchmarks/accuracy.py                          # every layout, 5 seeds, allo + ggdo
    python benchmarks/accuracy.py --seeds 1 --layouts room4,maze19 --objectives allo
    python benchmarks/accuracy.py --reference              # also ../shared/reference-layouts
    python benchmarks/accuracy.py --reference-only --protocol paper --objectives allo,ggdo
    python benchmarks/accuracy.py --reference-only --objectives allo,ggdo,sqp,cqp,omm,lora
    python benchmarks/accuracy.py --reference-only --obs pixels --append
    python benchmarks/accuracy.py --reference-only --data exact --append
    python benchmarks/accuracy.py --seeds 5-9 --append     # five more seeds, same file
    python benchmarks/accuracy.py --quick --layouts maze7x9 --seeds 1   # smoke test, seconds

Layouts: every built-in (`allo envs`), every benchmarks/layouts/*.txt, and with
--reference the published benchmark's grids when /work/shared/reference-layouts is present
(read from there, never copied; --reference-only: those alone). Each (layout, objective,
seed) is one `train()` with the default TrainConfig, or `--protocol paper`'s (the official
code's settings, docs/math.md section 13), with --obs and --data as given (only the seed,
objective, layout and run directory change; --steps and --quick override), in a temporary
directory. A run's setting (protocol/obs/data) is part of its key, so one file holds the
whole table: --append adds a setting beside those already there.

Per layout, objective and setting it reports the final mean |cos| (mean and min over seeds;
the eigenspace-aware `cos`, docs/math.md section 6), `cos_strict` (the official code's
metric, what published tables report) as mean +- the half-width of a 95% Student-t
interval over the seeds, the strict data ceiling (cos_strict of the run's own data set's
eigenvectors: no learner of that data scores higher), the published value for the
reference layouts ("paper", their README's table), the final mean relative eigenvalue error
over eigenvalues 2..d (of the duals' estimates, and of the learned vectors' Rayleigh
quotients under the run's own data, docs/math.md (13)), the data ceiling by `cos`, and the
steps and seconds until the logged mean |cos| first reaches 0.99 (median over the seeds
that reach it, and how many did), and the steps `allo.budget.recommend` asks for. Prints a
table, the machine and the command; writes benchmarks/results/accuracy.json, rewritten
after every run so an interrupted benchmark keeps what it measured.
"""

from __future__ import annotations

import argparse
import contextlib
import csv
import dataclasses
import json
import shlex
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).parent))  # also when loaded by path (tests)

from machine import describe as machine_facts  # noqa: E402

from allo import rundir  # noqa: E402
from allo.config import TrainConfig, apply_protocol, parse_seeds  # noqa: E402
from allo.layouts import Layout, builtin_names, load_builtin, load_layout_file  # noqa: E402
from allo.train import train, train_seeds  # noqa: E402
from renderers.stats import mean_interval  # noqa: E402

HERE = Path(__file__).parent
RESULTS = HERE / "results" / "accuracy.json"
OUR_LAYOUTS = HERE / "layouts"
# ../shared/reference-layouts beside the checkout (or beside the folder of worktrees)
REFERENCE_LAYOUTS = next(
    (folder / "shared" / "reference-layouts" for folder in HERE.resolve().parents[1:3]
     if (folder / "shared" / "reference-layouts").is_dir()),
    HERE.parent.parent / "shared" / "reference-layouts")
TARGET = 0.99
# fields the command line set, which a --protocol must not replace (main fills it in)
GIVEN: set[str] = set()
OBJECTIVES = ("allo", "ggdo", "sqp", "cqp", "omm", "lora")
DEFAULT_OBJECTIVES = ("allo", "ggdo")
# --quick: tiny settings for a smoke test (seconds per run); not meaningful accuracy
QUICK = {"num_envs": 50, "num_steps": 200, "max_episode_length": 200, "hidden_layers": 2,
         "hidden_size": 64, "batch_size": 1024, "num_gradient_steps": 200, "log_freq": 20,
         "lr_warmup_steps": 20}


def find_layouts(reference: bool, reference_dir: Path = REFERENCE_LAYOUTS) -> list[dict]:
    """name, source and file (None for built-ins) of every layout in the benchmark."""
    found = [{"name": name, "source": "builtin", "file": None} for name in builtin_names()]
    found += [{"name": path.stem, "source": "ours", "file": str(path)}
              for path in sorted(OUR_LAYOUTS.glob("*.txt"))]
    if reference:
        if reference_dir.is_dir():
            found += [{"name": path.stem, "source": "reference", "file": str(path)}
                      for path in sorted(reference_dir.glob("*.txt"))]
        else:
            print(f"note: {reference_dir} is not present; --reference adds nothing",
                  file=sys.stderr)
    return found


def published_scores(reference_dir: Path = REFERENCE_LAYOUTS) -> dict[str, dict[str, float]]:
    """The paper's average |cos| per reference layout and objective, from the reference
    layouts' published.csv, else the table in their README (`| layout | free cells | ALLO
    | GGDO |`); {} if neither is there."""
    table = reference_dir / "published.csv"  # layout,objective,obs,seeds,metric,value
    if table.is_file():
        found: dict[str, dict[str, float]] = {}
        for row in csv.DictReader(table.read_text().splitlines()):
            with contextlib.suppress(KeyError, TypeError, ValueError):
                found.setdefault(row["layout"], {})[row["objective"]] = float(row["value"])
        return found
    readme = reference_dir / "README.md"
    if not readme.is_file():
        return {}
    scores: dict[str, dict[str, float]] = {}
    for line in readme.read_text().splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) != 4:
            continue
        try:
            scores[cells[0]] = {"allo": float(cells[2]), "ggdo": float(cells[3])}
        except ValueError:
            continue  # the header and its rule
    return scores


def entry_layout(entry: dict) -> Layout:
    """The layout of a find_layouts() entry: a built-in by name, or its file."""
    return load_layout_file(entry["file"]) if entry["file"] else load_builtin(entry["name"])


def layout_facts(entry: dict) -> dict:
    layout = entry_layout(entry)
    return {"height": layout.height, "width": layout.width, "free_cells": layout.num_free,
            "components": layout.components()}


def seed_list(text: str) -> list[int]:
    """'5' -> seeds 0..4 (a count, as before); '3,4' or '5-9' -> those seeds."""
    if text.strip().isdigit():
        count = int(text)
        if count < 1:
            raise ValueError("--seeds must be at least 1")
        return list(range(count))
    return parse_seeds(text)


def first_hit(rows: list[dict], target: float = TARGET) -> dict | None:
    """The first logged row whose mean |cos| reaches the target, or None."""
    return next((r for r in rows if (r.get("cos/mean") or 0.0) >= target), None)


def run_group(base: TrainConfig, entry: dict, objective: str, seeds: list[int], folder: Path,
              batched: bool) -> list[dict]:
    """These seeds of one layout and objective: one train() each, or with `batched` one
    train_seeds() for all (one process, one batched model; seconds are then those of the
    whole batch)."""
    cfg = dataclasses.replace(
        base, objective=objective,
        env=entry["name"] if entry["file"] is None else base.env, env_file=entry["file"],
        results_dir=str(folder / f"{entry['source']}-{entry['name']}__{objective}"))
    cfg = apply_protocol(cfg, GIVEN)  # the protocol's values for this objective
    outcomes, totals = [], []
    if batched:
        started = time.perf_counter()
        outcomes = train_seeds(dataclasses.replace(cfg, seeds=",".join(map(str, seeds))))
        totals = [time.perf_counter() - started] * len(seeds)
    else:
        for seed in seeds:
            started = time.perf_counter()
            outcomes.append(train(dataclasses.replace(cfg, seed=seed)))
            totals.append(time.perf_counter() - started)
    return [describe(cfg, entry, objective, seed, outcome, total)
            for seed, outcome, total in zip(seeds, outcomes, totals, strict=True)]


def describe(cfg: TrainConfig, entry: dict, objective: str, seed: int, outcome, total: float
             ) -> dict:
    reader = rundir.RunReader(outcome.run_dir)
    info, rows = reader.info(), reader.metrics()
    last = rows[-1] if rows else {}
    hit = first_hit(rows)
    blocks = (info.ground_truth or rundir.TruthInfo()).blocks or []
    budget = info.budget or rundir.BudgetInfo()  # what the data set allows, what the spectrum asks
    return {
        "layout": entry["name"], "source": entry["source"], "objective": objective,
        "setting": setting_of(cfg),
        "seed": (info.config or {}).get("seed", seed), "status": outcome.status,
        "steps": info.total_steps,
        "final_step": last.get("step"),
        "final_cos": last.get("cos/mean"),
        "final_cos_per_vector": last.get("cos/per_vector"),
        "final_cos_strict": last.get("cos_strict/mean"),
        "final_cos_strict_per_vector": last.get("cos_strict/per_vector"),
        "final_eig_rel_error": last.get("eig/mean_rel_error"),
        "final_rayleigh_rel_error": last.get("eig/rayleigh_mean_rel_error"),
        "data_ceiling": budget.data_ceiling,
        "data_ceiling_per_vector": budget.data_ceiling_per_vector,
        "data_ceiling_strict": budget.data_ceiling_strict,
        "num_envs": budget.num_envs,  # grown by allo/dataset.py where it had to
        "recommended_steps": budget.recommended_steps,
        "steps_to_0.99": hit["step"] if hit else None,
        "seconds_to_0.99": hit["time"] if hit else None,
        "logged_steps": [r["step"] for r in rows],
        "total_s": total,
        "timings": info.timings,
        "device": info.device,
        # 1-based ranges of (near-)repeated ground-truth eigenvalues among the top d
        "repeated_eigenvalues": [[a + 1, b] for a, b in blocks if b - a > 1],
    }


def setting_of(cfg: TrainConfig) -> str:
    """protocol/obs/data: what, besides layout and objective, tells two rows apart."""
    return f"{cfg.protocol}/{cfg.obs}/{cfg.data}"


def summarise(runs: list[dict]) -> dict:
    """One table row from the runs of one layout and objective."""
    cos = [r["final_cos"] for r in runs if r["final_cos"] is not None]
    strict = [r["final_cos_strict"] for r in runs if r.get("final_cos_strict") is not None]
    errs = [r["final_eig_rel_error"] for r in runs if r["final_eig_rel_error"] is not None]
    rayleigh = [r["final_rayleigh_rel_error"] for r in runs
                if r.get("final_rayleigh_rel_error") is not None]
    hits = [r for r in runs if r["steps_to_0.99"] is not None]
    return {
        "layout": runs[0]["layout"], "source": runs[0]["source"],
        "objective": runs[0]["objective"], "seeds": len(runs),
        "setting": runs[0].get("setting", "allo/xy/collected"),
        # seeds still turning at the budget go on past it (allo/settling.py): the most taken
        "steps": max((r["steps"] for r in runs if r["steps"] is not None), default=None),
        "steps_per_seed": [r["steps"] for r in runs],
        "cos_mean": statistics.fmean(cos) if cos else None,
        "cos_min": min(cos) if cos else None,
        "cos_strict_mean": statistics.fmean(strict) if strict else None,
        "cos_strict_ci95": interval_half_width(strict),
        "data_ceiling_strict_mean": (
            statistics.fmean(r["data_ceiling_strict"] for r in runs)
            if all(r.get("data_ceiling_strict") is not None for r in runs) else None),
        "eig_rel_error_mean": statistics.fmean(errs) if errs else None,
        "rayleigh_rel_error_mean": statistics.fmean(rayleigh) if rayleigh else None,
        "data_ceiling_mean": (statistics.fmean(r["data_ceiling"] for r in runs)
                              if all(r["data_ceiling"] is not None for r in runs) else None),
        "recommended_steps": runs[0]["recommended_steps"],
        "reached_0.99": len(hits),
        "median_steps_to_0.99": (statistics.median(r["steps_to_0.99"] for r in hits)
                                 if hits else None),
        "median_seconds_to_0.99": (statistics.median(r["seconds_to_0.99"] for r in hits)
                                   if hits else None),
        "median_total_s": statistics.median(r["total_s"] for r in runs),
        "repeated_eigenvalues": runs[0]["repeated_eigenvalues"],
        "failed": sum(r["status"] != "finished" for r in runs),
    }


def interval_half_width(values: list[float]) -> float | None:
    """Half-width of the 95% Student-t interval of the mean (None below two values)."""
    if len(values) < 2:
        return None
    mean, low, high = (float(x) for x in mean_interval(values))
    return (high - low) / 2


def run_key(run: dict) -> tuple[str, str, int, str]:
    """What makes two runs the same run: a later one replaces an earlier one."""
    return run["layout"], run["objective"], run["seed"], run.get("setting", "allo/xy/collected")


def summaries(results: dict) -> list[dict]:
    """A table row per layout and objective over every run in `results`, in run order."""
    groups: dict[tuple[str, str, str], list[dict]] = {}
    for run in results["runs"]:
        key = (run["layout"], run["objective"], run.get("setting", "allo/xy/collected"))
        groups.setdefault(key, []).append(run)
    rows = []
    paper = published_scores()
    for (layout, objective, _), runs in groups.items():
        row = summarise(sorted(runs, key=lambda r: r["seed"]))
        row["free_cells"] = results["layouts"][layout]["free_cells"]
        if runs[0]["source"] == "reference" and row["setting"].endswith("/xy/collected"):
            row["paper_cos"] = paper.get(layout, {}).get(objective)
        rows.append(row)
    return rows


def machine() -> dict:
    return {**machine_facts(), "torch": torch.__version__}


def fmt(value: object, spec: str) -> str:
    return "-" if value is None else format(value, spec)


def table(summary: list[dict]) -> str:
    head = (f"{'layout':<20}{'cells':>6}{'obj':>6}{'setting':>22}{'seeds':>6}{'cos mean':>10}"
            f"{'cos min':>9}{'cos_strict':>18}{'s.ceil':>8}{'paper':>8}{'eig rel':>9}"
            f"{'rayleigh':>9}{'ceiling':>9}{'0.99 hit':>9}{'steps':>8}{'secs':>8}"
            f"{'advised':>9}"
            "  repeated")
    lines = [head, "-" * len(head)]
    for s in summary:
        lines.append(
            f"{s['layout']:<20}{fmt(s.get('free_cells'), 'd'):>6}{s['objective']:>6}"
            f"{s.get('setting', 'allo/xy/collected'):>22}"
            f"{s['seeds']:>6}{fmt(s['cos_mean'], '.4f'):>10}{fmt(s['cos_min'], '.4f'):>9}"
            f"{strict_cell(s):>18}"
            f"{fmt(s.get('data_ceiling_strict_mean'), '.4f'):>8}"
            f"{fmt(s.get('paper_cos'), '.4f'):>8}"
            f"{fmt(s['eig_rel_error_mean'], '.3f'):>9}"
            f"{fmt(s.get('rayleigh_rel_error_mean'), '.3f'):>9}"
            f"{fmt(s['data_ceiling_mean'], '.4f'):>9}"
            f"{str(s['reached_0.99']) + '/' + str(s['seeds']):>9}"
            f"{fmt(s['median_steps_to_0.99'], '.0f'):>8}"
            f"{fmt(s['median_seconds_to_0.99'], '.1f'):>8}"
            f"{fmt(s['recommended_steps'], 'd'):>9}"
            f"  {' '.join(f'{a}-{b}' for a, b in s['repeated_eigenvalues']) or '-'}")
    return "\n".join(lines)


def strict_cell(s: dict) -> str:
    """cos_strict as mean +- 95% half-width (mean alone for one seed)."""
    mean, half = s.get("cos_strict_mean"), s.get("cos_strict_ci95")
    if mean is None:
        return "-"
    return f"{mean:.4f}" if half is None else f"{mean:.4f}+-{half:.4f}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", default="5",
                        help="N: seeds 0..N-1 (default 5); or a list such as 3,4 or 5-9 "
                             "(with --append, to add seeds to an earlier file)")
    parser.add_argument("--objectives", default=",".join(DEFAULT_OBJECTIVES),
                        help=f"comma-separated, of {','.join(OBJECTIVES)} (default allo,ggdo)")
    parser.add_argument("--protocol", default="allo", choices=("allo", "paper"),
                        help="allo's defaults, or the official code's settings")
    parser.add_argument("--obs", default="xy", choices=("xy", "pixels", "grid", "both"),
                        help="the network's input (allo train --obs)")
    parser.add_argument("--data", default="collected", choices=("collected", "exact"),
                        help="a collected data set, or the exact law (allo train --data)")
    parser.add_argument("--reference-only", action="store_true",
                        help="only the published benchmark's layouts")
    parser.add_argument("--layouts", default=None,
                        help="comma-separated layout names (default: all)")
    parser.add_argument("--steps", type=int, default=None,
                        help="gradient steps per run (default: TrainConfig's)")
    parser.add_argument("--reference", action="store_true",
                        help=f"also the published benchmark's layouts in {REFERENCE_LAYOUTS}")
    parser.add_argument("--quick", action="store_true",
                        help="tiny settings for a smoke test; the numbers mean nothing")
    parser.add_argument("--batched", action="store_true",
                        help="train the seeds of each layout as one batched model (--seeds "
                             "of allo train; fast on a GPU); seconds are the batch's")
    parser.add_argument("--device", default="auto", help="auto | cpu | cuda")
    parser.add_argument("--out", type=Path, default=RESULTS)
    parser.add_argument("--append", action="store_true",
                        help="keep the runs already in --out (a run of the same layout, "
                             "objective and seed is replaced) and summarise them all: "
                             "e.g. ggdo in a second command")
    args = parser.parse_args(argv)

    objectives = [o.strip() for o in args.objectives.split(",") if o.strip()]
    unknown = [o for o in objectives if o not in OBJECTIVES]
    if unknown or not objectives:
        parser.error(f"--objectives: unknown {unknown}; choose from {', '.join(OBJECTIVES)}")
    try:
        seeds = seed_list(args.seeds)
    except ValueError as error:
        parser.error(str(error))
    entries = find_layouts(args.reference or args.reference_only)
    if args.reference_only:
        entries = [e for e in entries if e["source"] == "reference"]
    if args.layouts:
        wanted = [n.strip() for n in args.layouts.split(",") if n.strip()]
        missing = [n for n in wanted if n not in {e["name"] for e in entries}]
        if missing:
            parser.error(f"--layouts: unknown {missing}; known: "
                         f"{', '.join(e['name'] for e in entries)}")
        entries = [e for e in entries if e["name"] in wanted]

    base = TrainConfig(**(QUICK if args.quick else {}), device=args.device,
                       protocol=args.protocol, obs=args.obs, data=args.data)
    GIVEN.clear()
    GIVEN.update({"device", "obs", *(QUICK if args.quick else {})})
    if args.data != "collected":
        GIVEN.add("data")
        base.batch_size = None
    if args.steps is not None:
        base.num_gradient_steps = args.steps
        GIVEN.add("num_gradient_steps")
    if args.quick or args.steps is not None:
        base.plot_freq = base.checkpoint_freq = max(1, base.num_gradient_steps)

    command = " ".join(shlex.quote(a) for a in [sys.executable, *sys.argv[:1],
                                                *(sys.argv[1:] if argv is None else argv)])
    results: dict = {"machine": machine(), "command": command, "commands": [command],
                     "quick": args.quick, "target_cos": TARGET,
                     "config": dataclasses.asdict(base), "layouts": {}, "runs": [],
                     "summary": []}
    if args.append and args.out.exists():
        try:
            earlier = json.loads(args.out.read_text())
            results["runs"] = list(earlier["runs"])
            results["layouts"] = dict(earlier["layouts"])
            results["commands"] = [*earlier.get("commands", [earlier["command"]]), command]
            results["machines"] = [*earlier.get("machines", [earlier["machine"]])]
        except (OSError, ValueError, KeyError, TypeError) as error:
            parser.error(f"--append: cannot read {args.out}: {error}")
    for entry in entries:
        results["layouts"][entry["name"]] = {**entry, **layout_facts(entry)}
    print(f"machine: {results['machine']}")
    print(f"command: {command}", flush=True)

    def write() -> None:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        rundir.atomic_write_text(args.out, json.dumps(rundir.to_json_safe(results), indent=2)
                                 + "\n")

    with tempfile.TemporaryDirectory(prefix="allo-accuracy-") as tmp:
        for entry in entries:
            for objective in objectives:
                runs = run_group(base, entry, objective, seeds, Path(tmp), args.batched)
                for seed, run in zip(seeds, runs, strict=True):
                    results["runs"] = [r for r in results["runs"]
                                       if run_key(r) != run_key(run)] + [run]
                    print(f"  {entry['name']:<16}{objective:>5} seed {seed}: "
                          f"mean|cos| {fmt(run['final_cos'], '.4f')}, eig rel err "
                          f"{fmt(run['final_eig_rel_error'], '.3f')} (Rayleigh "
                          f"{fmt(run['final_rayleigh_rel_error'], '.3f')}), data ceiling "
                          f"{fmt(run['data_ceiling'], '.4f')}, 0.99 at step "
                          f"{run['steps_to_0.99']}, {run['total_s']:.1f}s "
                          f"({run['status']})", flush=True)
                    write()
                results["summary"] = summaries(results)
                write()
    results["machine"]["load_average_end"] = machine()["load_average"]
    results.setdefault("machines", []).append(results["machine"])
    results["summary"] = summaries(results)
    text = table(results["summary"])
    print(text)
    results["table"] = text
    write()
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
