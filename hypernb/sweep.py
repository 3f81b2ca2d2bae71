"""Sweeps: grids of runs (or notebooks) executed locally or as a Slurm job array, resumable.

A spec (YAML) names a target, fixed parameters, a grid (cartesian product), zipped lists and seeds::

    name: mnist-smoke
    target: run                     # or {notebook: notebooks/04_towers.ipynb}
    fixed: {task: mnist-mlp, profile: smoke, epochs: 1}
    grid: {optimizer: [sgd, sgd/sgd], alpha: [0.01, 0.1]}
    zip: {kappa: [1.0e-3, 1.0e-2], mu: [0.0, 0.5]}  # varied together (optional)
    seeds: [0]
    executor:
      local: {workers: 2}
      slurm: {partition: gpu, gpus_per_task: 1, cpus_per_task: 8, mem_gb: 16, time_min: 120,
              account: null, array_parallelism: 16, extra_sbatch: ["--qos=normal"]}

Every point gets ``<out>/points/<hash of its parameters>/``; a point whose result files are complete
is skipped on rerun, a failed one is listed with its log, and a preempted Slurm task resumes from
its last checkpoint (run() checkpoints every epoch; submitit requeues the task).

Batches: compatible points of a ``target: run`` spec (same task and model, towers that differ only in
numbers and height; see :mod:`hypernb.groups`) train together as one batched model, at most
``--batch K`` runs per group (default: every compatible point on a GPU, up to 32 on a CPU; 1 trains
each point alone). One local worker process, or one Slurm array task, trains one group; every
point still gets its own record in ``points/<id>/run/`` and its own ``DONE.json``.

Claims: a worker claims a point before running it by creating ``points/<id>/CLAIM.json`` atomically
(its pid, host, Slurm task and time; refreshed every 30 s), so two sweeps on one folder never run
a point twice: the second one reports the point as busy. A claim whose owner died (same host: its
pid is gone; a Slurm task elsewhere: Slurm no longer lists it; any host: not refreshed for
``HYPERNB_CLAIM_STALE_S`` seconds, default 600) is taken over; a requeued Slurm task reclaims its
own. Temporary files of killed writes are removed by the point's next owner.
"""
from __future__ import annotations

import contextlib
import hashlib
import itertools
import json
import math
import numbers
import os
import re
import shutil
import socket
import subprocess
import sys
import threading
import time
import uuid
from dataclasses import dataclass, field, fields
from pathlib import Path

from . import io
from .config import CONFIG_ALIASES, RunConfig
from .errors import MissingPackage, did_you_mean, optional

SPEC_KEYS = {"name", "target", "fixed", "grid", "zip", "seeds", "executor"}
LOCAL_KEYS = {"workers"}
SLURM_KEYS = {"partition", "gpus_per_task", "cpus_per_task", "mem_gb", "time_min", "account",
              "array_parallelism", "extra_sbatch", "setup", "python"}


@dataclass
class Spec:
    name: str
    target: str  # "run" or a notebook path
    fixed: dict
    grid: dict
    zipped: dict
    seeds: list
    local: dict = field(default_factory=dict)
    slurm: dict = field(default_factory=dict)
    source: str = ""

    @property
    def is_notebook(self) -> bool:
        return self.target != "run"

    def points(self) -> list[dict]:
        """Parameters of every point: fixed ∪ one grid combination ∪ one zipped row ∪ one seed."""
        keys = list(self.grid)
        combos = [dict(zip(keys, values)) for values in itertools.product(*self.grid.values())] or [{}]
        rows = [dict(zip(self.zipped, values)) for values in zip(*self.zipped.values())] or [{}]
        seeds = self.seeds or [None]
        out = []
        for combo in combos:
            for row in rows:
                for seed in seeds:
                    p = {**self.fixed, **combo, **row}
                    if seed is not None:
                        p["seeds" if not self.is_notebook else "SEEDS"] = [seed]
                    out.append(p)
        return out


# YAML 1.1 (PyYAML) reads 1e-5 (no dot) as text; 1.0e-5 is a number
_NUMBER_TEXT = re.compile(r"^[-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?$")
SLURM_TYPES = {"partition": str, "gpus_per_task": int, "cpus_per_task": int, "mem_gb": float, "time_min": int,
               "account": str, "array_parallelism": int, "extra_sbatch": list, "setup": list, "python": str}


def _number_as_text(where: str, key: str, value) -> None:
    """A value such as 1e-5 that YAML read as text: explain it and name the key."""
    for v in (value if isinstance(value, list) else [value]):
        if isinstance(v, list):
            _number_as_text(where, key, v)
        elif isinstance(v, str) and _NUMBER_TEXT.match(v.strip()):
            fix = v.strip().lower().replace("e", ".0e", 1) if "." not in v else v
            raise ValueError(f"{where}: '{key}' has {v!r}, which YAML read as text, not a number (YAML 1.1 needs a "
                             f"dot in a number with an exponent): write {fix}")


def _mapping(path, raw: dict, key: str, example: str) -> dict:
    value = raw.get(key)
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise ValueError(f"{path}: '{key}' must be a mapping of parameter names to values, such as {example}; "
                         f"got {type(value).__name__} {value!r}")
    return value


def _seeds(path, raw: dict) -> list:
    seeds = raw.get("seeds")
    if seeds is None:
        return []
    if isinstance(seeds, numbers.Integral) and not isinstance(seeds, bool):
        raise ValueError(f"{path}: 'seeds' is a list of seeds, got the number {seeds}: write [{seeds}] for seed "
                         f"{seeds}, or {list(range(seeds)) if 0 < seeds <= 10 else '[0, 1, 2]'} for {seeds} seeds")
    if not isinstance(seeds, list) or not seeds or not all(
            isinstance(x, numbers.Integral) and not isinstance(x, bool) and x >= 0 for x in seeds):
        _number_as_text(str(path), "seeds", seeds if isinstance(seeds, list) else [seeds])
        raise ValueError(f"{path}: 'seeds' must be a non-empty list of integers >= 0, such as [0, 1, 2]; got {seeds!r}")
    return list(seeds)


def _executor(path, raw: dict) -> tuple[dict, dict]:
    executor = raw.get("executor") or {}
    if not isinstance(executor, dict):
        raise ValueError(f"{path}: 'executor' must be a mapping with 'local' and/or 'slurm', got {executor!r}")
    bad = sorted(set(executor) - {"local", "slurm"})
    if bad:
        raise ValueError(f"{path}: unknown executor(s) {bad}{did_you_mean(bad, ('local', 'slurm'))}; use local "
                         "and/or slurm")
    local, slurm = executor.get("local") or {}, executor.get("slurm") or {}
    for keys, given, label in ((LOCAL_KEYS, local, "local"), (SLURM_KEYS, slurm, "slurm")):
        if not isinstance(given, dict):
            raise ValueError(f"{path}: executor '{label}' must be a mapping of options, got {given!r}")
        extra = sorted(set(given) - keys)
        if extra:
            raise ValueError(f"{path}: unknown {label} executor option(s) {extra}{did_you_mean(extra, keys)}; "
                             f"valid: {sorted(keys)}")
    workers = local.get("workers", 1)
    if not isinstance(workers, int) or isinstance(workers, bool) or workers < 1:
        raise ValueError(f"{path}: executor local 'workers' must be a positive integer, got {workers!r}")
    for key, value in slurm.items():
        want = SLURM_TYPES[key]
        if value is None and key == "account":
            continue
        _number_as_text(f"{path}: executor slurm", key, value)
        ok = (isinstance(value, want) and not isinstance(value, bool)) or (
            want is float and isinstance(value, numbers.Real) and not isinstance(value, bool))
        if want in (int, float) and ok and (not math.isfinite(value) or value < (0 if key == "gpus_per_task" else 1)):
            ok = False
        if want is list and ok and not all(isinstance(x, str) for x in value):
            ok = False
        if not ok:
            kind = {int: "a positive integer", float: "a positive number", str: "text",
                    list: "a list of strings"}[want]
            raise ValueError(f"{path}: executor slurm '{key}' must be {kind}, got {value!r}")
    if slurm.get("time_min") is not None and slurm["time_min"] < 2:
        raise ValueError(f"{path}: executor slurm 'time_min' must be at least 2, got {slurm['time_min']}: a task is "
                         "warned 90 s before its time limit, to checkpoint and requeue itself")
    sbatch_flags(slurm.get("extra_sbatch") or [], f"{path}: executor slurm 'extra_sbatch'")
    return local, slurm


