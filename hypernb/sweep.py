"""Sweeps: grids of runs (or notebooks) executed locally or as a Slurm job array, resumable.

A spec (YAML) names a target, fixed parameters, a grid (cartesian product), zipped lists and seeds::

    name: mnist-smoke
    target: run                     # or {notebook: notebooks/04_towers.ipynb}
    fixed: {task: mnist-mlp, profile: smoke, epochs: 1}
    grid: {optimizer: [sgd, sgd/sgd], alpha: [0.01, 0.1]}
    zip: {kappa: [1e-3, 1e-2], mu: [0.0, 0.5]}      # varied together (optional)
    seeds: [0]
    executor:
      local: {workers: 2}
      slurm: {partition: gpu, gpus_per_task: 1, cpus_per_task: 8, mem_gb: 16, time_min: 120,
              account: null, array_parallelism: 16, extra_sbatch: ["--qos=normal"]}

Every point gets ``<out>/points/<hash of its parameters>/``; a point whose result files are complete
is skipped on rerun, a failed one is listed with its log, and a preempted Slurm task resumes from
its last checkpoint (run() checkpoints every epoch; submitit requeues the task).
"""
from __future__ import annotations

import hashlib
import itertools
import json
import os
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass, field, fields
from pathlib import Path

import yaml

from . import io
from .config import RunConfig

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


def load_spec(path) -> Spec:
    """Read and validate a spec: unknown keys and parameters the target lacks are errors."""
    path = Path(path)
    with open(path) as f:
        raw = yaml.safe_load(f) or {}
    if not isinstance(raw, dict):
        raise ValueError(f"{path}: a sweep spec is a mapping with keys {sorted(SPEC_KEYS)}")
    unknown = sorted(set(raw) - SPEC_KEYS)
    if unknown:
        raise ValueError(f"{path}: unknown key(s) {unknown} in the spec; valid keys: {sorted(SPEC_KEYS)}")
    target = raw.get("target", "run")
    if isinstance(target, dict):
        if set(target) != {"notebook"}:
            raise ValueError(f"{path}: target is 'run' or {{notebook: <path>}}, got {target!r}")
        nb = Path(target["notebook"])
        if not nb.is_absolute():
            nb = (path.parent / nb) if (path.parent / nb).exists() else Path.cwd() / nb
        if not nb.exists():
            raise ValueError(f"{path}: notebook {target['notebook']} not found")
        target = str(nb.resolve())
    elif target != "run":
        raise ValueError(f"{path}: target is 'run' or {{notebook: <path>}}, got {target!r}")
    grid, zipped = raw.get("grid") or {}, raw.get("zip") or {}
    for name, values in {**grid, **zipped}.items():
        if not isinstance(values, list) or not values:
            raise ValueError(f"{path}: '{name}' in grid/zip must be a non-empty list, got {values!r}")
    if len({len(v) for v in zipped.values()}) > 1:
        raise ValueError(f"{path}: zipped lists must have the same length, got "
                         f"{ {k: len(v) for k, v in zipped.items()} }")
    overlap = set(grid) & set(zipped) | (set(grid) | set(zipped)) & set(raw.get("fixed") or {})
    if overlap:
        raise ValueError(f"{path}: {sorted(overlap)} given more than once (fixed, grid and zip must not overlap)")
    executor = raw.get("executor") or {}
    bad = sorted(set(executor) - {"local", "slurm"})
    if bad:
        raise ValueError(f"{path}: unknown executor(s) {bad}; use local and/or slurm")
    local, slurm = executor.get("local") or {}, executor.get("slurm") or {}
    for keys, given, label in ((LOCAL_KEYS, local, "local"), (SLURM_KEYS, slurm, "slurm")):
        extra = sorted(set(given) - keys)
        if extra:
            raise ValueError(f"{path}: unknown {label} executor option(s) {extra}; valid: {sorted(keys)}")
    seeds = raw.get("seeds") or []
    spec = Spec(raw.get("name") or path.stem, target, dict(raw.get("fixed") or {}), grid, zipped, list(seeds),
                local, slurm, str(path))
    _check_parameters(spec)
    return spec


def _check_parameters(spec: Spec) -> None:
    names = set(spec.fixed) | set(spec.grid) | set(spec.zipped)
    if spec.is_notebook:
        import papermill

        declared = set(papermill.inspect_notebook(spec.target))
        unknown = sorted(names - declared)
        if unknown:
            raise ValueError(f"{spec.source}: the notebook {Path(spec.target).name} has no parameter(s) {unknown}; "
                             f"its parameters: {sorted(declared)}")
        return
    valid = {f.name for f in fields(RunConfig)} - {"out_dir", "seeds" if spec.seeds else ""}
    unknown = sorted(names - valid)
    if unknown:
        raise ValueError(f"{spec.source}: run() has no parameter(s) {unknown}; valid: {sorted(valid)}")
    for p in spec.points():  # every point must be a valid configuration before anything starts
        RunConfig.from_dict(p)


def point_id(params: dict) -> str:
    """A stable name for a point: the hash of its parameters (sorted JSON)."""
    return hashlib.sha1(json.dumps(params, sort_keys=True, default=str).encode()).hexdigest()[:10]


