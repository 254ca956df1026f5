"""`allo envs`: the built-in layouts with their size and free-cell count."""

from __future__ import annotations

import argparse

from allo.layouts import builtin_names, load_builtin


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="allo envs", description="List the built-in layouts.")
    parser.add_argument("--show", action="store_true", help="print each layout's grid too")
    args = parser.parse_args(argv)
    print(f"{'name':<12}{'size':>8}{'free':>7}  notes")
    for name in builtin_names():
        layout = load_builtin(name)
        notes = []
        if layout.start:
            notes.append("start S")
        if layout.goals:
            notes.append(f"{len(layout.goals)} goal")
        print(f"{name:<12}{layout.width:>4}x{layout.height:<3}{layout.num_free:>7}  "
              f"{', '.join(notes)}")
        if args.show:
            print(layout.render_text() + "\n")
    return 0