def sbatch_flags(lines: list[str], where: str = "extra_sbatch") -> dict:
    """``["--qos=normal", "--qos normal", "--requeue"]`` as submitit's additional parameters
    ({"qos": "normal", "requeue": True}: a flag without a value is written bare)."""
    out = {}
    for line in lines:
        text = line.strip()
        if not text.startswith("--") or len(text) < 3:
            raise ValueError(f"{where}: {line!r} is not a long sbatch option; write it as --name=value or --name "
                             "(e.g. --constraint=a100, not -C a100)")
        key, sep, value = text[2:].partition("=")
        if not sep:  # "--qos normal", or a bare flag
            key, _, value = key.partition(" ")
        out[key.strip()] = value.strip() or True
    return out


def load_spec(path) -> Spec:
    """Read and validate a spec: unknown keys, values of the wrong kind and parameters the target
    lacks are errors (each names the file and the key)."""
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"sweep spec {path} not found" + (" (it is a folder)" if path.is_dir() else ""))
    raw = io.read_yaml(path, "a sweep spec")
    if raw is None or raw == {}:
        raise ValueError(f"{path}: the spec is empty; a sweep spec is a mapping with keys {sorted(SPEC_KEYS)}, such "
                         "as fixed: {task: mnist-mlp, profile: smoke} and grid: {alpha: [0.01, 0.1]} (see "
                         "sweeps/smoke_example.yaml)")
    if not isinstance(raw, dict):
        raise ValueError(f"{path}: a sweep spec is a mapping with keys {sorted(SPEC_KEYS)}")
    unknown = sorted(set(raw) - SPEC_KEYS, key=str)
    if unknown:
        raise ValueError(f"{path}: unknown key(s) {unknown} in the spec{did_you_mean(unknown, SPEC_KEYS)}; valid keys: "
                         f"{sorted(SPEC_KEYS)}")
    name = raw.get("name") or path.stem
    if not isinstance(name, str) or not re.match(r"^[\w.+-]+$", name):
        raise ValueError(f"{path}: 'name' must be a short name (letters, digits, . _ + -), got {name!r}")
    target = raw.get("target", "run")
    if isinstance(target, dict):
        if set(target) != {"notebook"} or not isinstance(target["notebook"], str):
            raise ValueError(f"{path}: target is 'run' or {{notebook: <path>}}, got {target!r}")
        nb = Path(target["notebook"])
        if not nb.is_absolute():
            nb = (path.parent / nb) if (path.parent / nb).exists() else Path.cwd() / nb
        if not nb.exists():
            raise ValueError(f"{path}: notebook {target['notebook']} not found")
        target = str(nb.resolve())
    elif target != "run":
        raise ValueError(f"{path}: target is 'run' or {{notebook: <path>}}, got {target!r}")
    fixed = _mapping(path, raw, "fixed", "{task: mnist-mlp, epochs: 1}")
    grid = _mapping(path, raw, "grid", "{alpha: [0.01, 0.1]}")
    zipped = _mapping(path, raw, "zip", "{alpha: [0.01, 0.1], kappa: [1.0e-3, 1.0e-2]}")
    for label, entries in (("grid", grid), ("zip", zipped)):
        for key, values in entries.items():
            if not isinstance(values, list) or not values:
                raise ValueError(f"{path}: '{key}' in {label} must be a non-empty list of values, such as "
                                 f"{key}: [a, b], got {values!r}")
    for label, entries in (("fixed", fixed), ("grid", grid), ("zip", zipped)):
        for key, value in entries.items():
            _number_as_text(f"{path} ({label})", key, value)
    if len({len(v) for v in zipped.values()}) > 1:
        raise ValueError(f"{path}: zipped lists must have the same length, got "
                         f"{ {k: len(v) for k, v in zipped.items()} }")
    overlap = set(grid) & set(zipped) | (set(grid) | set(zipped)) & set(fixed)
    if overlap:
        raise ValueError(f"{path}: {sorted(overlap)} given more than once (fixed, grid and zip must not overlap)")
    seeds = _seeds(path, raw)
    local, slurm = _executor(path, raw)
    spec = Spec(name, target, dict(fixed), grid, zipped, seeds, local, slurm, str(path))
    _check_parameters(spec)
    _check_distinct(spec)
    return spec


def _check_distinct(spec: Spec) -> None:
    """No two points are one run: a repeated value would give two points one folder (and one id), and
    every point sharing it would fail after the queue wait. The error names the list that repeats."""
    def canonical(v):  # 1, 1.0 and 1.0e+0 are one number
        if isinstance(v, (list, tuple)):
            return "[" + ", ".join(canonical(x) for x in v) + "]"
        if isinstance(v, numbers.Real) and not isinstance(v, bool):
            return repr(float(v))
        return json.dumps(v, sort_keys=True, default=str)

    lists = [("seeds", spec.seeds)] + [(f"grid '{k}'", v) for k, v in spec.grid.items()]
    lists.append(("zip", [list(row) for row in zip(*spec.zipped.values())]))
    for where, values in lists:
        keys = [canonical(v) for v in values]
        again = [json.dumps(v, default=str) for i, v in enumerate(values) if keys[i] in keys[:i]]
        if again:
            raise ValueError(f"{spec.source}: {where} repeats {', '.join(again)} (equal numbers written differently "
                             "are one value): two points would be one run; give each value once")


def _not_finite(value) -> bool:
    """A number JSON cannot hold (inf, NaN), anywhere inside a parameter's value."""
    if isinstance(value, float):
        return not math.isfinite(value)
    if isinstance(value, dict):
        return any(_not_finite(v) for v in value.values())
    return isinstance(value, (list, tuple)) and any(_not_finite(v) for v in value)


def _check_parameters(spec: Spec) -> None:
    names = set(spec.fixed) | set(spec.grid) | set(spec.zipped)
    for p in spec.points():  # a point is kept as strict JSON (point.json): an inf would come back as null
        bad = sorted(k for k, v in p.items() if _not_finite(v))
        if bad:
            raise ValueError(f"{spec.source}: {bad} hold(s) a number that is not finite (.inf or .nan), which a point "
                             "cannot keep (its point.json is JSON); give a finite number")
    if spec.is_notebook:
        from .batch import check_values, notebook_parameters

        declared = set(notebook_parameters(Path(spec.target)))
        if "OUT_DIR" in names:  # (it would be replaced without a word)
            raise ValueError(f"{spec.source}: OUT_DIR is the sweep's to set: each point writes to its own "
                             "points/<id>/out; leave it out of the spec (choose the sweep's folder with --out)")
        unknown = sorted(names - declared)
        if unknown:
            raise ValueError(f"{spec.source}: the notebook {Path(spec.target).name} has no parameter(s) {unknown}"
                             f"{did_you_mean(unknown, declared)}; "
                             f"its parameters: {sorted(declared)}")
        for p in spec.points():
            try:
                check_values(Path(spec.target), p)
            except ValueError as e:
                raise ValueError(f"{spec.source}: {e}") from None
        return
    valid = {f.name for f in fields(RunConfig)} - {"out_dir", "seeds" if spec.seeds else ""}
    unknown = sorted(names - valid)
    aliased = [f"{k!r} → {CONFIG_ALIASES[k]!r}" for k in unknown if k in CONFIG_ALIASES]
    if aliased:  # run() takes them, but a point is named by the hash of its fields: one name per setting
        raise ValueError(f"{spec.source}: write the field names in a spec ({', '.join(aliased)}): a point is "
                         "identified by its parameters, so each setting has one name there")
    if unknown:
        raise ValueError(f"{spec.source}: run() has no parameter(s) {unknown}{did_you_mean(unknown, valid)}; valid: "
                         f"{sorted(valid)}")
    for p in spec.points():  # every point must be a valid configuration before anything starts
        try:
            RunConfig.from_dict(p)
        except (ValueError, TypeError) as e:
            raise ValueError(f"{spec.source}: {e} (in the point {json.dumps(p, sort_keys=True, default=str)})") \
                from None


