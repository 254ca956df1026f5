"""The argument parser every allo command uses: one-line errors, underscore spellings,
and "did you mean" for an option it does not know.

Users of the older script type `--num_gradient_steps 20000 --plot_freq 1000`. Every
option of a parser built from this class also answers to its underscore spelling: an
argument `--a_b` (or `--a_b=V`) is read as `--a-b` when the parser knows `--a-b`, so a
new option gets its underscore form without registering anything. Abbreviations are
off (`--plot` must not silently mean `--plot-freq`); a misspelt option gets the closest
known one in its error line.
"""

from __future__ import annotations

import argparse
import difflib
import sys
from collections.abc import Sequence


class AlloParser(argparse.ArgumentParser):
    """argparse with one-line errors (exit 2), underscore spellings, no abbreviations."""

    def __init__(self, *args, **kwargs):
        kwargs.setdefault("allow_abbrev", False)
        super().__init__(*args, **kwargs)

    def known_options(self) -> list[str]:
        return [s for action in self._actions for s in action.option_strings]

    def parse_known_args(self, args: Sequence[str] | None = None,  # type: ignore[override]
                         namespace=None):
        argv = list(sys.argv[1:] if args is None else args)
        return super().parse_known_args(dashed(argv, set(self.known_options())), namespace)

    def error(self, message: str):  # type: ignore[override]
        hint = did_you_mean(message, self.known_options())
        self.exit(2, f"{self.prog}: {message}{hint} (see {self.prog} --help)\n")


def dashed(argv: list[str], known: set[str]) -> list[str]:
    """`--a_b` and `--a_b=V` become `--a-b` / `--a-b=V` where the parser knows `--a-b`;
    everything after a bare `--`, values and unknown names are left as typed."""
    out: list[str] = []
    for index, token in enumerate(argv):
        if token == "--":
            return out + argv[index:]
        name, eq, value = token.partition("=")
        if name.startswith("--") and "_" in name:
            spelled = "--" + name[2:].replace("_", "-")
            if spelled in known and name not in known:
                token = spelled + eq + value
        out.append(token)
    return out


def did_you_mean(message: str, known: list[str]) -> str:
    """'; did you mean --x?' for the first unknown option in an argparse message."""
    prefix = "unrecognized arguments: "
    if not message.startswith(prefix):
        return ""
    for word in message[len(prefix):].split():
        if not word.startswith("-"):
            continue
        typed = "--" + word.split("=")[0].lstrip("-").replace("_", "-")
        close = difflib.get_close_matches(typed, [k for k in known if k.startswith("--")],
                                          n=1, cutoff=0.6)
        if close:
            return f"; did you mean {close[0]}?"
    return ""
