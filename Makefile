# Two entry points for a fresh machine (see README):  make study   and   make test
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
# the data root: $HYPERNB_DATA if set, else found by hypernb itself (README, "Data")
# make study: each notebook re-executed at the profile of its committed records (auto), reading them back;
# make study PROFILE=demo OUT=outputs/demo retrains at that profile into a fresh folder
PROFILE ?= auto
OUT ?=

.PHONY: setup study test bench clean

setup: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev]'
	$(PY) -m ipykernel install --sys-prefix --name python3 >/dev/null
	touch $@

study: setup
	$(PY) -m hypernb notebooks --profile $(PROFILE) $(if $(OUT),--out $(OUT))

# nbval re-executes the committed notebooks from the committed records (HYPERNB_TRAIN=0: nothing is
# trained, a missing record fails) and compares their tables and verdicts; figures go to a fresh folder.
# tests/test_study.py trains every notebook's smoke-profile runs for real (records), then renders every notebook.
# HYPERNB_REQUIRE_ORACLES=1: a missing oracle package (gdtuo) fails instead of skipping
test: setup
	HYPERNB_REQUIRE_ORACLES=1 HYPERNB_TRAIN=0 HYPERNB_OUT=$$(mktemp -d) $(PY) -m pytest tests notebooks --nbval-lax \
	  --nbval-current-env --nbval-sanitize-with tests/nbval_sanitize.cfg -p no:cacheprovider

bench: setup
	$(PY) benchmarks/step_overhead.py

clean:
	rm -rf $(VENV) outputs
