"""run(): real data, the paper's models, divergence, checkpoints and exact resume, the CLI."""
import json
import math
import os

import pytest
import torch

import hypernb
from conftest import require, require_cxx
from hypernb import RunConfig, io, run
from hypernb.cli import main


def test_mlp_adam_sgd_one_epoch_full_mnist_reaches_95_percent(tmp_path):
    require("mnist")
    result = run(dict(task="mnist-mlp", optimizer="adam/sgd", epochs=1, quiet=True, out_dir=str(tmp_path)))
    seed = result.seeds[0]
    assert seed.status == "ok" and seed.epochs[0]["step"] == 235  # 60,000 / 256 batches
    assert result.mean("test_acc") >= 0.95
    traj = seed.trajectory
    assert set(traj) == {"step", "alpha", "beta1", "beta2", "hyper.alpha", "hyper.mu"}
    assert traj["alpha"][-1] > 2 * traj["alpha"][0]  # Adam/SGD learns a larger step size early on
    for name in ("config.json", "metrics.json", "env.json"):
        assert (tmp_path / name).exists()
    env = json.loads((tmp_path / "env.json").read_text())
    assert env["torch"] == torch.__version__ and "device" in env


def test_a_copy_without_git_names_the_commit_it_was_given(monkeypatch):
    """A tree sent to a batch machine has no .git: its records name $HYPERNB_GIT_COMMIT instead."""
    import subprocess

    from hypernb import io

    def no_git(*args, **kwargs):
        raise FileNotFoundError("git")

    monkeypatch.setenv("HYPERNB_GIT_COMMIT", "0123abc")
    assert io.git_commit() != "0123abc"  # here git answers, and it wins
    monkeypatch.setattr(subprocess, "run", no_git)
    assert io.git_commit() == "0123abc"
    assert io.environment(torch.device("cpu"))["git_commit"] == "0123abc"
    monkeypatch.delenv("HYPERNB_GIT_COMMIT")
    assert io.git_commit() is None


def test_resnet20_on_the_cifar_subset_lowers_the_loss_and_learns_alpha_and_mu():
    """Four SGD/SGD steps of ResNet-20 (BatchNorm and all): the logged training loss falls and the
    hyperoptimizer moves both α and μ (their hypergradients reach through the network)."""
    import math

    require("cifar10subset")
    result = run(dict(task="cifar10subset-resnet20", optimizer="sgd/sgd", alpha=0.1, mu=0.9, profile="smoke",
                      quiet=True, log_every=2))
    seed = result.seeds[0]
    assert seed.status == "ok" and seed.epochs[0]["step"] == 4 and seed.steps == [2, 4]
    assert "SUBSET" in seed.data["dataset"] and seed.data["train_examples"] == 256
    assert seed.loss[1] < seed.loss[0], seed.loss  # measured: 2.53 → 2.38
    traj = seed.trajectory
    assert traj["alpha"][0] == pytest.approx(0.1) and traj["alpha"][-1] != pytest.approx(0.1, rel=1e-6)
    assert traj["mu"][0] == pytest.approx(0.9) and traj["mu"][-1] != pytest.approx(0.9, rel=1e-8)
    assert math.isfinite(seed.final["test_loss"]) and seed.final["test_acc"] == result.mean("test_acc")


def test_char_lstm_learns_beyond_the_unigram_entropy():
    """With a contiguous split the LSTM quickly beats what the report measured (the unigram entropy)."""
    require("warpeace")
    from hypernb import data

    entropy = data.load_corpus("warpeace", data.data_root(), download_ok=False).unigram_entropy()
    result = run(dict(task="warpeace-lstm", optimizer="adam/sgd", alpha=5e-3, profile="smoke", batch_size=32,
                      seq_len=50, hidden=96, train_limit=120_000, test_limit=20_000, epochs=3, quiet=True,
                      log_every=20))
    seed = result.seeds[0]
    assert seed.status == "ok"
    assert seed.epochs[-1]["test_loss"] < entropy - 0.4, (seed.epochs, entropy)
    assert seed.epochs[-1]["test_bits"] == pytest.approx(seed.epochs[-1]["test_loss"] / 0.6931471805599453)


SMOKE = dict(task="mnist-mlp", optimizer="adam/sgd", profile="smoke", epochs=3, quiet=True, log_every=4,
             kappa=1e-4, seeds=[0, 1])


@pytest.mark.parametrize("batch", [None, 1])  # both seeds in one training loop, or one after the other
def test_interrupt_and_resume_equals_an_uninterrupted_run(tmp_path, batch):
    require("mnist")
    reference = run(dict(SMOKE, out_dir=str(tmp_path / "ref")), batch=batch)

    class Stop(Exception):
        pass

    def interrupt(seed_results, epoch):
        if seed_results[-1].seed == 1 and epoch == 0:
            raise Stop

    with pytest.raises(Stop):
        run(dict(SMOKE, out_dir=str(tmp_path / "resumed")), batch=batch, on_epoch_end=interrupt)
    partial = hypernb.Result.load(tmp_path / "resumed")
    expected = ["running", "running"] if batch is None else ["ok", "running"]
    assert [s.status for s in partial.seeds] == expected  # together: both mid-way; alone: seed 0 finished
    resumed = run(dict(SMOKE, out_dir=str(tmp_path / "resumed")), batch=batch)
    for a, b in zip(reference.seeds, resumed.seeds):
        strip = ("time_s",)
        assert [{k: v for k, v in e.items() if k not in strip} for e in a.epochs] == \
               [{k: v for k, v in e.items() if k not in strip} for e in b.epochs]
        assert a.loss == b.loss and a.steps == b.steps and a.trajectory == b.trajectory and a.final == b.final
    assert resumed.summary["test_acc"] == reference.summary["test_acc"]
    assert not list(tmp_path.rglob("*.pt"))  # finished: the checkpoints are gone


def test_a_group_in_which_a_run_diverged_resumes_where_it_stopped(tmp_path):
    """Two runs train together; one diverges in the first epoch, then the group is interrupted. On
    resume the diverged run is finished (not pending), so a fresh plan would form another group; the
    interrupted group is found again by its members file and continues from its checkpoint."""
    require("mnist")
    both = [dict(SMOKE, optimizer="adam/adam", kappa=k, seeds=[0], epochs=2) for k in (1e3, 1e-4)]

    def configs(where):
        return [dict(c, out_dir=str(tmp_path / where / str(i))) for i, c in enumerate(both)]

    reference = run(configs("ref"))
    assert [r.seeds[0].status for r in reference] == ["diverged", "ok"]

    class Stop(Exception):
        pass

    def interrupt(seed_results, epoch):
        raise Stop

    with pytest.raises(Stop):
        run(configs("resumed"), on_epoch_end=interrupt)
    assert list((tmp_path / "resumed" / ".groups").glob("*/members.json"))
    epochs_trained = []
    resumed = run(configs("resumed"), on_epoch_end=lambda results, epoch: epochs_trained.append(epoch))
    assert epochs_trained == [1]  # the second epoch only: nothing was trained twice
    for a, b in zip(reference, resumed):
        same = ("status", "diverged_at_step", "reason", "steps", "loss", "final", "trajectory")
        assert repr([getattr(a.seeds[0], f) for f in same]) == repr([getattr(b.seeds[0], f) for f in same])  # nan too
    assert not list(tmp_path.rglob("*.pt")) and not list(tmp_path.rglob("members.json"))


