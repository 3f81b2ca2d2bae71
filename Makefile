# Two entry points for a fresh machine (see README):  make study   and   make test
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
# the data root: $HYPERNB_DATA if set, else found by hypernb itself (README, "Data")
PROFILE ?= demo

.PHONY: setup study test bench clean

setup: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev]'
	$(PY) -m ipykernel install --sys-prefix --name python3 >/dev/null
	touch $@

study: setup
	$(PY) -m hypernb notebooks --profile $(PROFILE)

# the notebooks run on the smoke profile into a fresh folder, so nbval always retrains;
# HYPERNB_REQUIRE_ORACLES=1: a missing oracle package (gdtuo) fails instead of skipping
test: setup
	HYPERNB_REQUIRE_ORACLES=1 HYPERNB_PROFILE=smoke HYPERNB_OUT=$$(mktemp -d) $(PY) -m pytest tests notebooks --nbval-lax --nbval-current-env \
	  --nbval-sanitize-with tests/nbval_sanitize.cfg -p no:cacheprovider

bench: setup
	$(PY) benchmarks/step_overhead.py

clean:
	rm -rf $(VENV) outputs
