"""Sweeps: spec validation, the local executor, collection, and a real local Slurm cluster."""
import json
import os
import subprocess
import sys
import textwrap
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
    # pinned: a changed hash would orphan the points of every existing sweep folder
    assert sorted(S.point_id(p) for p in points) == ["1f1b17944f", "327709600a", "68113b0f31", "dbde985bea"]


@pytest.mark.parametrize("spec, match", [
    ({"target": "run", "grid": {"alpha": [0.1]}, "grdi": {}}, r"unknown key\(s\) \['grdi'\]"),
    ({"grid": {"alhpa": [0.1]}}, r"run\(\) has no parameter\(s\) \['alhpa'\]"),
    ({"grid": {"lr": [0.1]}}, r"write the field names in a spec \('lr' → 'alpha'\)"),
    ({"grid": {"alpha": [0.1]}, "zip": {"mu": [0.1, 0.2], "kappa": [1e-3]}}, r"same length"),
    ({"grid": {"alpha": []}}, r"non-empty list"),
    ({"fixed": {"alpha": 0.1}, "grid": {"alpha": [0.2]}}, r"given more than once"),
    ({"grid": {"beta2": [1.5]}}, r"beta2 must lie in the open interval"),
    ({"target": {"notebook": str(REPO / "notebooks" / "04_towers.ipynb")}, "grid": {"LEVLE": ["sgd"]}},
     r"04_towers.ipynb has no parameter\(s\) \['LEVLE'\]"),
    ({"target": {"notebook": str(REPO / "notebooks" / "04_towers.ipynb")}, "fixed": {"OUT_DIR": "x"}},
     r"OUT_DIR is the sweep's to set: each point writes to its own points/<id>/out"),
    ({"executor": {"slurm": {"partiton": "x"}}}, r"unknown slurm executor option\(s\) \['partiton'\]"),
    ({"executor": {"slurm": {"array_paralelism": 2}}}, r"\('array_paralelism': did you mean 'array_parallelism'\?\)"),
    ({"executor": {"slrum": {}}}, r"unknown executor\(s\) \['slrum'\] \('slrum': did you mean 'slurm'\?\)"),
    ({"executor": {"slurm": {"extra_sbatch": ["-C a100"]}}}, r"'-C a100' is not a long sbatch option.*--constraint"),
    ({"executor": {"slurm": {"time_min": 1}}}, r"'time_min' must be at least 2.*warned 90 s before"),
    ({"target": {"notebook": str(REPO / "notebooks" / "04_towers.ipynb")}, "fixed": {"KAPPA": float("inf")}},
     r"\['KAPPA'\] hold\(s\) a number that is not finite"),
])
def test_bad_specs_fail_before_anything_runs(tmp_path, spec, match):
    with pytest.raises(ValueError, match=match):
        S.load_spec(write_spec(tmp_path, **spec))


def test_dry_run_prints_points_and_the_sbatch_script(tmp_path, capsys):
    """Without a cluster: one array task per group (the four compatible points train together by
    default; --batch 1 gives one task per point)."""
    res = S.sweep(EXAMPLE, tmp_path / "out", executor="slurm", dry_run=True)
    text = capsys.readouterr().out
    assert res["ran"] == [] and not (tmp_path / "out").exists()
    assert text.count('"optimizer"') == 4 and "#SBATCH --array=0-0%1" in text and "#SBATCH --partition=debug" in text
    S.sweep(EXAMPLE, tmp_path / "out", executor="slurm", dry_run=True, batch=1)
    assert "#SBATCH --array=0-3%4" in capsys.readouterr().out
    # bare flags stay bare, "--name value" is --name=value, and a fraction of a GB is written in MB
    spec = write_spec(tmp_path, **{**S.io.read_yaml(EXAMPLE, "spec"), "executor": {"slurm": {
        "extra_sbatch": ["--requeue", "--qos normal", "--constraint=a100"], "mem_gb": 7.5}}})
    S.sweep(spec, tmp_path / "out", executor="slurm", dry_run=True)
    script = capsys.readouterr().out
    assert "#SBATCH --requeue\n" in script and "#SBATCH --qos=normal\n" in script and "=None" not in script
    assert "#SBATCH --constraint=a100\n" in script and "#SBATCH --mem=7680M\n" in script


def test_a_dry_run_says_which_points_are_done_and_sizes_the_array_from_the_rest(tmp_path, capsys):
    """On a folder swept before, the dry run marks what is done, groups only the rest, and sizes the
    array from them (it listed every point and an array for all of them, which the sweep would not submit)."""
    require("mnist")
    fixed = {"task": "mnist-mlp", "profile": "smoke", "epochs": 1, "max_steps": 2}
    S.sweep(write_spec(tmp_path, name="grow", fixed=fixed, grid={"alpha": [0.01, 0.1]}), tmp_path / "out", quiet=True)
    capsys.readouterr()
    grown = write_spec(tmp_path, name="grow", fixed=fixed, grid={"alpha": [0.01, 0.1, 0.2, 0.3]})
    S.sweep(grown, tmp_path / "out", executor="slurm", dry_run=True, batch=1)
    text = capsys.readouterr().out
    assert "4 point(s), target run; 2 done, 2 to run (slurm, 2 group(s) of up to 1 run(s))" in text
    assert text.count("     done  ") == 2 and "  group 1  " in text and "  group 2  " in text
    assert "#SBATCH --array=0-1%2" in text
    S.sweep(write_spec(tmp_path, name="grow", fixed=fixed, grid={"alpha": [0.01]}), tmp_path / "out",
            executor="slurm", dry_run=True)
    assert "nothing to submit: every point is done or busy" in capsys.readouterr().out


def test_waiting_on_slurm_notices_a_cancelled_array_at_once_and_says_a_task_never_started(tmp_path, monkeypatch):
    """submitit asks sacct less and less often (up to every 10 minutes): once squeue no longer lists the
    array, the sweep asks at once. A task cancelled in the queue left no log: it is said so, not pointed at."""
    from types import SimpleNamespace

    asked = []

    class Job:
        job_id = "7_0"
        state = "CANCELLED"
        paths = SimpleNamespace(stdout=tmp_path / "7_0_log.out")  # never written

        def done(self, force_check=False):
            asked.append(force_check)
            return force_check  # sacct's answer, only when asked now

        def result(self):
            raise RuntimeError("cancelled")

    d = _one_point(tmp_path)
    monkeypatch.setattr(S, "check_slurm", lambda partition: None)
    monkeypatch.setattr(S, "_check_earlier_array", lambda out: None)
    monkeypatch.setattr(S, "_array_listed", lambda array: False)
    monkeypatch.setattr(S, "slurm_executor", lambda spec, out: SimpleNamespace(map_array=lambda *a: [Job()]))
    spec = S.load_spec(write_spec(tmp_path, name="x", fixed={"task": "mnist-mlp"}))
    res = S.run_slurm(spec, tmp_path, [[d]], poll=0.01, timeout=5)
    assert asked[-1] is True  # (it would have waited for the 5 s timeout)
    (failed, log, why), = res["failed"]
    assert failed == d and why == ("its Slurm task 7_0 was CANCELLED before it started (no log); rerun the sweep to "
                                   "run it")
    Job.state = "COMPLETED"  # a task that ran, whose log this machine does not see: not said to have never started
    assert S._why_no_log(Job()).startswith("its Slurm task 7_0 ended COMPLETED, and its log")


