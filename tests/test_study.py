"""The notebook layer: validated parameters, batch execution (the interactive panel: test_panel.py)."""
import pytest
import yaml

from conftest import require
from hypernb import batch, study


def namespace(**over):
    ns = dict(PROFILE="smoke", SEEDS=None, EPOCHS=None, OPTIMIZERS=["sgd"], HYPEROPTIMIZERS=["none", "sgd"],
              KAPPA={}, ACTIVATION="tanh", OUT_DIR="", INTERACTIVE=False, QUIET=True, In=[], _private=1)
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
    del ns["KAPPA"]
    with pytest.raises(ValueError, match=r"does not define \['KAPPA'\]"):
        study.start("01_mlp_mnist", ns)


def test_auto_profile(monkeypatch):
    monkeypatch.delenv("HYPERNB_PROFILE", raising=False)
    monkeypatch.delenv("CI", raising=False)
    assert study.resolve_profile("auto") == "demo"
    monkeypatch.setenv("CI", "true")
    assert study.resolve_profile("auto") == "smoke"
    monkeypatch.setenv("HYPERNB_PROFILE", "full")
    assert study.resolve_profile("auto") == "full"


def test_every_notebook_declares_what_its_module_validates():
    import papermill

    for path in batch.notebook_paths():
        declared = set(papermill.inspect_notebook(str(path)))
        assert declared == set(study.NOTEBOOKS[path.stem].SPEC), path.stem


def test_overrides_are_checked_against_the_notebooks(tmp_path):
    paths = batch.notebook_paths("01,04")
    per = batch.check_overrides(paths, {"EPOCHS": 2, "LEVEL": "rmsprop"})
    assert per[paths[0]] == {"EPOCHS": 2} and per[paths[1]] == {"EPOCHS": 2, "LEVEL": "rmsprop"}
    with pytest.raises(ValueError, match=r"\['EPOHCS'\] are not in the parameters cell"):
        batch.check_overrides(paths, {"EPOHCS": 2})
    f = tmp_path / "p.yaml"
    f.write_text(yaml.safe_dump({"SEEDS": [0, 1], "LEVEL": "sgd"}))
    assert batch.parse_overrides([["EPOCHS", "3"], ["LEVEL", "rmsprop"], ["KAPPA", "1e-5"]], [str(f)]) == \
        {"SEEDS": [0, 1], "LEVEL": "rmsprop", "EPOCHS": 3, "KAPPA": 1e-5}
    with pytest.raises(ValueError, match="no notebook matches"):
        batch.notebook_paths("09")


def test_notebooks_command_runs_papermill_and_writes_outputs(tmp_path, capsys):
    """The batch path end to end (the summary notebook is the quick one; nbval runs all five)."""
    from hypernb.cli import main

    assert main(["notebooks", "--profile", "smoke", "--only", "05", "--out", str(tmp_path), "--no-progress"]) == 0
    assert (tmp_path / "05_summary.ipynb").exists() and (tmp_path / "05_summary" / "parameters.json").exists()
    assert "all notebooks done" in capsys.readouterr().out
    assert main(["notebooks", "--only", "05", "-p", "EPOHCS", "3", "--out", str(tmp_path)]) == 2
