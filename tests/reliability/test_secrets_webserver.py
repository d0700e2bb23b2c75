"""Why: the UI is where an API key would be seen. After a successful run and a failing one (server gone)
with a planted key in LLM_API_KEY and OPENAI_API_KEY, a real `dagster-webserver` is started on the same
instance, with the key in its environment as `make ui` would have it, and its GraphQL API (what the
UI's pages fetch) is asked for the definitions (assets, jobs, resources and their configured values),
every run's config (runConfigYaml) and tags, every run's event log with its metadata and errors,
the captured compute logs, and the assets' materialisation metadata. The key must appear in no
response. Controls make the search meaningful: the recording proxy saw the key as the bearer token
(the run used it), the webserver process has it in its environment, and the resource shows the
variable's name (so the page where a value would leak was read).

The runs go to the fault-injecting fake through a recording proxy, not to vLLM: what Dagster stores
and serves comes from our process whatever the server answers, the key only reaches the proxy on
the wire, and the fake makes the test independent of the shared CPU server (it needs no vLLM)."""

from __future__ import annotations

import json
import secrets
import subprocess
import sys
from pathlib import Path

import pytest

from tests.fakes.fault_injecting_openai_server import FaultInjectingOpenAIServer
from tests.reliability.harness import RecordingProxy, short_docs
from tests.ui.servers import REPO_ROOT, DagsterProject, dagster_project, write_corpus

pytestmark = [pytest.mark.dagster_daemon, pytest.mark.slow]

MD = """
fragment md on MetadataEntry {
  label description
  ... on TextMetadataEntry { text }
  ... on MarkdownMetadataEntry { mdStr }
  ... on JsonMetadataEntry { jsonString }
  ... on PathMetadataEntry { path }
  ... on UrlMetadataEntry { url }
  ... on IntMetadataEntry { intValue intRepr }
  ... on FloatMetadataEntry { floatValue }
  ... on BoolMetadataEntry { boolValue }
  ... on TableSchemaMetadataEntry { schema { columns { name type description } } }
}
"""
ERR = """
fragment err on PythonError { message stack causes { message stack } }
"""

DEFINITIONS = (
    MD
    + ERR
    + """
{
  repositoriesOrError {
    ... on RepositoryConnection { nodes {
      name
      location { name environmentPath }
      allTopLevelResourceDetails {
        name description resourceType
        configFields { name description isRequired configTypeKey defaultValueAsJson }
        configuredValues { key value type }
      }
      assetNodes {
        assetKey { path } description opNames jobNames groupName
        requiredResources { resourceKey }
        configField { name description configTypeKey defaultValueAsJson }
        metadataEntries { ...md }
      }
      jobs { name description runs { runId } }
      sensors { name description }
      schedules { name cronSchedule description }
    } }
    ... on PythonError { ...err }
  }
}
"""
)

RUNS = (
    ERR
    + """
{
  runsOrError {
    ... on Runs { results {
      runId status jobName runConfigYaml mode
      tags { key value }
      assetSelection { path }
    } }
    ... on PythonError { ...err }
  }
}
"""
)

LOGS = (
    MD
    + ERR
    + """
query($runId: ID!) {
  logsForRun(runId: $runId, limit: 10000) {
    __typename
    ... on EventConnection { events {
      __typename
      ... on MessageEvent { message level stepKey }
      ... on MaterializationEvent { assetKey { path } metadataEntries { ...md } }
      ... on ObservationEvent { metadataEntries { ...md } }
      ... on ExecutionStepFailureEvent { error { ...err } }
      ... on RunFailureEvent { error { ...err } }
      ... on EngineEvent { error { ...err } metadataEntries { ...md } }
      ... on HookErroredEvent { error { ...err } }
      ... on LogsCapturedEvent { fileKey stepKeys }
      ... on AssetCheckEvaluationEvent { evaluation { success metadataEntries { ...md } } }
    } }
    ... on PythonError { ...err }
  }
}
"""
)

CAPTURED = """
query($logKey: [String!]!) { capturedLogs(logKey: $logKey) { stdout stderr } }
"""