@pytest.mark.parametrize("rc, stdout, stderr, listed", [
    (0, "7_0\n", "", True), (0, "", "", False),
    (1, "", "slurm_load_jobs error: Invalid job id specified", False),  # ended long enough ago to be forgotten
    (1, "", "slurm_load_jobs error: Unable to contact slurm controller", None)])
def test_squeue_s_answer_about_an_array(monkeypatch, rc, stdout, stderr, listed):
    from types import SimpleNamespace

    answer = SimpleNamespace(returncode=rc, stdout=stdout, stderr=stderr)
    monkeypatch.setattr(S.subprocess, "run", lambda *a, **k: answer)
    assert S._array_listed("7") is listed


def test_a_sweep_whose_earlier_array_still_runs_is_not_submitted_again(tmp_path, monkeypatch):
    """Its tasks would find their points claimed; a second array would only hold allocations."""
    from types import SimpleNamespace

    out = tmp_path / "out"
    S.io.write_json(out / "slurm_jobs.json", {"array": "41", "tasks": {}, "points": {}})
    monkeypatch.setattr(S.subprocess, "run", lambda cmd, **kw: SimpleNamespace(returncode=0, stdout="41_0\n41_1\n"))
    with pytest.raises(RuntimeError, match=r"Slurm array 41, submitted by an earlier run .* scancel 41"):
        S._check_earlier_array(out)
    monkeypatch.setattr(S.subprocess, "run", lambda cmd, **kw: SimpleNamespace(returncode=0, stdout=""))
    S._check_earlier_array(out)  # finished: nothing listed, so the sweep may submit what is left


