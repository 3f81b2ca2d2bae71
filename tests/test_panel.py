"""The interactive panel (hypernb.widgets) without a browser: it trains only on Run, each Run adds to the
comparison, finished runs are cached, divergence is reported in the command line's words, progress and
curves update every epoch, the notebooks' default settings train at every height 0–5, and a panel shown
where no widget frontend runs it is a static picture, never a ``VBox(...)`` repr. The same panel in a
real browser: tests/test_browser.py."""
import ast
import base64
import contextlib
import json
import struct
from pathlib import Path

import pytest

from conftest import require
from hypernb import viz, widgets
from hypernb.train import Result, SeedResult

ROOT = Path(__file__).resolve().parents[1]


def counting(monkeypatch):
    """Count the trainings (the panel calls hypernb.train.run)."""
    import hypernb.train

    calls, real = [], hypernb.train.run

    def run(cfg, **kw):
        calls.append(cfg)
        return real(cfg, **kw)

    monkeypatch.setattr(hypernb.train, "run", run)
    return calls


def png_size(data: bytes) -> tuple[int, int]:
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    return struct.unpack(">II", data[16:24])


def rows(panel, status=""):
    return panel.table.value.count(f"hypernb-row hypernb-row-{status}")


def test_panel_trains_only_when_run_is_pressed(monkeypatch):
    require("mnist")
    calls = counting(monkeypatch)
    panel = widgets.explorer(task="mnist-mlp", profile="smoke", optimizer="sgd", hyperoptimizer="sgd", alpha=0.05,
                             kappa=1e-3, height=2, epochs=1)
    panel._repr_mimebundle_()
    assert calls == []  # building and displaying the panel (what papermill and nbval do) trains nothing
    entry = panel.run(None)
    assert len(calls) == 1 and calls[0].optimizer == "sgd/sgd*2" and calls[0].alpha == 0.05
    assert calls[0].kappa == 1e-3  # sgd above sgd: one κ at every level by default
    assert entry.status == "ok" and entry.result.seeds[0].status == "ok"
    assert "#1</b> ok" in panel.status.value and rows(panel, "ok") == 1


def test_panel_config_matches_the_batch_path():
    cfg = widgets.panel_config("mnist-mlp", "demo", "adam", "none", 1e-3, 0.5, 1e-5, 3, 2)
    assert cfg.optimizer == "adam" and cfg.mu == 0.0 and cfg.epochs == 2
    assert widgets.tower_string("sgd", "rmsprop", 3) == "sgd/rmsprop*3"
    assert widgets.tower_label("adam", "sgd", 1) == "adam/sgd"
    # κ rules: "paper"/"report" go to run() by name (as in a sweep), "decay" as one κ per level
    assert widgets.panel_config("mnist-mlp", "demo", "sgd", "sgd", 0.01, 0, 1e-3, 3, 1, kappa_rule="report").kappa \
        == "report"
    cfg = widgets.panel_config("mnist-mlp", "demo", "adam", "sgd", 1e-3, 0, 1e-5, 5, 1, kappa_rule="decay")
    assert cfg.kappa == pytest.approx([1e-5, 1e-13, 1e-21, 1e-29, 0.0], rel=1e-9)
    assert widgets.kappa_levels("report", 1e-3, 0.02, 2) == pytest.approx([0.02 / 200, 0.02 / 300])
    assert widgets.kappa_levels("paper", 1e-3, 0.02, 2) == [0.02, 0.02]
    assert widgets.kappa_levels("same", 1e-3, 0.02, 0) == []
    assert widgets.default_kappa_rule("adam", "sgd") == "decay"
    assert widgets.default_kappa_rule("sgd", "sgd") == widgets.default_kappa_rule("adam", "adam") == "same"
    with pytest.raises(ValueError, match="unknown κ rule"):
        widgets.explorer(kappa_rule="halving")
    with pytest.raises(ValueError, match="unknown config key"):
        widgets.explorer(train_limt=100)  # a typo in a fixed field fails when the panel is built
    with pytest.raises(ValueError, match=r"height \(the number of hyperoptimizer levels\) must be an integer >= 0"):
        widgets.explorer(height=-1)  # not the tower parser's "repeat count in 'sgd\*-1'"
    with pytest.raises(ValueError, match=r"\['lr'\]: the panel sets these itself"):
        widgets.explorer(lr=0.1)  # torch's name for the panel's own α slider


