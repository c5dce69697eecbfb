# The README's commands: `make demo` (the main job, on a throwaway lab)
# and `make test` (the whole suite). Both set up what they need.
PYTHON ?= $(shell test -x /usr/bin/python3 && echo /usr/bin/python3 || echo python3)
VENV ?= .venv
PY := $(VENV)/bin/python
export PYTHONWARNINGS := ignore::DeprecationWarning

.PHONY: deps venv lint test unit integration e2e demo demo-clean images bench clean

deps:
	bin/host-packages

venv: $(VENV)/.installed

$(VENV)/.installed: requirements.txt | deps
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install --quiet -r requirements.txt
	touch $@

lint: venv
	$(VENV)/bin/ruff check _modules _states _utils _beacons test bench lab
	$(VENV)/bin/yamllint -s qmail pillar.example .yamllint
	find qmail -name '*.sls' | xargs $(VENV)/bin/salt-lint

unit: venv
	$(PY) -m pytest test/unit

integration: venv
	$(PY) -m pytest test/integration

e2e: venv
	$(PY) -m pytest test/e2e

test: lint
	$(PY) -m pytest -rs test

bench: venv
	$(PY) -m bench

demo: venv
	$(PY) -m lab demo

demo-clean: venv
	$(PY) -m lab clean

images: venv
	$(PY) -m lab images

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache
