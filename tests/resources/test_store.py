"""The DuckDB store decides what gets extracted and keeps every answer ever paid for.

These tests drive a real DuckDB file with hand-built CallOutcome objects (the store's real
input from the engine) and check the incremental rules: an unchanged corpus has nothing
pending, exactly the corrected documents become pending, a new task version re-extracts
everything while keeping the old rows in history, failures are retried up to a limit, and
a failed sync leaves nothing behind.
"""

from __future__ import annotations

import enum
import importlib.abc
import itertools
import json
import re
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Literal

import duckdb
import pytest
from pydantic import BaseModel, Field

from extraction_assets.corpora.sources import read_corpus
from extraction_assets.errors import CorpusError, StoreWriteError
from extraction_assets.types import CallOutcome, CallRecord, Document, ItemResult
from resources.store import CallContext, DuckDBStore, _documents

SAMPLE = Path(__file__).resolve().parents[2] / "extraction_assets" / "sample_data"
CORPUS = "biographies"
TASK = "bio"
_ids = itertools.count()


@pytest.fixture
def store(any_store: DuckDBStore) -> DuckDBStore:
    """A DuckDB file, and a DuckLake catalog: the rules hold on both."""
    return any_store


def docs(corpus: str = CORPUS, **texts: str) -> list[Document]:
    return [Document.make(corpus, doc_id, text) for doc_id, text in texts.items()]


def outcome(results: list[ItemResult], call_id: str | None = None) -> CallOutcome:
    ok = sum(r.status == "ok" for r in results)
    call = CallRecord(
        call_id=call_id or f"call-{next(_ids)}",
        base_url="http://127.0.0.1:8000/v1",
        pack_size=len(results),
        attempt=1,
        prompt_tokens=100,
        completion_tokens=40,
        latency_s=0.5,
        finish_reason="stop",
        ok_items=ok,
        failed_items=len(results) - ok,
        error=None,
        started_at=time.time(),
    )
    return CallOutcome(call=call, results=results)


def ok(doc: Document, **fields: object) -> ItemResult:
    return ItemResult(doc.doc_id, doc.content_hash, "ok", fields or {"name": doc.doc_id})


def failed(doc: Document, attempts: int = 1) -> ItemResult:
    return ItemResult(
        doc.doc_id,
        doc.content_hash,
        "failed",
        error="invalid JSON",
        raw_answer="{",
        attempts=attempts,
    )


def record(
    store: DuckDBStore,
    out: CallOutcome,
    run_id: str = "run-x",
    version: str = "v1",
    corpus: str = CORPUS,
) -> None:
    store.record_outcome(
        outcome=out, context=CallContext(run_id, corpus, TASK, version, "vllm", "smollm2")
    )


def query(store: DuckDBStore, sql: str, params: list | None = None) -> list[tuple]:
    with store.connect(read_only=True) as con:
        return con.execute(sql, params or []).fetchall()


def pending_ids(
    store: DuckDBStore, version: str = "v1", corpus: str = CORPUS, **kw: int
) -> list[str]:
    return [d.doc_id for d in store.pending_documents(corpus, TASK, version, **kw)]


def test_sync_counts_new_changed_deleted_restored(store: DuckDBStore) -> None:
    s = store.sync_documents(CORPUS, docs(a="A", b="B", c="C"), "r1")
    assert (s.new, s.changed, s.deleted, s.restored, s.unchanged, s.total_current) == (
        3,
        0,
        0,
        0,
        0,
        3,
    )
    first_seen = query(store, "SELECT first_seen, last_changed FROM documents WHERE doc_id = 'b'")
    s = store.sync_documents(CORPUS, docs(a="A", b="B2", d="D"), "r2")
    assert (s.new, s.changed, s.deleted, s.restored, s.unchanged, s.total_current) == (
        1,
        1,
        1,
        0,
        1,
        3,
    )
    assert (s.changed_ids, s.new_ids, s.deleted_ids) == (["b"], ["d"], ["c"])
    # A corrected document keeps when it was first seen; its last change moves.
    ((b_first, b_changed),) = query(
        store, "SELECT first_seen, last_changed FROM documents WHERE doc_id = 'b'"
    )
    assert b_first == first_seen[0][0] and b_changed > first_seen[0][1]
    # The tombstone keeps the text; it is not erased.
    assert query(store, "SELECT text, deleted FROM documents WHERE doc_id = 'c'") == [("C", True)]
    s = store.sync_documents(CORPUS, docs(a="A", b="B2", c="C", d="D"), "r3")
    assert (s.new, s.changed, s.deleted, s.restored, s.unchanged, s.total_current) == (
        0,
        0,
        0,
        1,
        3,
        4,
    )
    s = store.sync_documents(CORPUS, docs(a="A", b="B2", c="C", d="D"), "r4")
    assert (s.new, s.changed, s.deleted, s.restored, s.unchanged) == (0, 0, 0, 0, 4)
    report = {(r["doc_id"], r["change"]) for r in store.change_report("r2")}
    assert report == {("b", "changed"), ("d", "new"), ("c", "deleted")}
    assert store.change_report("r4") == []
    # Another corpus is untouched by this corpus's syncs.
    store.sync_documents("other", docs("other", a="X"), "r5")
    s = store.sync_documents(CORPUS, docs(a="A", b="B2", c="C", d="D"), "r6")
    assert (s.unchanged, s.deleted, s.total_current) == (4, 0, 4)