def test_panel_ranges_cover_the_notebooks_experiments():
    panel = widgets.explorer(task="mnist-mlp", profile="smoke")
    c = panel.controls
    assert (c["alpha"].min, c["alpha"].max) == (-6, 3)  # α from 1e-6 to 1e3 (04_towers: α0 up to 1)
    assert (c["kappa"].min, c["kappa"].max) == (-8, 0)
    assert (c["height"].min, c["height"].max) == (0, 20)
    panel = widgets.explorer(task="mnist-mlp", profile="smoke", alpha=1e-7, kappa=3.0, height=50)
    assert panel.controls["alpha"].value == 1e-7 and panel.controls["kappa"].value == 3.0
    assert panel.controls["height"].value == 50  # a notebook's own setting always fits its sliders


def test_each_run_adds_to_the_comparison_and_finished_runs_are_cached(monkeypatch):
    require("mnist")
    calls = counting(monkeypatch)
    panel = widgets.explorer(task="mnist-mlp", profile="smoke", optimizer="sgd", hyperoptimizer="sgd", alpha=0.01,
                             kappa=1e-3, height=1, epochs=1)
    first = panel.run()
    panel.controls["alpha"].value = 0.1
    second = panel.run()
    assert len(calls) == 2 and [r.number for r in panel.runs] == [1, 2] and rows(panel, "ok") == 2
    assert panel.label(first) == "#1 α=0.01" and panel.label(second) == "#2 α=0.1"  # labelled by what changed
    assert second.result.config["alpha"] == 0.1 and second.time_s > 0
    assert "test accuracy" in panel.table.value and "κ₁ = 1e-03" not in panel.table.value
    assert "α = " in panel._learned_text(second)  # the learned values at the end
    # moving back to a setting that ran shows it at once (highlighted), without training
    panel.controls["alpha"].value = 0.01
    assert len(calls) == 2 and "ran before as <b>#1</b>" in panel.status.value and panel._highlight is first
    assert "background:#fff3c4" in panel.table.value
    panel.clear()
    assert panel.runs == [] and len(panel.cache) == 2 and rows(panel) == 0
    assert panel.run() is first and len(calls) == 2 and panel.runs == [first]  # from the cache
    panel.controls["alpha"].value = 0.1  # moving to a cached setting puts it back into the comparison
    assert panel.runs == [first, second] and len(calls) == 2


def test_divergence_shows_the_command_lines_words_and_stays_in_the_comparison():
    require("mnist")
    panel = widgets.explorer(task="mnist-mlp", profile="smoke", optimizer="adam", hyperoptimizer="sgd", alpha=1e-3,
                             kappa=1e-5, height=3, epochs=1, kappa_rule="same")  # κ = 1e-5 at every level diverges
    entry = panel.run()
    assert entry.status == "diverged" and entry in panel.runs and rows(panel, "diverged") == 1
    seed = entry.result.seeds[0]
    cli = f"seed {seed.seed}: {seed.status} at step {seed.diverged_at_step}: {seed.reason}"  # hypernb/cli.py
    assert "at level 0" in seed.reason and "or the hyper-step size κ of the level above" in seed.reason
    import html

    assert html.escape(cli) in panel.message.value
    assert f"diverged at step {seed.diverged_at_step}, level 0" in panel.table.value
    label = [lbl for _, lbl, _, _ in panel._entries()][0]
    assert label.endswith("— diverged")  # the figures' legend marks it too
    other = widgets.explorer(task="mnist-mlp", profile="smoke", optimizer="sgd", hyperoptimizer="none", alpha=1e6,
                             epochs=1)
    exploded = other.run()  # ok under the divergence rule, and warned as the command line warns
    seed = exploded.result.seeds[0]
    assert exploded.status == "ok" and seed.warning and "finished, with a warning" in other.message.value
    assert html.escape(f"seed 0: warning: {seed.warning}") in other.message.value
    assert "ok, but the loss exploded early" in other.table.value


