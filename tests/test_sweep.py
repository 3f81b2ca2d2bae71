"""Sweeps: spec validation, the local executor, collection, and a real local Slurm cluster."""
import os
import subprocess
import time
from pathlib import Path

import pytest
import yaml

from conftest import require
from hypernb import sweep as S
from hypernb.cli import main

REPO = Path(__file__).resolve().parents[1]
EXAMPLE = REPO / "sweeps" / "smoke_example.yaml"


def write_spec(tmp_path, **spec) -> Path:
    path = tmp_path / "spec.yaml"
    path.write_text(yaml.safe_dump(spec))
    return path


# -- specs ------------------------------------------------------------------------------------------
def test_example_spec_has_four_points_with_stable_ids():
    spec = S.load_spec(EXAMPLE)
    points = spec.points()
    assert len(points) == 4
    assert {(p["optimizer"], p["alpha"], p["kappa"]) for p in points} == {
        ("sgd", 0.01, 0.001), ("sgd", 0.1, 0.01), ("sgd/sgd", 0.01, 0.001), ("sgd/sgd", 0.1, 0.01)}
    assert [S.point_id(p) for p in points] == [S.point_id(p) for p in S.load_spec(EXAMPLE).points()]
    assert len({S.point_id(p) for p in points}) == 4


@pytest.mark.parametrize("spec, match", [
    ({"target": "run", "grid": {"alpha": [0.1]}, "grdi": {}}, r"unknown key\(s\) \['grdi'\]"),
    ({"grid": {"alhpa": [0.1]}}, r"run\(\) has no parameter\(s\) \['alhpa'\]"),
    ({"grid": {"alpha": [0.1]}, "zip": {"mu": [0.1, 0.2], "kappa": [1e-3]}}, r"same length"),
    ({"grid": {"alpha": []}}, r"non-empty list"),
    ({"fixed": {"alpha": 0.1}, "grid": {"alpha": [0.2]}}, r"given more than once"),
    ({"grid": {"beta2": [1.5]}}, r"beta2 must lie in the open interval"),
    ({"target": {"notebook": str(REPO / "notebooks" / "04_towers.ipynb")}, "grid": {"LEVLE": ["sgd"]}},
     r"04_towers.ipynb has no parameter\(s\) \['LEVLE'\]"),
    ({"executor": {"slurm": {"partiton": "x"}}}, r"unknown slurm executor option\(s\) \['partiton'\]"),
])
def test_bad_specs_fail_before_anything_runs(tmp_path, spec, match):
    with pytest.raises(ValueError, match=match):
        S.load_spec(write_spec(tmp_path, **spec))


def test_dry_run_prints_points_and_the_sbatch_script(tmp_path, capsys):
    res = S.sweep(EXAMPLE, tmp_path / "out", executor="slurm", dry_run=True)
    text = capsys.readouterr().out
    assert res["ran"] == [] and not (tmp_path / "out").exists()
    assert text.count('"optimizer"') == 4 and "#SBATCH --array=0-3%4" in text and "#SBATCH --partition=debug" in text