def test_runs_that_left_their_group_resume_from_their_own_checkpoint(tmp_path):
    """On a CPU, the runs of a group that go on after one diverged train as a smaller group with a
    checkpoint of its own, which keeps the group's tower (the diverged run's was the tallest): an
    interruption there resumes from it, trains nothing twice and ends as the uninterrupted run."""
    require("mnist")
    base = dict(SMOKE, optimizer="sgd/sgd", mu=0.9, kappa=1e-3, seeds=[0], epochs=3, dtype="float64")
    runs = [base, dict(base, optimizer="sgd", mu=0.5, seeds=[1]),
            dict(base, optimizer="sgd/sgd*3", kappa=[1e300, 1e-4, 1e-5], seeds=[2])]

    def configs(where):
        return [dict(c, out_dir=str(tmp_path / where / str(i))) for i, c in enumerate(runs)]

    reference = run(configs("ref"))
    assert [r.seeds[0].status for r in reference] == ["ok", "ok", "diverged"]

    class Stop(Exception):
        pass

    def interrupt(seed_results, epoch):
        if len(seed_results) == 2 and epoch == 1:  # in the group of the two left
            raise Stop

    with pytest.raises(Stop):
        run(configs("resumed"), on_epoch_end=interrupt)
    saved = [io.read_json(f) for f in (tmp_path / "resumed" / ".groups").glob("*/members.json")]
    assert [(len(s["members"]), s["tower"]) for s in saved] == [(2, ["sgd", "sgd", "sgd", "sgd"])]  # the first is gone
    epochs_trained = []
    resumed = run(configs("resumed"), on_epoch_end=lambda results, epoch: epochs_trained.append(epoch))
    assert epochs_trained == [2]
    for a, b in zip(reference, resumed):
        same = ("status", "diverged_at_step", "reason", "steps", "loss", "final", "trajectory", "epochs")
        strip = lambda s: [{k: v for k, v in e.items() if k != "time_s"} for e in s] if isinstance(s, list) and s \
            and isinstance(s[0], dict) else s  # noqa: E731
        mine, theirs = ([strip(getattr(r.seeds[0], f)) for f in same] for r in (a, b))
        assert repr(mine) == repr(theirs)
    assert not list(tmp_path.rglob("*.pt")) and not list(tmp_path.rglob("members.json"))


class _Killed(BaseException):
    """The process dying at a chosen point (not an Exception: nothing may catch it)."""


def _three_with_one_diverging(root, alpha=0.05, **extra):
    base = dict(SMOKE, optimizer="sgd/sgd", mu=0.9, kappa=1e-3, seeds=[0], epochs=3, dtype="float64", alpha=alpha)
    runs = [base, dict(base, optimizer="sgd", mu=0.5, seeds=[1], alpha=0.05),
            dict(base, optimizer="sgd/sgd*3", kappa=[1e300, 1e-4, 1e-5], seeds=[2], alpha=0.05, **extra)]
    return [dict(c, out_dir=str(root / str(i))) for i, c in enumerate(runs)]


def test_a_kill_at_any_point_of_a_handoff_loses_no_record_and_leaves_no_checkpoint(tmp_path, monkeypatch):
    """Killed after the group's checkpoint but before its records: the diverged run's record is written
    on resume. Killed after the smaller group's first checkpoint but before the one it left is removed
    (for these runs the smaller group's files sort first): the larger group resumes, leaves again and
    removes both."""
    from hypernb import train

    require("mnist")
    configs = _three_with_one_diverging(tmp_path / "publish")
    publish = train._publish
    monkeypatch.setattr(train, "_publish", lambda *a: (_ for _ in ()).throw(_Killed()))
    with pytest.raises(_Killed):
        run(configs)
    monkeypatch.setattr(train, "_publish", publish)
    assert [[s.status for s in r.seeds] for r in run(configs)] == [["ok"], ["ok"], ["diverged"]]
    assert hypernb.Result.load(configs[2]["out_dir"]).seeds[0].status == "diverged"

    remove = train._remove_checkpoint
    for alpha in (0.05, 0.051, 0.052, 0.053, 0.054, 0.055, 0.056, 0.057):  # (names are hashes: find the case)
        configs = _three_with_one_diverging(tmp_path / f"remove{alpha}", alpha=alpha)
        monkeypatch.setattr(train, "_remove_checkpoint", lambda ckpt: (_ for _ in ()).throw(_Killed()))
        with pytest.raises(_Killed):
            run(configs)
        monkeypatch.setattr(train, "_remove_checkpoint", remove)
        files = sorted((tmp_path / f"remove{alpha}").rglob("members.json"))
        if [len(io.read_json(f)["members"]) for f in files] == [2, 3]:  # the case a first-found order got wrong
            break
    else:
        pytest.fail("no α gave the smaller group's files first")
    assert [r.seeds[0].status for r in run(configs)] == ["ok", "ok", "diverged"]
    assert not list((tmp_path / f"remove{alpha}").rglob("*.pt"))
    assert not list((tmp_path / f"remove{alpha}").rglob("members.json"))


def test_a_group_in_which_a_run_keeps_its_checkpoint_stays_whole(tmp_path):
    require("mnist")
    configs = _three_with_one_diverging(tmp_path, keep_checkpoint=True)
    assert [r.seeds[0].status for r in run(configs)] == ["ok", "ok", "diverged"]
    kept = list(tmp_path.rglob("*.pt"))
    assert len(kept) == 1 and io.read_json(kept[0].parent / "members.json")["members"].__len__() == 3


def _interrupted_run(out, epochs=2):
    """A run of one seed stopped after its first epoch: its folder holds a checkpoint."""
    class Stop(Exception):
        pass

    def stop(seed_results, epoch):
        raise Stop

    config = dict(SMOKE, seeds=[0], epochs=epochs, out_dir=str(out))
    with pytest.raises(Stop):
        run(config, on_epoch_end=stop)
    (ckpt,) = out.glob("checkpoint*.pt")
    return config, ckpt


@pytest.mark.parametrize("damage", ["cut short", "another kind"])
def test_a_damaged_checkpoint_is_named_with_the_fix(tmp_path, capsys, damage):
    """torch.load's own error (a zip reader's traceback) would not say which file or what to do."""
    require("mnist")
    config, ckpt = _interrupted_run(tmp_path)
    if damage == "cut short":
        ckpt.write_bytes(ckpt.read_bytes()[:1000])
    else:
        torch.save({"model": {}}, ckpt)
    with pytest.raises(ValueError, match=r"checkpoint.*\.pt should hold a training checkpoint but "
                                         r"(cannot be read|lacks).*Delete it to train its runs again"):
        run(config)
    argv = ["run", "--opt", "adam/sgd", "--kappa", "1e-4", "--profile", "smoke", "--epochs", "2", "--seeds", "0",
            "--log-every", "4", "--quiet", "--out", str(tmp_path)]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and err.count("\n") == 1 and "should hold a training checkpoint" in err, err
    ckpt.unlink()  # the advised fix: the run trains again from its first epoch
    assert run(config).ok