def test_progress_and_curves_update_after_every_epoch(monkeypatch):
    require("mnist")
    import hypernb.train

    real, seen = hypernb.train.run, []
    panel = widgets.explorer(task="mnist-mlp", profile="smoke", optimizer="sgd", hyperoptimizer="sgd", alpha=0.05,
                             kappa=1e-3, height=1, epochs=2)
    before = panel.figure.value

    def run(cfg, on_epoch_end=None, **kw):
        def hook(results, epoch):
            on_epoch_end(results, epoch)
            seen.append((panel.progress.value, panel.progress_text.value, panel.figure.value, panel.table.value))
        return real(cfg, on_epoch_end=hook, **kw)

    monkeypatch.setattr(hypernb.train, "run", run)
    panel.run()
    assert [s[0] for s in seen] == [1, 2]
    assert "epoch 1 of 2 done" in seen[0][1] and "training loss" in seen[0][1] and "test accuracy" in seen[0][1]
    assert "running (epoch 1 of 2 done)" in seen[0][3]
    assert seen[0][2] != before and seen[1][2] != seen[0][2]  # the figure was redrawn each epoch
    assert rows(panel, "ok") == 1 and panel.progress_text.value == ""


def notebook_panel_call(name: str) -> dict:
    """The literal keyword arguments of the ``explorer(...)`` call in a committed notebook's panel cell."""
    nb = json.loads((ROOT / "notebooks" / f"{name}.ipynb").read_text())
    for cell in reversed(nb["cells"]):
        src = "".join(cell["source"]) if isinstance(cell["source"], list) else cell["source"]
        if cell["cell_type"] != "code" or "explorer(" not in src:
            continue
        lines = [ln for ln in src.splitlines() if not ln.lstrip().startswith(("%", "!"))]
        for node in ast.walk(ast.parse("\n".join(lines))):
            if isinstance(node, ast.Call) and getattr(node.func, "attr", getattr(node.func, "id", "")) == "explorer":
                kwargs = {}
                for kw in node.keywords:
                    try:
                        kwargs[kw.arg] = ast.literal_eval(kw.value)
                    except ValueError:
                        pass  # e.g. profile=s.profile
                return kwargs
    raise AssertionError(f"notebooks/{name}.ipynb has no panel cell calling explorer(...)")


@pytest.mark.parametrize("notebook", ["01_mlp_mnist", "04_towers"])
def test_the_notebooks_default_panel_settings_train_at_every_height(notebook):
    """The committed notebook's panel, with its own default settings, trains at heights 0–5 (smoke profile;
    the demo profile was checked by hand for 01_mlp_mnist: all six heights train, test accuracy 92–96 % after the
    panel's one epoch)."""
    require("mnist")
    kwargs = notebook_panel_call(notebook)
    assert kwargs.get("task", "mnist-mlp") == "mnist-mlp"
    from hypernb.train import run

    panel = widgets.explorer(**{**kwargs, "profile": "smoke"})
    statuses = {}
    for height in range(6):
        panel.controls["height"].value = height
        cfg = panel.config()  # what Run trains (pressing it is tested above)
        assert cfg.optimizer.count("/") == (height > 0)
        result = run(cfg)
        statuses[height] = (cfg.optimizer, cfg.kappa, [(s.status, s.reason) for s in result.seeds])
    assert all(s == "ok" for _, _, seeds in statuses.values() for s, _ in seeds), statuses


def test_a_panel_without_a_widget_frontend_is_a_static_picture():
    panel = widgets.explorer(task="mnist-mlp", profile="smoke", optimizer="adam", hyperoptimizer="sgd", alpha=1e-3,
                             kappa=1e-5, height=2, epochs=1)
    from IPython.core.formatters import DisplayFormatter

    data, _ = DisplayFormatter().format(panel)  # what display(panel) stores in a notebook
    assert "application/vnd.jupyter.widget-view+json" in data  # a live frontend shows the panel itself
    assert "VBox" not in data["text/plain"] and "run the notebook to use the panel" in data["text/plain"]
    width, height = png_size(base64.b64decode(data["image/png"]))  # everyone else: a picture of it
    assert width >= 1000 and height >= 600  # 11.5 × 6.9 in at 100 dpi
    assert "κ₂ = 1e-13" in panel.header()  # the settings it shows, κ per level included
    # and what its κ rule means, for a reader who never sees the dropdown
    assert "κ rule decay (κ_ℓ = κ₁·d^(ℓ−1), d = 1e-08): κ₁ = 1e-05, κ₂ = 1e-13" in panel.header()
    assert [widgets.kappa_rule_text(r) for r in ("same", "paper", "report")] == [
        "same (κ_ℓ = κ₁)", "paper (κ_ℓ = α0)", "report (κ_ℓ = α0/(100(1+ℓ)))"]


