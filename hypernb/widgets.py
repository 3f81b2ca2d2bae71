"""The interactive panel: sliders for α, μ, κ and tower height, optimizer and hyperoptimizer menus,
and a Run button. It trains only when the button is clicked, so a notebook executed headlessly
(papermill, nbval) builds the panel and moves on; clicking runs the same ``run()`` as the batch path.
"""
from __future__ import annotations

OPTIMIZERS = ("sgd", "adagrad", "rmsprop", "adam", "adambaydin")
HYPEROPTIMIZERS = ("none", "sgd", "adagrad", "rmsprop", "adam")


def tower_string(optimizer: str, hyperoptimizer: str, height: int) -> str:
    """("adam", "sgd", 2) → "adam/sgd*2"; no hyperoptimizer or height 0 → the plain optimizer."""
    if hyperoptimizer == "none" or height == 0:
        return optimizer
    return f"{optimizer}/{hyperoptimizer}*{height}"


def panel_config(task: str, profile: str, optimizer: str, hyperoptimizer: str, alpha: float, mu: float,
                 kappa: float, height: int, epochs: int, **fixed):
    """The RunConfig a click runs (also what a batch job would run for the same values)."""
    from .config import RunConfig

    values = dict(task=task, profile=profile, optimizer=tower_string(optimizer, hyperoptimizer, height),
                  alpha=alpha, mu=mu if optimizer == "sgd" else 0.0, kappa=kappa, epochs=epochs, quiet=True)
    values.update(fixed)
    return RunConfig.from_dict(values)


def explorer(task: str = "mnist-mlp", profile: str = "smoke", optimizer: str = "sgd", hyperoptimizer: str = "sgd",
             alpha: float = 0.01, mu: float = 0.0, kappa: float = 1e-3, height: int = 1, epochs: int = 1, **fixed):
    """Build the panel (nothing is trained until Run is clicked)."""
    import ipywidgets as W
    import matplotlib.pyplot as plt

    from .train import run
    from .viz import run_summary

    style = {"description_width": "90px"}
    w_opt = W.Dropdown(options=OPTIMIZERS, value=optimizer, description="optimizer", style=style)
    w_hyp = W.Dropdown(options=HYPEROPTIMIZERS, value=hyperoptimizer, description="hyperoptimizer", style=style)
    w_alpha = W.FloatLogSlider(value=alpha, base=10, min=-6, max=1, step=0.25, description="α", style=style,
                               continuous_update=False, readout_format=".1e")
    w_mu = W.FloatSlider(value=mu, min=0.0, max=0.99, step=0.01, description="μ (SGD)", style=style,
                         continuous_update=False)
    w_kappa = W.FloatLogSlider(value=kappa, base=10, min=-8, max=0, step=0.25, description="κ", style=style,
                               continuous_update=False, readout_format=".1e")
    w_height = W.IntSlider(value=height, min=0, max=10, description="height", style=style, continuous_update=False)
    w_epochs = W.IntSlider(value=epochs, min=1, max=30, description="epochs", style=style, continuous_update=False)
    button = W.Button(description="Run", button_style="primary", icon="play")
    status = W.Label(value="Move the sliders, then press Run.")
    out = W.Output()

    def on_click(_):
        button.disabled = True
        try:
            cfg = panel_config(task, profile, w_opt.value, w_hyp.value, w_alpha.value, w_mu.value, w_kappa.value,
                               w_height.value, w_epochs.value, **fixed)
            status.value = f"training {cfg.optimizer} on {task} ({profile})…"
            result = run(cfg)
            status.value = repr(result)
            with out:
                out.clear_output(wait=True)
                run_summary(result)
                plt.show()
        except ValueError as e:  # a clear message in the panel, not a traceback
            status.value = f"error: {e}"
        finally:
            button.disabled = False

    button.on_click(on_click)
    controls = W.VBox([W.HBox([w_opt, w_hyp]), W.HBox([w_alpha, w_mu]), W.HBox([w_kappa, w_height]),
                       W.HBox([w_epochs, button]), status])
    panel = W.VBox([controls, out])
    panel.run = on_click  # lets tests press the button
    return panel
