"""Batch commands: ``python -m hypernb notebooks``; the sweep module adds ``sweep`` and ``collect``."""
from __future__ import annotations

import ast
import os
import time
from pathlib import Path

from .errors import NotebookFailed, did_you_mean, optional
from .study.common import REPO, resolve_profile, training_allowed

NOTEBOOK_DIR = REPO / "notebooks"


def notebook_paths(only: str = "") -> list[Path]:
    """The study notebooks in order, the summary last (it reads what every other notebook wrote)."""
    paths = sorted(NOTEBOOK_DIR.glob("[0-9][0-9]_*.ipynb"), key=lambda p: (p.stem.endswith("_summary"), p.stem))
    if not paths:
        raise FileNotFoundError(f"no notebooks found in {NOTEBOOK_DIR}")
    if only:
        # "4" means 04, as the notebooks are numbered
        wanted = [w.strip().zfill(2) if w.strip().isdigit() else w.strip() for w in only.split(",") if w.strip()]
        chosen = [p for p in paths if any(p.stem.startswith(w) for w in wanted)]
        unknown = [w for w in wanted if not any(p.stem.startswith(w) for p in paths)]
        if unknown:
            raise ValueError(f"no notebook matches {unknown}; notebooks: {[p.stem for p in paths]}")
        return chosen
    return paths


def notebook_parameters(path: Path) -> dict:
    """The parameters cell (the code cell tagged ``parameters``) of a notebook as {NAME: value}: what
    papermill would inject into, read without Jupyter (plain assignments of Python literals)."""
    import json

    path = Path(path)
    try:
        cells = json.loads(path.read_text(encoding="utf-8"))["cells"]
    except (OSError, ValueError, KeyError) as e:
        raise ValueError(f"{path.name} is not a readable notebook ({e})") from e
    cell = next((c for c in cells if c.get("cell_type") == "code"
                 and "parameters" in c.get("metadata", {}).get("tags", [])), None)
    if cell is None:
        raise ValueError(f"{path.name} has no code cell tagged 'parameters'")
    source = "".join(cell["source"]) if isinstance(cell["source"], list) else cell["source"]
    values = {}
    try:
        body = ast.parse(source).body
    except SyntaxError as e:
        raise ValueError(f"{path.name}: the parameters cell is not plain Python (line {e.lineno}: {e.msg}); it may "
                         "hold only assignments NAME = literal") from None
    for node in body:
        if not (isinstance(node, ast.Assign) and len(node.targets) == 1 and isinstance(node.targets[0], ast.Name)):
            raise ValueError(f"{path.name}: the parameters cell may hold only assignments NAME = literal, got "
                             f"{ast.get_source_segment(source, node)!r}")
        try:
            values[node.targets[0].id] = ast.literal_eval(node.value)
        except (ValueError, TypeError, SyntaxError, MemoryError, RecursionError):
            raise ValueError(f"{path.name}: parameter {node.targets[0].id} is not a Python literal") from None
    return values


def _literal(text: str):
    try:
        return ast.literal_eval(text)
    except (ValueError, SyntaxError):
        return text  # a bare string


def parse_overrides(pairs: list, files: list) -> dict:
    """-p NAME VALUE (Python literals: 3, 1e-5, [0,1], 'x' or bare text) and -f params.yaml."""
    from . import io
    from .sweep import _number_as_text

    values = {}
    for f in files or []:
        if not Path(f).is_file():
            raise ValueError(f"parameters file {f} not found")
        loaded = io.read_yaml(f, "notebook parameters") or {}
        if not isinstance(loaded, dict):
            raise ValueError(f"{f} must hold a mapping of parameter names to values, such as {{EPOCHS: 2}}")
        for name, value in loaded.items():
            _number_as_text(str(f), name, value)
        values.update(loaded)
    for name, value in pairs or []:
        values[name] = _literal(value)
    if "PROFILE" in values:  # the command's own --profile also picks the records and what it prints
        raise ValueError(f"give the profile with --profile {values['PROFILE']}, not as a notebook parameter (-p/-f "
                         "PROFILE): --profile also chooses the records and what the command reports")
    return values


def _tower_names() -> list[str]:
    from .optim.tower import ALIASES, FAMILIES

    return sorted(FAMILIES) + sorted(ALIASES)


