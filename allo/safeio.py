"""One safe way to read a file someone else wrote: every reader of a run goes through it.

A run directory may come from anyone (a colleague's tarball, a shared scratch folder), so
reading it must never hang, exhaust memory, crash or follow a link out of the run:

- regular files only: a FIFO, a device (`/dev/zero`) or a socket is refused; the file is
  opened non-blocking, so even opening a FIFO never waits for a writer;
- inside its root: a symlink that resolves outside the run directory is refused;
- size caps: nothing larger than the caller's cap is read (a file still growing is read
  up to the cap);
- bounded JSON: nesting deeper than `MAX_JSON_DEPTH` is refused before parsing
  (json's recursion would otherwise raise RecursionError);
- typed fields: `check_types` validates the keys a reader relies on;
- every problem, a permission error included, is one line naming the file (`ReadError`).

Standard library only; numpy loads inside `load_npy`.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import stat
from collections.abc import Iterator
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

if TYPE_CHECKING:
    import numpy as np

# JSON metadata (run.json, study.json, .drawn-with.json): run.json of a 65536-cell layout
# is a few MB (its free cells and coordinates).
MAX_JSON_BYTES = 64 * 2**20
# Deeper nesting than any file allo writes (run.json's deepest is 4).
MAX_JSON_DEPTH = 64
# metrics.jsonl: a row is about 2 KB; a million rows is far past any run.
MAX_METRICS_BYTES = 2 * 2**30
# A .npy array: (N, d) float64 at the largest layout and d.
MAX_NPY_BYTES = 2**31

_STRING_RE = re.compile(r'"(?:[^"\\]|\\.)*"')
_NOT_BRACKET_RE = re.compile(r"[^\[\]{}]+")


class ReadError(Exception):
    """A file that cannot be read safely; the message is one line naming it."""


def _kind(mode: int) -> str:
    for test, name in ((stat.S_ISFIFO, "a FIFO"), (stat.S_ISCHR, "a character device"),
                       (stat.S_ISBLK, "a block device"), (stat.S_ISSOCK, "a socket"),
                       (stat.S_ISDIR, "a directory")):
        if test(mode):
            return name
    return "not a regular file"


def _os_problem(err: OSError) -> str:
    if isinstance(err, FileNotFoundError):
        return "file not found"
    if isinstance(err, PermissionError):
        return "permission denied"
    if isinstance(err, IsADirectoryError):
        return "is a directory"
    return f"cannot read ({err.strerror or err})"


def inside(path: Path, root: Path) -> bool:
    """Whether `path`, links resolved, lies within `root` (links resolved too)."""
    try:
        Path(os.path.realpath(path)).relative_to(os.path.realpath(root))
    except ValueError:
        return False
    return True


@contextlib.contextmanager
def open_regular(path: Path | str, root: Path | str | None = None,
                 error: type[ReadError] = ReadError) -> Iterator[IO[bytes]]:
    """A binary file object of a regular file (refusing FIFOs, devices, sockets, folders
    and, with `root`, links out of `root`)."""
    path = Path(path)
    if root is not None and not inside(path, Path(root)):
        raise error(f"{path}: refused, it points outside {root}")
    flags = os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_NOCTTY", 0)
    try:
        fd = os.open(path, flags)
    except OSError as err:
        raise error(f"{path}: {_os_problem(err)}") from None
    try:
        mode = os.fstat(fd).st_mode
        if not stat.S_ISREG(mode):
            raise error(f"{path}: refused, it is {_kind(mode)}, not a regular file")
        handle = os.fdopen(fd, "rb")
    except BaseException:
        os.close(fd)
        raise
    with handle:
        yield handle


def read_bytes(path: Path | str, cap: int, root: Path | str | None = None, offset: int = 0,
               error: type[ReadError] = ReadError) -> bytes:
    """The file's bytes from `offset`; more than `cap` of them is an error."""
    with open_regular(path, root, error) as handle:
        try:
            size = os.fstat(handle.fileno()).st_size
            if size - offset > cap:
                raise error(f"{path}: {size - offset} bytes, larger than the {cap} a reader "
                            "takes; not a file allo wrote")
            handle.seek(offset)
            data = handle.read(cap + 1)
        except OSError as err:
            raise error(f"{path}: {_os_problem(err)}") from None
    if len(data) > cap:  # it grew while being read
        data = data[:cap]
    return data