def fake_result(alpha, loss, diverged_at=None, epochs=1):
    steps = list(range(10, 10 * len(loss) + 1, 10))
    seed = SeedResult(0, status="diverged" if diverged_at else "ok", diverged_at_step=diverged_at,
                      reason="non-finite hyperparameter 'alpha' at level 0" if diverged_at else None,
                      steps=steps, loss=loss,
                      trajectory={"step": [10 * i for i in range(len(alpha))], "alpha": alpha,
                                  "hyper.alpha": [1e-5] * len(alpha),
                                  "hyper.hyper.alpha": [1e-13] * len(alpha), "beta1": [0.9] * len(alpha)},
                      epochs=[{"epoch": e + 1, "test_acc": 0.5 + 0.1 * e} for e in range(epochs)])
    return Result({"task": "mnist-mlp", "optimizer": "adam/sgd*2"}, [seed], {}, {})


def test_figures_are_readable():
    # a learned α that crosses zero stays visible (symmetric log), a one-point curve is drawn
    r = fake_result([1e-3, 5e-3, -2e-3], [2.3], epochs=1)
    fig = viz.curves({"a": r}, "alpha", symlog=True)
    ax = fig.axes[0]
    assert ax.get_yscale() == "symlog" and min(ax.lines[0].get_ydata()) < 0
    fig = viz.curves({"a": r}, "loss")
    assert fig.axes[0].lines[0].get_marker() == "o"
    # a change too small for the value's own axis is shown as the change (notebook 02's μ − μ0)
    fig = viz.curves({"a": r}, "beta1", symlog=True, minus={"a": 0.9})
    assert list(fig.axes[0].lines[0].get_ydata()) == [0.0, 0.0, 0.0]
    assert viz.run_summary(r).axes[1].get_yscale() == "symlog"
    entries = [(1, "#1 α=0.001, a label long enough that it has to wrap in the legend instead of being cut", r, False),
               (2, "#2 α=0.01 — diverged", fake_result([1e-2, float("nan")], [2.3, float("inf")], 15), True)]
    fig = viz.panel_figure(entries)
    titles = [ax.get_title() for ax in fig.axes]
    assert "step size α in use (level 0, × schedule; symmetric log)" in titles
    alpha_ax = fig.axes[titles.index("step size α in use (level 0, × schedule; symmetric log)")]
    kappa_ax = fig.axes[titles.index("hyper levels' step sizes κ₁, κ₂, … (symmetric log)")]
    assert alpha_ax.get_yscale() == kappa_ax.get_yscale() == "symlog"
    legend_texts = [t.get_text().replace("\n   ", " ") for t in fig.axes[2].get_legend().get_texts()]
    assert legend_texts == [e[1] for e in entries]  # full labels, wrapped, never cut
    assert fig.dpi >= 90 and png_size(viz.figure_png(fig))[0] >= 1000
    assert viz.level_name("hyper.hyper.alpha") == "κ₂" and viz.level_name("beta2") == "β₂"


def test_examples_are_shown_from_the_start():
    """A notebook can pass Results it already has: they are in the comparison and in the static picture."""
    ok, bad = fake_result([1e-3, 2e-3, 3e-3], [2.3, 1.9]), fake_result([1e-2, float("nan")], [2.3], diverged_at=15)
    panel = widgets.explorer(task="mnist-mlp", profile="smoke", examples={"Adam/SGD (the notebook's run)": ok,
                                                                          "Adam/SGD, κ too large": bad})
    assert [(r.number, r.status) for r in panel.runs] == [(1, "ok"), (2, "diverged")]
    assert "#1 Adam/SGD (the notebook&#x27;s run)" in panel.table.value and rows(panel, "diverged") == 1
    assert panel.figure.value and png_size(panel.preview_png())[0] >= 1000