@pytest.mark.parametrize("error", [torch.OutOfMemoryError("CPU out of memory"), ModuleNotFoundError("numpy._core")])
def test_a_checkpoint_that_fails_to_load_for_another_reason_is_not_called_damaged(tmp_path, monkeypatch, error):
    """Only a cut-short or overwritten file is damage (which a sweep sets aside and redoes); running out of
    memory or a missing module while loading is not the file's fault, so its error goes through as it is."""
    from hypernb import io

    path = tmp_path / "checkpoint.pt"
    from hypernb.train import CHECKPOINT_KEYS

    io.save_checkpoint(path, {k: 0 for k in CHECKPOINT_KEYS})
    assert io.load_checkpoint(path, "cpu", CHECKPOINT_KEYS)["epoch"] == 0

    def failing(*args, **kwargs):
        raise error

    monkeypatch.setattr(torch, "load", failing)
    with pytest.raises(type(error)) as caught:
        io.load_checkpoint(path, "cpu")
    assert not isinstance(caught.value, io.DamagedFileError)


def test_configurations_sharing_an_out_dir_are_refused_before_anything_is_written(tmp_path):
    configs = [dict(SMOKE, seeds=[0], out_dir=str(tmp_path / "x")), dict(SMOKE, seeds=[0], kappa=1e-3,
                                                                          out_dir=str(tmp_path / "x"))]
    with pytest.raises(ValueError, match=r"several configurations share out_dir .*x; each run needs a folder"):
        run(configs)
    assert not (tmp_path / "x").exists()


def test_rerun_of_a_finished_run_does_no_work(tmp_path):
    require("mnist")
    first = run(dict(SMOKE, epochs=1, seeds=[0], out_dir=str(tmp_path)))
    again = run(dict(SMOKE, epochs=1, seeds=[0], out_dir=str(tmp_path)))
    assert again.seeds[0].time_s == first.seeds[0].time_s  # loaded, not retrained
    assert not list(tmp_path.glob("checkpoint*.pt"))  # finished: the metrics suffice
    kept = run(dict(SMOKE, epochs=1, seeds=[0], keep_checkpoint=True, out_dir=str(tmp_path / "kept")))
    assert kept.ok and list((tmp_path / "kept").glob("checkpoint*.pt"))


def test_other_config_in_the_same_out_dir_is_refused(tmp_path):
    require("mnist")
    run(dict(SMOKE, epochs=1, seeds=[0], out_dir=str(tmp_path)))
    with pytest.raises(ValueError, match=r"different configuration \(differs in \['alpha'\]\)"):
        run(dict(SMOKE, epochs=1, seeds=[0], alpha=0.5, out_dir=str(tmp_path)))


def test_a_folder_is_read_with_fewer_seeds_and_grows_by_new_ones_trained_alone(tmp_path):
    """Seeds are independent runs: fewer seeds read back (nothing trained, nothing rewritten); more train
    only the new ones, which equal the same seeds run from scratch; the files keep every seed."""
    require("mnist")
    config = dict(SMOKE, epochs=1, dtype="float64", seeds=[0, 1], out_dir=str(tmp_path / "grown"))
    first = run(config)
    before = (tmp_path / "grown" / "metrics.json").read_text()
    one = run(dict(config, seeds=[1]))
    assert [s.seed for s in one.seeds] == [1] and one.config["seeds"] == [1]
    assert one.seeds[0].time_s == first.seeds[1].time_s and one.summary["test_acc"]["n"] == 1
    assert (tmp_path / "grown" / "metrics.json").read_text() == before
    grown = run(dict(config, seeds=[2, 0]))
    assert [s.seed for s in grown.seeds] == [2, 0] and grown.seeds[1].time_s == first.seeds[0].time_s
    alone = run(dict(config, seeds=[2], out_dir=str(tmp_path / "alone"))).seeds[0]
    assert grown.seeds[0].loss == pytest.approx(alone.loss, rel=1e-10)
    assert grown.seeds[0].final == pytest.approx(alone.final, rel=1e-10)
    kept = hypernb.Result.load(tmp_path / "grown")
    assert [s.seed for s in kept.seeds] == [0, 1, 2] and kept.config["seeds"] == [0, 1, 2]
    assert json.loads((tmp_path / "grown" / "config.json").read_text())["seeds"] == [0, 1, 2]
    with pytest.raises(ValueError, match=r"differs in \['alpha'\]"):  # seeds aside, the same configuration only
        run(dict(config, seeds=[3], alpha=0.5))
    stored = (tmp_path / "grown" / "config.json").read_text()
    run(dict(config, seeds=[1]))  # reading fewer seeds leaves the files alone
    assert (tmp_path / "grown" / "config.json").read_text() == stored
    assert [s.seed for s in hypernb.Result.load(tmp_path / "grown", seeds=[2, 1]).seeds] == [2, 1]


def test_a_seed_held_by_an_interrupted_group_cannot_be_left_out(tmp_path):
    """Seeds 0 and 1 interrupted together: asking for seed 0 alone would train it anew beside their group
    checkpoint, which a later call would resume over seed 0's record. Refused, saying how to finish; more
    seeds resume the group and train the new one."""
    require("mnist")

    class Stop(Exception):
        pass

    def interrupt(seed_results, epoch):
        raise Stop

    config = dict(SMOKE, epochs=2, out_dir=str(tmp_path / "f"))  # seeds 0, 1: one group on a CPU
    with pytest.raises(Stop):
        run(config, on_epoch_end=interrupt)
    assert list((tmp_path / "f").glob("checkpoint-*.pt"))
    with pytest.raises(ValueError, match=r"holds an interrupted run of seeds \[0, 1\] .* run it with seeds=\[0, 1\]"):
        run(dict(config, seeds=[0]))
    grown = run(dict(config, seeds=[0, 1, 2]))
    assert [s.status for s in grown.seeds] == ["ok"] * 3 and not list((tmp_path / "f").glob("checkpoint-*.pt"))
    assert [s.seed for s in run(dict(config, seeds=[0])).seeds] == [0]  # finished: any seed alone


def test_a_run_stopped_before_its_first_epoch_says_how_to_rerun_corrected(tmp_path):
    """A text run with fewer training windows than one batch stops before any step, with a message saying so; its
    folder holds only a config.json. A corrected rerun there is refused (another process may still be in that
    run's first epoch), naming the file to delete; deleted, it trains."""
    require("shakespeare")
    bad = dict(task="shakespeare-lstm", profile="smoke", epochs=1, train_limit=2000, seeds=[0], out_dir=str(tmp_path))
    with pytest.raises(ValueError, match=r"2000 training characters give \d+ windows .* fewer than one batch "
                                         r"\(batch_size=\d+\): no training step would run"):
        run(bad)
    assert (tmp_path / "config.json").exists() and not (tmp_path / "metrics.json").exists()
    with pytest.raises(ValueError, match=r"holds no trained epoch .* delete its config.json"):
        run(dict(bad, batch_size=8, max_steps=2))
    (tmp_path / "config.json").unlink()
    fixed = run(dict(bad, batch_size=8, max_steps=2))
    assert fixed.seeds[0].status == "ok"
    assert json.loads((tmp_path / "config.json").read_text())["batch_size"] == 8