def point_id(params: dict) -> str:
    """A stable name for a point: the hash of its parameters (sorted JSON)."""
    return hashlib.sha1(json.dumps(params, sort_keys=True, default=str).encode()).hexdigest()[:10]


def prepare(spec: Spec, out: Path) -> list[Path]:
    """Write <out>/points/<id>/point.json for every point (idempotent) and the sweep's index. A folder
    holds one sweep: another spec's (by name) is refused, since collect would mix their tables."""
    index = out / "sweep.json"
    if index.exists():
        before = io.read_json(index, what="a sweep's index")
        theirs = before.get("name") if isinstance(before, dict) else None
        if theirs not in (None, spec.name):
            raise ValueError(f"{out} holds the sweep {theirs!r} (from {before.get('spec')}), not {spec.name!r}: give "
                             "this spec a folder of its own (--out), or the same name (its 'name:' key, by default "
                             "the spec file's name) to extend that sweep")
    out.mkdir(parents=True, exist_ok=True)
    dirs = []
    for params in spec.points():
        d = out / "points" / point_id(params)
        if (d / "point.json").exists():
            try:
                read_point(d)
            except io.DamagedFileError as e:  # the spec says what it held: written again, the damaged one kept
                aside = io.set_aside(d / "point.json")
                print(f"{e}\n(nothing to do: the sweep set it aside as {io.shown(aside)} and wrote it again from the "
                      "spec)", flush=True)
        if not (d / "point.json").exists():
            io.write_json(d / "point.json", {"target": spec.target, "params": params})
        dirs.append(d)
    io.write_json(out / "sweep.json", {"name": spec.name, "spec": spec.source, "target": spec.target,
                                        "points": [d.name for d in dirs]})
    return dirs


POINT = "a sweep point (target and parameters)"


def read_point(point_dir: Path) -> dict:
    """``points/<id>/point.json``: {"target": "run" or a notebook, "params": {…}}; a file that is not
    that is an error naming it and the fix (the sweep writes a missing one again from its spec)."""
    path = Path(point_dir) / "point.json"
    info = io.read_json(path, what=POINT)
    if not (isinstance(info, dict) and isinstance(info.get("target"), str) and isinstance(info.get("params"), dict)):
        why = io.shape(info) + (", not a mapping with 'target' and 'params'" if not isinstance(info, dict) else
                                ", without a target text and a mapping of params")
        raise io.wrong_json(path, POINT, why, "Delete it and rerun the sweep, which writes it again from the spec")
    return info


def is_done(point_dir: Path) -> bool:
    """A point is done when its result files are complete (a run that ended, or a notebook that finished):
    its DONE.json and, for a run, a readable ``run/metrics.json`` in which every seed of the point ended
    (ok or diverged). A point whose results were deleted or damaged is not done: the sweep runs it again
    (resuming from its checkpoint where there is one)."""
    point_dir = Path(point_dir)
    try:
        done = io.read_json(point_dir / "DONE.json", what="a finished point's status")
        info = read_point(point_dir)
    except (OSError, ValueError):
        return False
    if not isinstance(done, dict):
        return False
    if info["target"] != "run":
        return (point_dir / Path(info["target"]).name).is_file()  # the executed notebook
    try:
        wanted = RunConfig.from_dict(info["params"]).seeds
    except (ValueError, TypeError):
        return False
    from .train import finished_record

    return finished_record(point_dir / "run", wanted)


# -- claims: one owner per point ------------------------------------------------------------------
CLAIM = "CLAIM.json"
FAILED = "FAILED.json"  # the sweep's last attempt at the point failed (its log says why); gone when it runs again
HEARTBEAT_S = 30.0  # how often an owner refreshes its claims
BREAK_LOCK_STALE_S = 60.0  # a break lock this old was left by a killed process
_TOKEN = uuid.uuid4().hex  # this process
_held: set = set()
_held_lock = threading.Lock()
_beat: threading.Thread | None = None
_slurm_worker = False  # set in a Slurm array task of a sweep: its claims carry the task's id


def stale_after() -> float:
    """Seconds without a refresh after which any claim counts as its owner's leftover."""
    return float(os.environ.get("HYPERNB_CLAIM_STALE_S", "600"))


def _slurm_task() -> str | None:
    """The Slurm task this sweep worker runs as (the same after a requeue), or None (not a sweep's
    Slurm task: local workers inside an allocation share its job id, which must not make them one)."""
    if not _slurm_worker:
        return None
    job, task = os.environ.get("SLURM_ARRAY_JOB_ID"), os.environ.get("SLURM_ARRAY_TASK_ID")
    return f"{job}_{task}" if job and task else os.environ.get("SLURM_JOB_ID")


def _owner() -> dict:
    return {"pid": os.getpid(), "host": socket.gethostname(), "slurm": _slurm_task(), "token": _TOKEN,
            "since": time.strftime("%Y-%m-%dT%H:%M:%S%z")}


def _read_claim(path: Path):
    """(raw bytes, parsed dict or {}, mtime) of a claim file, or None if there is none."""
    try:
        with open(path, "rb") as f:
            raw = f.read()
            mtime = os.fstat(f.fileno()).st_mtime
    except FileNotFoundError:
        return None
    try:
        info = json.loads(raw)
    except ValueError:  # being written this very moment, or cut short by a kill
        info = {}
    return raw, info if isinstance(info, dict) else {}, mtime


def _mine(info: dict) -> bool:
    """Our own claim: this process, or this Slurm task before its requeue."""
    return info.get("token") == _TOKEN or (info.get("slurm") is not None and info.get("slurm") == _slurm_task())


def _pid_alive(pid) -> bool:
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return False
    except (PermissionError, ValueError, TypeError, OverflowError):
        return True
    return True


def _alive(info: dict, mtime: float) -> bool:
    """Whether the owner of a claim may still be working: refreshed recently and, on this host, its
    process exists; on another host, a Slurm task that Slurm still lists (one cancelled or ended
    would otherwise block its points until the claim went stale)."""
    if time.time() - mtime > stale_after():
        return False
    if info.get("host") == socket.gethostname() and info.get("pid") is not None:
        return _pid_alive(info["pid"])
    if info.get("slurm"):
        return _slurm_task_listed(str(info["slurm"]))
    return True


def _slurm_task_listed(task: str) -> bool:
    """False only when Slurm answers that the task is neither queued nor running (a requeued task is
    queued again); True when it cannot tell (no squeue here, no answer)."""
    if shutil.which("squeue") is None:
        return True
    try:
        out = subprocess.run(["squeue", "-h", "-j", task, "-o", "%T"], capture_output=True, text=True, timeout=20)
    except (OSError, subprocess.TimeoutExpired):
        return True
    # an error ("Invalid job id specified": long gone, or another cluster's job) cannot tell: the claim then
    # goes stale as any other; only an answer without the task says it ended
    return out.returncode != 0 or bool(out.stdout.strip())


def describe_claim(point_dir: Path) -> str:
    seen = _read_claim(Path(point_dir) / CLAIM)
    if seen is None:
        return "not claimed"
    info = seen[1]
    who = f"pid {info.get('pid')} on {info.get('host')}" + (f" (Slurm task {info['slurm']})" if info.get("slurm")
                                                              else "")
    return f"claimed by {who} since {info.get('since')}"