def test_unreachable_slurm_is_a_clear_error_before_submission(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("SLURM_CONF", str(tmp_path / "no" / "slurm.conf"))
    code = main(["sweep", str(EXAMPLE), "--executor", "slurm", "--out", str(tmp_path / "out")])
    err = capsys.readouterr().err
    assert code == 2 and ("Slurm is not reachable" in err or "Slurm is not installed" in err)
    assert not (tmp_path / "out").exists()  # nothing written before the cluster answered


def test_damaged_data_fails_the_sweep_once_before_any_point_is_run(tmp_path, monkeypatch, capsys):
    """Verified on the submitting machine: not every task failing on its node after the queue."""
    require("mnist")
    import shutil

    from hypernb import data

    copy = tmp_path / "data"
    shutil.copytree(data.data_root() / "MNIST", copy / "MNIST")
    images = copy / "MNIST" / "raw" / "train-images-idx3-ubyte.gz"
    images.write_bytes(images.read_bytes()[:100_000])  # truncated
    monkeypatch.setenv("HYPERNB_DATA", str(copy))
    assert main(["sweep", str(EXAMPLE), "--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"error: corrupt data file {images}") and err.count("\n") == 1
    assert not (tmp_path / "out").exists()  # checked before the sweep's folder is made
    shutil.rmtree(copy / "MNIST")  # missing here: left to Slurm's tasks (a cluster's nodes may have it) …
    S.check_data(S.load_spec(EXAMPLE).points())
    with pytest.raises(data.DataError, match="MNIST was not found under the data root"):
        S.check_data(S.load_spec(EXAMPLE).points(), missing_ok=False)
    monkeypatch.setenv("HYPERNB_DATA", str(tmp_path / "typo" / "data"))  # a mistyped data root, offline
    monkeypatch.setattr("urllib.request.urlopen", lambda *a, **k: (_ for _ in ()).throw(OSError("offline")))
    assert main(["sweep", str(EXAMPLE), "--out", str(tmp_path / "out")]) == 2
    assert "MNIST was not found under the data root" in capsys.readouterr().err
    assert not (tmp_path / "typo").exists() and not (tmp_path / "out").exists()  # nothing made for it
    assert main(["sweep", str(EXAMPLE), "--out", str(tmp_path / "out")]) == 2  # … not the local executor's
    err = capsys.readouterr().err
    assert err.startswith("error: MNIST was not found") and not list((tmp_path / "out").glob("points/*/log.txt"))


# -- local executor -------------------------------------------------------------------------------------
def test_local_sweep_runs_collects_and_reruns_nothing(tmp_path, capsys):
    require("mnist")
    out = tmp_path / "sweep"
    assert main(["sweep", str(EXAMPLE), "--out", str(out), "--workers", "2"]) == 0
    assert "4 to run" in capsys.readouterr().out
    assert main(["collect", str(out)]) == 0
    import pandas as pd

    table = pd.read_csv(out / "results.csv")
    assert len(table) == 4 and set(table.status) == {"ok"} and (table.test_acc > 0.2).all()  # chance: 0.1
    assert set(table.optimizer) == {"sgd", "sgd/sgd"} and "final_hyper.alpha" in table
    # the 4 MLP points train as one group on a CPU: time_s is the wall time of that one shared loop
    assert list(table.trained_with) == [4] * 4 and table.time_s.nunique() == 1
    from hypernb.io import git_commit

    assert set(table.git_commit) == {git_commit()}  # the code version each row ran (a mixed table shows it)
    assert main(["collect", str(out), "--out", str(tmp_path / "results.xlsx")]) == 2  # not a CSV in disguise
    assert "--out must end in .csv or .parquet" in capsys.readouterr().err and not (tmp_path / "results.xlsx").exists()
    learned = (table.final_alpha - table.alpha).abs() > 1e-6 * table.alpha  # only hyperoptimized points learn α
    assert list(learned) == list(table.optimizer == "sgd/sgd")
    stamp = {p: p.stat().st_mtime_ns for p in out.glob("points/*/run/metrics.json")}
    assert main(["sweep", str(EXAMPLE), "--out", str(out)]) == 0
    assert "4 already done, 0 to run" in capsys.readouterr().out
    assert stamp == {p: p.stat().st_mtime_ns for p in out.glob("points/*/run/metrics.json")}


def test_failed_point_is_listed_with_its_log_and_not_as_run(tmp_path, capsys):
    import torch

    require("mnist")
    if torch.cuda.is_available():
        pytest.skip("the point fails for want of a GPU")
    spec = write_spec(tmp_path, name="bad", fixed={"task": "mnist-mlp", "profile": "smoke"},
                      grid={"device": ["cuda"]})
    res = S.sweep(spec, tmp_path / "out")
    (d, log, why), = res["failed"]
    assert res["ran"] == [] and why is None  # a failed point is not listed as run; it has a log
    assert Path(log).exists() and "no CUDA GPU is available" in Path(log).read_text()
    assert "Traceback" not in Path(log).read_text()
    assert f"FAILED {d.name}: see {log}" in capsys.readouterr().out
    assert not (d / S.CLAIM).exists()  # released: a rerun may try again
    assert (d / S.FAILED).exists() and list(S.collect(tmp_path / "out").status) == ["failed"]


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
    res = S.sweep(slurm_spec(tmp_path), out, executor="slurm", timeout=600, batch=1)
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
    S.sweep(spec, out, executor="slurm", wait=False, batch=1)
    jobs = S.io.read_json(out / "slurm_jobs.json")
    killed_task, (killed_point,) = list(jobs["tasks"].items())[-1]
    subprocess.run(["scancel", killed_task], env=slurm.env, check=True)
    deadline = time.time() + 600
    while subprocess.run(["squeue", "-h", "-j", jobs["array"]], env=slurm.env, capture_output=True,
                         text=True).stdout.strip():
        assert time.time() < deadline
        time.sleep(1)
    done = {d.name for d in (out / "points").iterdir() if S.is_done(d)}
    assert killed_point not in done and len(done) == 3
    capsys.readouterr()
    res = S.sweep(spec, out, executor="slurm", timeout=600, batch=1)
    text = capsys.readouterr().out
    assert "3 already done, 1 to run" in text and "submitted 1 point(s) in 1 task(s)" in text
    assert res["failed"] == [] and [d.name for d in res["ran"]] == [killed_point]


@pytest.mark.slurm
def test_a_partition_the_cluster_lacks_is_named_with_the_ones_it_has(slurm):
    S.check_slurm(None)
    S.check_slurm("debug")
    with pytest.raises(RuntimeError, match=r"Slurm has no partition 'gpux'; its partitions: debug\*"):
        S.check_slurm("gpux")


@pytest.mark.slurm
def test_a_claim_of_a_slurm_task_that_ended_elsewhere_is_taken_over_at_once(slurm, tmp_path):
    """A cancelled task on another node leaves its claims: Slurm, not the 10-minute staleness, says it is gone."""
    job = subprocess.run(["sbatch", "--parsable", "--array=0", "--wrap", "sleep 120", "-o", str(tmp_path / "o")],
                         env=slurm.env, capture_output=True, text=True, check=True).stdout.strip().split(";")[0]
    d = _one_point(tmp_path)
    S.io.write_json(d / S.CLAIM, {"pid": 1, "host": "node17", "slurm": f"{job}_0", "token": "elsewhere"})
    assert not S.claim(d)  # queued or running there
    subprocess.run(["scancel", job], env=slurm.env, check=True)
    for _ in range(100):
        if not subprocess.run(["squeue", "-h", "-j", f"{job}_0"], env=slurm.env, capture_output=True,
                              text=True).stdout.strip():
            break
        time.sleep(0.1)
    assert S.claim(d) and S.io.read_json(d / S.CLAIM)["token"] != "elsewhere"
    S.release(d)


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
                                                      "batch_size": 16, "train_limit": 8000, "log_every": 50},
                      seeds=[0], executor={"slurm": {"partition": "debug", "time_min": 10}})
    out = tmp_path / "sweep"
    S.sweep(spec, out, executor="slurm", wait=False)
    jobs = S.io.read_json(out / "slurm_jobs.json")
    (task, (point,)), = jobs["tasks"].items()
    run_dir = out / "points" / point / "run"
    deadline = time.time() + 300
    while not list(run_dir.glob("checkpoint*.pt")):  # the first epoch has been checkpointed
        assert time.time() < deadline, "the task never reached its first checkpoint"
        time.sleep(0.2)
    subprocess.run(["scancel", "--signal=USR2", task], env=slurm.env, check=True)
    # submitit checkpoints and requeues the task; Slurm holds it for the credential lifetime
    # (CRED_EXPIRE_S), then starts it again, and it resumes from its checkpoint
    deadline, seen = time.time() + 600, []
    while not S.is_done(out / "points" / point):
        state, reason = slurm.job(task)
        seen.append(f"{state} {reason}".strip())
        if "held" in reason.lower():  # e.g. a relaunch that failed: give it another chance
            subprocess.run(["scontrol", "release", task], env=slurm.env, check=False)
        gone = state == "" and not S.is_done(out / "points" / point)
        if gone or time.time() > deadline:
            states = " -> ".join(dict.fromkeys(seen))
            pytest.fail(f"the requeued task {'ended' if gone else 'did not finish in time'} without "
                        f"finishing its point (states seen: {states})\n" + slurm.diagnose(task, out / "slurm"))
        time.sleep(0.5)
    logs = "\n".join(p.read_text() for p in (out / "slurm").glob("*/*_log.out"))
    assert "Requeued job" in logs or "requeued" in logs.lower()
    metrics = S.io.read_json(out / "points" / point / "run" / "metrics.json")
    seed = metrics["seeds"][0]
    assert seed["status"] == "ok" and [e["epoch"] for e in seed["epochs"]] == [1, 2, 3, 4, 5, 6]


@pytest.mark.slurm
def test_slurm_array_task_trains_a_group_and_writes_each_point(slurm, tmp_path):
    """The four compatible points are one group: one array task trains them together and each
    point still gets its own record and DONE.json."""
    require("mnist")
    out = tmp_path / "sweep"
    res = S.sweep(slurm_spec(tmp_path), out, executor="slurm", timeout=600)
    jobs = S.io.read_json(out / "slurm_jobs.json")
    assert [len(points) for points in jobs["tasks"].values()] == [4]
    assert res["failed"] == [] and len(res["ran"]) == 4
    for d in res["ran"]:
        assert S.io.read_json(d / "DONE.json")["trained_with"] == 4 and (d / "run" / "metrics.json").exists()


# -- spec and command-line mistakes: clear errors, no tracebacks ------------------------------------
@pytest.mark.parametrize("text, match", [
    ("grid:\n- alpha\n- kappa\n", r"'grid' must be a mapping of parameter names to values.*got list"),
    ("seeds: 5\n", r"'seeds' is a list of seeds, got the number 5: write \[5\] for seed 5, or \[0, 1, 2, 3, 4\]"),
    ("seeds: [0, -1]\n", r"'seeds' must be a non-empty list of integers >= 0"),
    ("fixed: [task, mnist-mlp]\n", r"'fixed' must be a mapping"),
    ("zip: alpha\n", r"'zip' must be a mapping"),
    ("grid: {alpha: 0.1}\n", r"'alpha' in grid must be a non-empty list of values"),
    ("fixed: {alpha: 1e-5}\n", r"\(fixed\): 'alpha' has '1e-5', which YAML read as text.*write 1.0e-5"),
    ("grid: {kappa: [1.0e-3, 1e-5]}\n", r"\(grid\): 'kappa' has '1e-5', which YAML read as text"),
    ("executor: slurm\n", r"'executor' must be a mapping"),
    ("executor: {local: {workers: two}}\n", r"local 'workers' must be a positive integer, got 'two'"),
    ("executor: {slurm: {time_min: 1h}}\n", r"slurm 'time_min' must be a positive integer, got '1h'"),
    ("executor: {slurm: {mem_gb: 1e1}}\n", r"'mem_gb' has '1e1', which YAML read as text"),
    ("name: a/b\n", r"'name' must be a short name"),
    ("seed: [0]\n", r"unknown key\(s\) \['seed'\] in the spec \('seed': did you mean 'seeds'\?\)"),
    ("fixed: {profle: smoke}\n", r"run\(\) has no parameter\(s\) \['profle'\] \('profle': did you mean 'profile'"),
    ("fixed: {epochs: 1.5}\n", r"epochs must be a positive integer, got 1.5 \(in the point"),
    ("grid: {alpha: [0.1, 0.2]\nseeds: [0]\n", r"spec.yaml, line 2, column 1: not valid YAML"),
    ("fixed:\n  task: mnist-mlp\n   epochs: 1\n", r"spec.yaml, line 3, column 10: not valid YAML"),
    ("grid: {alpha: [1.0e-3, 0.001]}\n", r"grid 'alpha' repeats 0.001 \(equal numbers written differently are one"),
    ("seeds: [0, 1, 0]\n", r"seeds repeats 0 .*two points would be one run"),
    ("grid: {alpha: [1, 1.0]}\n", r"grid 'alpha' repeats 1.0 "),
    ("zip: {alpha: [0.1, 0.1], kappa: [1.0e-3, 0.001]}\n", r"zip repeats \[0.1, 0.001\]"),
])
def test_wrong_spec_entries_are_clear_errors_naming_file_and_key(tmp_path, text, match):
    path = tmp_path / "spec.yaml"
    path.write_text(text)
    with pytest.raises(ValueError, match=match):
        S.load_spec(path)


def test_cli_reports_spec_and_folder_mistakes_in_one_line(tmp_path, capsys):
    bad = tmp_path / "bad.yaml"
    bad.write_text("grid: {alpha: [0.1, 0.2]\n")
    a_file = tmp_path / "a-file"
    a_file.write_text("x")
    cases = [
        (["sweep", str(bad)], "bad.yaml, line 2, column 1: not valid YAML"),
        (["sweep", str(tmp_path / "missing.yaml")], "missing.yaml not found"),
        (["sweep", str(EXAMPLE), "--out", str(a_file)], "a-file cannot be a folder: " + str(a_file) + " is a file"),
        (["sweep", str(EXAMPLE), "--out", str(a_file / "sub")], "is a file"),
        (["sweep", str(EXAMPLE), "--out", "/proc/hypernb-sweep"], "cannot be created"),
        (["collect", str(tmp_path / "nowhere")], "nowhere is not a folder; give the sweep folder"),
        (["collect", str(tmp_path)], "is not a sweep folder: it has no points/"),
        (["run", "--out", str(a_file), "--profile", "smoke"], "a-file cannot be a folder"),
    ]
    for argv, message in cases:
        assert main(argv) == 2, argv
        err = capsys.readouterr().err
        assert err.startswith("error: ") and message in err and err.count("\n") == 1, (argv, err)
    assert not (tmp_path / "nowhere").exists()  # collect created nothing


def test_corrupt_result_files_name_the_file_and_the_fix(tmp_path, capsys):
    d = tmp_path / "points" / "abc"
    d.mkdir(parents=True)
    S.io.write_json(d / "point.json", {"target": "run", "params": {"alpha": 0.1}})
    (d / "run").mkdir()
    metrics = d / "run" / "metrics.json"
    for content in (b'{"config": {"task": "mnist-mlp"}, "seeds": [', b"\x80\x81binary", b"[]"):
        metrics.write_bytes(content)
        assert main(["collect", str(tmp_path)]) == 2
        err = capsys.readouterr().err
        assert err.startswith(f"error: {metrics}") and err.count("\n") == 1, err
        assert "Delete it" in err or "delete it" in err
    (d / "point.json").write_text("{")
    with pytest.raises(ValueError, match=r"point.json should hold a sweep point .* not valid JSON"):
        S.collect(tmp_path)
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    (run_dir / "config.json").write_text('{"task": ')
    assert main(["run", "--out", str(run_dir), "--profile", "smoke", "--quiet"]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"error: {run_dir / 'config.json'} should hold a run's configuration") and \
        err.count("\n") == 1


@pytest.mark.parametrize("argv, message", [
    (["-p", "SEEDS", "abc"], "01_mlp_mnist: parameter SEEDS must be a list or None, got 'abc'"),
    (["-p", "EPOCHS", "1.5"], "parameter EPOCHS must be an integer or None, got 1.5"),
    (["-p", "EPOCHS", "-5"], "parameter EPOCHS must be a positive integer, got -5"),
    (["--only", "02", "-p", "MUS", "[0.9, 1.5]"], "02_resnet20_cifar10: parameter MUS must be a non-empty list of "
                                                   "numbers in [0, 1)"),
    (["--only", "04", "-p", "HEIGHTS", "[0, 1.5]"], "parameter HEIGHTS must be a non-empty list of integers >= 0"),
    (["-p", "BATCH_SIZE", "-5"], "parameter(s) ['BATCH_SIZE'] are not in the parameters cell of any selected"),
])
def test_notebook_parameters_are_checked_before_any_kernel_starts(monkeypatch, capsys, tmp_path, argv, message):
    import papermill

    def no_kernel(*a, **k):
        raise AssertionError("a kernel was started")

    monkeypatch.setattr(papermill, "execute_notebook", no_kernel)
    assert main(["notebooks", "--out", str(tmp_path / "never-created"), *argv]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and message in err, err
    assert not (tmp_path / "never-created").exists()  # nothing is written before the parameters are checked


def test_parameters_file_mistakes_are_clear(tmp_path, capsys, monkeypatch):
    import papermill

    monkeypatch.setattr(papermill, "execute_notebook", lambda *a, **k: pytest.fail("a kernel was started"))
    f = tmp_path / "params.yaml"
    for text, message in (("EPOCHS: [1\n", "params.yaml, line 2, column 1: not valid YAML"),
                          ("- EPOCHS\n", "must hold a mapping of parameter names to values"),
                          ("ALPHA_GRID: [1e-3]\n", "'ALPHA_GRID' has '1e-3', which YAML read as text")):
        f.write_text(text)
        assert main(["notebooks", "-f", str(f)]) == 2
        assert message in capsys.readouterr().err


# -- claims: a point is run by one process at a time ------------------------------------------------
def _claim_in_subprocess(d, env=None):
    code = f"import sys; from hypernb import sweep as S; print(S.claim({str(d)!r})); sys.stdout.flush()"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         env={**os.environ, **(env or {})}, timeout=120)
    assert out.returncode == 0, out.stderr
    return out.stdout.strip() == "True"


def _fake_claim(d, *, pid, host, slurm=None, age=0.0):
    path = d / S.CLAIM
    path.write_text(json.dumps({"pid": pid, "host": host, "slurm": slurm, "token": "someone-else",
                                "since": "then"}))
    t = time.time() - age
    os.utime(path, (t, t))


def test_a_claim_is_exclusive_and_released(tmp_path):
    d = tmp_path / "p"
    d.mkdir()
    assert S.claim(d)
    assert not _claim_in_subprocess(d)  # held by a live process (this one)
    assert "claimed by pid" in S.describe_claim(d)
    S.release(d)
    assert not (d / S.CLAIM).exists()
    assert _claim_in_subprocess(d)  # free again; that process exited without releasing it: a dead owner
    assert S.claim(d)  # … whose claim is taken over


def test_a_dead_or_silent_owner_is_taken_over_and_a_live_one_is_not(tmp_path, monkeypatch):
    import socket

    d = tmp_path / "p"
    d.mkdir()
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True,
                          text=True).stdout.strip()
    _fake_claim(d, pid=int(dead), host=socket.gethostname())  # this host, its process is gone
    assert S.claim(d)
    S.release(d)
    _fake_claim(d, pid=1, host="another-host")  # another host, refreshed just now: alive
    assert not S.claim(d)
    monkeypatch.setenv("HYPERNB_CLAIM_STALE_S", "60")
    _fake_claim(d, pid=1, host="another-host", age=120)  # not refreshed for longer than allowed
    assert S.claim(d)
    S.release(d)


