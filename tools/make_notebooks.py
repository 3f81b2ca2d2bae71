"""Write the five study notebooks (and, with --execute, store their smoke-profile outputs).

    python tools/make_notebooks.py            # regenerate notebooks/0*.ipynb without outputs
    python tools/make_notebooks.py --execute  # … then run them on the smoke profile and keep the outputs

The committed notebooks carry smoke outputs; nbval (``make test``) re-executes them and compares the
cells marked ``# NBVAL_CHECK_OUTPUT``. Edit the notebooks here, or in JupyterLab and then rerun with
--execute only (the builder is not needed for small edits).
"""
from __future__ import annotations

import os
import sys
import tempfile
from pathlib import Path

import nbformat as nbf

ROOT = Path(__file__).resolve().parents[1]
NB = ROOT / "notebooks"
COMMON_PARAMS = '''OUT_DIR = ""              # empty: outputs/<profile>/{name}
INTERACTIVE = True        # build the exploration panel at the end (it trains only when you press Run)
QUIET = True              # no per-run progress bars'''
PROFILE_LINE = 'PROFILE = "auto"          # smoke | demo | full | auto (smoke under CI and tests, else demo)'


def md(text):
    return nbf.v4.new_markdown_cell(text.strip())


def code(text, tags=None):
    if tags and "parameters" in tags:  # papermill skips a parameter line holding a second "="
        bad = [line for line in text.splitlines() if line.count("=") > 1]
        assert not bad, f"'=' in a parameter comment: {bad}"
    cell = nbf.v4.new_code_cell(text.strip())
    if tags:
        cell.metadata["tags"] = list(tags)
    return cell


def setup_cells(name):
    return [code(f'''# NBVAL_CHECK_OUTPUT
%matplotlib inline
import matplotlib.pyplot as plt
from IPython.display import Image, Markdown, display

import hypernb
from hypernb import study

s = study.start("{name}", globals())   # validates the parameters above (a misspelt name is an error)
print(study.describe(s))''')]


def panel_cell(task, **kw):
    args = ", ".join(f"{k}={v!r}" for k, v in kw.items())
    return code(f'''if INTERACTIVE:  # nothing trains until you press Run; the same run() as the batch path above
    display(hypernb.widgets.explorer(task="{task}", profile=s.profile, {args}))''')


def claims_cells(module, args):
    return [
        md("## Verdicts\nEach claim, what the paper and the report say, what our runs say, and a verdict computed "
           "from the numbers above (smoke-profile runs are too short to decide anything, so they say *inconclusive*)."),
        code(f'''claims = study.{module}.claims(s, {args})
study.save_claims(s, claims)
display(study.claims_table(claims))'''),
    ]