def test_a_slider_moved_back_finds_its_cached_run(monkeypatch):
    """A browser's log slider moved back to 1e-3 reads 0.000999999999999999; a rule's name, a number
    and a list that give every level the same κ are one run."""
    require("mnist")
    calls = counting(monkeypatch)
    panel = widgets.explorer(task="mnist-mlp", profile="smoke", optimizer="sgd", hyperoptimizer="sgd", alpha=1e-3,
                             kappa=1e-3, height=1, epochs=1, kappa_rule="same")
    first = panel.run()
    panel.controls["alpha"].value = 0.01
    panel.controls["alpha"].value = 0.000999999999999999
    assert "ran before as <b>#1</b>" in panel.status.value and panel._highlight is first
    assert panel.run() is first and len(calls) == 1
    panel.controls["kappa_rule"].value = "decay"  # height 1: κ₁ alone, the same run
    assert panel._highlight is first and panel.run() is first and len(calls) == 1
    key = widgets.Explorer._key
    same = widgets.panel_config("mnist-mlp", "smoke", "sgd", "sgd", 0.01, 0, 0.01, 2, 1, kappa_rule="same")
    paper = widgets.panel_config("mnist-mlp", "smoke", "sgd", "sgd", 0.01, 0, 1e-3, 2, 1, kappa_rule="paper")
    assert key(same) == key(paper)  # the paper's rule starts every level at α0 = 0.01
    other = widgets.panel_config("mnist-mlp", "smoke", "sgd", "sgd", 0.01, 0, 1e-3, 2, 1, kappa_rule="same")
    assert key(other) != key(same)


def test_the_message_belongs_to_the_run_shown():
    require("mnist")
    panel = widgets.explorer(task="mnist-mlp", profile="smoke", optimizer="adam", hyperoptimizer="sgd", alpha=1e-3,
                             kappa=1e-5, height=1, epochs=1)
    panel.run()
    panel.controls["height"].value = 3
    panel.controls["kappa_rule"].value = "same"  # κ = 1e-5 at every level diverges
    assert panel.run().status == "diverged" and "diverged" in panel.message.value
    panel.controls["height"].value = 1
    assert "ran before as <b>#1</b>" in panel.status.value and panel.message.value == ""
    panel.controls["height"].value = 3
    assert "diverged" in panel.message.value  # its own message again


def test_the_kappa_rule_follows_the_optimizer_menus():
    panel = widgets.explorer(task="mnist-mlp", profile="smoke", optimizer="adam", hyperoptimizer="sgd", height=3)
    assert panel.controls["kappa_rule"].value == "decay"
    panel.controls["optimizer"].value = "sgd"  # SGD above SGD trains at every height with one κ
    assert panel.controls["kappa_rule"].value == "same" and panel.kappas() == [1e-3] * 3
    panel.controls["optimizer"].value = "rmsprop"
    assert panel.controls["kappa_rule"].value == "decay"
    panel.controls["hyperoptimizer"].value = "none"
    assert panel.controls["height"].disabled and panel.settings()["height"] == 0


@pytest.mark.parametrize("given, match", [
    (dict(alpha=0), r"alpha must be a number > 0 \(its slider is logarithmic"),
    (dict(kappa=0.0), r"kappa must be a number > 0 .*use height=0 or hyperoptimizer='none'"),
    (dict(kappa=float("nan")), r"kappa must be a number > 0"),
    (dict(alpha="0.1"), r"alpha must be a number > 0"),
])
def test_values_a_slider_cannot_show_are_refused(given, match):
    with pytest.raises(ValueError, match=match):
        widgets.explorer(**given)


def test_a_device_this_machine_lacks_is_refused_when_the_panel_is_built():
    import torch

    if torch.cuda.is_available():
        pytest.skip("this machine has a CUDA GPU")
    with pytest.raises(ValueError, match="device='cuda' but no CUDA GPU is available"):
        widgets.explorer(device="cuda")


def test_an_interrupted_run_is_marked_and_the_interrupt_goes_on(monkeypatch):
    """Kernel → Interrupt stops a run: it stays in the comparison, marked, the buttons work again, and
    the KeyboardInterrupt reaches the caller (the panel's step bar, an Output widget, would swallow it)."""
    import hypernb.train

    def run(cfg, on_epoch_end=None, **kw):
        seed = fake_result([1e-3], [2.3]).seeds[0]
        seed.epochs[0]["train_loss"] = 2.3
        on_epoch_end([seed], 0)
        raise KeyboardInterrupt

    monkeypatch.setattr(hypernb.train, "run", run)
    monkeypatch.setattr(widgets, "_in_kernel", lambda: True)  # the step bar is an Output widget
    panel = widgets.explorer(task="mnist-mlp", profile="smoke", epochs=3)
    with pytest.raises(KeyboardInterrupt):
        panel.run()
    entry = panel.runs[0]
    assert entry.status == "interrupted" and rows(panel, "interrupted") == 1
    assert "interrupted after 1 epoch(s)" in panel.table.value and "interrupted" in panel.status.value
    assert not panel._busy and not panel.run_button.disabled and panel.progress_text.value == ""
    assert panel.cache == {}  # not finished: Run trains it again