def test_a_requeued_slurm_task_reclaims_its_own_point(tmp_path):
    """After a requeue the task runs again (maybe on another node) with the same array job and task
    id: its old claim is its own. Another task's live claim is not."""
    d = tmp_path / "p"
    d.mkdir()
    _fake_claim(d, pid=999999, host="node-7", slurm="4242_3")
    worker = "import sys; from hypernb import sweep as S; S._slurm_worker = True; print(S.claim(sys.argv[1]))"
    task = {"SLURM_ARRAY_JOB_ID": "4242", "SLURM_ARRAY_TASK_ID": "3", "SLURM_JOB_ID": "4245"}
    other = {"SLURM_ARRAY_JOB_ID": "4242", "SLURM_ARRAY_TASK_ID": "4", "SLURM_JOB_ID": "4246"}
    run = lambda env: subprocess.run([sys.executable, "-c", worker, str(d)], capture_output=True,  # noqa: E731
                                     text=True, env={**os.environ, **env}).stdout.strip()
    assert run(other) == "False"
    assert run({k: v for k, v in task.items()}) == "True"
    assert json.loads((d / S.CLAIM).read_text())["slurm"] == "4242_3"
    # a local worker inside a Slurm allocation is not "the same task", even with the same job id
    _fake_claim(d, pid=999999, host="node-7", slurm="4242_3")
    plain = "import sys; from hypernb import sweep as S; print(S.claim(sys.argv[1]))"
    out = subprocess.run([sys.executable, "-c", plain, str(d)], capture_output=True, text=True,
                         env={**os.environ, **task}).stdout.strip()
    assert out == "False"


