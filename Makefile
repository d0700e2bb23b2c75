# Entry points: `make test` is what CI runs (.ci/run); `make demo` shows the whole thing.
PY := .venv/bin/python
DAGSTER_HOME ?= $(CURDIR)/.dagster_home

.PHONY: setup test demo serve stop status ui

setup:
	scripts/bootstrap

test: setup
	$(PY) -m pytest -q

demo: setup
	$(PY) -m extraction_assets demo

# The shared local vLLM server (state in $${EXTRACTION_HOME:-~/.cache/extraction-assets}/server).
serve: setup
	$(PY) -m extraction_assets serve start

stop:
	$(PY) -m extraction_assets serve stop

status:
	$(PY) -m extraction_assets serve status

ui: setup
	mkdir -p "$(DAGSTER_HOME)"
	DAGSTER_HOME="$(DAGSTER_HOME)" .venv/bin/dagster dev -w workspace.yaml