def prepare(spec: Spec, out: Path) -> list[Path]:
    """Write <out>/points/<id>/point.json for every point (idempotent) and the sweep's index."""
    out.mkdir(parents=True, exist_ok=True)
    dirs = []
    for params in spec.points():
        d = out / "points" / point_id(params)
        if not (d / "point.json").exists():
            io.write_json(d / "point.json", {"target": spec.target, "params": params})
        dirs.append(d)
    io.write_json(out / "sweep.json", {"name": spec.name, "spec": spec.source, "target": spec.target,
                                        "points": [d.name for d in dirs]})
    return dirs


def is_done(point_dir: Path) -> bool:
    """A point is done when its result files are complete (a run that ended, or a notebook that finished)."""
    done = point_dir / "DONE.json"
    return done.exists()


def run_point(point_dir) -> dict:
    """Execute one point in this process (what a worker or a Slurm task calls). Resumes if possible."""
    point_dir = Path(point_dir)
    point = io.read_json(point_dir / "point.json")
    t0 = time.perf_counter()
    if point["target"] == "run":
        from .train import run

        result = run(RunConfig.from_dict({**point["params"], "out_dir": str(point_dir / "run"), "quiet": True}))
        status = {"status": "ok" if result.ok else "diverged", "summary": result.summary}
    else:
        import papermill

        params = {**point["params"], "OUT_DIR": str(point_dir / "out")}
        papermill.execute_notebook(point["target"], str(point_dir / Path(point["target"]).name), parameters=params,
                                   cwd=str(Path(point["target"]).parent), progress_bar=False, start_timeout=300)
        status = {"status": "ok"}
    status["seconds"] = time.perf_counter() - t0
    io.write_json(point_dir / "DONE.json", status)
    return status


# -- executors -------------------------------------------------------------------------------------
def run_local(spec: Spec, dirs: list[Path], workers: int, quiet: bool = False) -> list[tuple[Path, str]]:
    """Each point in its own Python process (a crash stays contained), ``workers`` at a time.
    Returns the failed points with their logs."""
    from concurrent.futures import ThreadPoolExecutor

    from tqdm.auto import tqdm

    def one(d: Path):
        with open(d / "log.txt", "ab") as log:
            proc = subprocess.run([sys.executable, "-m", "hypernb", "point", str(d)], stdout=log,
                                  stderr=subprocess.STDOUT, env={**os.environ, "PYTHONUNBUFFERED": "1"})
        return d, proc.returncode

    failed = []
    with ThreadPoolExecutor(max_workers=workers) as pool:
        for d, code in tqdm(pool.map(one, dirs), total=len(dirs), desc=f"sweep {spec.name}", disable=quiet):
            if code != 0 or not is_done(d):
                failed.append((d, str(d / "log.txt")))
    return failed


class SlurmPoint:
    """What a Slurm array task runs: one point, requeued (and resumed) on preemption or timeout."""

    def __call__(self, point_dir: str) -> dict:
        return run_point(point_dir)

    def checkpoint(self, point_dir: str):
        import submitit

        return submitit.helpers.DelayedSubmission(SlurmPoint(), point_dir)


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
    if out.returncode != 0 or not out.stdout.strip():
        why = (out.stderr or out.stdout).strip().splitlines()
        hint = "" if os.environ.get("SLURM_CONF") else " (SLURM_CONF is not set)"
        raise RuntimeError(f"Slurm is not reachable{hint}: `{' '.join(cmd)}` said: "
                           f"{why[-1] if why else 'no partition'}" + (f"; is partition '{partition}' right?"
                                                                         if partition else ""))


def slurm_executor(spec: Spec, out: Path, offline: bool = False):
    """submitit's Slurm executor for the spec; ``offline`` renders scripts without a cluster (a
    dry run must work where Slurm is not installed)."""
    import submitit

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
    if o.get("mem_gb"):
        params["mem"] = f"{int(o['mem_gb'])}G"
    if o.get("account"):
        params["account"] = o["account"]
    if o.get("setup"):
        params["setup"] = list(o["setup"])
    extra = {}
    for line in o.get("extra_sbatch") or []:
        key, _, value = line.lstrip("-").partition("=")
        extra[key] = value or None
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


def run_slurm(spec: Spec, out: Path, dirs: list[Path], wait: bool = True, poll: float = 2.0,
              timeout: float | None = None) -> list[tuple[Path, str]]:
    """Submit the pending points as one job array; wait and return the failed ones with their logs."""
    check_slurm(spec.slurm.get("partition"))
    ex = slurm_executor(spec, out)
    jobs = ex.map_array(SlurmPoint(), [str(d) for d in dirs])
    io.write_json(out / "slurm_jobs.json", {"array": jobs[0].job_id.split("_")[0] if jobs else None,
                                             "tasks": {j.job_id: d.name for j, d in zip(jobs, dirs)}})
    print(f"submitted {len(jobs)} point(s) as Slurm array {jobs[0].job_id.split('_')[0]}", flush=True)
    if not wait:
        return []
    start = time.time()
    while not all(j.done() for j in jobs):
        if timeout is not None and time.time() - start > timeout:
            raise TimeoutError(f"Slurm array still running after {timeout:.0f} s; rerun the sweep later to resume")
        time.sleep(poll)
    # the point's own DONE.json decides (sacct reports a task's state about a second late)
    return [(d, str(j.paths.stdout)) for j, d in zip(jobs, dirs) if not is_done(d)]


