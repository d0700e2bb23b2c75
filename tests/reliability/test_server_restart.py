"""Why: the inference server dies too (OOM, a redeploy). Killing our own vLLM server in the middle of a
CLI run must end the run either through the backend's retries or with a clear "server unavailable"
failure that keeps finished calls stored and leaves unfinished documents pending; with a server
back, the next run finishes exactly those. Kills a server of its own (the shared one must not be
killed); the next run goes to the session's server (same model), which saves a second server start.
Only the stored rows are checked, so the task is the two-field SHORT_TASK (short answers)."""

from __future__ import annotations

import pytest

from extraction_assets import serve
from tests.pipeline.helpers import SHORT_TASK
from tests.reliability.harness import cli_project, short_docs, snapshot, wait_for, write_corpus

pytestmark = [pytest.mark.vllm, pytest.mark.slow]


def test_server_killed_mid_run_then_next_run_finishes(tmp_path, vllm_url, vllm_model):
    state = tmp_path / "server"
    config = serve.ServerConfig(
        port=serve.free_port(), state_dir=state, gpu=False, ready_timeout=600
    )
    handle = serve.start_server(config)
    try:
        cli = cli_project(tmp_path, handle.url, handle.model, tasks=SHORT_TASK)
        # ~1-4 s per two-field answer, one at a time: the run is still going when its server dies.
        n = 16
        write_corpus(cli.source_root, "restart", short_docs(n))
        log = tmp_path / "run1.log"
        proc = cli.popen("restart", log=log, items_per_call=1, max_concurrency=1)
        assert wait_for(lambda: snapshot(cli.db, "restart").calls >= 1, 600, proc, 0.5)
        assert proc.poll() is None, "the run finished before the server could be killed"
        serve.stop_server(state)  # SIGTERM then SIGKILL of the whole server process group
        proc.wait(timeout=300)
        output = log.read_text(errors="replace")
        mid = snapshot(cli.db, "restart")
        if proc.returncode != 0:
            assert "unavailable" in output and "stay pending" in output, output[-3000:]
            assert 1 <= len(mid.rows) < n
        cli.env.update(LLM_BASE_URL=vllm_url, LLM_MODEL=vllm_model)
        again = cli.run("restart", timeout=900, items_per_call=1, max_concurrency=4)
        assert again.returncode == 0, again.stdout[-3000:]
        final = snapshot(cli.db, "restart")
        assert len(final.rows) == n and final.duplicates == 0 and final.history == 0
        assert all(final.rows[i] == row for i, row in mid.rows.items() if row[0] == "ok")
    finally:
        serve.stop_server(state)