ASSET = (
    MD
    + """
query($key: AssetKeyInput!) {
  assetOrError(assetKey: $key) {
    ... on Asset { assetMaterializations(limit: 100) {
      runId partition metadataEntries { ...md }
    } }
  }
}
"""
)


def run_cli(project: DagsterProject, corpus: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "extraction_assets",
            "run",
            corpus,
            "--items-per-call",
            "3",
            "--max-concurrency",
            "2",
        ],
        cwd=REPO_ROOT,
        env=project.env,
        capture_output=True,
        text=True,
        timeout=600,
    )


def process_environ(pid: int) -> bytes:
    return Path(f"/proc/{pid}/environ").read_bytes()


def test_planted_key_appears_in_no_graphql_response(tmp_path):
    key = f"sk-canary-{secrets.token_hex(12)}"
    with dagster_project(tmp_path, "http://127.0.0.1:9/v1", "fake", "stopped") as project:
        # No step retries: the failing run fails at once (its retries would wait minutes).
        project.env.update(
            LLM_API_KEY=key, OPENAI_API_KEY=key, LLM_TIMEOUT_S="1", EXTRACTION_SERVER_RETRIES="0"
        )
        with FaultInjectingOpenAIServer() as fake, RecordingProxy(fake.url) as proxy:
            project.env["LLM_BASE_URL"] = proxy.url
            write_corpus(project.source_root, "secret", short_docs(6))
            ok = run_cli(project, "secret")
            assert ok.returncode == 0, ok.stdout[-3000:] + ok.stderr[-3000:]
            assert any(c.authorization == f"Bearer {key}" for c in proxy.calls), "key not used"
        # The server is gone: a failing run, with error messages in its event log.
        write_corpus(project.source_root, "secret", short_docs(8))
        down = run_cli(project, "secret")
        assert down.returncode != 0 and "unavailable" in down.stdout + down.stderr

        project.start_webserver()
        assert f"LLM_API_KEY={key}".encode() in process_environ(
            project.processes["webserver"].pid
        ), "control: the webserver does hold the key"

        responses: dict[str, object] = {}
        definitions = project.graphql(DEFINITIONS)
        responses["definitions"] = definitions
        runs = project.graphql(RUNS)["runsOrError"]["results"]
        responses["runs"] = runs
        assert len(runs) == 2 and {r["status"] for r in runs} == {"SUCCESS", "FAILURE"}
        for run in runs:
            logs = project.graphql(LOGS, {"runId": run["runId"]})
            responses[f"logs {run['runId']}"] = logs
            events = logs["logsForRun"]["events"]
            assert events, f"no events for run {run['runId']}"
            for file_key in {e["fileKey"] for e in events if e.get("fileKey")}:
                responses[f"captured {run['runId']} {file_key}"] = project.graphql(
                    CAPTURED, {"logKey": [run["runId"], "compute_logs", file_key]}
                )
        responses["asset"] = project.graphql(ASSET, {"key": {"path": ["biography_extractions"]}})

    # Controls: the pages read hold what a leak would sit next to.
    nodes = definitions["repositoriesOrError"]["nodes"]
    resources = {r["name"]: r for n in nodes for r in n["allTopLevelResourceDetails"]}
    llm_values = {v["key"]: v for v in resources["llm"]["configuredValues"]}
    assert llm_values["api_key"]["type"] == "ENV_VAR", llm_values
    assert llm_values["api_key"]["value"] == "LLM_API_KEY"
    materialised = responses["asset"]["assetOrError"]["assetMaterializations"]  # type: ignore[index]
    assert materialised and materialised[0]["metadataEntries"], "no materialisation metadata read"
    failure_text = json.dumps(responses, ensure_ascii=False)
    assert "unavailable" in failure_text, "the failing run's error was not read"

    for name, response in responses.items():
        text = json.dumps(response, ensure_ascii=False)
        assert key not in text, f"the key is in the {name} response"
        assert key[-12:] not in text, f"the key's tail is in the {name} response"
