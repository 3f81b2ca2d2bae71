"""The notebook layer: validated parameters, batch execution (the interactive panel: test_panel.py)."""
import pytest
import yaml

from conftest import require
from hypernb import batch, study


def namespace(**over):
    ns = dict(PROFILE="smoke", SEEDS=None, EPOCHS=None, OPTIMIZERS=["sgd"], HYPEROPTIMIZERS=["none", "sgd"],
              TUNE_SEEDS=None, FRESH_SEEDS=None, ALPHA_GRID=None, KAPPA_DECADES=None, VAL_EXAMPLES=None, OUTPUT_TANH=False,
              LOGIT_CHECK=None, FOLLOW_UP_SEEDS=None, FOLLOW_UP_FRESH_SEEDS=None, FOLLOW_UP_ADAM_ADAM_SEEDS=None,
              TRAIN=True,
              OUT_DIR="", INTERACTIVE=False, QUIET=True, In=[], _private=1)
    ns.update(over)
    return ns


def test_parameters_are_validated(tmp_path, monkeypatch):
    monkeypatch.setenv("HYPERNB_OUT", str(tmp_path))
    s = study.start("01_mlp_mnist", namespace())
    assert s.profile == "smoke" and s["SEEDS"] == [0] and s["EPOCHS"] == 1  # profile defaults fill the Nones
    assert s.out_dir == tmp_path / "01_mlp_mnist" and (s.out_dir / "parameters.json").exists()
    with pytest.raises(ValueError, match=r"unknown notebook parameter\(s\) \['EPOHCS'\]"):
        study.start("01_mlp_mnist", namespace(EPOHCS=3))
    with pytest.raises(ValueError, match=r"parameter SEEDS must be list or none"):
        study.start("01_mlp_mnist", namespace(SEEDS=3))
    with pytest.raises(ValueError, match=r"PROFILE must be one of"):
        study.start("01_mlp_mnist", namespace(PROFILE="quick"))
    ns = namespace()
    del ns["VAL_EXAMPLES"]
    with pytest.raises(ValueError, match=r"does not define \['VAL_EXAMPLES'\]"):
        study.start("01_mlp_mnist", ns)


def test_records_and_outputs_go_where_the_docs_say(tmp_path, monkeypatch):
    """Full and demo records live in the committed evidence/ folder; $HYPERNB_OUT moves only the outputs
    (make test reads the committed records and writes figures elsewhere); OUT_DIR moves both."""
    from hypernb.study import common

    monkeypatch.setattr(common, "EVIDENCE", tmp_path / "evidence")
    monkeypatch.delenv("HYPERNB_OUT", raising=False)
    s = study.start("01_mlp_mnist", namespace(PROFILE="demo"))
    assert s.records == s.out_dir == tmp_path / "evidence" / "demo" / "01_mlp_mnist"
    monkeypatch.setenv("HYPERNB_OUT", str(tmp_path / "out"))
    s = study.start("01_mlp_mnist", namespace(PROFILE="demo"))
    assert s.records == tmp_path / "evidence" / "demo" / "01_mlp_mnist" and s.out_dir == tmp_path / "out" / "01_mlp_mnist"
    s = study.start("01_mlp_mnist", namespace(PROFILE="smoke"))
    assert s.records == s.out_dir == tmp_path / "out" / "01_mlp_mnist"
    s = study.start("01_mlp_mnist", namespace(PROFILE="full", OUT_DIR=str(tmp_path / "mine")))
    assert s.records == s.out_dir == tmp_path / "mine"


def test_auto_profile_follows_the_committed_records(tmp_path, monkeypatch):
    from hypernb.study import common

    monkeypatch.setattr(common, "EVIDENCE", tmp_path)
    monkeypatch.delenv("HYPERNB_PROFILE", raising=False)
    assert study.resolve_profile("auto", "04_towers") == "demo"  # nothing committed: demo
    (tmp_path / "demo" / "04_towers" / "runs").mkdir(parents=True)
    assert study.resolve_profile("auto", "04_towers") == "demo"
    (tmp_path / "full" / "04_towers" / "runs").mkdir(parents=True)
    assert study.resolve_profile("auto", "04_towers") == "full"
    monkeypatch.setenv("HYPERNB_PROFILE", "smoke")
    assert study.resolve_profile("auto", "04_towers") == "smoke"


