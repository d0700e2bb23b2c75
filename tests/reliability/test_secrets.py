"""Why: an API key is a secret. With a planted key in LLM_API_KEY, a successful run and a run that fails
(server down) must not leave the key anywhere a user or an attacker reads: the CLI's stdout/stderr, the
Dagster instance (event log, run config, compute logs: every file under DAGSTER_HOME), materialisation
metadata, the resource configuration the UI shows (the repository snapshot the webserver serves),
the DuckDB store (every text column, and the file's bytes), the Parquet exports, error messages. A
recording proxy checks that the key did reach the server, so the search is for something that exists."""

from __future__ import annotations

import os
import secrets
from pathlib import Path

import dagster as dg
import pytest
from dagster._core.instance.ref import InstanceRef
from dagster._core.remote_representation.external_data import RepositorySnap
from dagster_shared.serdes import serialize_value

from tests.fakes.fault_injecting_openai_server import FaultInjectingOpenAIServer
from tests.reliability.harness import (
    RecordingProxy,
    cli_project,
    query,
    short_docs,
    write_corpus,
)


def files_containing(root: Path, needle: bytes) -> list[str]:
    hits = []
    for path in root.rglob("*"):
        if path.is_file():
            try:
                if needle in path.read_bytes():
                    hits.append(str(path))
            except OSError:
                pass
    return hits


def store_text_hits(db: Path, needle: str) -> list[str]:
    hits = []
    columns = query(
        db,
        "SELECT table_name, column_name FROM duckdb_columns() "
        "WHERE data_type IN ('VARCHAR', 'JSON') AND NOT internal",
    )
    for table, column in columns:
        n = query(
            db,
            f'SELECT count(*) FROM "{table}" WHERE CAST("{column}" AS VARCHAR) '
            "LIKE '%' || ? || '%'",
            [needle],
        )[0][0]
        if n:
            hits.append(f"{table}.{column}")
    return hits


@pytest.mark.slow
def test_planted_api_key_appears_nowhere(tmp_path, monkeypatch):
    key = f"sk-canary-{secrets.token_hex(12)}"
    with FaultInjectingOpenAIServer() as fake, RecordingProxy(fake.url) as proxy:
        cli = cli_project(tmp_path, proxy.url, "fake", LLM_API_KEY=key)
        write_corpus(cli.source_root, "secret", short_docs(6))
        ok = cli.run("secret", items_per_call=3)
        assert ok.returncode == 0, ok.stdout[-3000:] + ok.stderr[-3000:]
        assert any(c.authorization == f"Bearer {key}" for c in proxy.calls), "key not used"
    # The server is gone now: a run that fails, with its error messages.
    write_corpus(cli.source_root, "secret", short_docs(8))
    cli.env["LLM_TIMEOUT_S"] = "1"
    cli.env["LLM_MAX_RETRIES"] = "1"  # one retry's messages are enough; four only wait longer
    down = cli.run("secret", items_per_call=3)
    assert down.returncode != 0
    assert "unavailable" in down.stdout + down.stderr

    outputs = ok.stdout + ok.stderr + down.stdout + down.stderr
    assert key not in outputs
    # The key's tail alone must not leak either (a partially masked key is still a leak).
    assert key[-12:] not in outputs
    home, dagster_home = Path(cli.env["EXTRACTION_HOME"]), Path(cli.env["DAGSTER_HOME"])
    assert files_containing(dagster_home, key.encode()) == []
    assert files_containing(home, key.encode()) == []  # store file, exports, locks
    assert store_text_hits(cli.db, key) == []

    # Run config and metadata as the instance holds them.
    with dg.DagsterInstance.from_ref(InstanceRef.from_dir(str(dagster_home))) as instance:
        runs = instance.get_runs()
        assert len(runs) == 2
        for run in runs:
            assert key not in serialize_value(run.run_config)
            for record in instance.get_records_for_run(run.run_id).records:
                assert key not in serialize_value(record.event_log_entry)

    # The resource configuration the webserver shows: the repository snapshot of the definitions.
    for k, v in cli.env.items():
        monkeypatch.setenv(k, v)
    from extraction_assets.project import build_definitions
    from extraction_assets.settings import Settings

    defs = build_definitions(Settings.from_env())
    snap = serialize_value(RepositorySnap.from_def(defs.get_repository_def()))
    assert "LLM_API_KEY" in snap, "the snapshot shows the key as an env var reference"
    assert key not in snap
    assert key not in repr(defs.resources["llm"]) and key not in str(defs.resources["llm"])
    assert os.environ["LLM_API_KEY"] == key