def nb_01():
    name = "01_mlp_mnist"
    return [
        md("""
# 01 · MLP on MNIST: the paper's table, the report's claims, and Adam/Adam

*Gradient Descent: The Ultimate Optimizer* hyperoptimizes SGD, AdaGrad, RMSProp and Adam on MNIST with a
784-128-10 **tanh** MLP (batch 256, 30 epochs, 3 runs) and reports lower test error for every hyperoptimized
optimizer. The COMP6258 reproduction ran the same grid, but with a **ReLU** MLP, **one** seed, Adam's β2 = 0.99,
and two changes to the paper's code: it removed the squashing that keeps β1, β2 in (0, 1) (its Adam/Adam went
NaN from the first epoch) and half-removed RMSProp's, leaving γ at 0.879 instead of 0.99.

What this notebook does:
* trains every optimizer alone and with each hyperoptimizer (the paper's settings in the `full` profile);
* puts our test error next to the **paper's code** (the NeurIPS table itself could not be retrieved, so the
  column shows the official code's numbers as measured by Huang et al., 3 runs) and the **report**;
* checks the report's two claims about this grid, and shows why its Adam/Adam failed.
"""),
        code(f'''{PROFILE_LINE}
SEEDS = None              # None: the profile's (smoke [0]; demo and full [0, 1, 2])
EPOCHS = None             # None: the profile's (smoke 1, demo 3, full 30 as the paper)
OPTIMIZERS = ["sgd", "adagrad", "rmsprop", "adam"]
HYPEROPTIMIZERS = ["none", "sgd", "adagrad", "rmsprop", "adam"]
KAPPA = {{}}                # "optimizer/hyperoptimizer": κ overrides (default: the paper code's calibrated κ, else the report's)
ACTIVATION = "tanh"       # the paper's MLP; "relu" is the report's
{COMMON_PARAMS.format(name=name)}''', tags=["parameters"]),
        *setup_cells(name),
        md("""
## The grid
Step sizes are the paper's (SGD, AdaGrad, RMSProp α = 0.01; Adam α = 10⁻³, β = (0.9, 0.999)); κ is the value
the paper's code was calibrated with where one exists (SGD/SGD 0.01, Adam/SGD 10⁻⁵, RMSProp/SGD 10⁻⁴,
AdaGrad/SGD 0.01), otherwise the report's. Finished runs are cached under the output folder, so re-executing
the notebook (or a preempted batch job) resumes instead of retraining.
"""),
        code('''table, results = study.mnist.run_table(s)
display(study.mnist.comparison(s, table))'''),
        md("""
Test error in %. Our numbers are mean ± std over the seeds; *diverged* means every seed stopped on a
non-finite value (the run ends cleanly and records where). The paper-code column mixes 5- and 30-epoch runs,
as Huang et al. did; the report trained a different model (ReLU), so its column is context, not a target.
"""),
        code('''study.mnist.loss_figure(s, results)
plt.show()'''),
        code('''study.mnist.alpha_figure(s, results)
plt.show()'''),
        md("""
## Adam/Adam: why the report got NaN
Adam as a *hyperoptimizer* moves every stored value by about κ per step, whatever the gradient's size. The
paper stores β as atanh(2β − 1) and uses (tanh + 1)/2, so β can never reach 1. The report stored β raw: about
ten same-sign steps of κ = 10⁻³ push β2 from 0.99 past 1, then 1 − β2 < 0, v turns negative and the run is NaN.
Below, the report's own setting (its ReLU MLP, κ = 10⁻³, β2 = 0.99) with and without the squashing
(`AdamUnclamped` reproduces the report's change; it exists only for this demonstration).
"""),
        code('''demo = study.mnist.adam_adam_demo(s)
study.mnist.adam_figure(s, demo)
plt.show()
for label, r in demo.items():
    print(f"{label}: {r}")'''),
        *claims_cells("mnist", "table, demo"),
        md("## Explore\nPick an optimizer, a hyperoptimizer, α, μ, κ and the tower height, then press **Run**."),
        panel_cell("mnist-mlp", optimizer="adam", hyperoptimizer="sgd", alpha=1e-3, kappa=1e-5, height=1, epochs=1),
    ]


def nb_02():
    name = "02_resnet20_cifar10"
    return [
        md("""
# 02 · ResNet-20 on CIFAR-10: learning α and μ

The paper trains He et al.'s ResNet-20 with SGD + momentum over a grid of initial step sizes α0 ∈ {0.01, 0.1, 1}
and momenta μ0 ∈ {0.09, 0.9, 0.99}, learns both with an SGD hyperoptimizer, and finds that it **matches the
hand-engineered step schedule** of He et al. The report's committed CNN logs were run with **κ = 0**, i.e. plain
SGD with momentum (its "hyperoptimized" run at α 0.1 / μ 0.9 equals its baseline to the last digit), it used a
non-standard ResNet shortcut and no data augmentation. So this notebook is the first real check.

Here: ResNet-20 with option-A shortcuts (0.27 M parameters), crop + flip augmentation done on the device,
per-hyperparameter hyper-steps κ_α = α0²·10⁻³ and κ_μ = 10⁻⁶/(1 − μ0) (the values printed in the report's plot
titles, apparently the paper's), against fixed-hyperparameter baselines and He et al.'s schedule
(α = 0.1, divided by 10 at 50 % and 75 % of training).
"""),
        code(f'''{PROFILE_LINE}
SEEDS = None              # None: the profile's (smoke, demo [0]; full [0, 1, 2])
EPOCHS = None             # None: the profile's (smoke 1, demo 2, full 200)
ALPHAS = None             # initial α0 grid; None: the profile's (demo [0.01, 0.1, 1.0])
MUS = None                # initial μ0 grid; None: the profile's (demo [0.9]; full [0.09, 0.9, 0.99])
KAPPA = "report"          # "report": κ_α is α0²·1e-3 and κ_μ is 1e-6/(1-μ0) (SGDPerParam); or one number for SGD/SGD
DATASET = "auto"          # auto (full CIFAR-10 if present, else the 4,000/1,000 subset) | full | subset
{COMMON_PARAMS.format(name=name)}''', tags=["parameters"]),
        *setup_cells(name),
        code('''# NBVAL_CHECK_OUTPUT
task, note = study.cifar.task(s)
print(f"training on {note}")'''),
        code('''table, runs = study.cifar.run_all(s)
display(study.cifar.comparison(table))'''),
        md("""
The report's columns are 50-epoch κ = 0 runs (fixed) and uncommitted 200-epoch runs (hyperoptimized), both
without augmentation; ours use augmentation. On the subset or in short profiles, read the columns for their
shape across the grid, not for absolute accuracy.
"""),
        code('''study.cifar.accuracy_figure(s, table)
plt.show()'''),
        code('''study.cifar.trajectory_figure(s, runs)
plt.show()'''),
        *claims_cells("cifar", "table"),
        md("## Explore"),
        panel_cell("cifar10subset-resnet20", optimizer="sgd", hyperoptimizer="sgd", alpha=0.1, mu=0.9, kappa=1e-5,
                   height=1, epochs=1),
    ]