def _with_break_lock(path: Path, action):
    """Run ``action()`` holding ``<claim>.break`` (who may change or remove an existing claim); None
    if another process holds it."""
    lock = path.with_name(path.name + ".break")
    try:
        fd = os.open(lock, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
    except FileExistsError:
        try:
            if time.time() - lock.stat().st_mtime > BREAK_LOCK_STALE_S:
                lock.unlink()
        except FileNotFoundError:
            pass
        return None
    try:
        os.close(fd)
        return action()
    finally:
        lock.unlink(missing_ok=True)


def claim(point_dir: Path) -> bool:
    """Claim a point for this process (see the module docstring); False if another live owner has it."""
    path = Path(point_dir) / CLAIM
    payload = (json.dumps(_owner()) + "\n").encode()
    for attempt in range(200):
        try:
            fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
        except FileExistsError:
            seen = _read_claim(path)
            if seen is None:
                continue  # released meanwhile: try again
            raw, info, mtime = seen

            def same():  # the claim we judged is still the one there
                now = _read_claim(path)
                return now is not None and now[0] == raw and now[2] == mtime

            if _mine(info):  # e.g. a requeued Slurm task: take it back, refreshed
                if _with_break_lock(path, lambda: same() and (io.atomic_write_bytes(path, payload) or True)) is True:
                    _hold(path)
                    return True
            elif _alive(info, mtime):
                return False
            else:  # its owner is gone: remove the leftover, then race for it like everyone else
                _with_break_lock(path, lambda: same() and (path.unlink() or True))
            time.sleep(0.01 * (attempt % 10))
            continue
        with os.fdopen(fd, "wb") as f:
            f.write(payload)
        _hold(path)
        return True
    return False


def holds(point_dir: Path) -> bool:
    """Whether this very process holds the point's claim already (a requeued Slurm task's earlier claim
    is not held: it is taken back by :func:`claim`, refreshed)."""
    seen = _read_claim(Path(point_dir) / CLAIM)
    return seen is not None and seen[1].get("token") == _TOKEN and Path(point_dir) / CLAIM in _held


def release(point_dir: Path) -> None:
    """Give up this process's claim of a point (nothing if it is not ours)."""
    path = Path(point_dir) / CLAIM
    with _held_lock:
        _held.discard(path)
    for _ in range(500):  # the break lock is held for microseconds at a time
        seen = _read_claim(path)
        if seen is None or not _mine(seen[1]):
            return
        if _with_break_lock(path, lambda: _mine((_read_claim(path) or (b"", {}, 0))[1]) and (path.unlink() or True)) \
                is not None:
            return
        time.sleep(0.01)


def _hold(path: Path) -> None:
    """Keep refreshing the claim while this process lives (a daemon thread touches it)."""
    global _beat
    with _held_lock:
        _held.add(path)
        if _beat is None or not _beat.is_alive():
            _beat = threading.Thread(target=_heartbeat, name="hypernb-claims", daemon=True)
            _beat.start()


def _heartbeat() -> None:
    while True:
        time.sleep(HEARTBEAT_S)
        with _held_lock:
            paths = list(_held)
        for path in paths:
            try:
                os.utime(path)
            except OSError:
                pass


# -- running points --------------------------------------------------------------------------------
def run_points(point_dirs, batch: int | None = None) -> dict[str, dict]:
    """Execute points in this process (what a local worker or a Slurm task calls): claim each one,
    train the claimed ``target: run`` points together (``hypernb.run`` on their list, batching
    compatible ones, at most ``batch`` per group), write each point's DONE.json, release. Points
    that are done are skipped; points another live process holds are left to it ("busy")."""
    dirs = [Path(d) for d in point_dirs]
    status: dict[str, dict] = {}
    mine = []
    try:
        for d in dirs:
            if is_done(d):
                status[d.name] = {"status": "done"}
            elif not claim(d):
                status[d.name] = {"status": "busy", "owner": describe_claim(d)}
                print(f"point {d.name} is {describe_claim(d)}; leaving it to that process", flush=True)
            elif is_done(d):  # finished by its previous owner just now
                release(d)
                status[d.name] = {"status": "done"}
            else:
                io.remove_temporaries(d, older_than=None)  # ours alone: any temporary file is a leftover
                (d / FAILED).unlink(missing_ok=True)  # (an earlier attempt's: this one is under way)
                mine.append(d)
        points = {d: read_point(d) for d in mine}
        runs = [d for d in mine if points[d]["target"] == "run"]
        if runs:
            from .train import run

            t0 = time.perf_counter()
            configs = [RunConfig.from_dict({**points[d]["params"], "out_dir": str(d / "run"), "quiet": True})
                       for d in runs]
            results = _run_setting_aside_damage(run, configs, batch, runs[0].parent)
            seconds = time.perf_counter() - t0
            for d, result in zip(runs, results):
                status[d.name] = {"status": "ok" if result.ok else "diverged", "summary": result.summary,
                                  "seconds": seconds, "trained_with": len(runs)}
                io.write_json(d / "DONE.json", status[d.name])
        for d in mine:
            if points[d]["target"] != "run":
                papermill = optional("papermill", "a sweep of notebooks", "pip install -e '.[notebooks]'")
                t0 = time.perf_counter()
                target = points[d]["target"]
                params = {**points[d]["params"], "OUT_DIR": str(d / "out")}
                papermill.execute_notebook(target, str(d / Path(target).name), parameters=params,
                                           cwd=str(Path(target).parent), progress_bar=False, start_timeout=300)
                status[d.name] = {"status": "ok", "seconds": time.perf_counter() - t0}
                io.write_json(d / "DONE.json", status[d.name])
    finally:
        for d in mine:
            release(d)
    return status


def _run_setting_aside_damage(run, configs: list, batch, points_dir: Path) -> list:
    """``run(configs)``, where a damaged file of these points (a metrics.json or checkpoint cut short)
    is renamed to ``<name>.damaged`` and the run goes on without it, as :func:`is_done` promises: what
    the file recorded is trained again, and what other files record (finished seeds, checkpoints) is
    kept. A damaged file elsewhere stops the points with its message, as before."""
    inside, seen = points_dir.resolve(), set()
    while True:
        try:
            return run(configs, batch=batch)
        except io.DamagedFileError as e:
            path = e.path.resolve()
            if inside not in path.parents or not path.is_file() or path in seen:
                raise
            seen.add(path)
            aside = io.set_aside(path)
            print(f"{e}\n(nothing to do: the sweep set it aside as {io.shown(aside)} and trains what it recorded "
                  "again)", flush=True)


def run_point(point_dir) -> dict:
    """Execute one point in this process (see :func:`run_points`)."""
    return run_points([point_dir])[Path(point_dir).name]


def default_batch(spec: Spec, executor: str) -> int | None:
    """Runs per group when --batch is not given: every compatible point on a GPU; on a CPU up to
    ``MAX_BATCH_CPU`` (32) when every point's model gains from batching there (the MLP), else 1."""
    from .groups import batches_well_on_cpu
    from .train import MAX_BATCH_CPU

    if spec.is_notebook:
        return 1
    if executor == "slurm":
        gpu = bool(spec.slurm.get("gpus_per_task"))
    else:
        import torch

        gpu = torch.cuda.is_available()
    devices = {str(p.get("device", "auto")) for p in spec.points()}
    if gpu and devices <= {"auto", "cuda"}:
        return None
    points = [RunConfig(task=p.get("task", RunConfig().task)) for p in spec.points()]
    return MAX_BATCH_CPU if all(batches_well_on_cpu(c) for c in points) else 1


def groups_of(spec: Spec, dirs: list[Path], batch: int | None) -> list[list[Path]]:
    """Compatible points together, at most ``batch`` runs (configuration × seed) per group, in
    order: what one worker process or one Slurm array task trains."""
    if spec.is_notebook or batch == 1:
        return [[d] for d in dirs]
    from .groups import compatibility

    groups: list[tuple[str, list, int, list]] = []  # (compatibility, tallest tower, runs, dirs)
    for d in dirs:
        c = RunConfig.from_dict(read_point(d)["params"]).resolved()
        key, tower, n = compatibility(c), c.tower_names(), len(c.seeds)
        for i, (k, tall, count, members) in enumerate(groups):
            short, long_ = sorted((tall, tower), key=len)
            if k == key and long_[:len(short)] == short and (batch is None or count + n <= batch):
                groups[i] = (k, long_, count + n, members + [d])
                break
        else:
            groups.append((key, tower, n, [d]))
    return [members for _, _, _, members in groups]


# -- executors -------------------------------------------------------------------------------------
STOP_GRACE_S = 60.0  # how long an interrupted local sweep waits for a worker to release its points


def run_local(spec: Spec, groups: list[list[Path]], workers: int, batch: int | None = None,
              quiet: bool = False) -> dict:
    """Each group in its own Python process (a crash stays contained), ``workers`` at a time; the
    process's output goes to each of its points' log.txt. Returns {"ran": [...], "failed": [(dir,
    log, None)], "busy": [...]} from what each worker reports (busy: held by another sweep, which runs it)."""
    import tempfile
    from concurrent.futures import ThreadPoolExecutor

    from tqdm.auto import tqdm

    live = []  # the workers' processes, stopped with the sweep (see below)

    def one(group: list[Path]):
        with tempfile.TemporaryDirectory() as tmp:
            report = Path(tmp) / "report.json"
            cmd = [sys.executable, "-m", "hypernb", "points", *map(str, group), "--report", str(report)]
            if batch is not None:
                cmd += ["--batch", str(batch)]
            logs = [open(d / "log.txt", "ab") for d in group]
            try:
                proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                        env={**os.environ, "PYTHONUNBUFFERED": "1", SWEEP_PID: str(os.getpid())})
                live.append(proc)
                for line in proc.stdout:
                    for log in logs:
                        log.write(line)
                        log.flush()
                proc.wait()
            finally:
                for log in logs:
                    log.close()
            return group, (json.loads(report.read_text()) if report.exists() else {})

    out = {"ran": [], "failed": [], "busy": []}
    with ThreadPoolExecutor(max_workers=workers) as pool, stopped_by_sigterm(), \
            tqdm(total=sum(len(g) for g in groups), desc=f"sweep {spec.name}", disable=quiet) as bar:
        try:
            for group, status in pool.map(one, groups):
                for d in group:
                    state = status.get(d.name, {}).get("status")
                    if state in ("ok", "diverged"):
                        out["ran"].append(d)
                    elif state == "busy":
                        out["busy"].append(d)
                    elif state != "done" or not is_done(d):
                        out["failed"].append((d, str(d / "log.txt"), None))
                bar.update(len(group))
        except BaseException:  # Ctrl-C or SIGTERM: the workers stop too (a kill of this process alone orphaned
            for proc in live:  # them, still training and holding their points); each resumes from its checkpoint
                if proc.poll() is None:
                    proc.terminate()
            for proc in live:  # a worker stops once (later signals are ignored while it releases its points):
                try:  # one that hangs there is killed, so that the sweep never waits on it for ever
                    proc.wait(timeout=STOP_GRACE_S)
                except subprocess.TimeoutExpired:
                    proc.kill()
            pool.shutdown(cancel_futures=True)
            raise
    return out