def test_learned_values_are_those_that_moved_and_colours_do_not_repeat_before_20():
    def result(trajectory):
        seed = SeedResult(0, status="ok", steps=[10], loss=[2.3], epochs=[{"epoch": 1, "test_acc": 0.5}],
                          trajectory={"step": [0, 10], "alpha": [1e-3, 2e-3], "hyper.alpha": [1e-5, 1e-5],
                                      **trajectory})
        return Result({"task": "mnist-mlp", "optimizer": "x/sgd"}, [seed], {}, {})

    assert viz.learned_momenta(result({"beta1": [0.9, 0.9], "beta2": [0.999, 0.999]})) == []  # Adam_α: fixed β
    assert viz.learned_momenta(result({"gamma": [0.99, 0.98]})) == ["gamma"]  # RMSProp's γ
    assert viz.learned_momenta(result({"mu": [0.0, 0.0]})) == []
    assert viz.learned_momenta(result({"mu": [0.9, 0.91], "beta1": [0.9, 0.9]})) == ["mu"]
    assert len(set(viz.PANEL_COLORS)) == 20
    fig = viz.panel_figure([(n, f"#{n} run", result({"gamma": [0.99, 0.98]}), False) for n in range(1, 21)])
    colours = [line.get_color() for line in fig.axes[2].get_legend().get_lines()]
    assert len(set(colours)) == 20
    mom = [ax for ax in fig.axes if ax.get_title().startswith("learned μ, γ or β")][0]
    assert mom.lines and mom.get_legend() is not None  # γ drawn, its line styles keyed on its own axes


def test_a_batched_examples_time_says_it_was_shared():
    r = fake_result([1e-3, 2e-3], [2.3])
    r.seeds[0].time_s, r.seeds[0].trained_with = 40.0, 10
    panel = widgets.explorer(task="mnist-mlp", profile="smoke", examples={"Adam (batched)": r})
    assert "40.0\u00a0s, batched with 9 other run(s)" in panel.table.value


def _slow_run(started):
    """A train.run that records one epoch, then trains until something stops it (at most 20 s)."""
    import time

    def run(cfg, on_epoch_end=None, **kw):
        seed = fake_result([1e-3], [2.3]).seeds[0]
        seed.epochs[0]["train_loss"] = 2.3
        on_epoch_end([seed], 0)
        started.set()
        t0 = time.monotonic()
        while time.monotonic() - t0 < 20:
            sum(range(1000))
        raise AssertionError("the interrupt never arrived")

    return run


@pytest.fixture
def sigint_ignored():
    """As ipykernel leaves SIGINT outside the message it handles (and for a click handled beside one)."""
    import signal

    previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
    yield
    signal.signal(signal.SIGINT, previous)


def test_kernel_interrupt_stops_a_run_in_the_main_thread(monkeypatch, sigint_ignored):
    """SIGINT while a Run trains stops it, also where the kernel ignored SIGINT, and the kernel's
    handler comes back afterwards."""
    import os
    import signal
    import threading

    import hypernb.train

    started = threading.Event()
    monkeypatch.setattr(hypernb.train, "run", _slow_run(started))
    before = signal.getsignal(signal.SIGINT)
    threading.Thread(target=lambda: started.wait(20) and os.kill(os.getpid(), signal.SIGINT), daemon=True).start()
    panel = widgets.explorer(task="mnist-mlp", profile="smoke", epochs=3)
    with pytest.raises(KeyboardInterrupt):
        panel.run()
    assert panel.runs[0].status == "interrupted" and signal.getsignal(signal.SIGINT) is before is signal.SIG_IGN


