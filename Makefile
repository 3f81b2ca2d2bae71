# Two entry points for a fresh machine (see README):  make study   and   make test
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
# the verified offline copies next to this checkout (or at /work/shared/data), when present
SHARED_DATA := $(firstword $(foreach d,$(abspath ../shared/data) /work/shared/data,$(if $(wildcard $(d)/MNIST),$(d))))
export HYPERNB_DATA ?= $(if $(SHARED_DATA),$(SHARED_DATA),$(abspath data))
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

# the notebooks run on the smoke profile into a fresh folder, so nbval always retrains
test: setup
	HYPERNB_PROFILE=smoke HYPERNB_OUT=$$(mktemp -d) $(PY) -m pytest tests notebooks --nbval-lax --nbval-current-env \
	  --nbval-sanitize-with tests/nbval_sanitize.cfg -p no:cacheprovider

bench: setup
	$(PY) benchmarks/step_overhead.py

clean:
	rm -rf $(VENV) outputs