def nb_03():
    name = "03_char_rnn"
    return [
        md("""
# 03 · A character LSTM on *War and Peace*

The paper reports that hyperoptimizing Adam's step size makes a char-RNN's loss "converge so much faster".
The report's LSTM plateaued at **3.12 nats/char** with 16 % accuracy for every setting, and concluded that no
hyperoptimizer beat the baseline. The cause is in its data pipeline: it split the text with `random_split` over
**character positions**, so the model saw characters in random order. With no context to learn from, the best
possible loss is the entropy of the character frequencies, about 3.1 nats.

Here: a contiguous split (first 90 % of the text trains, last 10 % validates), windows of consecutive characters,
a 2-layer LSTM(128) as in the report, Adam_α (only α learned, as in the paper) with and without an Adam
hyperoptimizer for α0 ∈ {10⁻⁴, 2·10⁻³, 10⁻²}, the sensitivity to κ, the sign-safe α (stored as log α) against
the plain one, and the report's shuffled data for comparison.
"""),
        code(f'''{PROFILE_LINE}
SEEDS = None              # None: the profile's
EPOCHS = None             # None: the profile's (smoke 1, demo 2, full 50)
ALPHAS0 = None            # initial α grid; None: the profile's (demo [1e-4, 2e-3, 1e-2])
KAPPAS = None             # κ grid for the sensitivity runs; None: the profile's (demo [1e-4, 1e-3, 1e-2])
KAPPA = 1e-3              # κ of the Adam hyperoptimizer in the α0 comparison
TRAIN_CHARS = None        # use the first N training characters; None: the profile's (demo 600,000; full all)
{COMMON_PARAMS.format(name=name)}''', tags=["parameters"]),
        *setup_cells(name),
        code('''runs = study.charrnn.run_all(s)
df = study.charrnn.table(s, runs)
display(df)'''),
        md("Losses in nats per character on the held-out last 10 % of the book (bits = nats / ln 2)."),
        code('''fig, fig_shuffled = study.charrnn.figures(s, runs)
plt.show()'''),
        *claims_cells("charrnn", "runs, df"),
        md("## Explore"),
        panel_cell("warpeace-lstm", optimizer="adambaydin", hyperoptimizer="adam", alpha=2e-3, kappa=1e-3, height=1,
                   epochs=1, train_limit=200_000),
    ]


def nb_04():
    name = "04_towers"
    return [
        md("""
# 04 · Towers of hyperoptimizers

Stacking hyperoptimizers (SGD / SGD / SGD / …) is the paper's most striking idea: each level learns the step size
of the level below, and the paper reports that **taller towers become insensitive to the initial step size**,
at a cost of **1–2 % of run time per level**. Its tower protocol starts every level at the same α0. The report
built towers of RMSProp levels with a step-size rule of its own, κ_ℓ = α0 / (100 (1 + ℓ)), and found that height
helps only when α0 is too small, saturating after 1–3 levels; it could not measure time.

Here: MLP towers of SGD levels (the report's RMSProp levels with `LEVEL = "rmsprop"`) of height 0–20 plus one
of height 50, for α0 ∈ {1, 10⁻², 10⁻⁴, 10⁻⁶}, with both κ rules; and the measured time and memory per step as
the tower grows.
"""),
        code(f'''{PROFILE_LINE}
SEEDS = None              # None: the profile's
EPOCHS = None             # None: the profile's (smoke, demo 1; full 20 as the report)
HEIGHTS = None            # None: the profile's (demo [0, 1, 2, 3, 5, 10, 20]; full 0..20)
TALL_HEIGHT = 50          # one more, very tall tower per α0 (None to skip)
ALPHAS0 = None            # None: the profile's (demo and full [1.0, 1e-2, 1e-4, 1e-6])
KAPPA_RULES = ["paper", "report"]   # paper: every level starts at α0; report: α0 / (100(1+ℓ))
LEVEL = "sgd"             # the optimizer of every hyper level ("rmsprop" as the report)
BATCH_SIZE = 1024         # as the report's tower runs
ACTIVATION = "relu"       # as the report's tower runs
COST_HEIGHTS = None       # heights whose step time and memory are measured; None: the profile's
{COMMON_PARAMS.format(name=name)}''', tags=["parameters"]),
        *setup_cells(name),
        code('''df = study.towers.run_all(s)
study.towers.accuracy_figure(s, df)
plt.show()'''),
        code('''display(study.towers.sensitivity(df))'''),
        md("""
## What a level costs, measured
Median time of a whole training step (forward, backward, step) of the MNIST MLP at batch 256 for SGD towers of
each height, next to plain `torch.optim.SGD` measured alongside, and the memory held between steps (model,
gradients and optimizer state, counted exactly). `benchmarks/step_overhead.py` gives the full comparison with
`torch.optim` and the paper's package.
"""),
        code('''cost = study.towers.costs(s)
display(cost)
study.towers.cost_figure(s, cost)
plt.show()
print(f"each extra level adds {study.towers.per_level_percent(cost):.2f} % of the SGD/SGD step")'''),
        *claims_cells("towers", "df, cost"),
        md("## Explore"),
        panel_cell("mnist-mlp", optimizer="sgd", hyperoptimizer="sgd", alpha=1e-2, kappa=1e-2, height=3, epochs=1),
    ]