def test_kernel_interrupt_stops_a_run_on_a_kernel_subshell(monkeypatch, sigint_ignored):
    """JupyterLab runs a widget's click on a kernel subshell (a thread): the main thread receives SIGINT
    through the handler the panel installed by the kernel's loop, and the run stops in its thread."""
    import os
    import queue
    import signal
    import threading
    from types import SimpleNamespace

    import IPython

    import hypernb.train

    started, callbacks, outcome = threading.Event(), queue.Queue(), {}
    monkeypatch.setattr(hypernb.train, "run", _slow_run(started))
    loop = SimpleNamespace(add_callback=lambda fn, *args: callbacks.put((fn, args)))  # runs them on the main thread
    monkeypatch.setattr(IPython, "get_ipython", lambda: SimpleNamespace(kernel=SimpleNamespace(io_loop=loop)))
    panel = widgets.explorer(task="mnist-mlp", profile="smoke", epochs=3)
    before = signal.getsignal(signal.SIGINT)

    def click():
        try:
            panel.run()
        except KeyboardInterrupt:
            outcome["raised"] = True

    worker = threading.Thread(target=click)
    worker.start()
    fn, args = callbacks.get(timeout=20)
    fn(*args)  # the main thread installs the panel's handler
    assert started.wait(20) and signal.getsignal(signal.SIGINT) is not before
    os.kill(os.getpid(), signal.SIGINT)
    worker.join(20)
    fn, args = callbacks.get(timeout=20)
    fn(*args)  # … and puts the kernel's back
    assert not worker.is_alive() and outcome == {"raised": True} and panel.runs[0].status == "interrupted"
    assert signal.getsignal(signal.SIGINT) is before


@pytest.mark.parametrize("epochs, status", [(1, "ok"), (3, "interrupted")])
def test_an_interrupt_seen_only_at_an_epochs_end_stops_the_run_unless_it_was_the_last(monkeypatch, epochs, status):
    """Where the KeyboardInterrupt itself was lost, the epoch's end stops the run; after the last epoch the
    run is done: kept and cached, as if Interrupt had come a moment later."""
    import hypernb.train

    def run(cfg, on_epoch_end=None, **kw):
        result = fake_result([1e-3], [2.3])
        result.seeds[0].epochs[0]["train_loss"] = 2.3
        on_epoch_end(result.seeds, 0)
        return result

    @contextlib.contextmanager
    def asked_at_once(asked):
        asked.append(True)  # Interrupt pressed, its exception swallowed on the way
        yield

    monkeypatch.setattr(hypernb.train, "run", run)
    monkeypatch.setattr(widgets, "_interruptible", asked_at_once)
    panel = widgets.explorer(task="mnist-mlp", profile="smoke", epochs=epochs)
    if status == "ok":
        assert panel.run().status == "ok" and len(panel.cache) == 1
    else:
        with pytest.raises(KeyboardInterrupt):
            panel.run()
        assert panel.runs[0].status == "interrupted" and panel.cache == {}


def test_a_run_that_diverged_before_its_first_logged_loss_is_said_so_and_nothing_runs_past_its_step():
    """Its loss is [nan]: no curve, so the loss axis says where it diverged; the κ it kept fixed at the top
    level is not drawn past the step it diverged at (the trajectory logs on to the next logged step)."""
    r = fake_result([1e-2, float("nan")], [float("nan")], diverged_at=4)
    fig = viz.panel_figure([(1, "#1 κ too large — diverged", r, True)])
    titles = [ax.get_title() for ax in fig.axes]
    loss_ax = fig.axes[titles.index("training loss (mean over the logged steps)")]
    assert [t.get_text() for t in loss_ax.texts] == ["#1 diverged at step 4, before its first logged loss"]
    kappa_ax = fig.axes[titles.index("hyper levels' step sizes κ₁, κ₂, … (symmetric log)")]
    curves = [line for line in kappa_ax.lines  # (":" marks the divergence, black the zero line)
              if line.get_linestyle() in ("-", "--") and line.get_color() != "k"]
    drawn = [x for line in curves for x, y in zip(line.get_xdata(), line.get_ydata()) if y == y]
    assert len(curves) == 2 and drawn == [0, 0]  # not step 10, logged after it diverged