def test_fp16_autocast_of_an_lstm_on_a_cpu_is_a_clear_error():
    require("shakespeare")
    with pytest.raises(ValueError, match=r"autocast='fp16' has no LSTM kernel on a CPU .* use autocast='bf16'"):
        run(dict(task="shakespeare-lstm", profile="smoke", epochs=1, max_steps=2, seeds=[0], autocast="fp16",
                 device="cpu"))


def test_numpy_numbers_in_a_config_are_recorded_as_numbers_and_resume(tmp_path):
    """np.int64(1) was written to config.json as the string 'np.int64(1)', so the same call again was refused as
    a different configuration; np.arange seeds crashed in random.seed."""
    import numpy as np

    require("mnist")
    cfg = dict(SMOKE, epochs=np.int64(1), kappa=np.float32(1e-5), seeds=np.arange(1), alpha=torch.tensor(1e-3),
               out_dir=str(tmp_path))
    first = run(cfg)
    saved = json.loads((tmp_path / "config.json").read_text())
    assert saved["epochs"] == 1 and saved["seeds"] == [0] and isinstance(saved["kappa"], float)
    assert isinstance(saved["alpha"], float)
    again = run(cfg)  # read back, not refused
    assert again.seeds[0].final == first.seeds[0].final


def test_a_record_inside_the_checkout_names_no_machine_folder(tmp_path, monkeypatch):
    """Committed records must not name this machine's folders: a record written inside the checkout
    keeps its folder relative to it; outside, the path as given. The live Result keeps the real path."""
    require("mnist")
    from hypernb import io

    tmp_path = tmp_path.resolve()  # as io.shown compares (a temporary folder may sit behind a link)
    monkeypatch.setattr(io, "REPO", tmp_path)  # the checkout, for this test
    inside = tmp_path / "evidence" / "full" / "01" / "runs" / "abc"
    result = run(dict(SMOKE, epochs=1, seeds=[0], out_dir=str(inside)))
    assert result.out_dir == str(inside)
    for name in ("config.json", "metrics.json"):
        text = (inside / name).read_text()
        assert str(tmp_path) not in text, name
    assert json.loads((inside / "config.json").read_text())["out_dir"] == "evidence/full/01/runs/abc"
    assert json.loads((inside / "metrics.json").read_text())["out_dir"] == "evidence/full/01/runs/abc"
    assert hypernb.Result.load(inside).out_dir == str(inside)  # read back: where it was read from
    monkeypatch.setattr(io, "REPO", tmp_path / "elsewhere")
    outside = tmp_path / "runs" / "x"
    run(dict(SMOKE, epochs=1, seeds=[0], out_dir=str(outside)))
    assert json.loads((outside / "config.json").read_text())["out_dir"] == str(outside)


def test_a_record_older_than_a_config_field_is_read_back_not_refused(tmp_path):
    """Records outlive new RunConfig fields: a field missing from a stored config counts as its
    default, so the run is read back (not retrained, not refused); a non-default value is a difference."""
    require("mnist")
    first = run(dict(SMOKE, epochs=1, seeds=[0], out_dir=str(tmp_path)))
    stored = json.loads((tmp_path / "config.json").read_text())
    del stored["output_tanh"]  # as written before the field existed
    (tmp_path / "config.json").write_text(json.dumps(stored))
    again = run(dict(SMOKE, epochs=1, seeds=[0], out_dir=str(tmp_path)))
    assert again.seeds[0].time_s == first.seeds[0].time_s  # loaded, not retrained
    assert json.loads((tmp_path / "config.json").read_text()) == stored  # and left as it was
    with pytest.raises(ValueError, match=r"differs in \['output_tanh'\]"):
        run(dict(SMOKE, epochs=1, seeds=[0], output_tanh=True, out_dir=str(tmp_path)))


def test_forced_divergence_is_recorded_not_raised(tmp_path):
    require("mnist")
    # Adam stepping the stored betas by ≈κ = 1000 per step drives β2 to 1 and its stored value to ±inf
    result = run(dict(task="mnist-mlp", optimizer="adam/adam", kappa=1e3, profile="smoke", quiet=True,
                      log_every=2, out_dir=str(tmp_path)))
    seed = result.seeds[0]
    assert seed.status == "diverged" and 1 <= seed.diverged_at_step <= 16
    assert "non-finite hyperparameter 'beta2' at level 0 (Adam)" in seed.reason
    assert seed.final == {} and "test_acc" not in result.summary  # no garbage numbers
    assert result.summary["diverged"]["mean"] == 1
    assert hypernb.Result.load(tmp_path).seeds[0].status == "diverged"


def test_a_diverged_runs_record_is_strict_json_and_reads_back_its_nan(tmp_path):
    """NaN is not JSON (a browser's JSON.parse or jq refuse the file): the record writes null, and
    reading it back gives NaN in the same places, so curves keep their length."""
    require("mnist")
    result = run(dict(task="mnist-mlp", optimizer="adam/adam", kappa=1e3, profile="smoke", quiet=True,
                      log_every=2, out_dir=str(tmp_path)))
    seed = result.seeds[0]
    assert any(math.isnan(v) for v in seed.loss) and any(math.isnan(v) for v in seed.trajectory["alpha"])

    def refuse(name):
        raise AssertionError(f"{name} in metrics.json")

    raw = json.loads((tmp_path / "metrics.json").read_text(), parse_constant=refuse)
    assert None in raw["seeds"][0]["loss"]
    back = hypernb.Result.load(tmp_path).seeds[0]
    for mine, read in [(seed.loss, back.loss)] + [(seed.trajectory[k], back.trajectory[k]) for k in seed.trajectory]:
        assert len(mine) == len(read)
        assert all((math.isnan(a) and math.isnan(b)) or a == b for a, b in zip(mine, read))


def test_a_loss_that_explodes_within_the_first_logged_window_is_ok_but_warned_and_all_diverged_exits_4(
        tmp_path, capsys):
    """SGD at α0 = 10⁶ explodes at once, so the first logged mean is already huge and the declared rule
    (10× the first logged mean) cannot see it: the run stays ok, and says why its numbers are poor,
    measured against the untrained model's first-step loss (≈ ln 10). Adam at α0 = 10⁶ turns NaN: the
    CLI records it and exits with 4, so that a batch job sees it failed."""
    require("mnist")
    argv = ["run", "--opt", "sgd", "--alpha", "1e6", "--profile", "smoke", "--quiet"]
    assert main(argv + ["--out", str(tmp_path / "sgd")]) == 0
    out = capsys.readouterr().out
    seed = hypernb.Result.load(tmp_path / "sgd").seeds[0]
    assert seed.status == "ok" and abs(seed.first_step_loss - 2.303) < 0.1 and max(seed.loss) > 1e3
    assert "warning: the loss exploded early (seed 0" in out and "the step size α0 is likely too large" in out
    calm = run(dict(SMOKE, seeds=[0], epochs=1, max_steps=20)).seeds[0]
    assert calm.status == "ok" and calm.first_step_loss is not None and calm.warning is None
    assert main(["run", "--opt", "adam/sgd", "--alpha", "1e6", "--profile", "smoke", "--quiet",
                 "--out", str(tmp_path / "adam")]) == 4
    captured = capsys.readouterr()
    assert "seed 0: diverged at step" in captured.out and "lower the initial α0" in captured.out
    assert "every seed diverged (exit status 4)" in captured.err


