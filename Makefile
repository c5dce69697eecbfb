# The README's commands: `make demo` (the main job, on a throwaway lab)
# and `make test` (the whole suite). Both set up what they need.
PYTHON ?= $(shell test -x /usr/bin/python3 && echo /usr/bin/python3 || echo python3)
VENV ?= .venv
PY := $(VENV)/bin/python
export PYTHONWARNINGS := ignore::DeprecationWarning
# Python caches compiled modules (an environment may turn that off): the
# tests load the formula's modules anew in every Salt call, and compiling
# them each time cost a sixth of the unit and integration tests' CPU.
unexport PYTHONDONTWRITEBYTECODE

.PHONY: deps venv lock lint test test-all test-times unit integration e2e demo demo-clean images bench clean

deps:
	bin/host-packages

venv: $(VENV)/.installed

# The packages of requirements.lock (bin/venv-packages: the venv of this
# lock kept beside the lab's images once it is made, $(VENV) a link to it;
# made from a wheel cache kept there too, without resolving anew).
$(VENV)/.installed: requirements.txt requirements.lock | deps
	$(PYTHON) bin/venv-packages venv $(VENV)
	touch $@

# requirements.txt resolved anew into requirements.lock (after editing it).
lock:
	$(PYTHON) bin/venv-packages lock

lint: venv
	$(VENV)/bin/ruff check _modules _states _utils _beacons test bench lab
	# What runs on minions must run on Debian 11's Python 3.9 too. vermin
	# takes bytes.decode for Python 2's str.decode (a false "incompatible").
	$(VENV)/bin/vermin -q -t=3.9- --no-tips --violations --eval-annotations \
		--exclude str.decode _modules _states _utils _beacons
	$(VENV)/bin/yamllint -s qmail pillar.example .yamllint
	find qmail -name '*.sls' | xargs $(VENV)/bin/salt-lint

unit: venv
	$(PY) -m pytest test/unit

integration: venv
	$(PY) -m pytest test/integration

e2e: venv
	$(PY) -m pytest test/e2e

# test: what CI runs on every change; test-all adds the tests marked slow
# (Debian 11 hosts, the mixed-release fleet, kill trials, long churn runs).
# JOBS pytest workers (pytest-xdist), one test file each at a time: a worker
# that gets a lab module starts a lab of its own (master, network, hosts),
# so lab modules run side by side while others wait on boots and SMTP.
JOBS ?= 3
test: lint
	$(PY) -m pytest -rfEs -m "not slow" -n $(JOBS) --dist loadfile test

# The same as test, and each module's wall time written to
# test/durations.json (the schedule: longest modules first), then the
# figures per folder and the ten slowest modules (bench/bench_suite.py).
test-times: lint
	$(PY) -m pytest -rfEs -m "not slow" -n $(JOBS) --dist loadfile --store-durations test
	$(PY) -m bench suite

# Everything, the long lab runs marked `slow` included.
test-all: lint
	$(PY) -m pytest -rfEs -n $(JOBS) --dist loadfile test

bench: venv
	$(PY) -m bench

# RELEASE: the Debian release of the demo's hosts (11, 12 or 13).
RELEASE ?= 13

demo: venv
	$(PY) -m lab demo --release $(RELEASE)

demo-clean: venv
	$(PY) -m lab clean

images: venv
	$(PY) -m lab images

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache
