"""The `allo` command. Each subcommand's module is imported only when it runs, so
`allo watch` and `allo render --format text` never pay for torch or matplotlib.

Exit codes: 0 ok, 1 error, 2 usage or bad input, 130 interrupted (SIGINT), 143 (SIGTERM).
"""

from __future__ import annotations

import importlib
import sys

# name -> (module with main(argv) -> int, one-line help)
COMMANDS: dict[str, tuple[str, str]] = {
    "train": ("allo.train_cli", "train ALLO on a layout; exports a run directory"),
    "watch": ("tui.command", "live terminal dashboard of a run (works over SSH)"),
    "render": ("renderers.command", "figures from a run directory: png, svg or text"),
    "compare": ("renderers.compare", "several runs (e.g. seeds) in one figure and table"),
    "envs": ("allo.envs_cli", "list the built-in layouts"),
}


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
    module = importlib.import_module(COMMANDS[name][0])
    try:
        return int(module.main(rest) or 0)
    except KeyboardInterrupt:
        print("allo: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
