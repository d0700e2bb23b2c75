# Entry points: `make test` is what CI runs (.ci/run, after `make lint`); `make demo` shows the whole
# thing; `make test-fast` is the developer loop (no vLLM server, no daemon, no browser: minutes).
PY := .venv/bin/python
# The same home and instance `make demo` writes to (extraction_assets/settings.py), so its runs show
# in the UI.
EXTRACTION_HOME ?= $(CURDIR)/.extraction
DAGSTER_HOME ?= $(EXTRACTION_HOME)/dagster_home

.PHONY: setup test test-fast lint demo serve stop status ui cluster-up cluster-down cluster-status

setup:
	scripts/bootstrap

# Tiers are pytest markers (pyproject.toml); tests/conftest.py marks every test using the server.
FAST := not vllm and not dagster_daemon and not browser
# The fast tier in parallel (pytest-xdist; tests that share a server are grouped in
# tests/conftest.py): one worker more than cores, since tests spend part of their time waiting on
# fakes' delays and subprocess starts (2 cores, at 791d566: 175 s with 3 workers, 185 s with 4;
# 249 s with 2 at 592fe40).
PARALLEL ?= -n $(shell echo $$(( $$(nproc) + 1 ))) --dist loadgroup
# The server tier on two workers sharing one vLLM server (tests/conftest.py): a continuous-batching
# server answers two tests' requests together in little more time than one's (docs/measurements.md).
SERVER_PARALLEL ?= -n 2 --dist loadgroup

# Two runs: the fast tier first (fails in minutes), then the server, daemon and browser tier.
test: setup
	$(PY) -m pytest -q $(PARALLEL) -m "$(FAST)" --durations=15
	$(PY) -m pytest -q $(SERVER_PARALLEL) -m "not ($(FAST))" --durations=15

test-fast: setup
	$(PY) -m pytest -q $(PARALLEL) -m "$(FAST)" --durations=10

# Strict typing where configured in pyproject.toml ([tool.mypy] overrides).
lint: setup
	.venv/bin/ruff check .
	.venv/bin/ruff format --check .
	$(PY) -m mypy

demo: setup
	$(PY) -m extraction_assets demo

# The local vLLM server (state in $(EXTRACTION_HOME)/server).
serve: setup
	$(PY) -m extraction_assets serve start

stop:
	$(PY) -m extraction_assets serve stop

status:
	$(PY) -m extraction_assets serve status

# Webserver + daemon (sensor, schedule, run queue) on http://127.0.0.1:3000, with the local server up.
ui: setup
	$(PY) -m extraction_assets serve start
	mkdir -p "$(DAGSTER_HOME)"
	test -f "$(DAGSTER_HOME)/dagster.yaml" || cp dagster.yaml "$(DAGSTER_HOME)/dagster.yaml"
	DAGSTER_HOME="$(DAGSTER_HOME)" .venv/bin/dg dev -h 127.0.0.1 -p 3000

# The local cluster (scripts/cluster): PostgreSQL, Redis, vLLM replicas, webserver + daemon, two
# Celery workers; state in $(EXTRACTION_CLUSTER_DIR) (default /tmp/extraction-cluster).
cluster-up: setup
	scripts/cluster start

cluster-down:
	scripts/cluster stop

cluster-status:
	scripts/cluster status