def test_a_run_shorter_than_log_every_says_its_loss_was_never_checked_for_an_explosion(capsys):
    """With nothing logged the explosion rule never runs (only the NaN/inf check at an epoch's end): the
    run is ok but warns, in its repr and on the command line, instead of looking checked."""
    require("mnist")
    seed = run(dict(SMOKE, seeds=[0], epochs=1, max_steps=5, log_every=10)).seeds[0]
    assert seed.status == "ok" and seed.loss == [] and seed.warned_of == "no loss was logged"
    assert "lower log_every" in seed.warning
    assert main(["run", "--profile", "smoke", "--quiet", "--max-steps", "5", "--log-every", "10"]) == 0
    assert "seed 0: warning: no training loss was logged" in capsys.readouterr().out
    logged = run(dict(SMOKE, seeds=[0], epochs=1, max_steps=5, log_every=5)).seeds[0]
    assert logged.loss and logged.warning is None


def test_a_non_finite_value_is_reported_with_the_losses_logged_before_it():
    from hypernb.optim import NonFiniteError
    from hypernb.train import _divergence

    bad = NonFiniteError(0, "Adam", "alpha", 7, "hyperparameter")
    step, reason = _divergence(float("nan"), 2.3, bad, 10)
    assert step == 7 and reason.startswith("non-finite hyperparameter 'alpha' at level 0 (Adam), first at step 7.")
    assert "lower the initial α0 if the training loss grew" in reason and "or the hyper-step size κ" in reason
    assert reason.endswith("(mean training loss: 2.3 at the first log, nan at this check)")
    assert _divergence(float("nan"), float("nan"), bad, 10)[1] == str(bad)  # nothing finite to show: no losses
    assert _divergence(float("nan"), None, bad, 10)[1] == str(bad)


def test_a_slow_run_at_chance_trains_to_the_end_and_reports_what_it_reached():
    """SGD with α = 1e-6 is still at chance after its epochs, with a training loss that barely moves:
    it is slow, not diverged, so it is never stopped and its (poor) numbers are recorded."""
    require("mnist")
    seed = run(dict(task="mnist-mlp", optimizer="sgd", alpha=1e-6, activation="relu", batch_size=1024, epochs=2,
                    seeds=[0], quiet=True)).seeds[0]  # a towers-notebook setting whose seed 0 sits at ~10 %
    assert seed.status == "ok" and seed.reason in (None, "") and [e["epoch"] for e in seed.epochs] == [1, 2]
    assert seed.final["test_acc"] < 0.2  # still at chance, and recorded as what it is


def test_output_tanh_squashes_the_logits_so_the_loss_stays_above_its_floor():
    """arXiv v1's appendix model: tanh on the logits bounds them to [-1, 1], so the cross-entropy cannot go
    below -ln(e / (e + 9/e)) = 0.797, while the same run with free logits goes well below it."""
    require("mnist")
    cfg = dict(task="mnist-mlp", profile="smoke", optimizer="sgd", alpha=0.5, epochs=2, quiet=True)
    free, squashed = (run(dict(cfg, output_tanh=t)).seeds[0].epochs[-1]["train_loss"] for t in (False, True))
    assert free < 0.7 and 0.797 <= squashed < 1.5, (free, squashed)


def test_a_compiled_run_trains_like_the_eager_one(tmp_path):
    """compiled=True on a CPU: the same training (float32, so equal up to the last bits of the step),
    for a run alone and for two seeds batched; resuming such a record without it is allowed."""
    require("mnist")
    require_cxx()
    for batch in (1, None):
        eager = run(dict(SMOKE, epochs=1), batch=batch)
        compiled = run(dict(SMOKE, epochs=1, compiled=True, out_dir=str(tmp_path / f"c{batch}")), batch=batch)
        for a, b in zip(eager.seeds, compiled.seeds):
            assert b.status == "ok" and b.final["test_loss"] == pytest.approx(a.final["test_loss"], rel=1e-3)
            assert b.final["final_alpha"] == pytest.approx(a.final["final_alpha"], rel=1e-3)
            assert abs(b.final["final_alpha"] - 1e-3) > 1e-4  # α was learned, so hypergradients were compared
        assert run(dict(SMOKE, epochs=1, out_dir=str(tmp_path / f"c{batch}")), batch=batch).seeds[0].status == "ok"


def test_several_seeds_give_mean_and_std():
    require("mnist")
    result = run(dict(SMOKE, epochs=1))
    accs = [s.final["test_acc"] for s in result.seeds]
    assert result.summary["test_acc"]["n"] == 2
    assert result.mean("test_acc") == pytest.approx(sum(accs) / 2)
    assert result.summary["test_acc"]["std"] == pytest.approx(abs(accs[0] - accs[1]) / 2 ** 0.5)


@pytest.mark.parametrize("values, match", [
    ({"task": "mnist"}, r"task must be one of"),
    ({"optimizer": "adam/sdg"}, r"unknown optimizer 'sdg'"),
    ({"optimizer": "adam/sgd", "kappa": [1e-5, 1e-6]}, r"one value per hyper level: 1 for 'adam/sgd', got 2"),
    ({"beta2": 1.0}, r"beta2 must lie in the open interval"),
    ({"seeds": [0, 0, 1]}, r"seeds \[0, 0, 1\] repeat \[0\]; each seed is one run"),
    ({"augment": True}, r"augment is CIFAR's crop and flip; mnist-mlp has no CIFAR images"),
    ({"sign_safe": "no"}, r"sign_safe must be True or False, got 'no'"),
    ({"height": True}, r"height must be an integer >= 0, got True"),
    ({"optimizer": "sgd/sgd", "height": -1}, r"height must be an integer >= 0, got -1"),  # (was an IndexError)
    ({"epochs": 0}, r"epochs must be a positive integer"),
    ({"kappa": [1e-5, 1e-6]}, r"one value per hyper level"),
    ({"kappa": "paperr"}, r"kappa rule must be one of"),
    ({"seeds": []}, r"seeds must be a non-empty list"),
    ({"learning_rate": 0.1}, r"unknown config key\(s\) \['learning_rate'\]"),
    ({"compiled": "yes"}, r"compiled must be one of \[True, False\]"),
    ({"optimizer": "prodigy", "compiled": True}, r"compiled=True compiles a hypernb tower's step"),
    ({"task": "cifar10-resnet20", "output_tanh": True}, r"has no MLP: drop output_tanh"),
    ({"seeds": [2 ** 32]}, r"seeds must be a non-empty list of integers from 0 to 2\*\*32 - 1"),
    ({"out_dir": 5}, r"out_dir must be a folder path \(a string\), got 5"),
    ({"download": "no"}, r"download must be True or False, got 'no'"),
    ({"height": 10 ** 9}, r"height must be at most 10000"),
    ({"optimizer": "sgd/sgd*1000000000"}, r"repeat count in 'sgd\*1000000000' must be at most 10000"),
    ({"optimizer": "sgd/sgd*6000/sgd*6000"}, r"has 12000 hyper levels; at most 10000"),
    ({"optimizer": "adam/sgd", "mu": 0.9}, r"mu=0.9 is not a hyperparameter of adam"),
    ({"autocast": "bf16", "dtype": "float64"}, r"with dtype='float64' it would change nothing"),
])
def test_bad_config_is_a_clear_error(values, match):
    with pytest.raises(ValueError, match=match):
        RunConfig.from_dict(values)