@contextlib.contextmanager
def stopped_by_sigterm(once: bool = False):
    """SIGTERM (a scheduler's or a user's kill) ends the sweep (or ``python -m hypernb run``) as Ctrl-C
    does, so that it stops its workers, releases its claims and exits with the interrupted status,
    instead of dying alone. ``once`` (a sweep's worker): the first SIGINT or SIGTERM stops it and later
    ones are ignored, so that they cannot cut short the release of its claims. Ctrl-C reaches the whole
    process group, and the sweep then terminates its workers too: that second signal used to arrive while
    a worker was releasing, and left its CLAIM.json behind."""
    import signal
    import threading

    if threading.current_thread() is not threading.main_thread():
        yield
        return
    stopping = []

    def stop(signum, frame):
        if once and stopping:
            return
        stopping.append(signum)
        raise KeyboardInterrupt

    names = (signal.SIGTERM, signal.SIGINT) if once else (signal.SIGTERM,)
    before = {n: signal.signal(n, stop) for n in names}
    try:
        yield
    finally:
        for n, handler in before.items():
            signal.signal(n, handler)


SWEEP_PID = "HYPERNB_SWEEP_PID"  # set by a local sweep for its workers: the process they end with


@contextlib.contextmanager
def _ends_with_parent(every_s: float = 1.0):
    """A local sweep's worker stops (as on SIGTERM: its claims released, each point resumable from its
    checkpoint) when the sweep that started it is gone: a sweep killed with SIGKILL, or by the OOM killer,
    cannot stop its workers itself, and they trained on, orphaned, holding their points. The worker asks
    every ``every_s`` whether its parent changed (portable, unlike Linux's PR_SET_PDEATHSIG, which also
    fires when the parent's *thread* that started it ends, as a thread pool's do)."""
    import signal
    import threading

    parent, done = int(os.environ.get(SWEEP_PID) or os.getppid()), threading.Event()  # (the sweep's own word: it
    # may have died while this worker was still importing torch, and the parent is then already the reaper)

    def watch():
        while not done.wait(every_s):
            if os.getppid() != parent:
                os.kill(os.getpid(), signal.SIGTERM)
                return

    threading.Thread(target=watch, daemon=True, name="ends-with-parent").start()
    try:
        yield
    finally:
        done.set()


class SlurmPoints:
    """What a Slurm array task runs: one group of points, requeued (and resumed) on preemption or
    timeout; the requeued task reclaims its own points."""

    def __call__(self, point_dirs: list, batch: int | None = None) -> dict:
        global _slurm_worker
        _slurm_worker = True
        return run_points(point_dirs, batch)

    def checkpoint(self, point_dirs: list, batch: int | None = None):
        import submitit

        return submitit.helpers.DelayedSubmission(SlurmPoints(), point_dirs, batch)


SlurmPoint = SlurmPoints  # the name older sweep folders' pickled tasks refer to


def check_slurm(partition: str | None) -> None:
    """Fail early and clearly when no Slurm controller answers (before anything is submitted)."""
    if shutil.which("sinfo") is None or shutil.which("sbatch") is None:
        raise RuntimeError("Slurm is not installed here (no sinfo/sbatch on PATH); use --executor local")
    conf = os.environ.get("SLURM_CONF")
    if conf and not Path(conf).exists():
        raise RuntimeError(f"Slurm is not reachable: SLURM_CONF points to {conf}, which does not exist")
    cmd = ["sinfo", "-h", "-o", "%P %a"] + (["-p", partition] if partition else [])
    try:
        out = subprocess.run(cmd, capture_output=True, text=True, timeout=20)
    except subprocess.TimeoutExpired:
        raise RuntimeError("Slurm is not reachable: sinfo did not answer within 20 s (set SLURM_CONF?)") from None
    if (out.returncode != 0 or not out.stdout.strip()) and partition:  # the cluster answers, without that partition?
        with contextlib.suppress(OSError, subprocess.TimeoutExpired):
            every = subprocess.run(["sinfo", "-h", "-o", "%P"], capture_output=True, text=True, timeout=20)
            if every.returncode == 0 and every.stdout.split():
                raise RuntimeError(f"Slurm has no partition {partition!r}; its partitions: "
                                   f"{', '.join(every.stdout.split())} (* marks the default): set executor.slurm."
                                   "partition in the spec to one of them, or leave it out for the default")
    if out.returncode != 0 or not out.stdout.strip():
        why = (out.stderr or out.stdout).strip().splitlines()
        hint = "" if os.environ.get("SLURM_CONF") else " (SLURM_CONF is not set)"
        raise RuntimeError(f"Slurm is not reachable{hint}: `{' '.join(cmd)}` said: "
                           f"{why[-1] if why else 'no partition'}" + (f"; is partition '{partition}' right?"
                                                                         if partition and hint == "" else ""))


def _check_earlier_array(out: Path) -> None:
    """Refuse to submit while this sweep folder's previous array is still queued or running: its tasks
    would find their points claimed, and a second array would only hold allocations (and overwrite the
    record of the first)."""
    jobs = out / "slurm_jobs.json"
    if not jobs.exists():
        return
    array = io.read_json(jobs, what="a sweep's Slurm jobs").get("array")
    if not array:
        return
    if _array_listed(array):  # (None, cannot tell: the claims still keep any point from training twice)
        raise RuntimeError(f"Slurm array {array}, submitted by an earlier run of this sweep, is still queued or "
                           f"running (squeue -j {array}); wait for it, or stop it with scancel {array}, then rerun")


