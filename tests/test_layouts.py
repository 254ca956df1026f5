"""Layout parsing, built-ins, limits and the one-line errors."""

from __future__ import annotations

import json

import numpy as np
import pytest

from allo.layouts import (
    MAX_SIDE,
    Layout,
    LayoutError,
    builtin_names,
    load_builtin,
    load_layout_file,
    parse_layout,
)


def test_builtins_exist_with_expected_sizes():
    assert {"room4", "maze", "spiral", "obstacles", "empty"} <= set(builtin_names())
    room4 = load_builtin("room4")
    assert (room4.width, room4.height, room4.num_free) == (13, 13, 104)
    for name in builtin_names():
        layout = load_builtin(name)
        assert layout.components() == 1, f"{name} has disconnected regions"


def test_room4_has_one_cell_doorways():
    room4 = load_builtin("room4")
    # the middle wall column of the top rooms has exactly one gap
    assert [r for r in range(1, 7) if not room4.walls[r, 6]] == [3]


def test_parse_characters_start_goal_and_free_cell_order():
    layout = parse_layout("#S.\n.XG\n", "t")
    assert layout.start == (0, 1)
    assert layout.goals == [(1, 2)]
    assert layout.free_cells == [(0, 1), (0, 2), (1, 0), (1, 2)]
    assert layout.walls.tolist() == [[True, False, False], [False, True, False]]


def test_ragged_rows_are_padded_with_free_cells():
    layout = parse_layout("XXXX\nX\nXX X\n")
    assert (layout.width, layout.height) == (4, 3)
    assert not layout.walls[1, 1:].any()


def test_coordinates_are_normalised():
    coords = load_builtin("room4").coordinates()
    assert coords.shape == (104, 2)
    assert coords.min() >= -1 and coords.max() <= 1


@pytest.mark.parametrize(
    "text,needle",
    [
        ("", "empty"),
        ("\n\n\r\n\n", "empty"),
        ("XXX\nXXX", "no free cell"),
        ("X?X", "unknown character '?' at line 1, column 2"),
        ("X\tX", "unknown character '\\t'"),
        ("SS", "more than one start"),
        ("G", "no free cell that is not a goal"),
        ("X" * (MAX_SIDE + 1), "limit"),
    ],
)
def test_bad_layouts_raise_one_line(text, needle):
    with pytest.raises(LayoutError) as info:
        parse_layout(text, "bad")
    message = str(info.value)
    assert needle in message and "\n" not in message


def test_unknown_builtin_lists_the_known_ones():
    with pytest.raises(LayoutError, match="room4"):
        load_builtin("nope")


def test_layout_files(tmp_path):
    good = tmp_path / "g.txt"
    good.write_text("XXXX\nX  X\nXXXX\n")
    assert load_layout_file(good).num_free == 2
    binary = tmp_path / "b.txt"
    binary.write_bytes(b"\xff\xfe\x00garbage")
    with pytest.raises(LayoutError, match="not a UTF-8 text file"):
        load_layout_file(binary)
    with pytest.raises(LayoutError, match="no such layout file"):
        load_layout_file(tmp_path / "missing.txt")
    with pytest.raises(LayoutError, match="is a directory"):
        load_layout_file(tmp_path)


def test_disconnected_regions_are_counted():
    layout = parse_layout("  X  \n  X  \n")
    assert layout.components() == 2
    np.testing.assert_allclose(layout.transition_matrix().sum(axis=1), 1.0)


# ------------------------------------------------------------------------- round trip

OPEN_BORDERS = [
    "     \nX X X\n     \n",          # first and last rows of only free cells
    "\n\n  S  \n XXX \n  G  \n\n",  # truly empty lines around them are dropped
    ".....\n.X.X.\n.....",
    "   \n   \n",                      # no wall at all
]


@pytest.mark.parametrize("text", OPEN_BORDERS)
def test_rows_of_only_free_cells_are_rows(text):
    """A line of spaces is a row of free cells: the grid is the one the file shows."""
    layout = parse_layout(text)
    rows = [line for line in text.split("\n") if line]
    assert layout.height == len(rows)
    assert layout.num_free == sum(ch in " .SG" for line in rows for ch in line)


@pytest.mark.parametrize("text", OPEN_BORDERS)
def test_the_record_rebuilds_the_same_grid(text):
    layout = parse_layout(text, "open")
    layout.doors = [(layout.free_cells[0], layout.free_cells[1])]
    record = layout.record()
    assert "\n\n" not in record["layout"] and " " not in record["layout"]
    rebuilt = Layout.from_record(json.loads(json.dumps(record)))
    assert rebuilt.walls.tolist() == layout.walls.tolist()
    assert (rebuilt.start, rebuilt.goals, rebuilt.doors) == (
        layout.start, layout.goals, layout.doors)
    assert rebuilt.record() == record


def test_an_older_record_with_spaces_still_rebuilds():
    """Runs recorded before `.` stood for free cells: each line is a row, nothing dropped."""
    layout = parse_layout("     \nX X X\n     ")
    record = {**layout.record(), "layout": layout.render_text()}
    assert record["layout"].startswith("     \n")
    assert Layout.from_record(record).walls.tolist() == layout.walls.tolist()


@pytest.mark.parametrize("edit", [
    lambda env: env.update(layout=env["layout"].replace("X", ".", 1)),
    lambda env: env.update(layout=env["layout"] + "\n....."),
    lambda env: env.update(free_cells=env["free_cells"][1:]),
    lambda env: env.update(start=[0, 0]),
    lambda env: env.update(width=7),
])
def test_an_edited_record_is_refused(edit):
    env = parse_layout("XXXXX\nXS  X\nX X X\nXXXXX").record()
    edit(env)
    with pytest.raises(LayoutError, match="disagree"):
        Layout.from_record(env)