def _race(d, n, barrier_file):
    code = ("import sys, time, os; from hypernb import sweep as S\n"
            "open(sys.argv[2] + '.ready.' + sys.argv[3], 'w').close()\n"
            "while not os.path.exists(sys.argv[2]): time.sleep(0.001)\n"
            "ok = S.claim(sys.argv[1]); print(ok); sys.stdout.flush(); time.sleep(1.5 if ok else 0)")
    procs = [subprocess.Popen([sys.executable, "-c", code, str(d), str(barrier_file), str(i)],
                              stdout=subprocess.PIPE, text=True) for i in range(n)]
    deadline = time.time() + 120
    while len(list(barrier_file.parent.glob(barrier_file.name + ".ready.*"))) < n:  # all imported, waiting
        assert time.time() < deadline
        time.sleep(0.05)
    barrier_file.write_text("go")
    return [p.communicate(timeout=120)[0].strip() for p in procs]


@pytest.mark.parametrize("leftover", [False, True])
def test_racing_processes_claim_a_point_exactly_once(tmp_path, leftover):
    """Five processes claim one point at the same moment (free, or held by a dead owner): one wins."""
    import socket

    d = tmp_path / "p"
    d.mkdir()
    if leftover:
        _fake_claim(d, pid=2 ** 22 + 12345, host=socket.gethostname())  # no such process
    results = _race(d, 5, tmp_path / "go")
    assert sorted(results) == ["False"] * 4 + ["True"], results


# -- local sweeps: batches, concurrency, leftovers ---------------------------------------------------------
def tiny_spec(tmp_path, **changes):
    spec = dict(name="tiny", fixed={"task": "mnist-mlp", "profile": "smoke", "epochs": 1, "max_steps": 6,
                                    "log_every": 2, "dtype": "float64", "train_limit": 512, "test_limit": 256},
                grid={"optimizer": ["sgd", "sgd/sgd"]}, zip={"alpha": [0.05, 0.1], "kappa": [1e-3, 1e-2]},
                seeds=[0])
    return write_spec(tmp_path, **{**spec, **changes})


def test_a_batched_sweep_equals_an_unbatched_one(tmp_path, capsys):
    """Four compatible points: trained as one group (default) or one by one (--batch 1), every
    point's record is the same (float64, 1e-10), and each point has its own record."""
    require("mnist")
    spec = tiny_spec(tmp_path)
    assert main(["sweep", str(spec), "--out", str(tmp_path / "batched")]) == 0
    assert "1 group(s) of up to 32 run(s)" in capsys.readouterr().out
    assert main(["sweep", str(spec), "--out", str(tmp_path / "alone"), "--batch", "1", "--workers", "2"]) == 0
    names = sorted(p.name for p in (tmp_path / "batched" / "points").iterdir())
    assert len(names) == 4 and names == sorted(p.name for p in (tmp_path / "alone" / "points").iterdir())
    for name in names:
        b = S.io.read_json(tmp_path / "batched" / "points" / name / "run" / "metrics.json")["seeds"][0]
        a = S.io.read_json(tmp_path / "alone" / "points" / name / "run" / "metrics.json")["seeds"][0]
        assert b["trained_with"] == 4 and a["trained_with"] == 1 and a["status"] == b["status"] == "ok"
        assert S.io.read_json(tmp_path / "batched" / "points" / name / "DONE.json")["trained_with"] == 4
        assert a["steps"] == b["steps"]
        for key in ("loss",):
            assert b[key] == pytest.approx(a[key], rel=1e-10)
        for k, v in a["trajectory"].items():
            assert b["trajectory"][k] == pytest.approx(v, rel=1e-10, abs=1e-300), k
        for k, v in a["final"].items():
            assert b["final"][k] == pytest.approx(v, rel=1e-10), k
    assert main(["sweep", str(spec), "--out", str(tmp_path / "batched")]) == 0  # resumable: nothing to redo
    assert "4 already done, 0 to run" in capsys.readouterr().out


def test_two_sweeps_on_one_folder_never_run_a_point_twice(tmp_path):
    require("mnist")
    spec = tiny_spec(tmp_path)
    out = tmp_path / "out"
    cmd = [sys.executable, "-m", "hypernb", "sweep", str(spec), "--out", str(out), "--batch", "1", "--workers", "2"]
    procs = [subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True) for _ in range(2)]
    texts = [p.communicate(timeout=900)[0] for p in procs]
    ran = []
    for text in texts:
        summary = [line for line in text.splitlines() if line.startswith("sweep tiny: ran")]
        ran += [int(summary[0].split("ran ")[1].split(",")[0])] if summary else [0]
        assert "FAILED" not in text, text
    assert sum(ran) == 4, texts  # each point ran once, in one of the two sweeps
    assert all(S.is_done(d) for d in (out / "points").iterdir())
    assert not list(out.rglob(S.CLAIM))


def test_leftover_temporary_files_are_removed_on_the_next_run(tmp_path):
    require("mnist")
    spec = tiny_spec(tmp_path, grid={"optimizer": ["sgd"]}, zip={"alpha": [0.05], "kappa": [1e-3]})
    out = tmp_path / "out"
    S.prepare(S.load_spec(spec), out)
    (point,) = (out / "points").iterdir()
    killed = [point / "run" / ".metrics.json.k1ll3d_x.tmp", point / ".DONE.json.abcdefgh"]
    for f in killed:
        f.parent.mkdir(exist_ok=True)
        f.write_text("half a file")
    old = out / ".sweep.json.0ldf1le_.tmp"  # outside any point: removed once it is old enough
    old.write_text("x")
    os.utime(old, (time.time() - 3600, time.time() - 3600))
    fresh = out / ".sweep.json.fr3shf1l.tmp"  # maybe another sweep's write in progress: kept
    fresh.write_text("x")
    assert main(["sweep", str(spec), "--out", str(out)]) == 0
    assert not any(f.exists() for f in killed + [old]) and fresh.exists()
    run_dir = tmp_path / "single"
    run_dir.mkdir()
    leftover = run_dir / ".metrics.json.abc12345.tmp"
    leftover.write_text("x")
    argv = ["run", "--task", "mnist-mlp", "--opt", "sgd", "--profile", "smoke", "--max-steps", "2", "--quiet",
            "--out", str(run_dir)]
    assert main(argv) == 0 and not leftover.exists()


