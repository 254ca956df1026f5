"""The study file (TOML) and its expansion into jobs.

    name = "barrier"                       # optional; default: the file's stem
    layouts = ["room4", "grids/*.txt"]     # built-in names, files, globs (relative to the file)
    seeds = 5                              # a count (0..4) or a list [1, 5, 9]
    [grid]                                 # any `allo train` flag by its name
    objective = ["allo", "ggdo"]           # a list is an axis, a scalar is fixed
    steps = 4000
    [[exclude]]                            # drop the grid's configurations matching all keys
    layout = "maze"
    objective = "ggdo"
    [[include]]                            # the grid again with these keys replaced
    layout = "room4"
    lr-duals = [0.01, 0.1]

A job is one configuration (a layout and one value per option) with its seeds, trained
by one `allo train --seeds` process as one batched model. Every problem is a StudyError
whose one line names the file, the key and what is wrong.
"""

from __future__ import annotations

import dataclasses
import glob
import hashlib
import itertools
import json
import os
import re
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10: the same parser as a package
    import tomli as tomllib  # type: ignore[no-redef]

from allo import safeio
from allo.config import TrainConfig, apply_protocol, parse_seeds
from allo.layouts import LayoutError, builtin_names, load_layout_file

MAX_STUDY_BYTES = 1_000_000  # a study file is a page of TOML
TOP_KEYS = frozenset({"name", "description", "layouts", "seeds", "grid", "exclude", "include"})
# Options a study sets itself (where runs go, which layout, which seeds).
RESERVED = frozenset({"env", "env_file", "seed", "seeds", "run_dir", "results_dir"})
# Options that change how a run is computed or logged, not what it computes: they are
# passed to `allo train` but left out of the configuration's hash and its comparison.
MACHINE = frozenset({"device", "cuda_graph", "threads", "plot_during_training"})
NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,79}$")
FIELDS = {f.name: f for f in dataclasses.fields(TrainConfig)}


class StudyError(ValueError):
    """A bad study file or option: one line naming the file, the key and the problem."""


@dataclass(frozen=True)
class LayoutRef:
    """A layout a study names: a built-in (file None) or a layout file."""

    name: str
    file: Path | None
    digest: str  # sha256 of the layout text: an edited file is a new configuration

    def train_args(self) -> list[str]:
        return ["--env-file", str(self.file)] if self.file else [self.name]


@dataclass
class Job:
    """One configuration and its seeds: one `allo train --seeds` process."""

    layout: LayoutRef
    options: dict[str, Any]  # TrainConfig field -> value, only what the study sets
    seeds: list[int]
    key: str = ""  # readable slug + hash; its runs are runs/<key>__s<seed>
    config_hash: str = ""
    config: dict[str, Any] = field(default_factory=dict)  # what defines it (hashed)

    def __post_init__(self) -> None:
        science = {k: v for k, v in sorted(self.options.items()) if k not in MACHINE}
        self.config = {"layout": self.layout.name, "layout_sha256": self.layout.digest,
                       **science}
        text = json.dumps(self.config, sort_keys=True, separators=(",", ":"))
        self.config_hash = hashlib.sha256(text.encode()).hexdigest()[:12]
        objective = self.options.get("objective", TrainConfig.objective)
        slug = re.sub(r"[^A-Za-z0-9._-]", "_", f"{self.layout.name}__{objective}")
        self.key = f"{slug}__{self.config_hash}"

    def run_name(self, seed: int) -> str:
        return f"{self.key}__s{seed}"

    def option_args(self) -> list[str]:
        """The layout and options as `allo train` flags (seeds and run dirs come later)."""
        args = self.layout.train_args()
        for name, value in sorted(self.options.items()):
            flag = "--" + name.replace("_", "-")
            if isinstance(value, bool):
                args += [flag] if value else []
            else:
                args += [flag, repr(value) if isinstance(value, float) else str(value)]
        return args