def test_extraction_clears_pending_and_corrections_make_exactly_three_pending(
    store: DuckDBStore,
) -> None:
    original = read_corpus(SAMPLE / "corpora", CORPUS)
    store.sync_documents(CORPUS, original, "r1")
    pending = store.pending_documents(CORPUS, TASK, "v1")
    assert [d.doc_id for d in pending] == sorted(d.doc_id for d in original)
    assert pending[0].text and pending[0].source.startswith("documents.jsonl:")
    for pack in (pending[i : i + 7] for i in range(0, len(pending), 7)):
        record(store, outcome([ok(d) for d in pack]))
    assert pending_ids(store) == []
    assert store.count_pending(CORPUS, TASK, "v1") == 0

    s = store.sync_documents(CORPUS, read_corpus(SAMPLE / "corrected", CORPUS), "r2")
    assert (s.changed, s.unchanged) == (3, 37)
    assert pending_ids(store) == ["ar-002", "en-005", "fr-001"]
    assert store.count_pending(CORPUS, TASK, "v1") == 3
    stats = store.table_stats(CORPUS, TASK, "v1")
    assert (stats["current_documents"], stats["ok"], stats["pending"], stats["stale_text"]) == (
        40,
        37,
        3,
        3,
    )
    assert store.coverage(CORPUS, TASK, "v1", sample=2) == (3, ["ar-002", "en-005"])


def test_task_version_change_repends_everything_and_keeps_history(store: DuckDBStore) -> None:
    d = docs(a="A", b="B")
    store.sync_documents(CORPUS, d, "r1")
    record(store, outcome([ok(x, name="old") for x in d]), run_id="run-v1")
    assert pending_ids(store, "v2") == ["a", "b"]
    stats = store.table_stats(CORPUS, TASK, "v2")
    assert (stats["ok"], stats["ok_at_other_versions"], stats["pending"]) == (0, 2, 2)
    record(store, outcome([ok(x, name="new") for x in d]), run_id="run-v2", version="v2")
    assert pending_ids(store, "v2") == []
    history = query(
        store,
        "SELECT doc_id, task_version, run_id, replaced_by_run_id, fields->>'name' "
        "FROM extraction_history ORDER BY doc_id",
    )
    assert history == [
        ("a", "v1", "run-v1", "run-v2", "old"),
        ("b", "v1", "run-v1", "run-v2", "old"),
    ]
    current = query(store, "SELECT DISTINCT task_version, fields->>'name' FROM extractions")
    assert current == [("v2", "new")]


def test_field_level_diffs_in_change_report(store: DuckDBStore) -> None:
    d = docs(a="A", b="B", c="C")
    store.sync_documents(CORPUS, d, "r1")
    record(
        store, outcome([ok(x, name="N", death_year=240, teachers=["x"]) for x in d]), run_id="r2"
    )
    assert store.change_report("r2") == []  # first extractions are not changes
    record(
        store,
        outcome(
            [
                ok(d[0], name="N", death_year=241, teachers=["x", "y"]),  # two fields differ
                ok(d[1], name="N", death_year=240, teachers=["x"]),  # identical
                failed(d[2]),  # no comparison
            ]
        ),
        run_id="r3",
        version="v2",
    )
    rows = [
        (r["doc_id"], r["change"], r["task"], r["field"], r["old_value"], r["new_value"])
        for r in store.change_report("r3", corpus=CORPUS)
    ]
    assert rows == [
        ("a", "re-extracted", TASK, "death_year", "240", "241"),
        ("a", "re-extracted", TASK, "teachers", '["x"]', '["x", "y"]'),
        ("b", "re-extracted", TASK, None, "ok", "ok"),
        ("c", "re-extracted", TASK, None, "ok", "failed"),
    ]
    assert store.change_report("r3", corpus="another") == []


