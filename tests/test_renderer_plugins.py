"""The renderer registry: entry points, lazy import, third-party plugins, failures."""

from __future__ import annotations

import subprocess
import sys
from importlib.metadata import EntryPoint
from pathlib import Path

import pytest
from synthetic import make_run

import renderers
from renderers import RendererError, available, load
from renderers.command import main as render_main

PLUGIN = '''
class MarkdownRenderer:
    """A toy format: one line per figure, enough to prove the plugin path."""
    name = "md"
    extension = ".md"

    def __init__(self, options):
        self.options = options

    def _line(self, figure):
        return f"# {figure.title}\\n{len(figure.panels)} panels\\n".encode()

    ground_truth_eigenvectors = learned_eigenvectors = final_comparison = _line
    learning_curves = dual_variable_evolution = cosine_similarity = comparison = _line
'''


def test_builtins_are_registered_through_entry_points():
    assert {"png", "svg", "text"} <= set(available())
    for name in ("png", "svg", "text"):
        cls = load(name)
        assert cls.name == name and cls.extension.startswith(".")
        assert isinstance(cls(renderers.RenderOptions()), renderers.Renderer)


def test_available_imports_no_plugin_module():
    code = (
        "import sys, renderers; names = renderers.available(); "
        "bad = [m for m in ('renderers.png', 'renderers.svg', 'renderers.text', "
        "'matplotlib', 'plotext') if m in sys.modules]; print(names, bad)"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout
    assert out.strip().endswith("[]"), out


@pytest.fixture
def extra_plugin(tmp_path, monkeypatch):
    (tmp_path / "allo_md_plugin.py").write_text(PLUGIN)
    monkeypatch.syspath_prepend(str(tmp_path))
    original = renderers._entry_points

    def patched():
        found = original()
        found["md"] = EntryPoint("md", "allo_md_plugin:MarkdownRenderer", renderers.GROUP)
        found["broken"] = EntryPoint("broken", "no_such_module_xyz:Thing", renderers.GROUP)
        return found

    monkeypatch.setattr(renderers, "_entry_points", patched)


@pytest.mark.slow
def test_extra_renderer_renders_through_allo_render(extra_plugin, tmp_path, capsys):
    run = make_run(tmp_path / "run", d=2, total_steps=100, exports=2)
    assert "md" in available()
    assert render_main([str(run), "--format", "md", "--jobs", "1"]) == 0
    made = sorted(p.name for p in Path(run, "plots").iterdir())
    assert "ground_truth_eigenvectors.md" in made and "learning_curves.md" in made
    assert (
        Path(run, "plots", "final_comparison.md")
        .read_text()
        .startswith("# Ground truth vs final learned")
    )


def test_broken_plugin_is_one_line_and_others_carry_on(extra_plugin, capsys):
    with pytest.raises(RendererError) as err:
        load("broken")
    assert "\n" not in str(err.value) and "failed to load" in str(err.value)
    loaded, problems = renderers.load_all()
    assert {"png", "svg", "text", "md"} <= set(loaded) and len(problems) == 1
    assert render_main(["--list-formats"]) == 0
    out = capsys.readouterr().out
    assert "broken" in out and "md" in out and "png" in out


def test_missing_renderer_message():
    with pytest.raises(RendererError, match="no renderer named 'gif'"):
        load("gif")