def sweep(spec_path, out=None, executor: str = "local", dry_run: bool = False, workers: int | None = None,
          wait: bool = True, timeout: float | None = None, quiet: bool = False) -> dict:
    """Run a spec; returns {"done": [...], "ran": [...], "failed": [(dir, log)]}."""
    spec = load_spec(spec_path)
    out = Path(out) if out else Path("runs") / spec.name
    if executor not in ("local", "slurm"):
        raise ValueError(f"executor must be local or slurm, got {executor!r}")
    points = spec.points()
    if dry_run:
        print(f"sweep {spec.name}: {len(points)} point(s), target {spec.target}")
        for p in points:
            print(f"  {point_id(p)}  {json.dumps(p, sort_keys=True)}")
        if executor == "slurm":
            print(sbatch_script(spec, out, len(points)))
        return {"done": [], "ran": [], "failed": []}
    dirs = prepare(spec, out)
    pending = [d for d in dirs if not is_done(d)]
    done = [d for d in dirs if d not in pending]
    print(f"sweep {spec.name}: {len(dirs)} point(s), {len(done)} already done, {len(pending)} to run ({executor})",
          flush=True)
    failed = []
    if pending:
        if executor == "local":
            failed = run_local(spec, pending, workers or int(spec.local.get("workers", 1)), quiet)
        else:
            failed = run_slurm(spec, out, pending, wait=wait, timeout=timeout)
    for d, log in failed:
        print(f"FAILED {d.name}: see {log}", flush=True)
    return {"done": done, "ran": [d for d in pending if (d, None) not in failed], "failed": failed}


def collect(directory) -> "pandas.DataFrame":  # noqa: F821
    """One row per point and seed: its parameters, status, final metrics and learned hyperparameters."""
    import pandas as pd

    directory = Path(directory)
    rows = []
    for point in sorted((directory / "points").glob("*/point.json")):
        d = point.parent
        info = io.read_json(point)
        params = {k: (json.dumps(v) if isinstance(v, (list, dict)) else v) for k, v in info["params"].items()}
        metrics = d / "run" / "metrics.json"
        if metrics.exists():
            m = io.read_json(metrics)
            for s in m["seeds"]:
                rows.append({"point": d.name, **params, "seed": s["seed"], "status": s["status"],
                             "diverged_at_step": s["diverged_at_step"], **s["final"],
                             "epochs_done": len(s["epochs"]), "time_s": s["time_s"]})
        else:
            rows.append({"point": d.name, **params, "status": "done" if is_done(d) else "missing"})
    return pd.DataFrame(rows)


# -- command line ---------------------------------------------------------------------------------
def cmd_sweep(args) -> int:
    try:
        res = sweep(args.spec, args.out, args.executor, args.dry_run, args.workers, wait=not args.no_wait)
    except RuntimeError as e:  # Slurm unreachable, …
        print(f"error: {e}", file=sys.stderr)
        return 2
    return 1 if res["failed"] else 0


def cmd_collect(args) -> int:
    df = collect(args.dir)
    out = Path(args.out) if args.out else Path(args.dir) / "results.csv"
    if out.suffix == ".parquet":
        df.to_parquet(out)
    else:
        io.atomic_write_bytes(out, df.to_csv(index=False).encode())
    print(f"{len(df)} row(s) from {df.point.nunique() if len(df) else 0} point(s) → {out}")
    return 0


def cmd_point(args) -> int:
    run_point(args.dir)
    return 0


def add_commands(sub) -> None:
    p = sub.add_parser("sweep", help="run a grid of runs or notebooks locally or on Slurm (resumable)",
                       description=__doc__, formatter_class=__import__("argparse").RawDescriptionHelpFormatter)
    p.add_argument("spec", help="YAML spec (see sweeps/)")
    p.add_argument("--executor", default="local", choices=["local", "slurm"])
    p.add_argument("--out", default=None, help="sweep folder [default: runs/<name>]")
    p.add_argument("--dry-run", action="store_true", help="print the points (and the sbatch script); run nothing")
    p.add_argument("--workers", type=int, default=None, help="local worker processes [default: spec, else 1]")
    p.add_argument("--no-wait", action="store_true", help="slurm: submit and return")
    p.set_defaults(func=cmd_sweep)
    c = sub.add_parser("collect", help="gather a sweep's results into one table (CSV or .parquet)")
    c.add_argument("dir", help="the sweep folder")
    c.add_argument("--out", default=None, help="output file [default: <dir>/results.csv]")
    c.set_defaults(func=cmd_collect)
    q = sub.add_parser("point", help=argparse_suppress())
    q.add_argument("dir")
    q.set_defaults(func=cmd_point)


def argparse_suppress():
    import argparse

    return argparse.SUPPRESS