def test_every_notebook_declares_what_its_module_validates():
    import ast

    import papermill

    for path in batch.notebook_paths():
        declared = papermill.inspect_notebook(str(path))
        assert set(declared) == set(study.NOTEBOOKS[path.stem].SPEC), path.stem
        # read without Jupyter (the records command), the parameters cell gives papermill's names and defaults
        ours = batch.notebook_parameters(path)
        assert list(ours) == list(declared), path.stem
        assert all(repr(ours[k]) == repr(ast.literal_eval(v["default"])) for k, v in declared.items()), path.stem


def test_a_parameters_cell_that_is_not_plain_literals_is_refused(tmp_path):
    import json

    def notebook(source, tags=("parameters",)):
        path = tmp_path / "x.ipynb"
        path.write_text(json.dumps({"cells": [{"cell_type": "code", "metadata": {"tags": list(tags)},
                                               "source": source}]}))
        return path

    assert batch.notebook_parameters(notebook("A = 1  # one\nB = [1e-3, 'x']\n")) == {"A": 1, "B": [1e-3, "x"]}
    with pytest.raises(ValueError, match="only assignments NAME = literal"):
        batch.notebook_parameters(notebook("import os\nA = 1"))
    with pytest.raises(ValueError, match="parameter A is not a Python literal"):
        batch.notebook_parameters(notebook("A = os.getcwd()"))
    with pytest.raises(ValueError, match="no code cell tagged 'parameters'"):
        batch.notebook_parameters(notebook("A = 1", tags=()))
    with pytest.raises(ValueError, match=r"not plain Python \(line 1"):
        batch.notebook_parameters(notebook("%matplotlib inline\nA = 1"))
    (tmp_path / "bad.ipynb").write_text("{not json")
    with pytest.raises(ValueError, match="not a readable notebook"):
        batch.notebook_parameters(tmp_path / "bad.ipynb")


def test_parameter_cells_hold_one_assignment_per_line():
    """papermill skips a parameter line that holds a second "=" (e.g. in its comment)."""
    import nbformat

    for path in batch.notebook_paths():
        nb = nbformat.read(path, as_version=4)
        cell = next(c for c in nb.cells if "parameters" in c.metadata.get("tags", []))
        bad = [line for line in cell.source.splitlines() if line.count("=") > 1]
        assert not bad, (path.stem, bad)


def test_training_off_reports_missing_records_instead_of_training(tmp_path, monkeypatch):
    monkeypatch.setenv("HYPERNB_OUT", str(tmp_path))
    s = study.start("01_mlp_mnist", namespace(TRAIN=False))
    with pytest.raises(study.MissingRecords, match="no finished record"):
        study.mnist.run_table(s)
    assert not list(tmp_path.rglob("metrics.json"))


MEASURED = ("metrics.json", "horizon.json", "cost.json", "wall_clock.json")  # what training writes


@pytest.mark.slow
def test_every_notebook_renders_from_what_the_records_command_trains(tmp_path, monkeypatch):
    """The committed notebooks are rendered from records. On the smoke profile, training for real,
    `records` (no Jupyter: what a GPU node runs) trains every run each notebook reads; then every
    notebook executes with training off, as `make test` renders the evidence, and finds them all."""
    require("mnist")
    from hypernb.cli import main
    from hypernb.io import read_json

    assert main(["records", "--profile", "smoke", "--out", str(tmp_path)]) == 0
    trained = sorted(p for name in MEASURED for p in tmp_path.rglob(name))
    assert len(trained) > 20
    monkeypatch.setenv("HYPERNB_TRAIN", "0")
    assert main(["notebooks", "--profile", "smoke", "--out", str(tmp_path), "--no-progress"]) == 0
    assert sorted(p for name in MEASURED for p in tmp_path.rglob(name)) == trained  # the notebooks trained nothing
    for path in batch.notebook_paths():
        assert (tmp_path / path.name).exists()
        if path.stem != "05_summary":
            verdicts = read_json(tmp_path / path.stem / "verdicts.json")["verdicts"]
            assert verdicts and not [v for v in verdicts if "training is off" in str(v)], path.stem


