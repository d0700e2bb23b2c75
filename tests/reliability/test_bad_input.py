"""Why: corpus folders are untrusted input, and their names become partition keys and SQL values. Through
the real Dagster job and DuckDB store (not just the reader, which tests/corpora fuzzes): every bad input
is a clear failure naming the corpus, or is handled correctly; nothing is read outside the source root,
no name injects SQL, and a bad corpus never changes another corpus's rows."""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path

import dagster as dg
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from extraction_assets.corpora.sources import _name_problem
from tests.fakes.fault_injecting_openai_server import FaultInjectingOpenAIServer
from tests.pipeline.helpers import Project, memory_instance, project
from tests.reliability.harness import short_docs, write_corpus
from tests.reliability.test_store_faults import _failure_text

CFG = {"ops": {"biography_extractions": {"config": {"items_per_call": 5, "max_concurrency": 2}}}}
DOCS_ONLY = [dg.AssetKey("corpus_documents")]


def _env(root: Path, llm_url: str) -> dict[str, str]:
    return {
        "EXTRACTION_HOME": str(root / "home"),
        "EXTRACTION_SOURCE_ROOT": str(root / "sources"),
        "EXTRACTION_TASKS": "biography",
        "LLM_BACKEND": "vllm",
        "LLM_BASE_URL": llm_url,
        # Small enough that "word " * 3000 is over it, large enough for the biography prompt
        # (~1,750 tokens by the planner's estimate) and a few short items.
        "LLM_MODEL": "fake",
        "LLM_MAX_MODEL_LEN": "4096",
    }


def _store_dump(p: Project) -> tuple[list, list]:
    return (
        p.query("SELECT * FROM documents ORDER BY corpus, doc_id"),
        p.query("SELECT corpus, doc_id, status, fields FROM extractions ORDER BY corpus, doc_id"),
    )


BAD_FILES: dict[str, tuple[str, bytes, str]] = {
    # case: (file name, bytes, a word the error must contain)
    "empty text": ("d.jsonl", b'{"id": "a", "text": "   "}\n', "empty"),
    "invalid UTF-8": ("d.jsonl", b'{"id": "a", "text": "caf\xe9"}\n', "UTF-8"),
    "binary file named .jsonl": ("d.jsonl", bytes(range(256)) * 4, "d.jsonl:1"),
    "binary file": ("blob.bin", b"\x00\x01\x02", "unexpected"),
    "unknown format": ("d.xml", b"<doc id='a'>hello</doc>\n", "unexpected"),
    "CSV without the text column": ("d.csv", b"id,body\na,hello\n", "text"),
    "missing id": ("d.jsonl", b'{"text": "no id"}\n', "id"),
    "duplicated ids": (
        "d.jsonl",
        b'{"id": "a", "text": "x"}\n{"id": "a", "text": "y"}\n',
        "duplicated",
    ),
    "not JSON": ("d.jsonl", b"{'id': 'a'}\n", "JSON"),
    "huge file (over EXTRACTION_MAX_FILE_BYTES)": (
        "d.jsonl",
        b"".join(
            json.dumps({"id": f"h{i}", "text": "x" * 100}).encode() + b"\n" for i in range(600)
        ),
        "limit",
    ),
}


@pytest.fixture
def env_project(tmp_path, monkeypatch):  # type: ignore[no-untyped-def]
    with FaultInjectingOpenAIServer() as fake:
        for k, v in _env(tmp_path, fake.url).items():
            monkeypatch.setenv(k, v)
        monkeypatch.setenv("EXTRACTION_MAX_FILE_BYTES", "50000")
        (tmp_path / "sources").mkdir()
        from extraction_assets.settings import Settings

        with memory_instance(tmp_path / "dagster_home") as instance:
            p = project(Settings.from_env(), instance)
            write_corpus(p.settings.source_root, "good", short_docs(4))
            assert p.run("good", CFG).success
            yield p