SQUEUE_EVERY_S = 30.0


def _array_listed(array) -> bool | None:
    """Whether squeue still lists a job array (queued or running); None when it cannot tell."""
    try:
        listed = subprocess.run(["squeue", "-h", "-j", str(array), "-o", "%i"], capture_output=True, text=True,
                                timeout=20)
    except (OSError, subprocess.TimeoutExpired):
        return None
    if listed.returncode != 0:  # a job Slurm has forgotten (ended minutes ago) is an "invalid job id"
        return False if "invalid job id" in listed.stderr.lower() else None
    return bool(listed.stdout.strip())


def slurm_executor(spec: Spec, out: Path, offline: bool = False):
    """submitit's Slurm executor for the spec; ``offline`` renders scripts without a cluster (a
    dry run must work where Slurm is not installed)."""
    submitit = optional("submitit", "the Slurm executor", "pip install -e '.[cluster]'")

    cls = submitit.SlurmExecutor
    if offline:
        class cls(submitit.SlurmExecutor):  # noqa: N801 - only renders the sbatch script
            @classmethod
            def affinity(cls) -> int:  # submitit refuses to build an executor where srun is missing
                return 1

    o = spec.slurm
    ex = cls(folder=str(out / "slurm" / "%j"), max_num_timeout=10)
    params = {"time": int(o.get("time_min", 60)), "array_parallelism": int(o.get("array_parallelism", 16)),
              "job_name": f"hypernb-{spec.name}", "stderr_to_stdout": True}
    if o.get("partition"):
        params["partition"] = o["partition"]
    if o.get("gpus_per_task"):
        params["gpus_per_task"] = int(o["gpus_per_task"])
    if o.get("cpus_per_task"):
        params["cpus_per_task"] = int(o["cpus_per_task"])
    if o.get("mem_gb"):  # whole gigabytes as G, else megabytes (sbatch takes integers)
        gb = float(o["mem_gb"])
        params["mem"] = f"{int(gb)}G" if gb == int(gb) else f"{math.ceil(gb * 1024)}M"
    if o.get("account"):
        params["account"] = o["account"]
    if o.get("setup"):
        params["setup"] = list(o["setup"])
    extra = sbatch_flags(o.get("extra_sbatch") or [])
    if extra:
        params["additional_parameters"] = extra
    ex.update_parameters(**params)
    if o.get("python"):
        ex.python = o["python"]
    return ex


def sbatch_script(spec: Spec, out: Path, n: int) -> str:
    ex = slurm_executor(spec, out, offline=True)
    ex.parameters["map_count"] = n
    return ex._make_submission_file_text(ex._submitit_command_str, "dry-run")


def run_slurm(spec: Spec, out: Path, groups: list[list[Path]], batch: int | None = None, wait: bool = True,
              poll: float = 2.0, timeout: float | None = None) -> dict:
    """Submit the pending groups as one job array (one task per group); wait and return {"ran",
    "failed": [(dir, log, why)], "busy"} as :func:`run_local` (without waiting: nothing yet)."""
    check_slurm(spec.slurm.get("partition"))
    _check_earlier_array(out)
    ex = slurm_executor(spec, out)
    jobs = ex.map_array(SlurmPoints(), [[str(d) for d in g] for g in groups], [batch] * len(groups))
    array = jobs[0].job_id.split("_")[0] if jobs else None
    io.write_json(out / "slurm_jobs.json", {"array": array,
                                             "tasks": {j.job_id: [d.name for d in g] for j, g in zip(jobs, groups)},
                                             "points": {d.name: j.job_id for j, g in zip(jobs, groups) for d in g}})
    n = sum(len(g) for g in groups)
    print(f"submitted {n} point(s) in {len(jobs)} task(s) as Slurm array {array}", flush=True)
    if not wait:
        return {"ran": [], "failed": [], "busy": []}
    start, asked = time.time(), 0.0
    try:
        while not all(j.done() for j in jobs):
            if timeout is not None and time.time() - start > timeout:
                raise TimeoutError(f"Slurm array {array} still running after {timeout:.0f} s; rerun the sweep once "
                                   "it has finished to see its results")
            time.sleep(poll)
            # submitit asks sacct less and less often (up to every 10 minutes on a long array): once squeue no
            # longer lists the array (it ended, failed or was cancelled), ask now instead of minutes later;
            # squeue itself is asked at most every SQUEUE_EVERY_S (a scheduler's admins count the calls)
            if time.time() - asked >= SQUEUE_EVERY_S:
                asked = time.time()
                if _array_listed(array) is False and all(j.done(force_check=True) for j in jobs):
                    break
    except KeyboardInterrupt:  # only this process stops waiting: the array is Slurm's
        print(f"Slurm array {array} keeps running (squeue -j {array}; scancel {array} stops it); rerun the sweep "
              "once it has finished to see its results", file=sys.stderr, flush=True)
        raise
    # what each task reports, else the point's own DONE.json (sacct reports a state about a second late)
    out = {"ran": [], "failed": [], "busy": []}
    for j, g in zip(jobs, groups):
        try:
            status = j.result() or {}
        except Exception:  # noqa: BLE001 - the task failed; its log says why
            status = {}
        for d in g:
            state = status.get(d.name, {}).get("status")
            if state == "busy":
                out["busy"].append(d)
            elif state in ("ok", "diverged") or (state is None and is_done(d)):
                out["ran"].append(d)
            elif not is_done(d):
                out["failed"].append((d, str(j.paths.stdout), _why_no_log(j)))
    return out


def _why_no_log(job) -> str | None:
    """For a task that left no log: what Slurm says became of it (a task cancelled while it waited in
    the queue never started, and pointing at its log would send a user to a file that does not exist)."""
    if Path(job.paths.stdout).exists():
        return None
    try:
        state = str(job.state)
    except Exception:  # noqa: BLE001 - sacct unreachable: say what is known
        state = "UNKNOWN"
    if state.startswith("CANCELLED") or state == "PENDING":
        return f"its Slurm task {job.job_id} was {state} before it started (no log); rerun the sweep to run it"
    return (f"its Slurm task {job.job_id} ended {state}, and its log {job.paths.stdout} is not on this machine (a "
            "node's folder that is not shared here, or not visible yet); rerun the sweep to run it again")