def test_overrides_are_checked_against_the_notebooks(tmp_path):
    paths = batch.notebook_paths("01,04")
    per = batch.check_overrides(paths, {"SEEDS": [0, 1], "REPORT_LEVEL": "sgd"}, "full")  # (smoke, demo: a clash)
    assert per[paths[0]] == {"SEEDS": [0, 1]} and per[paths[1]] == {"SEEDS": [0, 1], "REPORT_LEVEL": "sgd"}
    with pytest.raises(ValueError, match=r"REPORT_LEVEL must be an optimizer's name for a tower level: .*got 'adamm'"):
        batch.check_overrides(paths, {"REPORT_LEVEL": "adamm"}, "full")  # before any kernel starts
    with pytest.raises(ValueError, match=r"\['EPOHCS'\] are not in the parameters cell"):
        batch.check_overrides(paths, {"EPOHCS": 2})
    f = tmp_path / "p.yaml"
    f.write_text(yaml.safe_dump({"SEEDS": [0, 1], "LEVEL": "sgd"}))
    assert batch.parse_overrides([["EPOCHS", "3"], ["LEVEL", "rmsprop"], ["KAPPA", "1e-5"]], [str(f)]) == \
        {"SEEDS": [0, 1], "LEVEL": "rmsprop", "EPOCHS": 3, "KAPPA": 1e-5}
    with pytest.raises(ValueError, match="no notebook matches"):
        batch.notebook_paths("09")
    assert batch.notebook_paths("1, 4") == paths  # the numbers as a person writes them
    with pytest.raises(ValueError, match=r"give the profile with --profile full, not as a notebook parameter"):
        batch.parse_overrides([["PROFILE", "full"]], [])