def test_recording_the_same_call_twice_is_a_no_op(store: DuckDBStore) -> None:
    d = docs(a="A", b="B")
    store.sync_documents(CORPUS, d, "r1")
    out = outcome([ok(x) for x in d], call_id="same")
    record(store, out)
    record(store, out)
    counts = query(
        store,
        "SELECT (SELECT count(*) FROM calls), (SELECT count(*) FROM extractions), "
        "(SELECT count(*) FROM extraction_history), (SELECT count(*) FROM changes "
        "WHERE change = 're-extracted')",
    )
    assert counts == [(1, 2, 0, 0)]


def test_failed_runs_add_up_until_the_retry_limit(store: DuckDBStore) -> None:
    """retry_limit counts runs that ended the document failed, not the calls it was in."""
    (a,) = docs(a="A")
    store.sync_documents(CORPUS, [a], "r1")
    record(store, outcome([failed(a, attempts=5)]))  # one run, five calls
    assert pending_ids(store, retry_limit=2) == ["a"]
    assert pending_ids(store, retry_limit=1) == []
    record(store, outcome([failed(a, attempts=1)]))
    assert query(store, "SELECT attempts, failed_runs FROM extractions") == [(6, 2)]
    assert pending_ids(store, retry_limit=2) == []
    assert pending_ids(store, retry_limit=3) == ["a"]
    record(store, outcome([failed(a, attempts=1)]))
    stats = store.table_stats(CORPUS, TASK, "v1")
    assert (stats["failed"], stats["failed_exhausted"], stats["pending"]) == (1, 1, 0)
    assert store.coverage(CORPUS, TASK, "v1") == (1, ["a"])  # missing even though not pending
    # A new version starts the count afresh.
    record(store, outcome([failed(a)]), version="v2")
    assert query(store, "SELECT attempts FROM extractions") == [(1,)]
    record(store, outcome([ok(a)]), version="v2")
    assert pending_ids(store, "v2", retry_limit=10) == []


def test_result_for_an_outdated_text_is_kept_but_stays_pending(store: DuckDBStore) -> None:
    (old,) = docs(a="A")
    store.sync_documents(CORPUS, [old], "r1")
    store.sync_documents(CORPUS, docs(a="A corrected"), "r2")
    record(store, outcome([ok(old)]))
    assert query(store, "SELECT content_hash FROM extractions") == [(old.content_hash,)]
    assert pending_ids(store) == ["a"]


def test_moved_lines_update_only_the_source(store: DuckDBStore) -> None:
    (b,) = docs(b="B")
    store.sync_documents(CORPUS, [Document.make(CORPUS, "a", "A", "d.jsonl:1"), b], "r1")
    s = store.sync_documents(CORPUS, [Document.make(CORPUS, "a", "A", "d.jsonl:7"), b], "r2")
    assert (s.unchanged, s.changed) == (2, 0)
    assert query(store, "SELECT source FROM documents WHERE doc_id = 'a'") == [("d.jsonl:7",)]
    assert store.change_report("r2") == []


def test_deleted_documents_are_not_pending(store: DuckDBStore) -> None:
    store.sync_documents(CORPUS, docs(a="A", b="B"), "r1")
    store.sync_documents(CORPUS, docs(a="A"), "r2")
    assert pending_ids(store) == ["a"]


def test_iter_pending_pages_match_the_full_list(store: DuckDBStore) -> None:
    d = [Document.make(CORPUS, f"d{i:03d}", f"text {i}") for i in range(25)]
    store.sync_documents(CORPUS, d, "r1")
    record(store, outcome([ok(x) for x in d[::3]]))
    pages = list(store.iter_pending_documents(CORPUS, TASK, "v1", chunk_size=4))
    assert [len(p) for p in pages] == [4, 4, 4, 4]  # 25 documents, 9 extracted
    assert [x.doc_id for p in pages for x in p] == pending_ids(store)