def test_the_step_size_axis_shows_alpha_times_its_schedule():
    """A fixed α with a cosine schedule is not flat: the step used falls with the multiplier, epoch by
    epoch (α logged after step s was used in step s: a step updates α, then the weights with it; the
    last step of epoch 1, step 20, ran at epoch 1's multiplier)."""
    seed = SeedResult(0, status="ok", steps=[10, 20, 30, 40], loss=[2.0, 1.5, 1.2, 1.0],
                      trajectory={"step": [0, 10, 20, 30, 40], "alpha": [0.1] * 5},
                      epochs=[{"epoch": e + 1, "step": 20 * (e + 1), "test_acc": 0.9} for e in range(2)])
    r = Result({"task": "mnist-mlp", "optimizer": "adam", "schedule": "cosine", "epochs": 2}, [seed], {}, {})
    x, y, _, _ = viz.step_size_in_use(r)
    assert list(x) == [0, 10, 20, 30, 40]
    assert y == pytest.approx([0.1, 0.1, 0.1, 0.05, 0.05])  # epoch 2 of 2: (1 + cos(π/2))/2 = 0.5
    peer = SeedResult(0, status="ok", trajectory={"step": [0, 10], "step_size": [1e-6, 3e-4]})
    assert list(viz.step_size_in_use(Result({"optimizer": "prodigy", "schedule": "cosine"}, [peer], {}, {}))[1]) \
        == [1e-6, 3e-4]  # a peer's own step size is already the scheduled lr's


def test_the_legend_and_table_say_what_a_warned_or_averaged_or_recorded_run_is():
    """A run at chance accuracy that counts as ok (its loss exploded early) is marked in the legend; the
    settings say over how many seeds numbers are averaged; an example names its profile and length; a
    peer's learned values are its own step size; at height 1 the κ rule is not named (it acts on none)."""
    exploded = fake_result([10.0, 10.0], [4e4, 5e4])
    exploded.seeds[0].first_step_loss = 2.3
    panel = widgets.explorer(task="mnist-mlp", profile="smoke", seeds=[0, 1, 2], height=1, kappa_rule="decay",
                             examples={"SGD at α 10": exploded})
    panel.runs.append(widgets.PanelRun(2, panel.settings(), result=fake_result([1e-3], [2.3]), status="ok"))
    assert [e[1] for e in panel._entries()][0] == "#1 SGD at α 10 — warning: the loss exploded early"
    assert "seeds 0, 1, 2 (numbers: their mean)" in panel._full(panel.runs[1]) and "mean of 3 seeds" in panel.header()
    assert "(decay)" not in panel.label(panel.runs[1]) and "κ rule" not in panel._full(panel.runs[1])
    peer = SeedResult(0, status="ok", trajectory={"step": [0], "step_size": [1e-6]}, final={"final_step_size": 3e-4})
    recorded = Result({"task": "mnist-mlp", "optimizer": "prodigy", "schedule": "cosine", "epochs": 30,
                       "profile": "full", "seeds": [0, 1]}, [peer], {"final_step_size": {"mean": 3e-4}}, {})
    example = widgets.PanelRun(3, None, result=recorded, status="ok", label="#3 Prodigy (cosine)")
    assert widgets.Explorer._full(panel, example) == ("prodigy, its default lr, cosine schedule, 30 epochs, "
                                                     "profile full, seeds 0, 1 (numbers: their mean)")
    assert panel._learned_text(example) == "its own step size = 0.0003 (estimated, not learned by κ)"


def test_a_slider_at_an_end_of_its_range_is_said_so():
    """A value typed beyond a slider's range is set to its end by the browser without a word (5e5 → 1e3):
    the panel says that the slider sits at its end and how to get a wider range."""
    panel = widgets.explorer(task="mnist-mlp", profile="smoke")
    assert panel.limits.value == ""
    panel.controls["alpha"].value = 1e5  # what the browser sends for 5e5 typed in: the slider's highest value
    assert "α = 1e+03 is its slider's highest value" in panel.limits.value and "explorer(alpha=" in panel.limits.value
    panel.controls["alpha"].value = 1e-3
    panel.controls["epochs"].value = 500
    assert "epochs = 50 is its slider's highest value" in panel.limits.value
    panel.controls["epochs"].value = 1  # the lowest epochs and height are ordinary choices: nothing said
    assert panel.limits.value == ""
    given = widgets.explorer(task="mnist-mlp", profile="smoke", alpha=1e-7, epochs=60)  # widened to these values
    assert given.limits.value == ""  # (not told to do what it just did)