def test_unreachable_slurm_is_a_clear_error_before_submission(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("SLURM_CONF", str(tmp_path / "no" / "slurm.conf"))
    code = main(["sweep", str(EXAMPLE), "--executor", "slurm", "--out", str(tmp_path / "out")])
    err = capsys.readouterr().err
    assert code == 2 and ("Slurm is not reachable" in err or "Slurm is not installed" in err)
    assert not (tmp_path / "out" / "slurm").exists()


# -- local executor -------------------------------------------------------------------------------------
def test_local_sweep_runs_collects_and_reruns_nothing(tmp_path, capsys):
    require("mnist")
    out = tmp_path / "sweep"
    assert main(["sweep", str(EXAMPLE), "--out", str(out), "--workers", "2"]) == 0
    assert "4 to run" in capsys.readouterr().out
    assert main(["collect", str(out)]) == 0
    import pandas as pd

    table = pd.read_csv(out / "results.csv")
    assert len(table) == 4 and set(table.status) == {"ok"} and table.test_acc.between(0, 1).all()
    assert set(table.optimizer) == {"sgd", "sgd/sgd"} and "final_hyper.alpha" in table
    stamp = {p: p.stat().st_mtime_ns for p in out.glob("points/*/run/metrics.json")}
    assert main(["sweep", str(EXAMPLE), "--out", str(out)]) == 0
    assert "4 already done, 0 to run" in capsys.readouterr().out
    assert stamp == {p: p.stat().st_mtime_ns for p in out.glob("points/*/run/metrics.json")}


def test_failed_point_is_listed_with_its_log(tmp_path, capsys):
    spec = write_spec(tmp_path, name="bad", fixed={"task": "mnist-mlp", "profile": "smoke", "download": False},
                      grid={"data_root": [str(tmp_path / "nothing-here")]})
    res = S.sweep(spec, tmp_path / "out")
    (d, log), = res["failed"]
    assert Path(log).exists() and "MNIST not found" in Path(log).read_text()
    assert f"FAILED {d.name}: see {log}" in capsys.readouterr().out


# -- a real Slurm cluster ---------------------------------------------------------------------------
@pytest.fixture(scope="session")
def slurm():
    from slurm_local import PACKAGES, LocalSlurm, missing_binaries

    missing = missing_binaries()
    if missing:
        pytest.skip(f"Slurm is not installed ({', '.join(missing)} missing): apt-get install {PACKAGES}")
    cluster = LocalSlurm().start()
    old = os.environ.get("SLURM_CONF")
    os.environ["SLURM_CONF"] = cluster.env["SLURM_CONF"]
    yield cluster
    if old is None:
        os.environ.pop("SLURM_CONF", None)
    else:
        os.environ["SLURM_CONF"] = old
    cluster.stop()


def slurm_spec(tmp_path, parallelism=4) -> Path:
    spec = yaml.safe_load(EXAMPLE.read_text())
    spec["executor"]["slurm"]["array_parallelism"] = parallelism
    return write_spec(tmp_path, **spec)


@pytest.mark.slurm
def test_slurm_array_finishes_and_collects(slurm, tmp_path):
    require("mnist")
    out = tmp_path / "sweep"
    res = S.sweep(slurm_spec(tmp_path), out, executor="slurm", timeout=600)
    assert res["failed"] == [] and len(res["ran"]) == 4
    jobs = S.io.read_json(out / "slurm_jobs.json")
    for _ in range(60):  # accounting reaches sacct a little after the tasks end
        states = subprocess.run(["sacct", "-X", "-n", "-j", jobs["array"], "-o", "State"], env=slurm.env,
                                capture_output=True, text=True).stdout.split()
        if states.count("COMPLETED") == 4:
            break
        time.sleep(0.5)
    assert states.count("COMPLETED") == 4  # one array of four tasks
    table = S.collect(out)
    assert len(table) == 4 and set(table.status) == {"ok"}


@pytest.mark.slurm
def test_slurm_rerun_reruns_only_the_killed_task(slurm, tmp_path, capsys):
    require("mnist")
    out = tmp_path / "sweep"
    spec = slurm_spec(tmp_path, parallelism=1)  # one task at a time, so the last one is still pending
    S.sweep(spec, out, executor="slurm", wait=False)
    jobs = S.io.read_json(out / "slurm_jobs.json")
    killed_task, killed_point = list(jobs["tasks"].items())[-1]
    subprocess.run(["scancel", killed_task], env=slurm.env, check=True)
    deadline = time.time() + 600
    while subprocess.run(["squeue", "-h", "-j", jobs["array"]], env=slurm.env, capture_output=True,
                         text=True).stdout.strip():
        assert time.time() < deadline
        time.sleep(1)
    done = {d.name for d in (out / "points").iterdir() if S.is_done(d)}
    assert killed_point not in done and len(done) == 3
    capsys.readouterr()
    res = S.sweep(spec, out, executor="slurm", timeout=600)
    text = capsys.readouterr().out
    assert "3 already done, 1 to run" in text and "submitted 1 point(s)" in text
    assert res["failed"] == [] and [d.name for d in res["ran"]] == [killed_point]


@pytest.mark.slurm
def test_slurm_dry_run_submits_nothing(slurm, tmp_path):
    before = subprocess.run(["sacct", "-X", "-n", "-o", "JobID"], env=slurm.env, capture_output=True, text=True)
    S.sweep(slurm_spec(tmp_path), tmp_path / "out", executor="slurm", dry_run=True)
    after = subprocess.run(["sacct", "-X", "-n", "-o", "JobID"], env=slurm.env, capture_output=True, text=True)
    assert before.stdout == after.stdout and not (tmp_path / "out").exists()


@pytest.mark.parametrize("path", sorted((REPO / "sweeps").glob("*.yaml")), ids=lambda p: p.name)
def test_ready_made_specs_are_valid(path):
    spec = S.load_spec(path)
    assert spec.points()


@pytest.mark.slurm
def test_slurm_preempted_task_is_requeued_and_resumes_from_its_checkpoint(slurm, tmp_path):
    """USR2 is what Slurm sends before a preemption or time limit: submitit checkpoints the point
    function, requeues the task, and run() resumes from the last epoch's checkpoint."""
    require("mnist")
    spec = write_spec(tmp_path, name="preempt", fixed={"task": "mnist-mlp", "profile": "smoke", "epochs": 6,
                                                      "batch_size": 16, "train_limit": 16000, "log_every": 50},
                      seeds=[0], executor={"slurm": {"partition": "debug", "time_min": 10}})
    out = tmp_path / "sweep"
    S.sweep(spec, out, executor="slurm", wait=False)
    jobs = S.io.read_json(out / "slurm_jobs.json")
    (task, point), = jobs["tasks"].items()
    ckpt = out / "points" / point / "run" / "seed0" / "checkpoint.pt"
    deadline = time.time() + 300
    while not ckpt.exists():  # the first epoch has been checkpointed
        assert time.time() < deadline, "the task never reached its first checkpoint"
        time.sleep(0.2)
    subprocess.run(["scancel", "--signal=USR2", task], env=slurm.env, check=True)
    while "BeginTime" not in subprocess.run(["squeue", "-h", "-j", task, "-o", "%r"], env=slurm.env,
                                            capture_output=True, text=True).stdout:
        assert time.time() < deadline and not S.is_done(out / "points" / point), "the task was not requeued"
        time.sleep(0.2)
    # Slurm holds a requeued job for 120 s before it may start again; release it now, and again
    # while it still waits on its begin time (the requeue can finish after the first release)
    deadline, released = time.time() + 300, 0.0  # a fresh allowance for the rerun
    while not S.is_done(out / "points" / point):
        assert time.time() < deadline, "the requeued task did not finish"
        reason = subprocess.run(["squeue", "-h", "-j", task, "-o", "%r"], env=slurm.env,
                                capture_output=True, text=True).stdout
        if "BeginTime" in reason and time.time() - released > 5:
            subprocess.run(["scontrol", "update", f"JobId={task}", "StartTime=now"], env=slurm.env, check=True)
            released = time.time()
        time.sleep(0.5)
    logs = "\n".join(p.read_text() for p in (out / "slurm").glob("*/*_log.out"))
    assert "Requeued job" in logs or "requeued" in logs.lower()
    metrics = S.io.read_json(out / "points" / point / "run" / "metrics.json")
    seed = metrics["seeds"][0]
    assert seed["status"] == "ok" and [e["epoch"] for e in seed["epochs"]] == [1, 2, 3, 4, 5, 6]