@dataclass
class Study:
    name: str
    path: Path
    text: str
    jobs: list[Job]

    @property
    def runs(self) -> list[tuple[Job, int]]:
        return [(job, seed) for job in self.jobs for seed in job.seeds]


def load_study(path: Path | str, seeds_override: str | None = None) -> Study:
    """Read, check and expand a study file; StudyError (one line) on any problem."""
    path = Path(path)
    try:  # a regular file of bounded size (allo/safeio.py): never a FIFO or a device
        raw = safeio.read_bytes(path, MAX_STUDY_BYTES)
        text = raw.decode("utf-8")
        data = tomllib.loads(text)
    except safeio.ReadError as err:
        if not os.path.lexists(path):
            raise StudyError(f"{path}: no such study file") from None
        raise StudyError(str(err)) from None
    except UnicodeDecodeError as err:
        raise StudyError(f"{path}: cannot read ({err})") from None
    except tomllib.TOMLDecodeError as err:
        raise StudyError(f"{path}: not valid TOML ({err})") from None
    except RecursionError:  # tomllib recurses per nesting level
        raise StudyError(f"{path}: nested too deeply to be a study file") from None
    where = str(path)
    unknown = sorted(set(data) - TOP_KEYS)
    if unknown:
        raise StudyError(f"{where}: unknown key {unknown[0]!r} (known: "
                         f"{', '.join(sorted(TOP_KEYS))})")
    name = data.get("name", path.stem)
    if not isinstance(name, str) or not NAME_RE.match(name):
        raise StudyError(f"{where}: name: {name!r} is not a usable folder name "
                         "(letters, digits, . _ -)")
    if not isinstance(data.get("description", ""), str):
        raise StudyError(f"{where}: description: must be a string")
    base = path.parent
    layouts = resolve_layouts(data.get("layouts"), base, f"{where}: layouts")
    seeds = (parse_seed_option(seeds_override, "--seeds") if seeds_override is not None
             else read_seeds(data.get("seeds", 1), f"{where}: seeds"))
    grid = read_options(table(data, "grid", where), f"{where}: grid")
    excludes = [read_match(entry, layouts, base, f"{where}: exclude[{i}]")
                for i, entry in enumerate(tables(data, "exclude", where))]
    configs = [(layout, options) for layout in layouts for options in product(grid)
               if not any(matches(layout, options, rule) for rule in excludes)]
    for i, entry in enumerate(tables(data, "include", where)):
        configs += expand_include(entry, layouts, grid, base, f"{where}: include[{i}]")
    jobs = build_jobs(configs, seeds, where, seeds_override is not None)
    return Study(name, path, text, jobs)


def build_jobs(configs: list, seeds: list[int], where: str, forced: bool) -> list[Job]:
    """One job per distinct configuration, in file order; a duplicate is kept once."""
    jobs: dict[str, Job] = {}
    for layout, options in configs:
        own = options.pop("__seeds__", None)
        job = Job(layout, options, own if own is not None and not forced else seeds)
        check_config(job, where)
        jobs.setdefault(job.key, job)
    if not jobs:
        raise StudyError(f"{where}: the study expands to no runs (every configuration is "
                         "excluded, or layouts is empty)")
    return list(jobs.values())


def table(data: dict, key: str, where: str) -> dict:
    value = data.get(key, {})
    if not isinstance(value, dict):
        raise StudyError(f"{where}: {key}: must be a table ([{key}])")
    return value


def tables(data: dict, key: str, where: str) -> list[dict]:
    value = data.get(key, [])
    if not isinstance(value, list) or not all(isinstance(v, dict) for v in value):
        raise StudyError(f"{where}: {key}: must be an array of tables ([[{key}]])")
    return value