@pytest.mark.slow
def test_bad_files_fail_clearly_and_touch_no_other_corpus(env_project):
    p = env_project
    for case, (name, data, word) in BAD_FILES.items():
        corpus = f"bad {case}"[:90].replace(",", "")
        folder = p.settings.source_root / corpus
        folder.mkdir()
        write_corpus(p.settings.source_root, corpus, short_docs(2, "ok"), name="a.jsonl")
        (folder / name).write_bytes(data)
        before = _store_dump(p)
        result = p.run(corpus, CFG)
        assert not result.success, case
        message = _failure_text(result)
        assert repr(corpus) in message and word.lower() in message.lower(), (case, message)
        assert _store_dump(p) == before, f"{case}: something was written"


def test_text_far_over_the_context_fails_that_document_only(env_project):
    p = env_project
    docs = [*short_docs(3, "s"), {"id": "huge", "text": "word " * 3000}]
    write_corpus(p.settings.source_root, "mixed", docs)
    assert p.run("mixed", CFG).success
    rows = dict(
        p.query("SELECT doc_id, coalesce(error, status) FROM extractions WHERE corpus = 'mixed'")
    )
    assert rows.pop("huge") == "too long for the context"
    assert set(rows.values()) == {"ok"}


# Each name packs several traps: a run per name is the cost, so no name proves one thing alone.
TRICKY_NAMES = [
    "'; DROP TABLE documents; --",
    "Robert'); DELETE FROM extractions WHERE ('1'='1",
    'double"quote x%_y',  # a double quote, LIKE's wildcards, a space
    "عربي 日本語 Ελληνικά",
    "$(touch pwned) `id`",
    " lead",
    "a..b",
    "../escape",
    ".hidden",
    "back\\slash",
    "tab\tname",
]


@pytest.mark.slow
def test_tricky_corpus_names_are_values_never_paths_or_sql(env_project, tmp_path):
    p = env_project
    (tmp_path / "escape").mkdir()
    write_corpus(tmp_path, "escape", short_docs(1, "secret"))
    for name in TRICKY_NAMES:
        ok_name = _name_problem(name) is None
        if ok_name:
            write_corpus(p.settings.source_root, name, short_docs(2, "n"))
        before = _store_dump(p)
        result = p.run(name, CFG)
        if ok_name:
            assert result.success, (name, _failure_text(result))
            got = p.query("SELECT doc_id FROM documents WHERE corpus = ? ORDER BY doc_id", [name])
            assert [g[0] for g in got] == ["n0000", "n0001"], name
            typed = p.query("SELECT count(*) FROM biography_extractions WHERE corpus = ?", [name])
            assert typed[0][0] == 2, name
        else:
            assert not result.success, name
            assert "invalid corpus name" in _failure_text(result), name
            assert _store_dump(p) == before
    # Nothing from outside the root was read; the good corpus and every table are intact.
    assert not p.query("SELECT * FROM documents WHERE doc_id LIKE 'secret%'")
    assert p.query("SELECT count(*) FROM documents WHERE corpus = 'good'")[0][0] == 4
    assert p.query("SELECT count(*) FROM extractions WHERE corpus = 'good' AND status = 'ok'") == [
        (4,)
    ]
    assert not (Path.cwd() / "pwned").exists()


# --- hypothesis: generated names and files through the job -------------------------------------
NAME_ALPHABET = st.sampled_from([*list("ab c'\"`;%_-=()*.!?$&#@~+é日ع\\<>{}"), "..", "--", "/*"])
names = st.lists(NAME_ALPHABET, min_size=1, max_size=12).map("".join)
texts = st.text(min_size=0, max_size=40)
ids = st.one_of(st.text(min_size=0, max_size=8), st.integers(-5, 5), st.none(), st.booleans())
lines = st.one_of(
    st.fixed_dictionaries({"id": ids, "text": st.one_of(texts, st.none(), st.integers())}),
    st.binary(max_size=30).map(lambda b: b.hex()),  # not JSON
)
corpus_files = st.lists(lines, min_size=1, max_size=6)