def json_depth(text: str) -> int:
    """How deeply arrays and objects nest in `text` (strings' contents ignored)."""
    brackets = _NOT_BRACKET_RE.sub("", _STRING_RE.sub("", text))
    depth = deepest = 0
    for char in brackets:
        depth += 1 if char in "[{" else -1
        deepest = max(deepest, depth)
    return deepest


def loads_json(text: str | bytes, source: object, max_depth: int = MAX_JSON_DEPTH,
               error: type[ReadError] = ReadError) -> Any:
    """json.loads with bounded nesting; every failure is one line naming `source`."""
    if isinstance(text, bytes):
        try:
            text = text.decode("utf-8")
        except UnicodeDecodeError:
            raise error(f"{source}: not UTF-8 text") from None
    if text.count("[") + text.count("{") > max_depth and json_depth(text) > max_depth:
        raise error(f"{source}: JSON nested deeper than {max_depth} levels; refused")
    try:
        return json.loads(text)
    except json.JSONDecodeError as err:
        raise error(f"{source}: invalid JSON ({err.msg}, line {err.lineno})") from None
    except (RecursionError, ValueError) as err:  # ValueError: e.g. a huge integer literal
        raise error(f"{source}: unreadable JSON ({type(err).__name__})") from None


def read_json(path: Path | str, cap: int = MAX_JSON_BYTES, root: Path | str | None = None,
              error: type[ReadError] = ReadError) -> Any:
    return loads_json(read_bytes(path, cap, root, error=error), path, error=error)


def check_types(obj: dict, schema: dict[str, tuple[type, ...]], source: object,
                error: type[ReadError] = ReadError) -> None:
    """Each key of `schema` present in `obj` has one of its types (bool is no int)."""
    for key, types in schema.items():
        if key not in obj:
            continue
        value = obj[key]
        if not isinstance(value, types) or (isinstance(value, bool) and bool not in types):
            names = " or ".join("null" if t is type(None) else t.__name__ for t in types)
            raise error(f"{source}: '{key}' is {type(value).__name__}, expected {names}")


def load_npy(path: Path | str, cap: int = MAX_NPY_BYTES, root: Path | str | None = None,
             error: type[ReadError] = ReadError) -> np.ndarray:
    """A numeric .npy array: never unpickled, its header checked before its data are
    read (dtype numeric, size within `cap`)."""
    import numpy as np

    with open_regular(path, root, error) as handle:
        try:
            version = np.lib.format.read_magic(handle)
            if version == (1, 0):
                shape, fortran, dtype = np.lib.format.read_array_header_1_0(handle)
            elif version == (2, 0):
                shape, fortran, dtype = np.lib.format.read_array_header_2_0(handle)
            else:
                raise ValueError(f"format version {version}")
        except OSError as err:
            raise error(f"{path}: {_os_problem(err)}") from None
        except Exception as err:  # noqa: BLE001 (numpy's header parser raises many kinds)
            if "magic" in str(err).lower():
                raise error(f"{path}: not a .npy file") from None
            detail = (str(err).splitlines() or [type(err).__name__])[0]
            raise error(f"{path}: not a valid .npy file ({detail})") from None
        if dtype.hasobject:
            raise error(f"{path}: holds pickled objects; refused")
        if dtype.kind not in "fiub":
            raise error(f"{path}: expected a numeric array, found dtype {dtype}")
        size = int(np.prod(shape, dtype=np.float64)) * dtype.itemsize
        if size > cap:
            raise error(f"{path}: an array of {size} bytes, larger than the {cap} a reader "
                        "takes")
        handle.seek(0)
        try:
            array = np.load(handle, allow_pickle=False)
        except Exception as err:  # noqa: BLE001 (a truncated body, a mangled header)
            detail = (str(err).splitlines() or [type(err).__name__])[0]
            raise error(f"{path}: not a valid .npy file ({detail})") from None
    return array
