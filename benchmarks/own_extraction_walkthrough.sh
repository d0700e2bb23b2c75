#!/usr/bin/env bash
# README "Your own extraction", step by step as a new user would, timed: from a fresh clone to a
# typed DuckDB table filled by the sensor-triggered run under `dg dev`, with the assets in the UI.
# Usage: benchmarks/own_extraction_walkthrough.sh CLONE_DIR   (LLM_BASE_URL: a running server)
set -euo pipefail
CLONE=$(cd "$1" && pwd)
BIN=$CLONE/.venv/bin
WORK=$(mktemp -d)
PORT=${PORT:-3391}
t0=$(date +%s)
stamp() { echo "$(( $(date +%s) - t0 )) s: $*"; }

# 1. A project.
mkdir -p "$WORK/my-letters/src/my_letters" && cd "$WORK/my-letters"
cat > pyproject.toml <<'TOML'
[project]
name = "my-letters"
version = "0.1.0"
dependencies = ["extraction-assets"]

[tool.dg]
directory_type = "project"

[tool.dg.project]
root_module = "my_letters"
registry_modules = ["extraction_assets.components"]
TOML
touch src/my_letters/__init__.py && mkdir -p src/my_letters/defs
cat > src/my_letters/definitions.py <<'PY'
from pathlib import Path
import dagster as dg

@dg.definitions
def defs() -> dg.Definitions:
    return dg.load_from_defs_folder(path_within_project=Path(__file__).parent)
PY
# 2. The task.
cat > src/my_letters/tasks.py <<'PY'
from pydantic import BaseModel, Field
from extraction_assets.tasks import ExtractionTask

class Letter(BaseModel):
    sender: str | None = Field(None, max_length=80, description="who wrote the letter")
    recipient: str | None = Field(None, max_length=80, description="to whom it is addressed")
    year: int | None = Field(None, ge=1000, le=2100, description="the year it was written")
    topics: list[str] = Field(default_factory=list, max_length=3, description="up to 3 subjects")

LETTER = ExtractionTask(
    name="letter",
    description="Sender, recipient, year and topics of a letter.",
    item_model=Letter,
    instructions="You read letters. For each letter give the sender, the recipient, the year it "
    "was written and up to three topics, as stated in the text; null when the text does not say.",
    output_tokens_per_item=120,
)
PY
export PYTHONPATH=src
"$BIN/extraction" tasks validate my_letters.tasks:LETTER
# 3. The documents (the example's three letters).
mkdir -p data/letters && cp "$CLONE"/examples/txt-notes/data/letters/*.txt data/letters/
# 4. The extraction.
"$BIN/dg" scaffold defs extraction_assets.components.Extraction notes
cat > src/my_letters/defs/notes/defs.yaml <<'YAML'
type: extraction_assets.components.Extraction

attributes:
  name: notes
  source_root: data
  task: my_letters.tasks:LETTER
  recipe: {items_per_call: 1, max_concurrency: 8}
  sensor: true
  schedule: false
YAML
"$BIN/dg" check defs
stamp "project, task, documents, defs.yaml written and checked"
# 5. Run it: dg dev (webserver + daemon); the sensor adds the partition and runs it.
export DAGSTER_HOME=$WORK/dagster_home EXTRACTION_SENSOR_INTERVAL_S=${EXTRACTION_SENSOR_INTERVAL_S:-30}
mkdir -p "$DAGSTER_HOME" && printf 'telemetry:\n  enabled: false\n' > "$DAGSTER_HOME/dagster.yaml"
"$BIN/dg" dev -h 127.0.0.1 -p "$PORT" > "$WORK/dg-dev.log" 2>&1 &
DEV=$!
trap 'kill -TERM $DEV 2>/dev/null; wait $DEV 2>/dev/null || true' EXIT
until curl -sf "http://127.0.0.1:$PORT/server_info" > /dev/null; do sleep 2; done
stamp "dg dev answers on http://127.0.0.1:$PORT"
query='{"query":"{ assetNodes { assetKey { path } } }"}'
curl -sf -H 'Content-Type: application/json' -d "$query" "http://127.0.0.1:$PORT/graphql" \
  | "$BIN/python" -c 'import json,sys; print("assets in the UI:", sorted("/".join(n["assetKey"]["path"]) for n in json.load(sys.stdin)["data"]["assetNodes"]))'
rows() { "$BIN/python" - <<'PY' 2>/dev/null || echo 0
import duckdb
con = duckdb.connect(".extraction/notes.duckdb", read_only=True)
print(con.execute("SELECT count(*) FROM letter_extractions").fetchone()[0])
PY
}
until [ "$(rows)" = 3 ]; do sleep 5; done
stamp "typed table filled: 3 rows in letter_extractions"
"$BIN/python" -c 'import duckdb; duckdb.connect(".extraction/notes.duckdb", read_only=True).sql("SELECT doc_id, sender, recipient, year, topics FROM letter_extractions").show()'
EXTRACTION_DB=.extraction/notes.duckdb "$BIN/extraction" export my_letters.tasks:LETTER -o letters.csv
stamp "done (work dir $WORK)"