def _expected(rows: list) -> dict[str, str] | None:
    """What the store must hold for these lines, or None when the corpus must be refused."""
    docs: dict[str, str] = {}
    for row in rows:
        if isinstance(row, str) and not row.strip():
            continue  # blank lines are skipped
        if not isinstance(row, dict):
            return None
        i, t = row["id"], row["text"]
        if isinstance(i, bool) or not isinstance(i, str | int) or i == "":
            return None
        if not isinstance(t, str) or not t.strip() or str(i) in docs:
            return None
        try:
            t.encode("utf-8")
        except UnicodeEncodeError:
            return None
        docs[str(i)] = t
    return docs


@pytest.mark.slow
def test_fuzzed_sources_and_names_through_the_job():
    with tempfile.TemporaryDirectory() as tmp, FaultInjectingOpenAIServer() as fake:
        root = Path(tmp)
        saved = dict(os.environ)
        os.environ.update(_env(root, fake.url))
        try:
            from extraction_assets.settings import Settings

            with memory_instance(root / "dagster_home") as instance:
                p = project(Settings.from_env(), instance)
                write_corpus(p.settings.source_root, "anchor", short_docs(3))
                job = p.defs.resolve_job_def("extract_corpus")
                instance.add_dynamic_partitions("corpora", ["anchor"])
                assert job.execute_in_process(
                    instance=instance, partition_key="anchor", asset_selection=DOCS_ONLY
                ).success
                anchor = p.query("SELECT * FROM documents WHERE corpus = 'anchor'")
                sentinel = root / "outside.jsonl"
                sentinel.write_text('{"id": "outside", "text": "must never be read"}\n')

                @settings(
                    max_examples=20,
                    deadline=None,
                    database=None,
                    suppress_health_check=list(HealthCheck),
                )
                @given(name=names, rows=corpus_files)
                def check(name: str, rows: list) -> None:
                    folder_ok = "/" not in name and name not in (".", "..") and "\0" not in name
                    if folder_ok:
                        folder = p.settings.source_root / name
                        folder.mkdir(parents=True, exist_ok=True)
                        (folder / "d.jsonl").write_text(
                            "".join(
                                (json.dumps(r) if isinstance(r, dict) else r) + "\n" for r in rows
                            ),
                            encoding="utf-8",
                        )
                    instance.add_dynamic_partitions(
                        "corpora", [name]
                    ) if "," not in name and "[" not in name and "|" not in name else None
                    expected = (
                        _expected(rows) if folder_ok and _name_problem(name) is None else None
                    )
                    try:
                        result = job.execute_in_process(
                            instance=instance,
                            partition_key=name,
                            asset_selection=DOCS_ONLY,
                            raise_on_error=False,
                        )
                        success = result.success
                    except dg.DagsterError:  # the partition key itself was refused by Dagster
                        success = False
                    stored = dict(
                        p.query(
                            "SELECT doc_id, text FROM documents WHERE corpus = ? AND NOT deleted",
                            [name],
                        )
                    )
                    if expected is None:
                        assert not success, (name, rows)
                    else:
                        assert success, (name, rows)
                        assert stored == expected
                    assert p.query("SELECT * FROM documents WHERE corpus = 'anchor'") == anchor
                    assert not p.query("SELECT 1 FROM documents WHERE doc_id = 'outside'")
                    tables = {r[0] for r in p.query("SELECT table_name FROM duckdb_tables()")}
                    assert {"documents", "extractions", "calls", "changes"} <= tables
                    if folder_ok:
                        for f in folder.iterdir():
                            f.unlink()
                        folder.rmdir()

                check()
        finally:
            os.environ.clear()
            os.environ.update(saved)
