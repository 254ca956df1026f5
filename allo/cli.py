"""The `allo` command. Each subcommand's module is imported only when it runs, so
`allo watch` and `allo render --format text` never pay for torch or matplotlib.

Exit codes: 0 ok, 1 error, 2 usage or bad input, 130 interrupted (SIGINT), 143 (SIGTERM).
"""

from __future__ import annotations

import contextlib
import importlib
import os
import sys

# name -> (module with main(argv) -> int, one-line help)
COMMANDS: dict[str, tuple[str, str]] = {
    "train": ("allo.train_cli", "train ALLO on a layout; exports a run directory"),
    "watch": ("tui.command", "live terminal dashboard of a run (works over SSH)"),
    "render": ("renderers.command", "figures from a run directory: png, svg or text"),
    "compare": ("renderers.compare", "several runs (e.g. seeds) in one figure and table"),
    "study": ("allo.study.cli", "a whole experiment from a TOML file, here or on SLURM"),
    "envs": ("allo.envs_cli", "list the built-in layouts"),
}
# Commands whose process may skip the interpreter's teardown once they have returned:
# they hold no open files or child processes by then, and tearing down matplotlib's
# modules is a visible share of a render (BENCHMARKS.md, "Rendering").
FAST_EXIT = frozenset({"render"})
# Commands whose linear algebra is tiny (a d x d SVD per eigenspace block): OpenBLAS's
# thread pool costs more to start than it saves (BENCHMARKS.md, "Rendering"). A value
# the user set is kept.
SINGLE_THREADED_BLAS = frozenset({"render", "compare", "watch"})


def usage() -> str:
    width = max(len(name) for name in COMMANDS)
    lines = [
        "usage: allo <command> [options]    (allo <command> --help for its options)",
        "",
        "commands:",
    ]
    lines += [f"  {name:<{width}}  {text}" for name, (_, text) in COMMANDS.items()]
    lines += ["", "  --version  print versions and the installed renderers"]
    return "\n".join(lines)


def version() -> str:
    from allo import __version__

    text = f"allo {__version__} (python {sys.version.split()[0]})"
    try:
        from renderers import available

        text += "\nrenderers: " + ", ".join(available())
    except Exception:  # the registry is optional at this level
        pass
    return text


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help", "help"):
        print(usage())
        return 0
    if argv[0] == "--version":
        print(version())
        return 0
    name, rest = argv[0], argv[1:]
    if name not in COMMANDS:
        print(f"allo: unknown command {name!r}; choose from {', '.join(COMMANDS)}", file=sys.stderr)
        return 2
    if name in SINGLE_THREADED_BLAS:
        os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")  # before numpy is imported
    module = importlib.import_module(COMMANDS[name][0])
    try:
        return int(module.main(rest) or 0)
    except KeyboardInterrupt as stop:  # Ctrl-C, or SIGTERM where a command turns it into one
        code = getattr(stop, "exit_code", 130)
        print(f"allo: {'terminated' if code == 143 else 'interrupted'}", file=sys.stderr)
        return code
    except BrokenPipeError:
        return reader_went_away()


def reader_went_away() -> int:
    """`allo render RUN --format text | head`: the reader closed the pipe. Stop quietly.

    stdout now points at /dev/null, so the interpreter's last flush has nowhere to fail
    (the recipe of Python's signal module documentation); exit 1, as Python does on EPIPE.
    """
    devnull = os.open(os.devnull, os.O_WRONLY)
    with contextlib.suppress(OSError, ValueError):
        os.dup2(devnull, sys.stdout.fileno())
    return 1


def entry() -> None:
    """The `allo` executable: main(), then exit (immediately after FAST_EXIT commands)."""
    argv = sys.argv[1:]
    code = main(argv)
    if argv and argv[0] in FAST_EXIT:
        exit_now(code)
    sys.exit(code)


def exit_now(code: int) -> None:
    """Flush what was printed and end the process without the interpreter's teardown."""
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(OSError, ValueError):  # a closed pipe: nothing to deliver
            stream.flush()
    os._exit(code)


if __name__ == "__main__":
    entry()