def resolve_layouts(value: Any, base: Path, where: str) -> list[LayoutRef]:
    """Built-in names, files and globs (relative to the study file), in the order given."""
    if value is None:
        raise StudyError(f"{where}: missing (a list of built-in names, files or globs)")
    items = [value] if isinstance(value, str) else value
    if not isinstance(items, list) or not all(isinstance(v, str) for v in items):
        raise StudyError(f"{where}: must be a list of strings")
    refs: dict[str, LayoutRef] = {}
    for item in items:
        for ref in resolve_layout(item, base, where):
            refs.setdefault(ref.name, ref)
    if not refs:
        raise StudyError(f"{where}: no layouts")
    return list(refs.values())


def resolve_layout(item: str, base: Path, where: str) -> list[LayoutRef]:
    if item in builtin_names():
        return [LayoutRef(item, None, digest_builtin(item))]
    paths = layout_paths(item, base)
    if not paths:
        if glob.has_magic(item):
            raise StudyError(f"{where}: {item!r} matches no layout file (beside the study "
                             "file or in the current directory)")
        raise StudyError(f"{where}: unknown layout {item!r} (not a built-in: "
                         f"{', '.join(builtin_names())}; no such file beside the study "
                         "file or in the current directory)")
    refs = []
    for path in paths:
        try:
            layout = load_layout_file(path)
        except LayoutError as err:
            raise StudyError(f"{where}: {err}") from None
        digest = hashlib.sha256(path.read_bytes()).hexdigest()
        refs.append(LayoutRef(layout.name, path.resolve(), digest))
    return refs


def layout_paths(item: str, base: Path) -> list[Path]:
    """A file or glob relative to the study file's folder, else to the current directory
    (so `../shared/...` written for the repository root works from there)."""
    pattern = Path(item).expanduser()
    for root in ([Path("/")] if pattern.is_absolute() else [base, Path.cwd()]):
        full = root / pattern
        if glob.has_magic(str(full)):
            paths = sorted(Path(p) for p in glob.glob(str(full)) if Path(p).is_file())
        else:
            paths = [full] if full.is_file() else []
        if paths:
            return paths
    return []


def digest_builtin(name: str) -> str:
    data = resources.files("allo").joinpath("builtin_layouts").joinpath(f"{name}.txt").read_bytes()
    return hashlib.sha256(data).hexdigest()


def parse_seed_option(text: str, where: str) -> list[int]:
    """--seeds N (a count: 0..N-1) or a list like 0-7 / 1,5,9."""
    try:
        if text.strip().isdigit():
            count = int(text)
            if count < 1:
                raise ValueError("a count of seeds must be at least 1")
            return list(range(count))
        return parse_seeds(text)
    except ValueError as err:
        raise StudyError(f"{where}: {err}") from None


def read_seeds(value: Any, where: str) -> list[int]:
    if isinstance(value, int) and not isinstance(value, bool):
        if value < 1:
            raise StudyError(f"{where}: a count of seeds must be at least 1, not {value}")
        return list(range(value))
    if (isinstance(value, list) and value
            and all(isinstance(v, int) and not isinstance(v, bool) and v >= 0 for v in value)):
        if len(set(value)) != len(value):
            raise StudyError(f"{where}: a seed is listed twice")
        return list(value)
    raise StudyError(f"{where}: must be a count (seeds = 5) or a list of non-negative "
                     f"integers (seeds = [1, 5, 9]), not {value!r}")


def field_name(key: str, where: str) -> str:
    """A flag name (num-eigenvectors, num_eigenvectors, steps) -> its TrainConfig field."""
    name = key.lstrip("-").replace("-", "_")
    if name not in FIELDS:
        aliases = {a.lstrip("-").replace("-", "_"): f.name
                   for f in FIELDS.values() for a in f.metadata["aliases"]}
        if name not in aliases:
            raise StudyError(f"{where}.{key}: unknown option (not an `allo train` flag)")
        name = aliases[name]
    if name in RESERVED:
        raise StudyError(f"{where}.{key}: set by the study itself (use layouts, seeds)")
    return name