class Grade(enum.Enum):
    THIQA = "ثقة"
    SADUQ = "صدوق"


class Teacher(BaseModel):
    name: str
    place: str | None = None


class Biography(BaseModel):
    name: str
    death_year: int | None = None
    age: float | None = None
    is_companion: bool = False
    grade: Grade | None = None
    generation: Literal["early", "late"] | None = None
    teachers: list[str] = Field(default_factory=list)
    teachers_detail: list[Teacher] = Field(default_factory=list)
    birthplace: Teacher | None = None
    model: str | None = None  # collides with a base column of the view


def test_typed_view_has_typed_columns_and_values(store: DuckDBStore, tmp_path: Path) -> None:
    d = docs(a="A", b="B", c="C")
    store.sync_documents(CORPUS, d, "r1")
    item = Biography(
        name="مالك بن أنس",
        death_year=179,
        age=85.5,
        is_companion=False,
        grade=Grade.THIQA,
        generation="late",
        teachers=["نافع", "الزهري"],
        teachers_detail=[Teacher(name="نافع", place="المدينة")],
        birthplace=Teacher(name="x"),
        model="m",
    )
    record(
        store,
        outcome(
            [ok(d[0], **item.model_dump(mode="json")), ok(d[1], name="Only a name"), failed(d[2])]
        ),
    )
    view = store.ensure_task_view(TASK, Biography)
    assert view == "bio_extractions"
    with store.connect(read_only=True) as con:
        types = dict((r[0], r[1]) for r in con.execute(f'DESCRIBE "{view}"').fetchall())
        rows = con.execute(f'SELECT * FROM "{view}" ORDER BY doc_id').fetchall()
        names = [c[0] for c in con.execute(f'SELECT * FROM "{view}" LIMIT 0').description]
    assert types == {
        "corpus": "VARCHAR",
        "doc_id": "VARCHAR",
        "task_version": "VARCHAR",
        "model": "VARCHAR",
        "extracted_at": "TIMESTAMP",
        "name": "VARCHAR",
        "death_year": "BIGINT",
        "age": "DOUBLE",
        "is_companion": "BOOLEAN",
        "grade": "VARCHAR",
        "generation": "VARCHAR",
        "teachers": "VARCHAR[]",
        "teachers_detail": "JSON",
        "birthplace": "JSON",
        "model_value": "VARCHAR",
    }
    assert len(rows) == 2  # the failed document is not in the view
    a = dict(zip(names, rows[0], strict=True))
    assert (a["name"], a["death_year"], a["age"], a["is_companion"]) == (
        "مالك بن أنس",
        179,
        85.5,
        False,
    )
    assert (a["grade"], a["generation"], a["teachers"]) == ("ثقة", "late", ["نافع", "الزهري"])
    assert json.loads(a["teachers_detail"]) == [{"name": "نافع", "place": "المدينة"}]
    assert (a["model"], a["model_value"]) == ("smollm2", "m")
    b = dict(zip(names, rows[1], strict=True))
    assert (b["name"], b["death_year"], b["teachers"]) == ("Only a name", None, None)
    # A corrected text drops the row from the view until it is re-extracted.
    store.sync_documents(CORPUS, docs(a="A2", b="B", c="C"), "r2")
    assert [p["doc_id"] for p in store.preview(TASK, CORPUS)] == ["b"]

    out = tmp_path / "bio.parquet"
    assert store.export_parquet(TASK, str(out), corpus=CORPUS) == 1
    assert store.export_parquet(TASK, str(tmp_path / "none.parquet"), corpus="nope") == 0
    back = duckdb.sql(f"SELECT doc_id, name, teachers FROM read_parquet('{out}')").fetchall()
    assert back == [("b", "Only a name", None)]


def test_view_rejects_unsafe_task_names(store: DuckDBStore) -> None:
    for bad in ['x"; DROP TABLE documents; --', "1abc", "a-b", ""]:
        with pytest.raises(ValueError, match="not a valid identifier"):
            store.ensure_task_view(bad, Biography)
    with pytest.raises(ValueError, match="ensure_task_view first"):
        store.preview("never_made", CORPUS)


def test_names_are_only_parameters(store: DuckDBStore) -> None:
    corpus = 'it\'s "quoted"; DROP TABLE documents; -- تراجم'
    d = docs(corpus, a="A")
    assert store.sync_documents(corpus, d, "r'1").new == 1
    record(store, outcome([ok(d[0])]), corpus=corpus, run_id="r'2")
    assert pending_ids(store, corpus=corpus) == []
    assert store.change_report("r'1", corpus=corpus)[0]["corpus"] == corpus