def _tower_level(v) -> bool:
    return isinstance(v, str) and v.strip().lower() in _tower_names()


# what a notebook parameter's value must be, by name (its kind comes from the notebook's SPEC)
_VALUE_RULES = [
    (r"(^|_)SEEDS$", "a non-empty list of integers >= 0, such as [0, 1, 2]",
     lambda v: isinstance(v, (list, tuple)) and len(v) > 0 and all(_int(x) and x >= 0 for x in v)),
    (r"(^|_)HEIGHTS$", "a non-empty list of integers >= 0, such as [0, 1, 3]",
     lambda v: isinstance(v, (list, tuple)) and len(v) > 0 and all(_int(x) and x >= 0 for x in v)),
    (r"(^|_)(EPOCHS|REPS|EXAMPLES|CHARS|SIZE)$", "a positive integer", lambda v: _int(v) and v >= 1),
    (r"DECADES$", "an integer >= 0", lambda v: _int(v) and v >= 0),
    (r"^MUS$", "a non-empty list of numbers in [0, 1)",
     lambda v: isinstance(v, (list, tuple)) and len(v) > 0 and all(_real(x) and 0 <= x < 1 for x in v)),
    (r"(ALPHAS0?|_GRID)$", "a non-empty list of finite numbers >= 0",
     lambda v: isinstance(v, (list, tuple)) and len(v) > 0 and all(_real(x) and x >= 0 for x in v)),
    (r"^KAPPA$", "a finite number >= 0 or a rule name", lambda v: isinstance(v, str) or (_real(v) and v >= 0)),
    (r"^PROFILE$", "one of auto, smoke, demo, full", lambda v: v in ("auto", "smoke", "demo", "full")),
    (r"(^|_)LEVEL$", "an optimizer's name for a tower level: " + ", ".join(_tower_names()), _tower_level),
]
_KINDS = {"int": "an integer", "float": "a number", "str": "text", "bool": "True or False", "list": "a list",
          "dict": "a mapping", "none": "None"}


def _int(v) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _real(v) -> bool:
    import math

    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def _kind_ok(value, kind: str) -> bool:
    return {"int": _int(value), "float": _real(value) or (isinstance(value, float)),
            "str": isinstance(value, str), "bool": isinstance(value, bool), "list": isinstance(value, (list, tuple)),
            "dict": isinstance(value, dict), "none": value is None}[kind]


def check_values(path: Path, values: dict) -> None:
    """The kind (from the notebook's SPEC in :mod:`hypernb.study`) and the value of each given
    parameter, so that a bad value fails here, before any kernel starts."""
    import re

    from .study import NOTEBOOKS

    module = NOTEBOOKS.get(Path(path).stem)
    spec = getattr(module, "SPEC", {})
    for name, value in values.items():
        where = f"{Path(path).stem}: parameter {name}"
        kinds = spec.get(name)
        kinds = kinds if isinstance(kinds, tuple) else (kinds,) if kinds else ()
        if value is None and (not kinds or "none" in kinds):
            continue
        if kinds and not any(_kind_ok(value, k) for k in kinds):
            raise ValueError(f"{where} must be {' or '.join(_KINDS.get(k, k) for k in kinds)}, got {value!r}"
                             + (" (text: a value that is not a Python literal is taken as text)"
                                if isinstance(value, str) else ""))
        for pattern, wanted, ok in _VALUE_RULES:
            if re.search(pattern, name) and not ok(value):
                raise ValueError(f"{where} must be {wanted}, got {value!r}")


def check_overrides(paths: list[Path], overrides: dict, profile: str = "auto") -> dict[Path, dict]:
    """Per notebook, the overrides it declares; a name no notebook declares, a value of the wrong
    kind for any selected notebook, or values that clash under the notebook's rules across
    parameters (fresh follow-up seeds, with the profile's defaults filled in) is an error, all
    checked before any kernel starts."""
    per_nb, used = {}, set()
    for p in paths:
        declared = set(notebook_parameters(p))
        per_nb[p] = {k: v for k, v in overrides.items() if k in declared}
        used |= set(per_nb[p])
    unknown = sorted(set(overrides) - used)
    if unknown:
        declared = {name for p in paths for name in notebook_parameters(p)}
        raise ValueError(f"parameter(s) {unknown} are not in the parameters cell of any selected notebook "
                         f"({', '.join(p.stem for p in paths)}){did_you_mean(unknown, declared)}")
    from .study import NOTEBOOKS, resolved

    for p in paths:
        check_values(p, per_nb[p])
        module = NOTEBOOKS.get(p.stem)
        if hasattr(module, "check"):
            try:
                resolved(p.stem, {**notebook_parameters(p), "PROFILE": profile, **per_nb[p]}, module.DEFAULTS,
                         module.check)
            except ValueError as e:
                raise ValueError(f"{p.stem}: {e}") from None
    return per_nb


