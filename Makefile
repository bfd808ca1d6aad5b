# Two commands do everything on a fresh clone: `make run` and `make test`.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
PORT ?= 8000
# The browser tests use Debian's Chromium (Playwright's own download does not work here).
CHROMIUM := /usr/bin/chromium
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

STAGE ?= dev

.PHONY: run demo test test-big bench bench-capacity bench-aggregation deploy deploy-check destroy clean

$(STAMP): requirements.txt requirements-dev.txt pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade "pip<26.3"  # chalice 1.34 asks for pip < 26.3
	$(PY) -m pip install --quiet -r requirements-dev.txt
	$(PY) -m pip install --quiet --no-deps -e .
	touch $(STAMP)

run: $(STAMP) ## start moto, deploy infra/ onto it and serve the API on 127.0.0.1:$(PORT)
	$(PY) -m infra.local_stack --port $(PORT)

demo: $(STAMP) ## a client, 12 simulated workers and one job end to end over HTTP
	$(PY) -m examples.demo

# Quietly, without Recommends (they pull udev and Perl modules, which upgrade systemd and perl)
# and without upgrading anything already installed; apt's output goes to APT_LOG, shown on failure.
APT_LOG := artifacts/apt-chromium.log
APT_GET := $(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get -y -qq -o Dpkg::Use-Pty=0
APT_INSTALL := $(APT_GET) install --no-install-recommends --no-upgrade chromium

$(CHROMIUM):
	@mkdir -p $(dir $(APT_LOG))
	@echo "installing chromium (log: $(APT_LOG))"
	@$(APT_INSTALL) >$(APT_LOG) 2>&1 || ($(APT_GET) update >>$(APT_LOG) 2>&1 && \
	  $(APT_INSTALL) >>$(APT_LOG) 2>&1) || (tail -n 20 $(APT_LOG); exit 1)

# pytest-xdist runs the tests in one worker per core, a file at a time on a worker (so a
# file's module-wide stack or browser starts once); `-n 0` after `pytest` runs them in turn.
test: $(STAMP) $(CHROMIUM) ## type check, then unit, adapter, functional and e2e tests (installs Debian's chromium if missing)
	$(PY) -m mypy
	$(PY) -m pytest -n auto --dist loadfile

# The suite runs tests/functional/test_big_job.py at 1,000 items; this runs it at the 20,000
# items of a scale run on moto (about 20 minutes here, past the suite's budget), phases printed.
test-big: $(STAMP) ## the big-job functional test at 20,000 items on the moto stack (~20 min)
	BIG_JOB_ITEMS=$(or $(BIG_JOB_ITEMS),20000) $(PY) -m pytest -p no:cacheprovider -s tests/functional/test_big_job.py

bench: $(STAMP) ## AWS requests per judgment and import time
	$(PY) -m bench.requests_per_judgment
	$(PY) -m bench.import_time

bench-capacity: $(STAMP) ## DynamoDB write and read units per judgment on the local stack (6-12 minutes)
	$(PY) -m bench.capacity

bench-aggregation: $(STAMP) ## our aggregation against crowd-kit on ../shared/datasets (bench-only deps)
	$(PY) -m pip install --quiet -r requirements-bench.txt
	$(PY) -m bench.aggregation
	$(PY) -m bench.text_aggregation

deploy: $(STAMP) ## cfn-lint, the data stack, config.json, chalice deploy (STAGE=dev|prod)
	$(PY) -m infra.deploy deploy --stage $(STAGE)

deploy-check: $(STAMP) ## drift between the stack outputs and .chalice/config.json
	$(PY) -m infra.deploy check --stage $(STAGE)

destroy: $(STAMP) ## chalice delete, then the stack and its data (STAGE=dev|prod)
	$(PY) -m infra.deploy destroy --stage $(STAGE) --delete-data

clean:
	rm -rf $(VENV) .pytest_cache .hypothesis