def failing_after(documents: list[Document], exc: BaseException) -> Iterator[Document]:
    yield from documents
    raise exc


def test_a_failing_source_mid_sync_writes_nothing(
    store: DuckDBStore, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store.sync_documents(CORPUS, docs(a="A"), "r1")
    before = query(store, "SELECT * FROM documents")
    # Several chunks written before the source fails: small chunks, so a few hundred documents
    # make them (25,000 documents at the real chunk size cost minutes on a loaded machine).
    monkeypatch.setattr(_documents, "_SYNC_CHUNK", 100)
    many = [Document.make(CORPUS, f"d{i}", "t") for i in range(250)]
    with pytest.raises(CorpusError):
        store.sync_documents(CORPUS, failing_after(many, CorpusError("late error", CORPUS)), "r2")
    # A duplicated id (the same document twice from a source) is refused as a whole too.
    with pytest.raises(ValueError, match="duplicated document ids \\['a'\\]"):
        store.sync_documents(CORPUS, docs(a="A") + docs(a="A2"), "r3")
    # Storage errors are reported as StoreWriteError, and rolled back the same way.
    io_error = duckdb.IOException("No space left on device")
    with pytest.raises(StoreWriteError, match=re.escape(store.location)):
        store.sync_documents(CORPUS, failing_after(many, io_error), "r4")
    assert query(store, "SELECT * FROM documents") == before
    assert query(store, "SELECT count(*) FROM changes WHERE run_id <> 'r1'") == [(0,)]


def test_a_corpus_file_with_duplicate_ids_leaves_the_store_unchanged(
    store: DuckDBStore, tmp_path: Path
) -> None:
    root = tmp_path / "src"
    (root / CORPUS).mkdir(parents=True)
    good = '{"id": "a", "text": "A"}\n{"id": "b", "text": "B"}\n'
    (root / CORPUS / "d.jsonl").write_text(good)
    from extraction_assets.corpora.sources import iter_corpus

    store.sync_documents(CORPUS, iter_corpus(root, CORPUS), "r1")
    (root / CORPUS / "d.jsonl").write_text(
        good.replace('"B"', '"B2"') + '{"id": "a", "text": "X"}\n'
    )
    with pytest.raises(CorpusError, match="duplicated"):
        store.sync_documents(CORPUS, iter_corpus(root, CORPUS), "r2")
    assert query(store, "SELECT doc_id, text FROM documents ORDER BY 1") == [("a", "A"), ("b", "B")]


def test_read_only_connect_on_a_fresh_path(tmp_path: Path) -> None:
    store = DuckDBStore(path=str(tmp_path / "sub" / "fresh.duckdb"))
    with store.connect(read_only=True) as con:
        tables = {r[0] for r in con.execute("SELECT table_name FROM duckdb_tables()").fetchall()}
    assert tables == {
        "documents",
        "extractions",
        "extraction_history",
        "calls",
        "changes",
        "corpus_sources",
    }


class _Bio(BaseModel):
    name: str


def test_read_methods_answer_what_callers_used_to_query(store: DuckDBStore) -> None:
    """The queries callers ran through connect() (summary, table asset, freshness check,
    benchmarks) are store methods."""
    a, b = docs(a="A", b="B")
    store.sync_documents(CORPUS, [a, b], "r1")
    record(store, outcome([ok(a), failed(b)]), run_id="r1")
    record(store, outcome([ok(b)]), run_id="r2")
    view = store.ensure_task_view(TASK, _Bio)
    assert store.view_rows(TASK) == store.view_rows(TASK, CORPUS) == 2
    assert store.view_rows(TASK, "other") == 0
    assert ("name", "VARCHAR") in store.view_columns(TASK) and view == f"{TASK}_extractions"
    assert store.status_counts(CORPUS, TASK) == {"ok": 2, "failed": 0}
    assert store.extracted_in_runs(["r1"]) == 1 and store.extracted_in_runs(["r1", "r2"]) == 2
    assert store.document_hashes(CORPUS) == {"a": a.content_hash, "b": b.content_hash}
    rows = store.extraction_rows(CORPUS, TASK)
    assert (rows["b"]["status"], rows["b"]["run_id"], rows["a"]["fields"]) == (
        "ok", "r2", {"name": "a"},
    )  # fmt: skip
    acc = store.run_accounting("r2", CORPUS)
    assert (acc["calls"], acc["call_items"], acc["replaced"], acc["field_changes"]) == (1, 1, 1, 1)
    assert store.run_accounting("r1", CORPUS)["sync"] == {"new": 2}


def test_call_context_is_given_once(store: DuckDBStore) -> None:
    (a,) = docs(a="A")
    ctx = CallContext("r1", CORPUS, TASK, "v1", "vllm", "m")
    with pytest.raises(TypeError, match="once"):
        store.record_outcome(outcome=outcome([ok(a)]), context=ctx, run_id="r2")
    with pytest.raises(TypeError):
        store.record_outcomes([outcome([ok(a)])], run_id="r1", corpus=CORPUS)  # incomplete


def test_a_store_made_before_failed_runs_keeps_its_decisions(tmp_path: Path) -> None:
    """Columns added since (failed_runs, context_limit) are added to an older store in place."""
    path = tmp_path / "old.duckdb"
    with duckdb.connect(str(path)) as con:
        from resources.store._schema import DDL

        for statement in DDL:  # the tables as an older version created them
            con.execute(statement)
        cols = "'c', 'bio', ?, 'h', 'v1', 'vllm', 'm', ?, NULL, 'e', NULL, ?, 0, 0, 0, now(), 'r0'"
        con.execute(f"INSERT INTO extractions VALUES ({cols})", ["given-up", "failed", 3])
        con.execute(f"INSERT INTO extractions VALUES ({cols})", ["once", "failed", 1])
        con.execute(f"INSERT INTO extractions VALUES ({cols})", ["done", "ok", 1])
        con.execute("INSERT INTO documents SELECT 'c', doc_id, 'x', 'h', '', now(), now(), false "
                    "FROM extractions")  # fmt: skip
    store = DuckDBStore(path=str(path))
    assert [d.doc_id for d in store.pending_documents("c", TASK, "v1", retry_limit=3)] == ["once"]
    record(store, outcome([failed(Document("c", "once", "x", "h"))]), corpus="c")
    assert query(store, "SELECT failed_runs FROM extractions WHERE doc_id = 'once'") == [(2,)]
    assert query(store, "SELECT count(*) FROM extraction_history") == [(1,)]


def test_recorded_outcomes_cost_no_import_per_value(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """DuckDB 1.4 converts Python parameters value by value and, where pandas is not installed,
    tries ``import pandas`` for each (a search of sys.path): ``executemany`` of call and
    extraction rows paid it for every column of every item. Counted, not timed: the lookups of a
    batch must not grow with its items, first answers and replaced ones (history, changes)."""
    lookups: list[str] = []

    class Spy(importlib.abc.MetaPathFinder):
        def find_spec(self, name: str, path: object = None, target: object = None) -> None:
            lookups.append(name)

    store = DuckDBStore(path=str(tmp_path / "s.duckdb"))
    ctx = CallContext("r1", CORPUS, TASK, "v1", "vllm", "m")
    warm = docs(w="x")
    store.record_outcomes([outcome([ok(warm[0])])], ctx)  # lazy imports settle
    store.record_outcomes([outcome([ok(warm[0], name="again")])], ctx)
    monkeypatch.setattr(sys, "meta_path", [Spy(), *sys.meta_path])
    counts: dict[tuple[int, str], int] = {}
    for n in (4, 400):
        batch = [Document.make(CORPUS, f"n{n}-{i}", "t") for i in range(n)]
        for answer in ("first", "replaced"):
            lookups.clear()
            store.record_outcomes(
                [
                    outcome([ok(d, name=answer), ok(e, name=answer)])
                    for d, e in zip(batch[::2], batch[1::2], strict=True)
                ],
                ctx,
            )
            counts[n, answer] = len(lookups)
    with store.connect(read_only=True) as con:
        assert con.execute("SELECT count(*) FROM extractions").fetchone() == (405,)
        assert con.execute("SELECT count(*) FROM extraction_history").fetchone() == (405,)
        assert con.execute("SELECT count(*) FROM calls").fetchone() == (2 + 4 + 400,)
    for answer in ("first", "replaced"):
        assert counts[400, answer] <= counts[4, answer] + 5, counts