def _check_kernel(kernel: str) -> None:
    """A Jupyter kernel that is not installed: one line naming the installed ones (not jupyter_client's traceback)."""
    from jupyter_client.kernelspec import KernelSpecManager

    installed = sorted(KernelSpecManager().find_kernel_specs())
    if kernel.lower() not in installed:  # (jupyter_client lower-cases kernel names)
        raise ValueError(f"--kernel {kernel!r}: no such Jupyter kernel here; installed: "
                         f"{', '.join(installed) or 'none'} (install one for this environment with: "
                         f"python -m ipykernel install --user --name {kernel})")


def run_notebooks(profile: str = "auto", out: str | None = None, overrides: dict | None = None, only: str = "",
                  kernel: str = "python3", timeout: int = 4 * 3600, progress: bool = True) -> Path:
    """Execute the notebooks in order with papermill.

    Without ``out``, each notebook keeps its run records where its profile keeps them (the committed
    ``evidence/`` for full and demo: finished runs are read back, nothing is retrained) and the
    executed copies go to ``outputs/executed/``. With ``out``, records, figures and executed copies
    all go there (a fresh folder retrains everything)."""
    if profile != "auto":
        profile = resolve_profile(profile)
    paths = notebook_paths(only)
    per_nb = check_overrides(paths, overrides or {}, profile)  # mistakes first, whatever is installed
    papermill = optional("papermill", "executing notebooks", "pip install -e '.[notebooks]' (or train their records "
                         "without Jupyter: python -m hypernb records)")
    _check_kernel(kernel)
    out_dir = Path(out).resolve() if out else REPO / "outputs" / "executed"  # kernels run inside notebooks/
    out_dir.mkdir(parents=True, exist_ok=True)
    env_data = os.environ.get("HYPERNB_DATA")
    if env_data and not os.path.isabs(env_data):  # kernels run inside notebooks/: pin the folder meant here
        env_data = os.environ["HYPERNB_DATA"] = os.path.abspath(env_data)
    print(f"executing {len(paths)} notebook(s), profile '{profile}', into {out_dir}"
          + (f" (data: {env_data})" if env_data else ""), flush=True)
    total = time.perf_counter()
    for i, path in enumerate(paths, 1):
        params = {"PROFILE": profile, **per_nb[path]}
        declared = notebook_parameters(path)
        if out:
            params["OUT_DIR"] = str(out_dir / path.stem)
            if "RESULTS_DIR" in declared:
                params["RESULTS_DIR"] = str(out_dir)
        t0 = time.perf_counter()
        print(f"[{i}/{len(paths)}] {path.stem} …", flush=True)
        try:
            papermill.execute_notebook(str(path), str(out_dir / path.name), parameters=params, kernel_name=kernel,
                                       cwd=str(NOTEBOOK_DIR), progress_bar=progress, execution_timeout=timeout,
                                       start_timeout=300)
        except papermill.PapermillExecutionError as err:  # the cell's own message says what is wrong
            raise NotebookFailed(f"{path.stem} stopped at cell {err.exec_count} with {err.ename}: {err.evalue} "
                                 f"(the notebook as far as it ran, with the traceback: {out_dir / path.name})") from None
        print(f"[{i}/{len(paths)}] {path.stem} done in {time.perf_counter() - t0:.0f} s", flush=True)
    print(f"all notebooks done in {time.perf_counter() - total:.0f} s; executed notebooks in {out_dir}", flush=True)
    return out_dir