def test_height_extends_the_tower():
    c = RunConfig(optimizer="sgd/sgd", height=4).validate()
    assert c.tower_names() == ["sgd"] * 5 and RunConfig(optimizer="adam/sgd", height=0).validate().tower_names() == ["adam"]


def test_cli_run_writes_the_documented_files(tmp_path, capsys):
    require("mnist")
    code = main(["run", "--task", "mnist-mlp", "--opt", "sgd/sgd", "--alpha", "0.05", "--kappa", "1e-3",
                 "--profile", "smoke", "--seeds", "0", "--quiet", "--out", str(tmp_path)])
    assert code == 0 and "wrote" in capsys.readouterr().out
    config = json.loads((tmp_path / "config.json").read_text())
    assert config["optimizer"] == "sgd/sgd" and config["alpha"] == 0.05 and config["kappa"] == 1e-3
    assert json.loads((tmp_path / "env.json").read_text())["torch"] == torch.__version__
    metrics = json.loads((tmp_path / "metrics.json").read_text())
    assert metrics["seeds"][0]["trajectory"]["hyper.alpha"][0] == pytest.approx(1e-3)
    assert metrics["seeds"][0]["status"] == "ok" and metrics["config"] == config


def test_a_run_folder_another_live_process_writes_to_is_refused_and_nothing_is_left_behind(tmp_path, capsys):
    """One writer per run folder, for run() as for the command line: the same notebook in JupyterLab
    and under papermill must not interleave their checkpoints and records."""
    import subprocess
    import sys

    from hypernb import sweep

    require("mnist")
    busy = tmp_path / "busy"
    busy.mkdir()
    holder = subprocess.Popen([sys.executable, "-c", "import sys, time; from hypernb import sweep; "
                               f"print(sweep.claim({str(busy)!r}), flush=True); time.sleep(120)"],
                              stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "True"
        fresh = tmp_path / "fresh"
        configs = [dict(SMOKE, seeds=[0], epochs=1, out_dir=str(fresh / "a" / "b")),
                   dict(SMOKE, seeds=[0], epochs=1, out_dir=str(fresh / "c")),
                   dict(SMOKE, seeds=[0], epochs=1, out_dir=str(busy))]
        with pytest.raises(ValueError, match=r"out_dir .*busy is claimed by pid \d+ .*writing a run there; wait"):
            run(configs)
        assert not fresh.exists() and [p.name for p in busy.iterdir()] == [sweep.CLAIM]  # nothing written or claimed
        code = main(["run", "--profile", "smoke", "--seeds", "0", "--epochs", "1", "--quiet", "--out", str(busy)])
        err = capsys.readouterr().err
        assert code != 0 and f"--out {busy} is claimed by pid" in err and "choose another --out" in err, err
    finally:
        holder.kill()
        holder.wait()
    result = run(dict(SMOKE, seeds=[0], epochs=1, out_dir=str(busy)))  # its owner is gone: the claim is taken over
    assert result.seeds[0].status == "ok" and not (busy / sweep.CLAIM).exists()  # and released after the run
    assert sweep.claim(busy)  # a claim this process holds already (a caller's) stays its holder's after run()
    assert run(dict(SMOKE, seeds=[0], epochs=1, out_dir=str(busy))).seeds[0].status == "ok"
    assert sweep.holds(busy)
    sweep.release(busy)


def test_sigterm_ends_the_command_line_run_as_ctrl_c_does_releasing_its_folder(tmp_path):
    import signal
    import subprocess
    import sys
    import time

    require("mnist")
    out = tmp_path / "run"
    proc = subprocess.Popen([sys.executable, "-m", "hypernb", "run", "--profile", "smoke", "--epochs", "50", "--seeds",
                             "0", "--quiet", "--out", str(out)], stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 120
    while not (out / "CLAIM.json").exists() and time.time() < deadline and proc.poll() is None:
        time.sleep(0.05)
    time.sleep(0.5)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 130 and "interrupted; rerun the same command to resume" in err, err
    assert not (out / "CLAIM.json").exists()


def test_a_finished_run_in_a_folder_that_cannot_be_written_is_read_back(tmp_path, monkeypatch):
    """Reading a finished record needs no claim (a read-only checkout of committed records)."""
    from hypernb import train

    require("mnist")
    config = dict(SMOKE, seeds=[0], epochs=1, out_dir=str(tmp_path / "done"))
    first = run(config)
    real = os.access
    monkeypatch.setattr(train.os, "access", lambda p, mode: False if str(p) == config["out_dir"] else real(p, mode))
    again = run(config)
    assert again.seeds[0].loss == first.seeds[0].loss and not (tmp_path / "done" / "CLAIM.json").exists()
    with pytest.raises(ValueError, match=r"out_dir .*done is not writable; choose another path"):
        run(dict(config, seeds=[0, 1]))  # a seed to train there: refused before anything trains


def test_cli_help_documents_every_field(capsys):
    with pytest.raises(SystemExit):
        main(["run", "--help"])
    text = capsys.readouterr().out
    from dataclasses import fields
    for f in fields(RunConfig):
        assert "--" + f.name.replace("_", "-") in text


def test_cli_bad_input_is_one_line_not_a_traceback(capsys):
    assert main(["run", "--task", "nope"]) == 2
    assert capsys.readouterr().err.startswith("error: task must be one of")


def test_report_adam_adam_failure_is_the_removed_beta_squashing():
    """The report's Adam/Adam setting (ReLU MLP, κ = 1e-3, β2 = 0.99): with the paper's squashing β2
    stays below 1 and the run finishes; with β stored raw (the report's change) β2 passes 1 and the
    run ends on a non-finite value, recorded, as the report's NaN."""
    require("mnist")
    common = dict(task="mnist-mlp", kappa=1e-3, beta2=0.99, epochs=3, activation="relu", quiet=True, log_every=1)
    ours = run(dict(common, optimizer="adam/adam")).seeds[0]
    report = run(dict(common, optimizer="adamunclamped/adam")).seeds[0]
    assert ours.status == "ok" and max(ours.trajectory["beta2"]) < 1 and ours.final["test_acc"] > 0.95
    assert report.status == "diverged" and max(report.trajectory["beta2"]) > 1


# -- robustness: files of another kind, CLI values, messages ------------------------------------------
@pytest.mark.parametrize("name", ["config.json", "metrics.json"])
@pytest.mark.parametrize("content", ["[1, 2]", '"str"', "[]", "{}", '{"seeds": [{"seed": 0, "bogus": 1}]}'])
def test_a_record_file_of_another_kind_names_the_file_and_the_fix(tmp_path, capsys, name, content):
    """Valid JSON of the wrong shape in a run's folder is refused as a cut-short file is: the file, what
    is wrong, the fix; nothing is overwritten."""
    path = tmp_path / name
    path.write_text(content)
    with pytest.raises(ValueError, match=r"should hold a run's .* but is valid JSON of another kind: .*Delete it"):
        run(dict(SMOKE, out_dir=str(tmp_path)))
    assert main(["run", "--profile", "smoke", "--quiet", "--out", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"error: {path} should hold a run's") and err.count("\n") == 1, err
    assert path.read_text() == content and sorted(p.name for p in tmp_path.iterdir()) == [name]
    if name == "metrics.json":
        with pytest.raises(ValueError, match=r"metrics.json should hold a run's metrics"):
            hypernb.Result.load(tmp_path)


@pytest.mark.parametrize("argv, message", [
    (["--kappa", "-1e-5"], "error: kappa must be a number >= 0, a list, or a rule name, got -1e-05"),
    (["--alpha", "-1e-3"], "error: alpha must be a finite number >= 0, got -0.001"),
    (["--opt", "sgd/sgd/sgd", "--kappa", "-1e-3,1e-2"], "error: every kappa must be a finite number >= 0"),
])
def test_negative_numbers_in_scientific_notation_reach_the_domain_error(capsys, argv, message):
    assert main(["run", "--profile", "smoke", *argv]) == 2
    err = capsys.readouterr().err
    assert err.startswith(message) and err.count("\n") == 1, err


def test_negative_values_are_joined_to_their_option_and_nothing_else_changes():
    from hypernb.cli import join_negative_values

    assert join_negative_values(["run", "--kappa", "-1e-5", "--alpha", "-.5", "--seeds", "-1"]) == \
        ["run", "--kappa=-1e-5", "--alpha=-.5", "--seeds=-1"]
    assert join_negative_values(["records", "-p", "KAPPA", "-1e-3", "-p", "EPOCHS", "-1e3"]) == \
        ["records", "-p", "KAPPA", "-0.001", "-p", "EPOCHS", "-1000.0"]  # the same Python literals
    assert join_negative_values(["run", "--kappa=-1e-5", "--quiet", "--", "--x", "-1"]) == \
        ["run", "--kappa=-1e-5", "--quiet", "--", "--x", "-1"]


@pytest.mark.parametrize("argv, message", [
    (["--seeds", "0,a"], "argument --seeds: seeds are comma-separated integers >= 0 (0,1,2 trains three seeds; "
                         "3 trains seed 3), got '0,a'"),
    (["--kappa", "1e-3,abc"], "argument --kappa: a list of κ is comma-separated numbers, one per hyper level"),
])
def test_cli_values_of_the_wrong_kind_are_explained(capsys, argv, message):
    with pytest.raises(SystemExit) as e:
        main(["run", *argv])
    assert e.value.code == 2 and message in capsys.readouterr().err


def test_a_number_of_seeds_is_refused_as_in_a_sweep_spec_and_the_cli_takes_a_list():
    for seeds in (3, True):
        with pytest.raises(ValueError, match=r"seeds is a list of seeds, got the number 3: write \[3\] for seed 3, "
                                             r"or \[0, 1, 2\] for 3 seeds" if seeds == 3 else r"seeds"):
            RunConfig.from_dict({"seeds": seeds})
    assert RunConfig.from_dict({"seeds": [3]}).seeds == (3,)
    from hypernb.cli import build_parser

    assert build_parser().parse_args(["run", "--seeds", "3"]).seeds == [3]  # --seeds 3: seed 3 (a list of one)


def test_run_help_shows_defaults_as_typed_and_the_data_root_search(capsys):
    with pytest.raises(SystemExit):
        main(["run", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert "[default: 0]" in text and "(0,)" not in text
    assert ("--data-root DATA_ROOT data folder (default: $HYPERNB_DATA, else the first of ./data, this checkout's "
            "data/ and shared/data next to this checkout that holds a dataset") in text


def test_a_failed_download_leaves_no_data_folder_and_names_the_cli_option(tmp_path, capsys, monkeypatch):
    from hypernb import data
    from hypernb.data.files import missing_message

    def offline(root, download_ok=True, keep=False):
        (root / "MNIST" / "raw").mkdir(parents=True)  # as torchvision does before it fails
        if keep:
            (root / "notes.txt").write_text("mine")
        raise data.DataError(missing_message("MNIST", root, ["MNIST/raw/x.gz"], "torchvision could not download it."))

    from hypernb.data import vision  # (where data.load_images finds the loader)

    monkeypatch.setattr(vision, "load_mnist", offline)
    root = tmp_path / "nowhere" / "data"
    assert main(["run", "--profile", "smoke", "--quiet", "--data-root", str(root)]) == 2
    err = capsys.readouterr().err
    assert "(or pass --data-root DIR)" in err and "data_root=" not in err
    assert not (tmp_path / "nowhere").exists()  # the folders made for nothing are gone
    monkeypatch.setattr(vision, "load_mnist", lambda root, download_ok=True: offline(root, keep=True))
    assert main(["run", "--profile", "smoke", "--quiet", "--data-root", str(root)]) == 2
    assert (root / "notes.txt").read_text() == "mine"  # a folder that holds something is kept


def test_a_rerun_of_a_finished_run_says_it_was_read_back(tmp_path, capsys):
    require("mnist")
    argv = ["run", "--opt", "sgd", "--profile", "smoke", "--max-steps", "2", "--quiet", "--out", str(tmp_path)]
    assert main(argv) == 0
    assert "wrote " in capsys.readouterr().out
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert f"read back {tmp_path}/metrics.json" in out and "wrote" not in out


def test_run_takes_keywords_and_torch_names_and_explains_what_it_cannot_take():
    with pytest.raises(ValueError, match="run\\(\\) takes a configuration: .*got the string 'mnist-mlp'"):
        run("mnist-mlp")
    with pytest.raises(ValueError, match="got a configuration and keyword fields \\['epochs'\\]"):
        run(dict(task="mnist-mlp"), epochs=1)
    with pytest.raises(ValueError, match="'optimzer': did you mean 'optimizer'\\?"):
        RunConfig.from_dict({"optimzer": "sgd"})
    with pytest.raises(ValueError, match="both 'lr' and 'alpha'"):
        RunConfig.from_dict({"lr": 0.1, "alpha": 0.2})
    # lr, momentum and opt (torch.optim's and the CLI's names) mean alpha, mu and optimizer; records keep those
    assert RunConfig.from_dict({"lr": 0.1, "momentum": 0.5, "opt": "sgd/sgd"}) == RunConfig(
        alpha=0.1, mu=0.5, optimizer="sgd/sgd")
    import types

    assert RunConfig(alpha=0.5).replace(lr=0.1).alpha == 0.1  # the alias replaces the field it names
    assert RunConfig.from_dict(types.MappingProxyType({"lr": 0.2})).alpha == 0.2  # any mapping
    from hypernb.cli import build_parser

    args = build_parser().parse_args(["run", "--lr", "0.1", "--momentum", "0.5", "--opt", "sgd/sgd"])
    assert (args.alpha, args.mu, args.optimizer) == (0.1, 0.5, "sgd/sgd")
    assert main(["run", "--lr", "0.1", "--alpha=0.2"]) == 2  # not: the last one wins


def test_the_repr_of_a_diverged_run_has_no_empty_metrics():
    from hypernb.train import SeedResult

    r = hypernb.Result({"task": "mnist-mlp", "optimizer": "adam/adam"}, [SeedResult(0, status="diverged")], {}, {})
    assert repr(r) == "Result(mnist-mlp, adam/adam; seed 0: diverged)"
    ok = hypernb.Result({"task": "mnist-mlp", "optimizer": "sgd"}, [SeedResult(0, status="ok")],
                        {"test_acc": {"mean": 0.9, "std": 0.0, "n": 1}}, {})
    assert repr(ok) == "Result(mnist-mlp, sgd, test_acc=0.9±0; ok)"
    grid = [hypernb.Result({"task": "mnist-mlp", "optimizer": "adam/sgd", "alpha": a, "kappa": k}, [], {}, {})
            for a, k in ((1e-3, 1e-5), (1e-2, [1e-5, "paper"]))]  # the runs of a grid tell themselves apart
    assert [repr(r) for r in grid] == ["Result(mnist-mlp, adam/sgd, α0=0.001, κ=1e-05; ok)",
                                       "Result(mnist-mlp, adam/sgd, α0=0.01, κ=[1e-05, paper]; ok)"]
    towers = [hypernb.Result({"task": "mnist-mlp", "optimizer": o, "alpha": 0.1, "kappa": 1e-5, "height": h},
                             [], {}, {}) for o, h in (("sgd*2", None), ("sgd/sgd", 0))]  # κ where a level learns
    assert [repr(r) for r in towers] == ["Result(mnist-mlp, sgd*2, α0=0.1, κ=1e-05; ok)",
                                         "Result(mnist-mlp, sgd/sgd, α0=0.1; ok)"]


def test_a_checkpoint_with_a_flipped_byte_is_named_damaged_not_loaded(tmp_path):
    """torch.load does not check the zip's CRCs: a byte overwritten inside a tensor loaded silently and the run
    resumed from wrong numbers. Each stored part's checksum is checked first."""
    from hypernb import io
    from hypernb.train import CHECKPOINT_KEYS

    path = tmp_path / "checkpoint.pt"
    io.save_checkpoint(path, {**{k: 0 for k in CHECKPOINT_KEYS}, "model": torch.randn(20_000)})
    assert torch.equal(io.load_checkpoint(path, "cpu", CHECKPOINT_KEYS)["model"], torch.load(path)["model"])
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF  # inside the tensor's 80,000 bytes
    path.write_bytes(bytes(data))
    with pytest.raises(io.DamagedFileError, match=r"fails its checksum: the file is incomplete or corrupted"):
        io.load_checkpoint(path, "cpu", CHECKPOINT_KEYS)
    from torch.utils.serialization import config as serialization  # torch's own switch: CRCs stored as 0

    saved = serialization.save.compute_crc32
    serialization.save.compute_crc32 = False
    try:
        io.save_checkpoint(path, {**{k: 0 for k in CHECKPOINT_KEYS}, "model": torch.ones(3)})
    finally:
        serialization.save.compute_crc32 = saved
    assert torch.equal(io.load_checkpoint(path, "cpu", CHECKPOINT_KEYS)["model"], torch.ones(3))  # not "damaged"


def test_a_checkpoint_cut_short_anywhere_is_named_damaged(tmp_path):
    """Every length a crash can leave: torch's reader fails in several ways (a RuntimeError, EOF, or
    EINVAL when its directory would start before the file), and each is the same one-line error."""
    from hypernb import io
    from hypernb.train import CHECKPOINT_KEYS

    whole = tmp_path / "whole.pt"
    io.save_checkpoint(whole, {**{k: 0 for k in CHECKPOINT_KEYS}, "model": torch.randn(20_000)})
    data = whole.read_bytes()
    cut = tmp_path / "checkpoint.pt"
    for n in range(0, len(data), 97):
        cut.write_bytes(data[:n])
        with pytest.raises(io.DamagedFileError, match="should hold a training checkpoint"):
            io.load_checkpoint(cut, "cpu", CHECKPOINT_KEYS)
    cut.chmod(0)  # a file that cannot be opened is not damaged
    if os.access(cut, os.R_OK):
        return  # (root reads it anyway)
    with pytest.raises(PermissionError):
        io.load_checkpoint(cut, "cpu", CHECKPOINT_KEYS)


def test_a_config_is_read_as_a_user_writes_it():
    """An alias beside its field left None (a dict built from defaults), and κ written as text named as
    the number it is."""
    assert RunConfig.from_dict({"alpha": None, "lr": 1e-3}).alpha == 1e-3
    assert RunConfig.from_dict({"alpha": 1e-3, "lr": None}).alpha == 1e-3
    with pytest.raises(ValueError, match="gives both 'lr' and 'alpha'"):
        RunConfig.from_dict({"alpha": 0.1, "lr": 1e-3})
    with pytest.raises(ValueError, match=r"got '1e-5' \(1e-05 as a number: kappa=1e-05, not the string '1e-5'\)"):
        RunConfig.from_dict({"kappa": "1e-5"})
    for text in ("inf", "nan", "-1"):  # text that is a number but no κ: no hint to write it as one
        with pytest.raises(ValueError, match="kappa rule must be one of") as refused:
            RunConfig.from_dict({"kappa": text})
        assert "as a number" not in str(refused.value)


def test_a_requeued_slurm_task_takes_its_run_folder_back_and_releases_it(tmp_path, monkeypatch):
    """The task's earlier claim (same Slurm id, another process) counts as its own: taken back, refreshed
    while training and released after (it was skipped as already held, and stayed behind)."""
    import time

    from hypernb import sweep

    require("mnist")
    monkeypatch.setenv("SLURM_JOB_ID", "777")
    monkeypatch.delenv("SLURM_ARRAY_JOB_ID", raising=False)
    monkeypatch.setattr(sweep, "_slurm_worker", True)
    out = tmp_path / "run"
    out.mkdir()
    (out / sweep.CLAIM).write_text(json.dumps({"pid": 1, "host": "elsewhere", "slurm": "777", "token": "before-requeue",
                                               "since": "then"}))
    old = time.time() - 3000
    os.utime(out / sweep.CLAIM, (old, old))
    assert not sweep.holds(out)
    assert run(dict(SMOKE, seeds=[0], epochs=1, out_dir=str(out))).seeds[0].status == "ok"
    assert not (out / sweep.CLAIM).exists()