def sweep(spec_path, out=None, executor: str = "local", dry_run: bool = False, workers: int | None = None,
          wait: bool = True, timeout: float | None = None, quiet: bool = False, batch: int | None = None) -> dict:
    """Run a spec; returns {"done": [...], "ran": [...], "failed": [(dir, log, why)], "busy": [...]}.
    ``batch``: runs per group (None: automatic, see :func:`default_batch`)."""
    spec = load_spec(spec_path)
    out = Path(out) if out else Path("runs") / spec.name
    if executor not in ("local", "slurm"):
        raise ValueError(f"executor must be local or slurm, got {executor!r}")
    if batch is not None and (not isinstance(batch, int) or isinstance(batch, bool) or batch < 1):
        raise ValueError(f"batch must be a positive integer (runs trained together), got {batch!r}")
    if batch is None:
        batch = default_batch(spec, executor)
    points = spec.points()
    if dry_run:
        _dry_run(spec, out, points, executor, batch)
        return {"done": [], "ran": [], "failed": [], "busy": []}
    if executor == "slurm":  # an unreachable cluster fails before the folder is written
        check_slurm(spec.slurm.get("partition"))
    io.check_out_dir(out, "the sweep folder (--out)", create=False)
    todo = [p for p in points if not is_done(out / "points" / point_id(p))
            and not _being_worked_on(out / "points" / point_id(p))]  # (another sweep's points are its own)
    if todo and not spec.is_notebook:  # and so do missing or damaged data
        check_data(todo, missing_ok=executor != "local")
    io.check_out_dir(out, "the sweep folder (--out)")
    io.remove_temporaries(out, recursive=False)
    dirs = prepare(spec, out)
    io.remove_temporaries(out)  # old enough to be a killed write's leftover, wherever it is
    pending = [d for d in dirs if not is_done(d)]
    done = [d for d in dirs if d not in pending]
    claimed = [d for d in pending if _being_worked_on(d)]  # another sweep trains them now: not submitted again
    pending = [d for d in pending if d not in claimed]
    groups = groups_of(spec, pending, batch)
    print(f"sweep {spec.name}: {len(dirs)} point(s), {len(done)} already done, "
          + (f"{len(claimed)} busy elsewhere, " if claimed else "") + f"{len(pending)} to run ({executor}"
          + (f", {len(groups)} group(s) of up to {batch or 'all'} run(s)" if pending and len(groups) != len(pending)
             else "") + ")", flush=True)
    res = {"ran": [], "failed": [], "busy": []}
    if pending:
        if executor == "local":
            res = run_local(spec, groups, workers or int(spec.local.get("workers", 1)), batch, quiet)
        else:
            res = run_slurm(spec, out, groups, batch, wait=wait, timeout=timeout)
    res["busy"] = claimed + res["busy"]
    for d, log, why in res["failed"]:  # (for collect)
        io.write_json(d / FAILED, {"log": None if why else str(log), "why": why,
                                   "at": time.strftime("%Y-%m-%dT%H:%M:%S%z")})
        print(f"FAILED {d.name}: {why or f'see {log}'}", flush=True)
    for d in res["busy"]:
        print(f"BUSY {d.name}: {describe_claim(d)}, another sweep on this folder, runs it; rerun later to see it "
              "done", flush=True)
    if (pending or claimed) and (wait or executor == "local"):
        print(f"sweep {spec.name}: ran {len(res['ran'])}, failed {len(res['failed'])}, busy elsewhere "
              f"{len(res['busy'])}, done before {len(done)}", flush=True)
    return {"done": done, **res}


def check_data(points: list[dict], missing_ok: bool = True) -> None:
    """Verify here, once, the data the points train on: a damaged file fails the sweep at once (as
    ``run`` would, naming the file and the fix) instead of failing every task on its node after its
    wait in the queue. Data missing here is left to the tasks when ``missing_ok`` (Slurm: a cluster's
    nodes may see a folder that this machine does not); the local executor's tasks run here, so
    there it fails at once too."""
    from . import data as D

    seen = set()
    for params in points:
        c = RunConfig.from_dict(params)
        root = D.data_root(c.data_root)
        if (c.dataset, root) in seen:
            continue
        seen.add((c.dataset, root))
        with D.no_empty_folders_left(root):  # a failed download leaves no empty data folder (a mistyped root)
            if c.is_text:  # (missing here: downloaded as run() would, once, when the config allows it)
                if not missing_ok or (root / D.CORPORA[c.dataset]).exists():
                    D.load_corpus(c.dataset, root, download_ok=c.download and not missing_ok)
            elif not missing_ok or D.available(c.dataset, root):
                D.load_images(c.dataset, root, download_ok=c.download and not missing_ok)


def _dry_run(spec: Spec, out: Path, points: list[dict], executor: str, batch) -> None:
    """Print what the sweep would do in ``out`` now, writing nothing: each point as done (its record
    ended), busy (another sweep holds it) or to run, the groups that would train together, and for
    Slurm the sbatch script of the array those groups would be."""
    state = {}
    for p in points:
        d = out / "points" / point_id(p)
        state[point_id(p)] = ("done" if d.is_dir() and is_done(d) else
                              "busy" if d.is_dir() and _being_worked_on(d) else "to run")
    pending = [p for p in points if state[point_id(p)] == "to run"]
    groups = _dry_groups(spec, pending, batch)
    group_of = {point_id(pending[int(d.name)]): i + 1 for i, g in enumerate(groups) for d in g}
    counts = {k: sum(v == k for v in state.values()) for k in ("done", "busy", "to run")}
    print(f"sweep {spec.name} in {out}: {len(points)} point(s), target {spec.target}; {counts['done']} done, "
          + (f"{counts['busy']} busy elsewhere, " if counts["busy"] else "")
          + f"{counts['to run']} to run ({executor}, {len(groups)} group(s) of up to {batch or 'all'} run(s))")
    for p in points:
        pid = point_id(p)
        where = f"group {group_of[pid]}" if pid in group_of else state[pid]
        print(f"  {where:>9}  {pid}  {json.dumps(p, sort_keys=True)}")
    if executor == "slurm":
        if groups:
            print(sbatch_script(spec, out, len(groups)))
        else:
            print("nothing to submit: every point is done or busy")


def _dry_groups(spec: Spec, points: list[dict], batch) -> list:
    """The groups a dry run would submit (as with :func:`groups_of`, without writing anything)."""
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        dirs = []
        for i, p in enumerate(points):
            d = Path(tmp) / str(i)
            io.write_json(d / "point.json", {"target": spec.target, "params": p})
            dirs.append(d)
        return groups_of(spec, dirs, batch)


def listed_points(directory: Path) -> set[str] | None:
    """The points of the spec last swept into a folder (its ``sweep.json``); None without one."""
    path = Path(directory) / "sweep.json"
    if not path.exists():
        return None
    index = io.read_json(path, what="a sweep's index")
    return set(index["points"]) if isinstance(index, dict) and isinstance(index.get("points"), list) else None


def _recorded_commit(env_path: Path) -> str | None:
    """The code version a run recorded (its env.json's git_commit; ``-dirty``: with uncommitted changes),
    so that a table mixing versions shows it; "unreadable" for a damaged env.json."""
    if not env_path.exists():
        return None
    try:
        env = io.read_json(env_path, what="a run's environment")
    except io.DamagedFileError:
        return "unreadable"
    return env.get("git_commit") if isinstance(env, dict) else "unreadable"


def _being_worked_on(point_dir: Path) -> bool:
    """A live claim on the point: a sweep is training it now."""
    seen = _read_claim(Path(point_dir) / CLAIM)
    return seen is not None and _alive(seen[1], seen[2])


def collect(directory, every: bool = False) -> "pandas.DataFrame":  # noqa: F821
    """One row per point and seed: its parameters, status, final metrics and learned hyperparameters,
    for the points of the spec last swept into the folder (``sweep.json``); ``every``: every point in
    ``points/`` (those of a grid since shrunk too).

    ``status``: a seed's ok, diverged or running (a sweep trains it now), or stopped (it was killed: a rerun
    resumes it); a point without results is running, failed (the sweep's last attempt; its log says why) or
    missing (not run, or stopped before it recorded anything).
    ``time_s`` is the wall time of the training loop that trained it, which it shared with
    ``trained_with − 1`` other runs when the sweep batched them: compare costs only between rows
    with the same ``trained_with`` (or per group), never ``time_s`` of a batched row with an alone one."""
    import pandas as pd

    directory = Path(directory)
    if not directory.is_dir():
        raise ValueError(f"{directory} is not a folder; give the sweep folder (the --out of the sweep)")
    if not (directory / "points").is_dir():
        raise ValueError(f"{directory} is not a sweep folder: it has no points/ (give the --out of a sweep, "
                         "or run the sweep first)")
    rows = []
    listed = listed_points(directory)
    points = []
    for point in (directory / "points").glob("*/point.json"):
        d = point.parent
        if not every and listed is not None and d.name not in listed:
            continue
        info = read_point(d)
        params = {k: (json.dumps(v) if isinstance(v, (list, dict)) else v) for k, v in info["params"].items()}
        if every and listed is not None:  # which rows the spec last swept here still holds
            params = {**params, "in_spec": d.name in listed}
        points.append((d, params))
    names = list(dict.fromkeys(k for _, params in points for k in params))
    # rows in the order of their parameters (numbers by value, then text), not of their points' hashes
    points.sort(key=lambda item: [_sort_key(item[1].get(k)) for k in names] + [item[0].name])
    for d, params in points:
        metrics = d / "run" / "metrics.json"
        if metrics.exists():
            from .train import METRICS, read_metrics, read_seeds

            fix = "Delete it and rerun the sweep to redo that point, or restore it from a backup"
            seeds = read_seeds(read_metrics(metrics, fix), metrics, fix)
            commit = _recorded_commit(d / "run" / "env.json")
            working = _being_worked_on(d)
            for s in seeds:
                if not isinstance(s.final, dict) or not isinstance(s.epochs, list):
                    raise io.wrong_json(metrics, METRICS, f"seed {s.seed} has no mapping 'final' or list 'epochs'", fix)
                status = s.status if s.status != "running" or working else "stopped"
                rows.append({"point": d.name, **params, "seed": s.seed, "status": status,
                             "diverged_at_step": s.diverged_at_step, "reason": s.reason, "warning": s.warning,
                             **s.final,
                             "epochs_done": len(s.epochs), "time_s": s.time_s, "trained_with": s.trained_with,
                             "git_commit": commit})
        else:
            status = ("done" if is_done(d) else "running" if _being_worked_on(d)
                      else "failed" if (d / FAILED).exists() else "missing")
            rows.append({"point": d.name, **params, "status": status,
                         **({"reason": _failure(d)} if status == "failed" else {})})
    df = pd.DataFrame(rows)
    for column in ("seed", "diverged_at_step", "epochs_done", "trained_with"):  # integers, also beside a gap
        if column in df:
            df[column] = df[column].astype("Int64")
    return df


