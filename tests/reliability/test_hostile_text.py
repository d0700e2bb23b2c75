"""Why: documents are untrusted text. A document saying "ignore previous instructions", imitating the
item delimiters or forging another item's id must not change another item's stored answer. Planted
canary documents in packs of 1 and 5 on the real vLLM server are extracted by the engine with
its isolation of suspicious items (it re-runs suspicious items alone; nothing it stores may name
another document's canary), and at 5 also without it (how often an answer mentions another
document's canary: bounded here, a figure in benchmarks/reliability.py). The switch itself is checked
through the CLI and the Dagster job against the fault-injecting fake, which mixes items on demand."""

from __future__ import annotations

import json
import subprocess

import dagster as dg
import pytest
from dagster._core.instance.ref import InstanceRef

from tests.fakes.fault_injecting_openai_server import FaultInjectingOpenAIServer, borrowing
from tests.reliability.canary import measure
from tests.reliability.harness import ROOT, cli_project, query, write_corpus

# (pack size, packs, also without the mitigation): the pass without it is a figure
# (benchmarks/reliability.py) and its bound is checked once, at 5; 1 checks that a lone item is
# never flagged. A pack of 20 (7 min of this CPU server for one call) is benchmarks/reliability.py's;
# twenty documents in one real call are also tests/engine/test_engine_vllm.py's.
CANARY_CASES = [(1, 2, False), (5, 2, True)]


@pytest.mark.vllm
@pytest.mark.slow
@pytest.mark.timeout(2400)  # a busy shared server has taken over 30 min for one case
@pytest.mark.parametrize(
    ("size", "packs", "unprotected"), CANARY_CASES, ids=[str(c[0]) for c in CANARY_CASES]
)
def test_canary_contamination_by_pack_size(vllm_url, vllm_model, size, packs, unprotected):
    result = measure(vllm_url, vllm_model, size, packs=packs, before=unprotected, max_concurrency=4)
    after = result.after
    expected = packs * (size - 1 if size > 1 else 1)
    assert after.items + after.failed == expected
    if size == 1:
        assert after.contaminated == [] and after.rerun_alone == 0  # nothing else in the prompt
    else:
        # A hostile document's answer is never stored from a shared prompt: made in a pack, it is
        # flagged and made again alone (without the mitigation it is stored from its pack).
        assert all(n == 1 for n in after.hostile_pack_sizes.values()), after
    if result.before is not None:
        before = result.before
        assert before.items + before.failed == expected
        assert before.rerun_alone == 0
        # The 135M model does mix items sometimes; more than half would mean the defences are gone.
        assert before.rate <= 0.5, before.contaminated
    assert after.contaminated == [], "the engine stored an answer naming another document"


def _stored_names(db) -> dict[str, str]:
    rows = query(
        db, "SELECT doc_id, fields FROM extractions WHERE status = 'ok' AND corpus = 'canary'"
    )
    return {doc_id: json.loads(fields)["name"] for doc_id, fields in rows}


def _rerun_metadata(dagster_home) -> list[int]:
    with dg.DagsterInstance.from_ref(InstanceRef.from_dir(str(dagster_home))) as instance:
        events = instance.fetch_materializations(dg.AssetKey("biography_extractions"), limit=10)
        return [r.asset_materialization.metadata["run/rerun_alone"].value for r in events.records]


@pytest.mark.slow
@pytest.mark.parametrize("isolate", [True, False])
def test_isolation_switch_through_the_cli(tmp_path, isolate):
    docs = [
        {"id": f"d{i}", "text": f"The merchant Zq{'abcd'[i] * 4}ov sold salt in Basra."}
        for i in range(4)
    ]
    with FaultInjectingOpenAIServer(default=borrowing("d0", "name", "Zqbbbbov")) as fake:
        cli = cli_project(tmp_path, fake.url, "fake")
        write_corpus(cli.source_root, "canary", docs)
        cmd = cli.cmd("canary", items_per_call=4, max_concurrency=1)
        if not isolate:
            cmd.append("--no-isolate-suspicious")
        done = subprocess.run(
            cmd, cwd=ROOT, env=cli.env, capture_output=True, text=True, timeout=300
        )
        assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
        # Only the corpus's calls (the job may make others, e.g. an evaluation sample).
        pack_sizes = [len(r.ids) for r in fake.requests if set(r.ids) <= {d["id"] for d in docs}]
    names = _stored_names(cli.db)
    assert {k: v for k, v in names.items() if k != "d0"} == {
        f"d{i}": f"name-of-d{i}" for i in range(1, 4)
    }
    # The last lone call is the shadow audit's (one packed item re-extracted alone, not stored).
    if isolate:
        assert pack_sizes == [4, 1, 1] and names["d0"] == "name-of-d0"
        assert _rerun_metadata(cli.env["DAGSTER_HOME"]) == [1]
        assert "re-run alone" in done.stdout + done.stderr
    else:
        assert pack_sizes == [4, 1] and names["d0"] == "Zqbbbbov"
        assert _rerun_metadata(cli.env["DAGSTER_HOME"]) == [0]
