"""Render the current export to PNG in a child process.

The dashboard never imports matplotlib: `allo render` runs as its own process
through the renderer registry, and only its exit status and last words come back.
"""

from __future__ import annotations

import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

RENDER_TIMEOUT = 600.0


def render_command(run: Path, fmt: str = "png") -> list[str]:
    return [
        sys.executable, "-m", "allo.cli", "render", str(run),
        "--format", fmt, "--latest-only", "--quiet",
    ]  # fmt: skip


@dataclass
class RenderResult:
    ok: bool
    text: str


def run_render(run: Path, fmt: str = "png", timeout: float = RENDER_TIMEOUT) -> RenderResult:
    """Blocking: call from a thread worker. Never raises."""
    try:
        done = subprocess.run(
            render_command(run, fmt),
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=timeout,
        )
    except subprocess.TimeoutExpired:
        return RenderResult(False, f"render took longer than {timeout:.0f}s; stopped")
    except OSError as err:
        return RenderResult(False, f"could not start the renderer: {err}")
    if done.returncode == 0:
        return RenderResult(True, f"PNG written to {Path(run) / 'plots'}")
    lines = [line for line in (done.stderr or done.stdout or "").splitlines() if line.strip()]
    why = lines[-1].strip() if lines else f"exit status {done.returncode}"
    return RenderResult(False, f"render failed: {why}")