def nb_05():
    name = "05_summary"
    return [
        md("""
# 05 · Summary: paper, report and ours, claim by claim

This notebook reads what notebooks 01–04 wrote (their `claims.json`, tables and figures) from the same output
folder and lists every claim with the paper's and the report's statement, our measurement, a verdict and the
figure behind it. Run the other notebooks first (`python -m hypernb notebooks` runs all five in order).
"""),
        code(f'''{PROFILE_LINE}
RESULTS_DIR = ""          # where notebooks 01-04 wrote their results; empty: outputs/<profile>/
SWEEPS = ["../benchmarks/results_h200_mnist_full.csv"]   # sweep folders or collected CSVs to show (relative to notebooks/)
{COMMON_PARAMS.format(name=name)}''', tags=["parameters"]),
        *setup_cells(name),
        code('''claims, missing = study.summary.load_claims(study.summary.results_dir(s))
if missing:
    print("not run yet (no claims.json):", ", ".join(missing))
print(study.summary.verdict_counts(claims))'''),
        code('''display(study.summary.styled(study.claims_table(claims)))'''),
        md("## The evidence, claim by claim"),
        code("study.summary.show_evidence(s, claims)"),
        md("""
## Sweeps
Results collected from sweeps (`python -m hypernb collect DIR`), e.g. full-profile runs from a GPU or a
cluster. The default is the paper's MNIST pairs, trained for 30 epochs on an NVIDIA H200 by
`benchmarks/gpu_run.sh` (one seed each).
"""),
        code('''from pathlib import Path

for name, table in study.summary.sweep_tables(SWEEPS, Path.cwd()):
    display(Markdown(f"**{name}**"))
    display(table if table is not None else Markdown("not found"))'''),
        md("## Explore\nTry any configuration yourself."),
        panel_cell("mnist-mlp", optimizer="sgd", hyperoptimizer="sgd", alpha=1e-2, kappa=1e-3, height=1, epochs=1),
    ]


BUILDERS = {"01_mlp_mnist": nb_01, "02_resnet20_cifar10": nb_02, "03_char_rnn": nb_03, "04_towers": nb_04,
            "05_summary": nb_05}


def write_all() -> list[Path]:
    paths = []
    for name, build in BUILDERS.items():
        nb = nbf.v4.new_notebook()
        nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3 (ipykernel)", "language": "python"}
        nb.metadata["language_info"] = {"name": "python"}
        nb.cells = build()
        path = NB / f"{name}.ipynb"
        nbf.write(nb, path)
        paths.append(path)
    return paths


def execute(paths) -> None:
    """Run each notebook on the smoke profile and store its outputs in place (for nbval)."""
    from nbclient import NotebookClient

    out = tempfile.mkdtemp(prefix="hypernb-smoke-")
    os.environ.update(HYPERNB_PROFILE="smoke", HYPERNB_OUT=out)
    for path in paths:
        nb = nbf.read(path, as_version=4)
        NotebookClient(nb, timeout=1800, kernel_name="python3", resources={"metadata": {"path": str(NB)}}).execute()
        nb.metadata.pop("widgets", None)  # widget state is not a result (and is large)
        nbf.write(nb, path)
        print(f"executed {path.name}")


if __name__ == "__main__":
    written = write_all()
    if "--execute" in sys.argv:
        execute(written)
