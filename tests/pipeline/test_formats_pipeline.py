"""Each corpus format through the real Dagster job and the real server: extracted, and after one
document is edited, that document alone is extracted again; a bad file fails the run naming the
corpus, file, row and document, and stores nothing."""

from __future__ import annotations

from pathlib import Path

import duckdb
import pytest

from tests.pipeline.helpers import SHORT_TASK, make_project, memory_instance, project

pytestmark = [pytest.mark.vllm, pytest.mark.slow]

# Short texts and a two-field task: the test is about which documents are extracted, not how well.
TEXTS = ["Ahmad ibn Hanbal died in 241.", "Malik ibn Anas died in 179.", "Al-Shafi'i died in 204."]
EDITED = "Malik ibn Anas, the imam of Medina, died in 179."
ONE_PER_CALL = {
    "ops": {"deaths_extractions": {"config": {"items_per_call": 1, "max_concurrency": 4}}}
}


def _write_parquet(path: Path, rows: list[tuple[str, str]]) -> None:
    with duckdb.connect() as con:
        con.execute("CREATE TABLE t (id VARCHAR, text VARCHAR)")
        con.executemany("INSERT INTO t VALUES (?, ?)", rows)
        con.execute(f"COPY t TO '{path}' (FORMAT parquet)")


def write_corpus(folder: Path, fmt: str, texts: list[str]) -> tuple[list[str], str]:
    """The corpus in one format: (its document ids, the id of the second document)."""
    folder.mkdir(parents=True, exist_ok=True)
    if fmt == "txt":
        ids = [f"notes/{i}.txt" for i in range(len(texts))]
        for doc_id, text in zip(ids, texts, strict=True):
            (folder / doc_id).parent.mkdir(exist_ok=True)
            (folder / doc_id).write_text(text, encoding="utf-8")
    elif fmt == "csv":
        ids = [f"r{i}" for i in range(len(texts))]
        (folder / "corpus.yaml").write_text("id_key: ref\ntext_key: entry\n")
        lines = ["ref,entry"] + [f'{i},"{t}"' for i, t in zip(ids, texts, strict=True)]
        (folder / "entries.csv").write_text("\n".join(lines) + "\n", encoding="utf-8")
    else:
        ids = [f"p{i}" for i in range(len(texts))]
        _write_parquet(folder / "entries.parquet", list(zip(ids, texts, strict=True)))
    return ids, ids[1]


@pytest.mark.parametrize("fmt", ["txt", "csv", "parquet"])
def test_format_extracts_then_only_the_edited_document(
    tmp_path, monkeypatch, vllm_url, vllm_model, fmt
):
    settings = make_project(tmp_path, monkeypatch, vllm_url, vllm_model, SHORT_TASK)
    folder = settings.source_root / fmt
    ids, edited = write_corpus(folder, fmt, TEXTS)
    with memory_instance(tmp_path / "dagster_home") as instance:
        p = project(settings, instance)
        first = p.run(fmt, ONE_PER_CALL)
        assert first.success
        rows = p.query("SELECT doc_id FROM extractions WHERE corpus = ? ORDER BY doc_id", [fmt])
        assert [r[0] for r in rows] == sorted(ids)

        texts = list(TEXTS)
        texts[1] = EDITED
        write_corpus(folder, fmt, texts)
        second = p.run(fmt, ONE_PER_CALL)
        assert second.success
        redone = p.query("SELECT doc_id FROM extractions WHERE run_id = ?", [second.run_id])
        assert [r[0] for r in redone] == [edited]

        # A bad file: the run fails naming corpus, file, row/document; nothing changes.
        before = p.query("SELECT doc_id, content_hash FROM documents ORDER BY doc_id")
        bad_name, bad = {
            "txt": ("notes/bad.txt", b"caf\xe9"),
            "csv": ("more.csv", b"ref,entry\nr9,\n"),
            "parquet": ("more.parquet", b"PAR1 broken"),
        }[fmt]
        (folder / bad_name).write_bytes(bad)
        third = p.run(fmt, ONE_PER_CALL)
        assert not third.success
        failure = next(e for e in third.all_events if e.is_step_failure)
        message = str(failure.step_failure_data.error)
        assert repr(fmt) in message and bad_name in message
        assert p.query("SELECT doc_id, content_hash FROM documents ORDER BY doc_id") == before
        assert p.query("SELECT count(*) FROM calls WHERE run_id = ?", [third.run_id]) == [(0,)]