def test_rerunning_a_finished_run_does_not_rewrite_its_env_json(tmp_path):
    require("mnist")
    argv = ["run", "--task", "mnist-mlp", "--opt", "sgd/sgd", "--profile", "smoke", "--max-steps", "3", "--quiet",
            "--out", str(tmp_path)]
    assert main(argv) == 0
    env, metrics = tmp_path / "env.json", tmp_path / "metrics.json"
    before = (env.read_bytes(), env.stat().st_mtime_ns, metrics.read_bytes(), metrics.stat().st_mtime_ns)
    time.sleep(0.05)
    assert main(argv) == 0
    assert (env.read_bytes(), env.stat().st_mtime_ns, metrics.read_bytes(), metrics.stat().st_mtime_ns) == before


def test_a_busy_out_folder_is_refused_by_run(tmp_path, capsys):
    d = tmp_path / "run"
    d.mkdir()
    _fake_claim(d, pid=1, host="another-host")
    assert main(["run", "--out", str(d), "--profile", "smoke"]) == 2
    assert "is claimed by pid 1 on another-host" in capsys.readouterr().err


def test_slurm_executor_path_trains_groups_through_submitit(tmp_path, monkeypatch, capsys):
    """The Slurm code path (one array task per group, each task's report, slurm_jobs.json) without
    a cluster: submitit's LocalExecutor runs the same pickled tasks as local processes."""
    require("mnist")
    import submitit

    monkeypatch.setattr(S, "check_slurm", lambda partition: None)
    monkeypatch.setattr(S, "slurm_executor", lambda spec, out, offline=False: submitit.LocalExecutor(
        folder=str(out / "slurm" / "%j")))
    spec, out = tiny_spec(tmp_path), tmp_path / "out"
    res = S.sweep(spec, out, executor="slurm", timeout=600, batch=2, quiet=True)
    assert res["failed"] == [] and res["busy"] == [] and len(res["ran"]) == 4
    jobs = S.io.read_json(out / "slurm_jobs.json")
    assert sorted(len(v) for v in jobs["tasks"].values()) == [2, 2] and len(jobs["points"]) == 4
    assert "submitted 4 point(s) in 2 task(s)" in capsys.readouterr().out
    for d in res["ran"]:
        assert S.io.read_json(d / "DONE.json")["trained_with"] == 2 and not (d / S.CLAIM).exists()


# -- robustness: optional packages, files of another kind, results that are gone -----------------------
def _one_point(tmp_path, params=None) -> Path:
    d = tmp_path / "points" / "abc"
    d.mkdir(parents=True)
    S.io.write_json(d / "point.json", {"target": "run", "params": params or {"alpha": 0.1}})
    return d