def test_notebooks_command_runs_papermill_and_writes_outputs(tmp_path, capsys):
    """The batch path end to end (the summary notebook is the quick one; nbval runs all five)."""
    from hypernb.cli import main

    assert main(["notebooks", "--profile", "smoke", "--only", "05", "--out", str(tmp_path), "--no-progress"]) == 0
    assert (tmp_path / "05_summary.ipynb").exists() and (tmp_path / "05_summary" / "parameters.json").exists()
    assert "all notebooks done" in capsys.readouterr().out
    assert main(["notebooks", "--only", "05", "-p", "EPOHCS", "3", "--out", str(tmp_path)]) == 2
    capsys.readouterr()
    assert main(["notebooks", "--only", "05", "--kernel", "nokernel", "--out", str(tmp_path / "k")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "no such Jupyter kernel here; installed: " in err and "ipykernel install" in err
    from hypernb.batch import _check_kernel

    _check_kernel("Python3")  # jupyter_client finds kernels whatever their case


def test_records_and_notebooks_agree_on_a_relative_out_folder(tmp_path, monkeypatch):
    """Kernels run inside notebooks/: a relative --out must name the same folder for both commands."""
    import papermill

    from hypernb.cli import main

    monkeypatch.chdir(tmp_path)
    assert main(["records", "--profile", "smoke", "--only", "03", "--out", "rel", "-p", "TRAIN_CHARS", "5000",
                 "-p", "ALPHA_GRID", "[1e-3]", "-p", "KAPPA_GRID", "[1e-5]"]) == 0
    assert any((tmp_path / "rel" / "03_char_rnn" / "runs").rglob("metrics.json"))
    seen = {}
    monkeypatch.setattr(papermill, "execute_notebook", lambda src, dst, parameters, **kw: seen.update(parameters))
    assert main(["notebooks", "--profile", "smoke", "--only", "03", "--out", "rel"]) == 0
    assert seen["OUT_DIR"] == str(tmp_path / "rel" / "03_char_rnn")


def test_a_notebook_that_fails_is_one_line_naming_its_cell_error_and_copy(tmp_path, monkeypatch, capsys):
    """A cell's error (e.g. records missing with training off) reaches the command line as one line, not as
    papermill's traceback; the executed copy keeps the traceback."""
    import papermill

    from hypernb.cli import main

    def fail(src, dst, **kw):
        raise papermill.PapermillExecutionError(3, 4, "df = ...", "MissingRecords", "20 of 20 runs have no record",
                                                ["Traceback …"])

    monkeypatch.setattr(papermill, "execute_notebook", fail)
    assert main(["notebooks", "--profile", "smoke", "--only", "01", "--out", str(tmp_path), "--no-progress"]) == 1
    err = capsys.readouterr().err.strip()
    assert err == (f"error: 01_mlp_mnist stopped at cell 4 with MissingRecords: 20 of 20 runs have no record (the "
                   f"notebook as far as it ran, with the traceback: {tmp_path / '01_mlp_mnist.ipynb'})")


def test_records_refuses_to_run_with_training_off(monkeypatch, capsys):
    from hypernb.cli import main

    monkeypatch.setenv("HYPERNB_TRAIN", "0")
    assert main(["records", "--profile", "smoke", "--only", "02"]) == 2
    assert "training is off for 02_resnet20_cifar10" in capsys.readouterr().err


def test_notebooks_without_papermill_points_to_records(monkeypatch, capsys):
    import importlib

    from hypernb.cli import main

    real = importlib.import_module
    monkeypatch.setattr(importlib, "import_module",
                        lambda name, *a, **k: (_ for _ in ()).throw(ImportError(name)) if name == "papermill"
                        else real(name, *a, **k))
    assert main(["notebooks", "--only", "05"]) == 2
    err = capsys.readouterr().err
    assert "needs the package 'papermill'" in err and "python -m hypernb records" in err and "Traceback" not in err


def test_record_names_depend_only_on_what_differs_from_the_defaults():
    """A field added to RunConfig later (at its default) must not rename every committed record."""
    from hypernb.config import RunConfig
    from hypernb.study.common import config_key

    assert config_key(RunConfig(optimizer="adam", alpha=1e-3)) == config_key(RunConfig(optimizer="adam", alpha=1e-3,
                                                                                        d0=None, weight_decay=0.0))
    assert config_key(RunConfig(optimizer="adam", alpha=1e-3)) != config_key(RunConfig(optimizer="adam", alpha=1e-2))
    assert config_key(RunConfig(seeds=[0])) != config_key(RunConfig(seeds=[0, 1]))


def test_a_seed_that_stopped_early_never_cuts_the_other_seeds_curves():
    from types import SimpleNamespace

    from hypernb.viz import _mean_curve

    long = SimpleNamespace(steps=[0, 5, 10, 15], loss=[2.0, 1.0, 0.5, 0.25], trajectory={})
    short = SimpleNamespace(steps=[0, 5], loss=[4.0, float("nan")], trajectory={})  # diverged at step 5
    steps, mean, lo, hi = _mean_curve(SimpleNamespace(seeds=[short, long]), "loss")
    assert list(steps) == [0, 5, 10, 15]
    assert list(mean) == [3.0, 1.0, 0.5, 0.25] and list(lo) == [2.0, 1.0, 0.5, 0.25] and list(hi) == [4.0, 1.0, 0.5, 0.25]


def test_a_panel_with_nothing_logged_says_why_instead_of_staying_blank():
    import warnings
    from types import SimpleNamespace

    from hypernb.viz import curves

    short = SimpleNamespace(seeds=[SimpleNamespace(steps=[], loss=[], trajectory={}, status="ok")])
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no "No artists with labels found to put in legend"
        fig = curves({"SGD": short, "SGD/SGD": short})
    texts = [t.get_text() for t in fig.axes[0].texts]
    assert texts == ["nothing logged for 'loss'\n(a run shorter than log_every steps logs nothing)"]


def test_output_tanh_reaches_every_run_of_notebook_01_but_the_reports_own_setting(tmp_path, monkeypatch):
    """OUTPUT_TANH=True: the paper package's tanh-logit MLP for the table, the tuning and the re-training;
    the report's Adam/Adam setting keeps its free logits; False leaves every record name as it was."""
    from hypernb.study import mnist

    monkeypatch.setenv("HYPERNB_OUT", str(tmp_path))
    tanh = study.start("01_mlp_mnist", namespace(OUTPUT_TANH=True))
    assert all(cfg.get("output_tanh") is True for *_, cfg in mnist.table_configs(tanh))
    assert mnist.base(tanh, optimizer="adam/adam", output_tanh=False)["output_tanh"] is False
    free = study.start("01_mlp_mnist", namespace())
    assert all("output_tanh" not in cfg for *_, cfg in mnist.table_configs(free))


def test_the_first_model_judges_every_claim_again_on_free_logits(tmp_path, monkeypatch):
    """Notebook 01's verdicts use the paper's tanh-logit MLP; with LOGIT_CHECK every run is repeated on the
    first model (free logits) and each claim's rule applied to it, beside, in a subfolder of the outputs;
    the first declarations are judged on the first model's runs only."""
    require("mnist")
    from hypernb.study import claims as C, mnist

    monkeypatch.setenv("HYPERNB_OUT", str(tmp_path))
    assert mnist.first_model(study.start("01_mlp_mnist", namespace(OUTPUT_TANH=True))) is None  # LOGIT_CHECK off
    assert mnist.first_model(study.start("01_mlp_mnist", namespace(OUTPUT_TANH=False, LOGIT_CHECK=True))) is None
    s = study.start("01_mlp_mnist", namespace(OUTPUT_TANH=True, LOGIT_CHECK=True))
    _, table = mnist.run_table(s)
    first = mnist.first_model(s)
    assert first.s.out_dir == s.out_dir / "first_model" and first.s.records == s.records
    assert (first.s.out_dir / "tables" / "mnist_table.csv").exists()
    for runs in (first.table, first.tuned):
        assert all(not r.config.get("output_tanh") for r in runs.values())
    assert all(not cfg.get("output_tanh") for *_, cfg in mnist.retrain_configs(first.s, first.table))
    assert all(r.config["output_tanh"] for r in table.values())
    adam_adam = mnist.adam_adam_report_setting(s)
    tuned, _ = mnist.run_tuned(s, mnist.run_tuning(s))
    main = mnist.verdicts(s, table, tuned, mnist.run_retrain(s, table), adam_adam)
    before = mnist.verdicts(first.s, first.table, first.tuned, first.retrained, adam_adam)
    # judged off the declared model, a claim says so; on it, it is the declared claim
    assert all(v.claim == C.BY_ID[v.claim.id] for v in main)
    assert all(("the first model, not the amended declaration" in v.claim.metric) == (C.MNIST_MODEL in v.claim.amended)
               for v in before)
    assert all(not v.evidence for v in mnist.first_model_verdicts(first, adam_adam))  # its figures are not drawn
    df = mnist.by_model(main, before).set_index("claim")
    by_id = {v.claim.id: v for v in before}
    for v in main:
        w = by_id[v.claim.id]
        row = df.loc[v.claim.statement]
        assert row["tanh logits, the paper's model (the verdict)"].endswith(v.verdict)
        assert row["free logits, the first model"].endswith(w.verdict)
        assert row["changed"] == ("yes" if v.verdict != w.verdict else "")
    # the first declarations: on the first model's table, never on the paper's model's
    declared = mnist.first_declared(s, table, first)
    assert declared.equals(mnist.as_first_declared(first.s, first.table))
    assert mnist.first_declared(s, table, None) is None
    free = study.start("01_mlp_mnist", namespace(OUTPUT_TANH=False))
    assert mnist.first_declared(free, first.table, None).equals(declared)
    # a verdict that differs between the models is marked, with n and unit; a claim on one model only too
    from hypernb.study.stats import Interval

    claim = C.BY_ID["mnist-sgd-sgd-beats-sgd"]
    below, above = (C.judge(claim, Interval(m, m - 0.1, m + 0.1, 5), "full") for m in (-1.0, 1.0))
    other = C.judge(C.BY_ID["mnist-adam-sgd-beats-adam"], Interval(-1.0, -1.1, -0.9, 5), "full")
    marked = mnist.by_model([below], [above, other])
    assert list(marked.changed) == ["yes", "yes"]
    assert list(marked.iloc[0, 1:3]) == ["-1 pp [-1.1, -0.9] pp, n = 5: reproduced",
                                         "+1 pp [+0.9, +1.1] pp, n = 5: refuted"]
    assert marked.iloc[1, 1] == "not judged on this model"


def test_committed_records_name_no_machine_folder():
    """Every record under evidence/ keeps its folder relative to the checkout (see io.shown)."""
    import re

    from hypernb.study.common import EVIDENCE

    files = sorted(EVIDENCE.rglob("config.json")) + sorted(EVIDENCE.rglob("metrics.json"))
    assert files
    absolute = re.compile(r'"out_dir": "(/|[A-Za-z]:\\\\)')
    assert not [str(f.relative_to(EVIDENCE)) for f in files if absolute.search(f.read_text())]


def test_the_tuned_table_marks_a_choice_at_the_end_of_its_grid(tmp_path, monkeypatch):
    """A κ or α chosen at the end of its grid is a bound, not a tuned optimum: the table says so."""
    from types import SimpleNamespace

    from hypernb.study import mnist

    monkeypatch.setenv("HYPERNB_OUT", str(tmp_path))
    s = study.start("01_mlp_mnist", namespace(OPTIMIZERS=["sgd", "adam"]))  # smoke: α grid 1e-3, 1e-1; κ ±1 decade
    seed = SimpleNamespace(status="ok", final={"final_alpha": 0.02})
    tuned = {(o, "sgd"): SimpleNamespace(seeds=[seed]) for o in ("sgd", "adam")}
    kappa = {o: mnist.kappa_grid(s, o) for o in ("sgd", "adam")}
    best = {("sgd", "none"): 1e-3, ("sgd", "sgd"): kappa["sgd"][1],
            ("adam", "none"): 0.1, ("adam", "sgd"): kappa["adam"][0]}
    df = mnist.tuned_table(s, tuned, best).set_index("X")
    assert df.loc["SGD", "α chosen for X"] == "0.001 (the grid's smallest)"
    assert df.loc["SGD", "κ chosen for X/SGD"] == f"{kappa['sgd'][1]:g}"  # inside the grid: unmarked
    assert df.loc["Adam", "α chosen for X"] == "0.1 (the grid's largest)"
    assert df.loc["Adam", "κ chosen for X/SGD"].endswith("(the grid's smallest)")
    assert df.loc["SGD", "learned α / α0 (mean over fresh seeds)"] == "2"


def test_a_follow_up_runs_on_its_own_seeds_and_stands_beside_its_first_run(tmp_path, monkeypatch):
    """Notebook 01's follow-ups train only their own (fresh) seeds, are judged by the follow-up claim alone, and
    the summary shows each beside its claim's first verdict; on a reduced profile they are indicative."""
    require("mnist")
    from hypernb.study import claims as C, followup, mnist, summary

    monkeypatch.setenv("HYPERNB_OUT", str(tmp_path))
    s = study.start("01_mlp_mnist", namespace(OPTIMIZERS=["adagrad", "rmsprop"], FOLLOW_UP_SEEDS=[3],
                                              FOLLOW_UP_FRESH_SEEDS=[107], FOLLOW_UP_ADAM_ADAM_SEEDS=[4],
                                              OUTPUT_TANH=True))
    free = study.start("01_mlp_mnist", namespace(OPTIMIZERS=["adagrad"], FOLLOW_UP_SEEDS=[3], OUTPUT_TANH=False))
    assert mnist.follow_up_runs(free, None) == {}  # declared on the paper's model: none on free logits
    _, table = mnist.run_table(s)
    tuning = mnist.run_tuning(s)
    tuned, _ = mnist.run_tuned(s, tuning)
    follow = mnist.follow_up_runs(s, tuning)
    assert list(follow) == ["mnist-adagrad-learned-beats-initial-follow-up",
                            "mnist-rmsprop-sgd-matches-tuned-rmsprop-follow-up", "report-adam-adam-fails-follow-up"]
    assert list(follow["mnist-adagrad-learned-beats-initial-follow-up"]) == [3]
    assert list(follow["mnist-rmsprop-sgd-matches-tuned-rmsprop-follow-up"]) == [107]
    assert list(follow["report-adam-adam-fails-follow-up"]) == [4]  # a rate: seed → 1.0 failed, 0.0 not
    assert set(follow["report-adam-adam-fails-follow-up"].values()) <= {0.0, 1.0}
    adam_adam = mnist.adam_adam_report_setting(s)
    first = mnist.first_differences(table, tuned, mnist.run_retrain(s, table), adam_adam)
    assert set(first["mnist-adagrad-learned-beats-initial-follow-up"]) == set(s["SEEDS"])  # never the follow-up's
    assert set(first["report-adam-adam-fails-follow-up"]) == set(s["SEEDS"])
    verdicts = followup.judge(s, follow)
    assert [v.claim for v in verdicts] == [C.FOLLOW_UP_BY_ID[i] for i in follow]
    assert all(v.verdict == C.INDICATIVE for v in verdicts)
    followup.figure(s, follow, first)
    assert (s.out_dir / "figures" / "follow_ups.png").exists()
    assert followup.figure(s, {}, first) is None  # no follow-up with these parameters: no figure, no error
    assert verdicts[0].detail == f"per seed (or repetition): 3: {follow['mnist-adagrad-learned-beats-initial-follow-up'][3]:+.4g}"
    # the RMSProp follow-up trains the first run's tuned configurations, on its own seeds only
    plain, hyper = (r.config for r in mnist.run_grid(s, [c for *_, c in mnist.tuned_configs(s, "rmsprop",
                                                                                            mnist.chosen(tuning), [107])]))
    assert {k: v for k, v in plain.items() if k not in ("seeds", "out_dir")} == \
        {k: v for k, v in tuned[("rmsprop", "none")].config.items() if k not in ("seeds", "out_dir")}
    assert hyper["kappa"] == tuned[("rmsprop", "sgd")].config["kappa"] and plain["seeds"] == [107]
    study.save_verdicts(s, verdicts, "follow_ups.json")
    main = mnist.verdicts(s, table, tuned, mnist.run_retrain(s, table), adam_adam)
    study.save_verdicts(s, main)
    s05 = study.start("05_summary", dict(PROFILE="smoke", RESULTS_DIR=str(tmp_path),
                                         TRAIN=False, OUT_DIR="", INTERACTIVE=False, QUIET=True))
    loaded = summary.load_follow_ups(s05)
    assert [v.claim.id for v in loaded] == [v.claim.id for v in verdicts]
    table05 = summary.follow_up_table(summary.load(s05)[0], loaded)
    assert list(table05["verdict of the follow-up"]) == [C.INDICATIVE] * 3
    assert all(cell.startswith("n = 1: ") and cell.endswith(C.INDICATIVE) for cell in table05["first run"])
    assert summary.follow_up_plan(summary.load(s05)[0]).empty  # no full-protocol inconclusive verdict: nothing planned


def test_a_follow_up_without_values_says_so():
    from types import SimpleNamespace

    from hypernb.study import followup

    (v,) = followup.judge(SimpleNamespace(profile="full"), {"towers-level-cost-follow-up": {}})
    assert v.verdict == "inconclusive" and "no paired values" in v.reason and v.detail == ""


def test_the_cost_follow_up_is_its_own_measurement_kept_apart(tmp_path):
    """A second cost measurement with its own number of repetitions, in its own file; the first is untouched."""
    from hypernb.study import towers

    params = {**towers.DEFAULTS["demo"], "PROFILE": "demo", "REPORT_LEVEL": "rmsprop", "PAPER_OUTPUT_TANH": True,
              "COST_HEIGHTS": [1, 2], "COST_REPS": 1, "FOLLOW_UP_COST_REPS": 2, "TRAIN": True,
              "OUT_DIR": str(tmp_path), "INTERACTIVE": False, "QUIET": True}
    s = study.start("04_towers", params)
    first = towers.costs(s)
    again = towers.costs(s, repetitions=s["FOLLOW_UP_COST_REPS"], name="cost_follow_up.json")
    assert len(first["reps"]) == 1 and len(again["reps"]) == 2
    assert (tmp_path / "cost.json").exists() and (tmp_path / "cost_follow_up.json").exists()
    assert towers.costs(s)["reps"] == first["reps"]  # read back, not measured again


def test_a_follow_up_on_seeds_the_first_run_used_is_refused(tmp_path, monkeypatch, capsys):
    from hypernb.study import mnist, towers

    monkeypatch.setenv("HYPERNB_OUT", str(tmp_path))
    with pytest.raises(ValueError, match=r"FOLLOW_UP_FRESH_SEEDS must be fresh seeds, but \[100\] also appear"):
        study.start("01_mlp_mnist", namespace(OPTIMIZERS=["rmsprop"], FOLLOW_UP_FRESH_SEEDS=[100, 999],
                                              OUTPUT_TANH=True))  # smoke: FRESH_SEEDS [100]; refused at the start
    s = study.start("01_mlp_mnist", namespace(OPTIMIZERS=["rmsprop"], FOLLOW_UP_FRESH_SEEDS=[100, 999],
                                              OUTPUT_TANH=False))  # (the follow-ups run on the paper's model only)
    assert mnist.follow_up_runs(s, None) == {}
    params = {**towers.DEFAULTS["smoke"], "PROFILE": "smoke", "REPORT_LEVEL": "rmsprop", "PAPER_OUTPUT_TANH": True,
              "FOLLOW_UP_SEEDS": [0], "TRAIN": True, "OUT_DIR": str(tmp_path), "INTERACTIVE": False, "QUIET": True}
    with pytest.raises(ValueError, match=r"FOLLOW_UP_SEEDS must be fresh seeds.*e\.g\. FOLLOW_UP_SEEDS = \[1\]"):
        study.start("04_towers", params)
    from hypernb.cli import main  # and before any kernel starts, with the profile's defaults filled in

    assert main(["notebooks", "--profile", "smoke", "--only", "01", "-p", "SEEDS", "[0, 1]", "--out",
                 str(tmp_path / "nb")]) == 2
    assert "01_mlp_mnist: FOLLOW_UP_SEEDS must be fresh seeds, but [1] also appear in SEEDS" in capsys.readouterr().err
    assert not (tmp_path / "nb").exists()


def test_a_configuration_listed_twice_in_a_grid_trains_once(tmp_path, monkeypatch):
    """Two grids can share a point (notebook 06's α0 and κ sweeps): run_grid trains it once and returns its
    Result at both places, so no two workers write one run folder."""
    import hypernb.train
    from hypernb.study import common

    s = study.start("01_mlp_mnist", namespace(OUT_DIR=str(tmp_path)))
    seen = []

    def fake_run(cfgs):
        seen.extend(c.out_dir for c in cfgs)
        return [f"result of {c.alpha}" for c in cfgs]

    monkeypatch.setattr(hypernb.train, "run", fake_run)
    a = dict(task="mnist-mlp", optimizer="sgd", alpha=0.1, epochs=1, profile="smoke")
    b = {**a, "alpha": 0.2}
    out = common.run_grid(s, [a, b, dict(a)])
    assert out == ["result of 0.1", "result of 0.2", "result of 0.1"] and len(seen) == len(set(seen)) == 2


def test_the_step_size_figure_draws_identical_curves_once_and_names_every_method(tmp_path):
    """Schedule-Free's lr tuned on validation can be its default: the two runs then log the same
    numbers, and two lines drawn on top of each other would hide one method."""
    from types import SimpleNamespace

    from hypernb.study.common import Setup
    from hypernb.study.lrfree import step_size_figure

    def result(key, values):
        return SimpleNamespace(seeds=[SimpleNamespace(trajectory={"step": [0, 10, 20], key: values})])

    out = {"runs": {"Adam/SGD": result("alpha", [1e-3, 2e-3, -1e-4]),
                    "Schedule-Free AdamW (default lr)": result("step_size", [2.5e-3] * 3),
                    "Schedule-Free AdamW (lr tuned on validation)": result("step_size", [2.5e-3] * 3),
                    "Prodigy": result("step_size", [1e-6, 1e-2, 1e-2]), "DoG": result("step_size", [0.0, 1.0, 1.2]),
                    "Adam (α = 0.001)": result("alpha", [1e-3] * 3)}}
    s = Setup("06_vs_lr_free", "smoke", {"SEEDS": [0]}, tmp_path, tmp_path)
    fig = step_size_figure(s, "mnist-mlp", out)
    labels = [line.get_label() for line in fig.axes[0].lines]
    assert labels == ["Adam/SGD: α (learned)", "Schedule-Free AdamW (default lr = lr tuned on validation, the same "
                      "numbers): lr", "Prodigy: d·lr", "DoG: η"]
    assert len({line.get_color() for line in fig.axes[0].lines}) == 4  # no two alike (styles cycle as well)
    assert (tmp_path / "figures" / "mnist-mlp_step_size.png").exists()
    from hypernb.study.lrfree import _same_numbers_label

    assert _same_numbers_label([("Prodigy", "step_size"), ("DoG", "step_size")]) == \
        "Prodigy: d·lr = DoG: η (the same numbers)"  # methods of two families: each named as it is
