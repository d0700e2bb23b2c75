"""Shared set-up for the pipeline tests: a source root, an environment, definitions, a real instance."""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass
from pathlib import Path

import dagster as dg
import duckdb

from extraction_assets.corpora.partitions import corpus_partitions
from extraction_assets.project import build_definitions
from extraction_assets.settings import SAMPLE_SOURCE_ROOT, Settings

SAMPLE_CORPUS = SAMPLE_SOURCE_ROOT / "biographies" / "documents.jsonl"
CORRECTED_CORPUS = SAMPLE_SOURCE_ROOT.parent / "corrected" / "biographies" / "documents.jsonl"
# A two-field spec (its assets: deaths_*) for tests about which documents are extracted.
SHORT_TASK = str(Path(__file__).with_name("deaths.yaml"))


def read_jsonl(path: Path) -> list[dict]:
    return [
        json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()
    ]


def write_jsonl(path: Path, rows: list[dict]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(
        "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8"
    )


def corrected_ids() -> list[str]:
    """Ids whose text differs between the bundled sample and its corrected edition."""
    before = {r["id"]: r["text"] for r in read_jsonl(SAMPLE_CORPUS)}
    after = {r["id"]: r["text"] for r in read_jsonl(CORRECTED_CORPUS)}
    return sorted(i for i in after if before.get(i) != after[i])


def small_sample(extra: int = 3) -> tuple[list[dict], list[dict]]:
    """A tiny corpus: the sample's corrected documents plus `extra` unchanged ones, before and after."""
    changed = set(corrected_ids())
    before = read_jsonl(SAMPLE_CORPUS)
    after = {r["id"]: r for r in read_jsonl(CORRECTED_CORPUS)}
    keep = [r for r in before if r["id"] in changed]
    keep += [r for r in before if r["id"] not in changed][:extra]
    return keep, [after[r["id"]] for r in keep]


@dataclass
class Project:
    """A project environment in a temp folder, with the real definitions and a real instance."""

    settings: Settings
    defs: dg.Definitions
    instance: dg.DagsterInstance

    def run(self, corpus: str, run_config: dict | None = None) -> dg.ExecuteInProcessResult:
        self.instance.add_dynamic_partitions(corpus_partitions.name, [corpus])
        job = self.defs.resolve_job_def("extract_corpus")
        return job.execute_in_process(
            instance=self.instance,
            partition_key=corpus,
            run_config=run_config,
            raise_on_error=False,
        )

    def query(self, sql: str, params: list | None = None) -> list[tuple]:
        with duckdb.connect(str(self.settings.store_path), read_only=True) as con:
            return con.execute(sql, params or []).fetchall()


def make_project(
    tmp_path: Path, monkeypatch, llm_url: str, llm_model: str, tasks: str = "biography"
) -> Settings:  # type: ignore[no-untyped-def]
    monkeypatch.setenv("EXTRACTION_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("EXTRACTION_SOURCE_ROOT", str(tmp_path / "sources"))
    monkeypatch.setenv("EXTRACTION_TASKS", tasks)
    monkeypatch.setenv("LLM_BACKEND", "vllm")
    monkeypatch.setenv("LLM_BASE_URL", llm_url)
    monkeypatch.setenv("LLM_MODEL", llm_model)
    (tmp_path / "sources").mkdir(exist_ok=True)
    return Settings.from_env()


def real_instance(path: Path):  # type: ignore[no-untyped-def]
    """A real, persistent-on-disk (SQLite) Dagster instance in a temp folder: for what needs an
    instance on disk (a schedule or sensor context loads it by reference)."""
    path.mkdir(parents=True, exist_ok=True)
    return dg.instance_for_test(temp_dir=str(path))


def memory_instance(path: Path) -> dg.DagsterInstance:
    """A Dagster instance for in-process runs: Dagster's own SQL run and event storage on an
    in-memory SQLite database, artifacts under ``path``. The same storage code as on disk without
    a database file per run: ~0.4 s less CPU per run (these tests' CPU 142.6 -> 102.1 s)."""
    path.mkdir(parents=True, exist_ok=True)
    return dg.DagsterInstance.ephemeral(tempdir=str(path))


def project(settings: Settings, instance: dg.DagsterInstance) -> Project:
    return Project(settings, build_definitions(settings), instance)


def copy_sample_corpus(root: Path, name: str = "biographies") -> Path:
    dest = root / name
    shutil.copytree(SAMPLE_CORPUS.parent, dest)
    return dest