def test_collect_to_parquet_without_pyarrow_names_what_to_install(tmp_path, capsys, monkeypatch):
    _one_point(tmp_path)
    monkeypatch.setitem(sys.modules, "pyarrow", None)  # as if neither package were installed
    monkeypatch.setitem(sys.modules, "fastparquet", None)
    out = tmp_path / "x.parquet"
    assert main(["collect", str(tmp_path), "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and err.count("\n") == 1, err
    assert "pip install pyarrow" in err and "--out results.csv" in err
    assert not out.exists()


@pytest.mark.parametrize("content", ["[1, 2]", '"str"', "[]", "{}", '{"target": "run", "params": [1]}'])
def test_a_point_json_of_another_kind_names_the_file_and_the_fix(tmp_path, capsys, content):
    d = _one_point(tmp_path)
    (d / "point.json").write_text(content)
    assert main(["collect", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"error: {d / 'point.json'} should hold a sweep point") and err.count("\n") == 1, err
    assert "Delete it and rerun the sweep" in err
    assert not S.is_done(d)


def test_a_point_is_done_only_when_its_results_are_complete(tmp_path):
    """DONE.json alone is not enough: the run's metrics must be readable, with every seed of the point ended."""
    d = _one_point(tmp_path, {"alpha": 0.1, "seeds": [0]})
    S.io.write_json(d / "DONE.json", {"status": "ok"})
    assert not S.is_done(d)  # no metrics.json (deleted, as advised for a corrupt one)
    metrics = d / "run" / "metrics.json"
    S.io.write_json(metrics, {"config": {}, "seeds": [{"seed": 0, "status": "ok"}]})
    assert S.is_done(d)
    for content in ('{"seeds": [', "[]", '{"seeds": [{"seed": 0, "status": "running"}]}',
                    '{"seeds": [{"seed": 1, "status": "ok"}]}'):
        metrics.write_text(content)  # cut short, of another kind, unfinished, another seed
        assert not S.is_done(d), content
    S.io.write_json(metrics, {"config": {}, "seeds": [{"seed": 0, "status": "diverged"}]})
    assert S.is_done(d)
    (d / "DONE.json").write_text("{")
    assert not S.is_done(d)


def test_a_point_whose_metrics_were_deleted_is_run_again(tmp_path, capsys):
    require("mnist")
    spec = tiny_spec(tmp_path, grid={"optimizer": ["sgd"]}, zip={"alpha": [0.05], "kappa": [1e-3]})
    out = tmp_path / "out"
    assert main(["sweep", str(spec), "--out", str(out)]) == 0
    (point,) = (out / "points").iterdir()
    (point / "run" / "metrics.json").unlink()  # the advised fix for a corrupt one
    assert main(["collect", str(out)]) == 0
    import pandas as pd

    assert list(pd.read_csv(out / "results.csv").status) == ["missing"]
    capsys.readouterr()
    assert main(["sweep", str(spec), "--out", str(out)]) == 0
    assert "0 already done, 1 to run" in capsys.readouterr().out
    assert S.is_done(point) and S.io.read_json(point / "run" / "metrics.json")["seeds"][0]["status"] == "ok"


def test_a_damaged_metrics_json_or_checkpoint_is_set_aside_and_its_point_run_again(tmp_path, capsys):
    """As is_done promises: a point whose results are damaged runs again, with nothing lost (the file is
    renamed, not deleted) and no manual step; an interrupted point with a damaged checkpoint starts over."""
    require("mnist")
    spec = tiny_spec(tmp_path, grid={"optimizer": ["sgd"]}, zip={"alpha": [0.05, 0.1], "kappa": [1e-3, 1e-3]},
                     fixed={"task": "mnist-mlp", "profile": "smoke", "epochs": 2, "max_steps": 4, "log_every": 2,
                            "dtype": "float64", "train_limit": 512, "test_limit": 256})
    out = tmp_path / "out"
    finished, interrupted = S.prepare(S.load_spec(spec), out)
    from hypernb.train import run

    assert run(S.RunConfig.from_dict({**S.read_point(finished)["params"], "out_dir": str(finished / "run"),
                                      "quiet": True})).ok

    class Stop(Exception):
        pass

    def stop(seed_results, epoch):
        raise Stop

    with pytest.raises(Stop):
        run(S.RunConfig.from_dict({**S.read_point(interrupted)["params"], "out_dir": str(interrupted / "run"),
                                   "quiet": True}), on_epoch_end=stop)
    metrics = finished / "run" / "metrics.json"
    held = metrics.read_text()
    metrics.write_text(held[:300])
    (ckpt,) = (interrupted / "run").glob("checkpoint*.pt")
    ckpt.write_bytes(ckpt.read_bytes()[:1000])
    capsys.readouterr()
    assert main(["sweep", str(spec), "--out", str(out), "--batch", "1"]) == 0
    text = capsys.readouterr().out
    assert "0 already done, 2 to run" in text and "ran 2, failed 0" in text, text
    assert (finished / "run" / "metrics.json.damaged").read_text() == held[:300]
    assert (ckpt.parent / (ckpt.name + ".damaged")).is_file() and not list((interrupted / "run").glob("*.pt"))
    logs = (finished / "log.txt").read_text() + (interrupted / "log.txt").read_text()
    assert logs.count("the sweep set it aside as") == 2, logs
    assert S.is_done(finished) and S.is_done(interrupted)
    assert [len(S.io.read_json(d / "run" / "metrics.json")["seeds"][0]["epochs"]) for d in (finished, interrupted)] \
        == [2, 2]


@pytest.mark.parametrize("text", ["", "# nothing yet\n", "{}\n"])
def test_an_empty_spec_is_refused(tmp_path, text):
    path = tmp_path / "spec.yaml"
    path.write_text(text)
    with pytest.raises(ValueError, match=r"spec.yaml: the spec is empty; a sweep spec is a mapping with keys"):
        S.load_spec(path)


def test_help_lists_only_public_commands_and_documents_sweep_options(capsys):
    with pytest.raises(SystemExit):
        main(["--help"])
    text = capsys.readouterr().out
    assert "SUPPRESS" not in text and "points" not in text and "{run,notebooks,records,sweep,collect}" in text
    with pytest.raises(SystemExit):
        main(["train"])  # a mistyped command: the public ones only, not the sweep worker's
    err = capsys.readouterr().err
    assert "unknown command 'train'; choose from run, notebooks, records, sweep, collect" in err and "point" not in err
    with pytest.raises(SystemExit):
        main(["sweep", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert "--executor {local,slurm} local: worker processes" in text
    assert "on a CPU up to 32 MLP points, while ResNet-20 and LSTM points train one at a time" in text
    with pytest.raises(SystemExit):
        main(["collect", "--help"])
    assert "one row per point and seed" in " ".join(capsys.readouterr().out.split())


@pytest.mark.parametrize("argv, message", [
    (["--profile", "tiny"], "error: --profile must be one of auto, smoke, demo, full, got 'tiny'"),
    (["--only", ","], "error: --only ',' names no notebook"),
    (["--out", "A_FILE"], "error: --out A_FILE cannot be a folder: A_FILE is a file; choose another path"),
    (["--out", "A_FILE/sub"], "error: --out A_FILE/sub cannot be a folder: A_FILE is a file"),
])
@pytest.mark.parametrize("command", ["records", "notebooks"])
def test_records_and_notebooks_selection_mistakes_are_one_sentence(tmp_path, capsys, monkeypatch, command, argv,
                                                                      message):
    import papermill

    from hypernb import study

    monkeypatch.setattr(papermill, "execute_notebook", lambda *a, **k: pytest.fail("a kernel was started"))
    monkeypatch.setattr(study, "start", lambda *a, **k: pytest.fail("records started training"))
    a_file = tmp_path / "a-file"
    a_file.write_text("x")
    argv = [str(a_file) + x[len("A_FILE"):] if x.startswith("A_FILE") else x for x in argv]
    assert main([command, *argv]) == 2
    captured = capsys.readouterr()
    assert captured.out == "" and captured.err.startswith(message.replace("A_FILE", str(a_file))), captured
    assert captured.err.count("\n") == 1


def test_collect_writes_parquet_where_a_parquet_package_is_installed(tmp_path, capsys):
    pd = pytest.importorskip("pandas")
    if not any(__import__("importlib").util.find_spec(m) for m in ("pyarrow", "fastparquet")):
        pytest.skip("neither pyarrow nor fastparquet is installed (collect then refuses .parquet, tested above)")
    _one_point(tmp_path)
    out = tmp_path / "x.parquet"
    assert main(["collect", str(tmp_path), "--out", str(out)]) == 0
    assert list(pd.read_parquet(out).status) == ["missing"] and not list(tmp_path.glob(".x.parquet.*"))


def test_the_spec_shown_by_sweep_help_loads(tmp_path):
    """The example in the module's docstring (what `python -m hypernb sweep --help` shows) is a valid spec."""
    doc = S.__doc__
    block = doc.split("::\n\n", 1)[1].split("\n\n", 1)[0]
    path = tmp_path / "example.yaml"
    path.write_text(textwrap.dedent(block) + "\n")
    spec = S.load_spec(path)
    assert len(spec.points()) == 2 * 2 * 2 and spec.slurm["partition"] == "gpu"


def test_a_folder_holds_one_sweep_and_collect_reads_the_spec_last_swept(tmp_path, capsys):
    """A grid since shrunk leaves its points; collect reads the current spec's (--all: every point), and
    another spec's sweep into the same folder is refused (collect would mix their tables)."""
    out = tmp_path / "out"
    big = write_spec(tmp_path, name="grid", fixed={"task": "mnist-mlp", "profile": "smoke"},
                     grid={"alpha": [0.01, 0.1]})
    S.prepare(S.load_spec(big), out)
    small = tmp_path / "small.yaml"
    small.write_text(yaml.safe_dump({"name": "grid", "fixed": {"task": "mnist-mlp", "profile": "smoke"},
                                     "grid": {"alpha": [0.01]}}))
    S.prepare(S.load_spec(small), out)
    assert len(S.collect(out)) == 1 and len(S.collect(out, every=True)) == 2
    every = S.collect(out, every=True)  # the rows the current spec no longer holds say so
    assert list(zip(every.alpha, every.in_spec)) == [(0.01, True), (0.1, False)] and "in_spec" not in S.collect(out)
    assert main(["collect", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "1 point(s) in" in printed and "--all includes them" in printed and "1 row(s) from 1 point(s)" in printed
    other = tmp_path / "other.yaml"
    other.write_text(yaml.safe_dump({"name": "towers", "fixed": {"task": "mnist-mlp", "profile": "smoke"}}))
    with pytest.raises(ValueError, match=r"holds the sweep 'grid' .* not 'towers': give this spec a folder"):
        S.prepare(S.load_spec(other), out)


def test_a_reader_that_stops_reading_is_no_error(tmp_path):
    """`sweep … --dry-run | head -1`: the listing stops quietly (it said "error: [Errno 32] Broken pipe", exit 2)."""
    import subprocess
    import sys

    spec = write_spec(tmp_path, name="long", fixed={"task": "mnist-mlp", "profile": "smoke"},
                      grid={"alpha": [round(0.001 * (i + 1), 6) for i in range(600)]}, seeds=[0, 1])
    proc = subprocess.Popen([sys.executable, "-m", "hypernb", "sweep", str(spec), "--dry-run"],  # more than a pipe holds
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=tmp_path,
                            env={**os.environ, "PYTHONPATH": str(REPO)})
    assert proc.stdout.readline().startswith(b"sweep long in runs/long: 1200 point(s)")
    proc.stdout.close()
    assert proc.wait(timeout=120) == 141 and proc.stderr.read() == b""  # as a shell reports `… | head`


@pytest.mark.parametrize("content", ["{", "[1, 2]"])
def test_a_damaged_point_json_is_written_again_from_the_spec(tmp_path, capsys, content):
    """The spec says what a point is: a sweep sets a damaged point.json aside and writes it again (it stopped)."""
    spec = S.load_spec(EXAMPLE)
    out = tmp_path / "out"
    dirs = S.prepare(spec, out)
    (dirs[0] / "point.json").write_text(content)
    again = S.prepare(spec, out)
    assert again == dirs and S.read_point(dirs[0])["params"] == spec.points()[0]
    assert (dirs[0] / "point.json.damaged").read_text() == content
    assert "wrote it again from the spec" in capsys.readouterr().out


def test_collect_tells_failed_stopped_and_running_points_from_missing_ones(tmp_path):
    never, failed, working, killed = (_one_point(tmp_path / n, {"alpha": 0.1, "seeds": [0]})
                                      for n in ("never", "failed", "working", "killed"))
    (failed / "log.txt").write_text("error: …")
    S.io.write_json(failed / S.FAILED, {"log": str(failed / "log.txt")})  # what the sweep writes for a failed point
    (never / "log.txt").write_text("epoch 1 …")  # a log alone: a local worker writes it before it starts
    assert S.claim(working)  # this process: alive
    S.io.write_json(killed / "run" / "metrics.json", {"config": {}, "seeds": [{"seed": 0, "status": "running"}]})
    statuses = {n: list(S.collect(tmp_path / n).status) for n in ("never", "failed", "working", "killed")}
    assert statuses == {"never": ["missing"], "failed": ["failed"], "working": ["running"], "killed": ["stopped"]}
    S.release(working)
    assert list(S.collect(tmp_path / "failed").reason) == [f"see {failed / 'log.txt'}"]
    S.io.write_json(failed / S.FAILED, {"log": None, "why": "its Slurm task 7_3 ended CANCELLED before it started"})
    assert list(S.collect(tmp_path / "failed").reason) == ["its Slurm task 7_3 ended CANCELLED before it started"]


def test_collect_orders_rows_by_their_parameters_and_keeps_integers_whole(tmp_path, capsys):
    """Rows follow the grid (numbers by value), not the points' hashes; a seed stays 0, not 0.0, beside a
    point without results."""
    for i, alpha in enumerate([0.3, 0.01, 0.1]):
        d = tmp_path / "points" / f"p{i}"
        d.mkdir(parents=True)
        S.io.write_json(d / "point.json", {"target": "run", "params": {"alpha": alpha, "seeds": [0]}})
        if alpha != 0.1:
            S.io.write_json(d / "run" / "metrics.json", {"config": {}, "seeds": [
                {"seed": 0, "status": "ok", "final": {"test_acc": 0.9}, "epochs": [{}], "trained_with": 1 + i}]})
    df = S.collect(tmp_path)
    assert list(df.alpha) == [0.01, 0.1, 0.3] and str(df.seed.dtype) == "Int64" and df.seed.iloc[0] == 0
    assert df.to_csv(index=False).splitlines()[1].split(",")[3] == "0"  # written as 0
    # one row trained alone, one batched (a sweep resumed with another --batch): said, since float32 differs
    assert main(["collect", str(tmp_path)]) == 0
    assert "note: 1 row(s) trained alone and 1 batched (trained_with)" in capsys.readouterr().out


@pytest.mark.parametrize("signal_name", ["SIGTERM", "SIGKILL", "SIGINT"])
def test_a_terminated_local_sweep_stops_its_workers(tmp_path, signal_name):
    """SIGTERM to a local sweep (a scheduler's kill, `kill <pid>`) stops its worker too: it had trained on,
    orphaned, holding its points; a rerun then resumes them. A SIGKILL (or the OOM killer) cannot be
    handled by the sweep: its worker notices that its parent is gone and stops by itself. Ctrl-C reaches
    the whole process group (SIGINT to the worker, then the sweep's SIGTERM). Every way the worker releases
    its point's claims."""
    import signal

    require("mnist")
    spec = write_spec(tmp_path, name="long", fixed={"task": "mnist-mlp", "profile": "smoke", "epochs": 50},
                      grid={"alpha": [0.01]})
    out = tmp_path / "out"
    sweep = subprocess.Popen([sys.executable, "-m", "hypernb", "sweep", str(spec), "--out", str(out)],
                             stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, cwd=tmp_path,
                             env={**os.environ, "PYTHONPATH": str(REPO)}, start_new_session=True)
    claim = None
    for _ in range(600):  # the worker claims its point once it runs
        claims = list(out.glob("points/*/CLAIM.json"))
        if claims and S.io.read_json(claims[0]).get("pid"):
            claim = S.io.read_json(claims[0])
            break
        time.sleep(0.1)
    assert claim is not None and claim["pid"] != sweep.pid
    if signal_name == "SIGINT":
        os.killpg(sweep.pid, signal.SIGINT)  # Ctrl-C in a terminal: the sweep and its workers
    else:
        sweep.send_signal(getattr(signal, signal_name))
    if signal_name != "SIGKILL":
        assert sweep.wait(timeout=60) == 130 and "interrupted" in sweep.stderr.read().decode()
    else:
        assert sweep.wait(timeout=60) == -signal.SIGKILL
    for _ in range(200):
        if not _running(claim["pid"]) and not claims[0].exists():
            break
        time.sleep(0.1)
    assert not _running(claim["pid"]) and not claims[0].exists()
    assert not list(out.glob("points/**/CLAIM.json"))  # the run folder's claim too


def _running(pid: int) -> bool:
    """Alive and not a zombie (an orphan's exit is reaped by whoever adopts it, which may be slow)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().split(") ")[1][0] != "Z"
    except OSError:
        return S._pid_alive(pid)  # (no /proc: ask the kernel)


def test_points_another_sweep_trains_now_are_not_started_again(tmp_path, capsys):
    """Checked before anything starts (on Slurm: before an array is submitted only to find them claimed)."""
    require("mnist")
    out = tmp_path / "out"
    dirs = S.prepare(S.load_spec(EXAMPLE), out)
    assert S.claim(dirs[0])  # a live owner: this process, as another sweep would be
    try:
        res = S.sweep(EXAMPLE, out)
    finally:
        S.release(dirs[0])
    assert res["busy"] == [dirs[0]] and len(res["ran"]) == 3 and res["failed"] == []
    printed = capsys.readouterr().out
    assert "1 busy elsewhere, 3 to run" in printed and f"BUSY {dirs[0].name}" in printed


def test_collect_says_why_a_run_diverged_and_warns_of_an_early_explosion(tmp_path, capsys):
    require("mnist")
    spec = tiny_spec(tmp_path, grid={"optimizer": ["sgd/sgd"]},
                     zip={"alpha": [0.05, 100.0, 0.06], "kappa": [1e-3, 1e-3, 1e300]},
                     fixed={"task": "mnist-mlp", "profile": "smoke", "epochs": 1, "max_steps": 8, "log_every": 4,
                            "train_limit": 512, "test_limit": 256})
    out = tmp_path / "out"
    main(["sweep", str(spec), "--out", str(out)])
    assert main(["collect", str(out)]) == 0
    import pandas as pd

    table = pd.read_csv(out / "results.csv").set_index("alpha")
    assert table.loc[0.05, "status"] == "ok" and table.loc[0.05, ["reason", "warning"]].isna().all()
    assert table.loc[0.06, "status"] == "diverged" and "non-finite" in table.loc[0.06, "reason"]
    assert table.loc[100.0, "status"] == "ok" and "first logged mean" in table.loc[100.0, "warning"]


def test_collect_from_a_read_only_sweep_folder_says_to_give_out(tmp_path, capsys, monkeypatch):
    """Without --out, collect writes into the sweep folder: a read-only copy is told to give --out (it spoke of
    'the folder of --out', an option that was not given)."""
    d = _one_point(tmp_path)
    real = S.os.access
    monkeypatch.setattr(S.os, "access", lambda p, mode: False if Path(p) == tmp_path else real(p, mode))
    assert main(["collect", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert "collect writes results.csv into the sweep folder" in err and "--out results.csv" in err
    assert main(["collect", str(tmp_path), "--out", str(d / "elsewhere.csv")]) == 0