def _mixed_batching(df) -> str | None:
    """A note when float32 rows of the table trained alone and others batched (a sweep resumed with another
    --batch, or an earlier point that trained alone): those differ beyond rounding, so compare like with like."""
    if "trained_with" not in df or "dtype" in df and (df["dtype"].dropna() == "float64").all():
        return None
    ran = df["trained_with"].dropna()
    alone, batched = int((ran == 1).sum()), int((ran > 1).sum())
    if not alone or not batched:
        return None
    return (f"note: {alone} row(s) trained alone and {batched} batched (trained_with): in float32 the two can differ "
            "beyond rounding (README, 'Many configurations at once'); compare rows of the same kind, or train in "
            "float64")


def _sort_key(value) -> tuple:
    """A parameter's place in collect's order: missing first, then numbers by value, then text."""
    if value is None:
        return (0, 0.0, "")
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return (1, float(value), "")
    return (2, 0.0, str(value))


def _failure(d: Path) -> str:
    """Why a point's last attempt failed, from its FAILED.json: the sweep's words, or its log's path."""
    try:
        info = io.read_json(d / FAILED, what="a failed point's note")
    except (OSError, ValueError):
        return "see the point's log.txt"
    if not isinstance(info, dict):
        return "see the point's log.txt"
    return info.get("why") or f"see {info.get('log') or d / 'log.txt'}"


# -- command line ---------------------------------------------------------------------------------
def cmd_sweep(args) -> int:
    try:
        res = sweep(args.spec, args.out, args.executor, args.dry_run, args.workers, wait=not args.no_wait,
                    batch=args.batch)
    except (RuntimeError, TimeoutError) as e:  # Slurm unreachable, …
        print(f"error: {e}", file=sys.stderr)
        return 2
    return 1 if res["failed"] else 3 if res["busy"] else 0


def _parquet_engine() -> str:
    """The package pandas writes Parquet with, or MissingPackage saying what to install (or to write CSV)."""
    import importlib

    for name in ("pyarrow", "fastparquet"):
        try:
            importlib.import_module(name)
            return name
        except ImportError:
            continue
    raise MissingPackage("writing a .parquet file needs the package pyarrow (or fastparquet), which is not "
                         "installed: pip install pyarrow, or write CSV (--out results.csv)")


def cmd_collect(args) -> int:
    out = Path(args.out) if args.out else Path(args.dir) / "results.csv"
    if out.suffix.lower() not in (".csv", ".parquet"):
        raise ValueError(f"--out must end in .csv or .parquet (the two formats collect writes), got {out.name!r}")
    engine = _parquet_engine() if out.suffix.lower() == ".parquet" else None  # before any work
    df = collect(args.dir, every=args.all)
    listed = None if args.all else listed_points(Path(args.dir))
    left = 0 if listed is None else sum(1 for p in Path(args.dir).glob("points/*/point.json")
                                        if p.parent.name not in listed)
    if left:
        print(f"({left} point(s) in {Path(args.dir) / 'points'} are not in the spec last swept here: --all "
              "includes them)")
    mixed = _mixed_batching(df)
    if mixed:
        print(mixed)
    if args.out is None and not os.access(Path(args.dir), os.W_OK | os.X_OK):  # (a read-only copy of a sweep)
        raise ValueError(f"collect writes results.csv into the sweep folder {args.dir}, which is not writable; "
                         "give another file with --out, e.g. --out results.csv")
    io.check_out_dir(out.parent, "the folder of --out")
    if out.is_dir():
        raise ValueError(f"--out {out} is a folder; give a file name such as results.csv or results.parquet")
    if engine is not None:
        io.atomic_write_with(out, lambda tmp: df.to_parquet(tmp, engine=engine))
    else:
        io.atomic_write_bytes(out, df.to_csv(index=False).encode())
    print(f"{len(df)} row(s) from {df.point.nunique() if len(df) else 0} point(s) → {out}")
    return 0


def cmd_points(args) -> int:
    with stopped_by_sigterm(once=True), _ends_with_parent():
        status = run_points(args.dirs, args.batch)
    if args.report:
        io.write_json(Path(args.report), status)
    return 0


def _positive(text: str) -> int:
    import argparse

    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be a positive integer, got {text!r}")
    return value


HIDDEN_COMMANDS = ("points", "point")  # a sweep worker's commands, not for people


def add_commands(sub) -> None:
    p = sub.add_parser("sweep", help="run a grid of runs or notebooks locally or on Slurm (resumable)",
                       description=__doc__, formatter_class=__import__("argparse").RawDescriptionHelpFormatter)
    p.add_argument("spec", help="YAML spec (see sweeps/)")
    p.add_argument("--executor", default="local", choices=["local", "slurm"],
                   help="local: worker processes on this machine; slurm: one job array through submitit (the "
                        "spec's executor.slurm options) [default: local]")
    p.add_argument("--out", default=None, help="sweep folder [default: runs/<name>]")
    p.add_argument("--dry-run", action="store_true", help="print the points (and the sbatch script); run nothing")
    p.add_argument("--workers", type=_positive, default=None,
                   help="local worker processes, one group each [default: spec, else 1]")
    p.add_argument("--batch", type=_positive, default=None,
                   help="runs trained together per group (1: each point alone) [default: every compatible point "
                        "on a GPU; on a CPU up to 32 MLP points, while ResNet-20 and LSTM points train one at a "
                        "time there, where batching them is slower]")
    p.add_argument("--no-wait", action="store_true", help="slurm: submit and return")
    p.set_defaults(func=cmd_sweep)
    c = sub.add_parser("collect", help="gather a sweep's results into one table (CSV or .parquet)",
                       description="Gather a sweep's results into one table: one row per point and seed with its "
                                   "parameters, status, final test metrics and learned hyperparameters (a point "
                                   "not yet run has one row, status missing). time_s is the wall time of the "
                                   "training loop, shared by the trained_with runs a batched sweep trained "
                                   "together. CSV, or Parquet for an --out ending "
                                   "in .parquet (needs pyarrow or fastparquet).")
    c.add_argument("dir", help="the sweep folder")
    c.add_argument("--out", default=None, help="output file, .csv or .parquet [default: <dir>/results.csv]")
    c.add_argument("--all", action="store_true", help="every point in the folder, also those the spec last swept "
                                                      "there no longer has (a grid since shrunk)")
    c.set_defaults(func=cmd_collect)
    for name in HIDDEN_COMMANDS:  # what a sweep's worker runs (point: the older name); no help: not listed
        q = sub.add_parser(name)
        q.add_argument("dirs", nargs="+")
        q.add_argument("--batch", type=_positive, default=None)
        q.add_argument("--report", default=None)
        q.set_defaults(func=cmd_points)