def coerce(name: str, value: Any, where: str) -> Any:
    """A TOML value as the option's type; a wrong type or choice is refused."""
    kind = str(FIELDS[name].type).replace(" | None", "")
    ok = {"int": isinstance(value, int) and not isinstance(value, bool),
          "float": isinstance(value, (int, float)) and not isinstance(value, bool),
          "str": isinstance(value, str), "bool": isinstance(value, bool)}.get(kind, False)
    if not ok:
        raise StudyError(f"{where}: {value!r} is not of type {kind}")
    value = float(value) if kind == "float" else value
    choices = FIELDS[name].metadata["choices"]
    if choices and value not in choices:
        raise StudyError(f"{where}: {value!r} is not one of {', '.join(choices)}")
    return value


def read_options(data: dict, where: str) -> dict[str, list]:
    """{field: [values]}: a scalar is a one-value axis; axes keep the file's order."""
    axes: dict[str, list] = {}
    for key, value in data.items():
        name = field_name(key, where)
        values = value if isinstance(value, list) else [value]
        if not values:
            raise StudyError(f"{where}.{key}: an empty list gives no runs")
        axes[name] = [coerce(name, v, f"{where}.{key}") for v in values]
    return axes


def product(axes: dict[str, list]) -> list[dict[str, Any]]:
    names = list(axes)
    return [dict(zip(names, combo, strict=True))
            for combo in itertools.product(*(axes[n] for n in names))]


def lookup_layouts(value: Any, known: list[LayoutRef], base: Path, where: str
                   ) -> list[LayoutRef]:
    """Layouts named in an exclude or include: a study layout's name, or any layout."""
    names = value if isinstance(value, list) else [value]
    if not names or not all(isinstance(n, str) for n in names):
        raise StudyError(f"{where}: must be a layout name or a list of them")
    by_name = {ref.name: ref for ref in known}
    refs: dict[str, LayoutRef] = {}
    for name in names:
        for ref in [by_name[name]] if name in by_name else resolve_layout(name, base, where):
            refs.setdefault(ref.name, ref)
    return list(refs.values())


def read_match(entry: dict, known: list[LayoutRef], base: Path, where: str) -> dict:
    """An exclude rule: layout (names) and options, each a value or a list of values."""
    entry = dict(entry)
    rule: dict[str, Any] = {}
    if "layout" in entry:
        refs = lookup_layouts(entry.pop("layout"), known, base, f"{where}.layout")
        rule["layout"] = {ref.name for ref in refs}
    rule.update(read_options(entry, where))
    if not rule:
        raise StudyError(f"{where}: an empty rule would exclude everything")
    return rule


def matches(layout: LayoutRef, options: dict, rule: dict) -> bool:
    for key, allowed in rule.items():
        if key == "layout":
            if layout.name not in allowed:
                return False
        elif options.get(key, getattr(TrainConfig, key, None)) not in allowed:
            return False
    return True


def expand_include(entry: dict, layouts: list[LayoutRef], grid: dict[str, list],
                   base: Path, where: str) -> list[tuple[LayoutRef, dict]]:
    """The grid again with the include's keys replaced: its own layouts, axes, seeds."""
    entry = dict(entry)
    own = layouts
    for key in ("layout", "layouts"):
        if key in entry:
            own = lookup_layouts(entry.pop(key), layouts, base, f"{where}.{key}")
    seeds = read_seeds(entry.pop("seeds"), f"{where}.seeds") if "seeds" in entry else None
    axes = {**grid, **read_options(entry, where)}
    configs = []
    for layout in own:
        for options in product(axes):
            if seeds is not None:
                options["__seeds__"] = seeds
            configs.append((layout, options))
    return configs


def check_config(job: Job, where: str) -> None:
    """What `allo train` itself would refuse, refused here before anything starts."""
    try:
        cfg = apply_protocol(TrainConfig(**job.options), set(job.options))
        cfg.validate()
    except ValueError as err:
        flag = str(err).split()[0]
        raise StudyError(f"{where}: {flag.lstrip('-')}: {err}") from None