def train_records(profile: str = "auto", overrides: dict | None = None, only: str = "", out: str | None = None) -> None:
    """Train (or resume) the run records each notebook reads, without Jupyter: for a batch machine
    that has torch but not papermill (a lent GPU, a cluster node). Each notebook's own parameters
    cell gives the defaults (overrides as for ``notebooks``); its records go where that profile keeps
    them (``evidence/<profile>/`` for full and demo; ``out/<notebook>`` with ``out``, as ``notebooks
    --out`` puts them), so rendering the notebooks afterwards reads them back and trains nothing. The
    summary trains nothing and is skipped."""
    from . import study

    chosen = notebook_paths(only)
    paths = [p for p in chosen if hasattr(study.NOTEBOOKS.get(p.stem), "train")]
    for p in chosen:
        if p not in paths:
            print(f"{p.stem} trains nothing (it reads what the other notebooks wrote)", flush=True)
    per_nb = check_overrides(paths, overrides or {}, profile)
    total = time.perf_counter()
    for i, path in enumerate(paths, 1):
        params = {**notebook_parameters(path), "PROFILE": profile, **per_nb[path]}
        if not training_allowed(params.get("TRAIN", True)):
            raise ValueError(f"records trains, but training is off for {path.stem} (HYPERNB_TRAIN=0 or TRAIN False); "
                             "unset it, or render the notebooks from their records with `notebooks`")
        if out:
            params["OUT_DIR"] = str(Path(out).resolve() / path.stem)  # the same folder that `notebooks --out` uses
        s = study.start(path.stem, params)
        t0 = time.perf_counter()
        print(f"[{i}/{len(paths)}] {path.stem}: training the {s.profile}-profile records into "
              f"{study.common.shown(s.records)}", flush=True)
        study.NOTEBOOKS[path.stem].train(s)
        print(f"[{i}/{len(paths)}] {path.stem} done in {time.perf_counter() - t0:.0f} s", flush=True)
    print(f"records of {len(paths)} notebook(s) done in {time.perf_counter() - total:.0f} s", flush=True)


def cmd_records(args) -> int:
    train_records(args.profile, parse_overrides(args.param, args.parameters_file), args.only, args.out)
    return 0


def cmd_notebooks(args) -> int:
    overrides = parse_overrides(args.param, args.parameters_file)
    run_notebooks(args.profile, args.out, overrides, args.only, args.kernel, args.timeout,
                  progress=not args.no_progress)
    return 0


def _selection_arguments(p) -> None:
    """Which notebooks, with which parameter overrides: the same for `notebooks` and `records`."""
    p.add_argument("-p", "--param", nargs=2, action="append", metavar=("NAME", "VALUE"), default=[],
                   help="override a parameter of every notebook that declares it (a Python literal)")
    p.add_argument("-f", "--parameters-file", action="append", default=[], help="YAML file of parameter overrides")
    p.add_argument("--only", default="", help="comma-separated notebook prefixes, e.g. 01,04")


def add_commands(sub) -> None:
    p = sub.add_parser("notebooks", help="execute the study notebooks with papermill (the main job)",
                       description="Execute notebooks/0*.ipynb in order (executed notebooks, figures, tables, "
                                   "verdicts).")
    p.add_argument("--profile", default="auto", help="smoke | demo | full | auto: each notebook's committed records "
                                                     "(full where present, else demo) [default: auto]")
    p.add_argument("--out", default=None, help="a folder for records, figures and executed notebooks (a fresh one "
                                               "retrains everything) [default: the committed evidence/, executed "
                                               "copies in outputs/executed]")
    _selection_arguments(p)
    p.add_argument("--kernel", default="python3", help="Jupyter kernel name [default: python3]")
    p.add_argument("--timeout", type=int, default=4 * 3600, help="seconds per cell [default: 14400]")
    p.add_argument("--no-progress", action="store_true", help="no papermill progress bar")
    p.set_defaults(func=cmd_notebooks)
    p = sub.add_parser("records", help="train the run records the notebooks read, without Jupyter",
                       description="Train (or resume) the run records of each notebook's profile, exactly the runs "
                                   "the notebook reads back, without papermill or a kernel (for GPU and cluster "
                                   "nodes); then render the notebooks anywhere with `notebooks` (nothing retrains).")
    p.add_argument("--profile", default="auto", help="smoke | demo | full | auto [default: auto]")
    _selection_arguments(p)
    p.add_argument("--out", default=None, help="a folder for the records, one subfolder per notebook, as `notebooks "
                                               "--out` reads them [default: where the profile keeps them]")
    p.set_defaults(func=cmd_records)
    from . import sweep

    sweep.add_commands(sub)


