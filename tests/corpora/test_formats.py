"""The corpus file formats besides JSONL: text files, CSV, Parquet, and ``corpus.yaml`` keys.

Each format must keep the JSONL guarantees: an error names the corpus, the file, the line or
row and the document; nothing is stored from a bad corpus; the fingerprint changes with the
content and only then; an edited document, and only it, is ``changed`` in the next sync.
"""

from __future__ import annotations

import json
from pathlib import Path

import duckdb
import pytest

from extraction_assets.corpora.sources import (
    corpus_fingerprint,
    iter_corpus,
    read_corpus,
    scan_corpus,
)
from extraction_assets.errors import CorpusError
from extraction_assets.types import content_hash
from resources.store import DuckDBStore


def write(path: Path, content: str | bytes) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(content, bytes):
        path.write_bytes(content)
    else:
        path.write_text(content, encoding="utf-8")
    return path


def write_parquet(path: Path, select_sql: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with duckdb.connect() as con:
        con.execute(f"COPY ({select_sql}) TO '{path}' (FORMAT parquet)")
    return path


def text_corpus(root: Path) -> Path:
    folder = root / "notes"
    write(folder / "a.txt", "Alpha was born in 1901.")
    write(folder / "2024" / "b.md", "# Beta\n\nDied 1950.")
    write(folder / "2024" / "c.txt", b"\xef\xbb\xbfGamma, with a byte-order mark.")
    write(folder / "README.md", "not a document")
    return folder


def csv_corpus(root: Path) -> Path:
    folder = root / "table"
    write(folder / "corpus.yaml", "id_key: note_id\ntext_key: body\n")
    write(
        folder / "rows.csv",
        'note_id,body,other\n007,"First, with a comma",x\n8,"Second\non two lines",y\n',
    )
    return folder


def parquet_corpus(root: Path) -> Path:
    folder = root / "pq"
    write_parquet(
        folder / "part-1.parquet",
        "SELECT * FROM (VALUES (1, 'One.'), (2, 'Two.')) t(id, text)",
    )
    return folder


def stored(path: Path, corpus: str) -> list[tuple]:
    if not path.exists():
        return []
    with duckdb.connect(str(path), read_only=True) as con:
        return con.execute(
            "SELECT doc_id, text, source FROM documents WHERE corpus = ? AND NOT deleted "
            "ORDER BY doc_id",
            [corpus],
        ).fetchall()


def sync(store: DuckDBStore, root: Path, corpus: str, run_id: str = "r1"):  # type: ignore[no-untyped-def]
    return store.sync_corpus(scan_corpus(root, corpus), run_id, lambda: iter_corpus(root, corpus))


# --- reading ----------------------------------------------------------------------------------


def test_text_files_one_document_each_id_is_relative_path(tmp_path: Path) -> None:
    text_corpus(tmp_path)
    docs = read_corpus(tmp_path, "notes")
    assert [(d.doc_id, d.source) for d in docs] == [
        ("2024/b.md", "2024/b.md"),
        ("2024/c.txt", "2024/c.txt"),
        ("a.txt", "a.txt"),
    ]
    assert docs[1].text == "Gamma, with a byte-order mark."
    assert docs[0].content_hash == content_hash("# Beta\n\nDied 1950.")


def test_csv_columns_from_corpus_yaml_values_kept_as_written(tmp_path: Path) -> None:
    csv_corpus(tmp_path)
    docs = read_corpus(tmp_path, "table")
    assert [(d.doc_id, d.text, d.source) for d in docs] == [
        ("007", "First, with a comma", "rows.csv:row 1"),
        ("8", "Second\non two lines", "rows.csv:row 2"),
    ]


def test_parquet_integer_ids(tmp_path: Path) -> None:
    parquet_corpus(tmp_path)
    docs = read_corpus(tmp_path, "pq")
    assert [(d.doc_id, d.text, d.source) for d in docs] == [
        ("1", "One.", "part-1.parquet:row 1"),
        ("2", "Two.", "part-1.parquet:row 2"),
    ]


def test_jsonl_keys_from_corpus_yaml(tmp_path: Path) -> None:
    write(tmp_path / "c" / "corpus.yaml", "id_key: uid\ntext_key: body\n")
    write(tmp_path / "c" / "d.jsonl", json.dumps({"uid": "u1", "body": "Hello.", "text": 3}) + "\n")
    assert [(d.doc_id, d.text) for d in read_corpus(tmp_path, "c")] == [("u1", "Hello.")]
    scan = scan_corpus(tmp_path, "c")
    assert not scan.plain, "the store's NDJSON loader reads id/text only"


def test_only_default_key_top_level_jsonl_is_plain(tmp_path: Path) -> None:
    write(tmp_path / "c" / "d.jsonl", '{"id": "a", "text": "x"}\n')
    write(tmp_path / "c" / "e.txt", "y")
    write(tmp_path / "c" / "sub" / "f.jsonl", '{"id": "b", "text": "z"}\n')
    assert [f.plain for f in scan_corpus(tmp_path, "c").files] == [True, False, False]


# --- errors -----------------------------------------------------------------------------------


def error(root: Path, corpus: str) -> CorpusError:
    with pytest.raises(CorpusError) as info:
        read_corpus(root, corpus)
    assert info.value.corpus == corpus and repr(corpus) in str(info.value)
    return info.value


def test_text_file_invalid_utf8_names_file_document_and_offset(tmp_path: Path) -> None:
    text_corpus(tmp_path)
    write(tmp_path / "notes" / "2024" / "bad.txt", b"ok \xff")
    err = error(tmp_path, "notes")
    assert "2024/bad.txt" in str(err) and "byte offset 3" in str(err)
    assert err.document == "2024/bad.txt"


def test_empty_text_file_named(tmp_path: Path) -> None:
    text_corpus(tmp_path)
    write(tmp_path / "notes" / "blank.txt", " \n")
    err = error(tmp_path, "notes")
    assert "'blank.txt' (blank.txt)" in str(err) and "empty" in str(err)


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        ("note_id,body\n1,ok\n,no id\n", "rows.csv:row 2: missing or invalid 'note_id'"),
        ("note_id,body\n1,ok\n2,\n", "empty or whitespace-only text for ids: '2' (rows.csv:row 2)"),
        ("note_id,text\n1,ok\n", "rows.csv: no column 'body' for the document text"),
        ("note_id,body\n1,ok\n1,again\n", "'1' at rows.csv:row 1, rows.csv:row 2"),
        (b"note_id,body\n1,ok\n2,caf\xe9\n", "rows.csv"),
    ],
)
def test_csv_errors_name_file_row_and_id(
    tmp_path: Path, content: str | bytes, expected: str
) -> None:
    write(tmp_path / "t" / "corpus.yaml", "id_key: note_id\ntext_key: body\n")
    write(tmp_path / "t" / "rows.csv", content)
    assert expected in str(error(tmp_path, "t"))


@pytest.mark.parametrize(
    ("select_sql", "expected"),
    [
        ("SELECT 1 AS id, NULL::VARCHAR AS text", "'1' (p.parquet:row 1)"),
        ("SELECT 1 AS id, 5 AS text", "p.parquet:row 1: document '1': 'text' is int"),
        ("SELECT 1.5 AS id, 'x' AS text", "p.parquet:row 1: missing or invalid 'id'"),
        ("SELECT 'x' AS text", "p.parquet: no column 'id'"),
    ],
)
def test_parquet_errors_name_file_row_and_id(
    tmp_path: Path, select_sql: str, expected: str
) -> None:
    write_parquet(tmp_path / "p" / "p.parquet", select_sql)
    assert expected in str(error(tmp_path, "p"))


def test_not_a_parquet_file(tmp_path: Path) -> None:
    write(tmp_path / "p" / "p.parquet", "not parquet")
    assert "p.parquet: cannot read" in str(error(tmp_path, "p"))


def test_duplicate_ids_across_formats(tmp_path: Path) -> None:
    write(tmp_path / "m" / "a.jsonl", '{"id": "x.txt", "text": "one"}\n')
    write(tmp_path / "m" / "x.txt", "two")
    assert "'x.txt' at a.jsonl:1, x.txt" in str(error(tmp_path, "m"))


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        ("id_column: x\n", "corpus.yaml: id_column: Extra inputs are not permitted"),
        ("text_key: ''\n", "corpus.yaml: text_key"),
        ("[1, 2]\n", "corpus.yaml: expected a mapping"),
        ("id_key: [unclosed\n", "corpus.yaml: not valid YAML"),
    ],
)
def test_bad_corpus_yaml(tmp_path: Path, content: str, expected: str) -> None:
    text_corpus(tmp_path)
    write(tmp_path / "notes" / "corpus.yaml", content)
    assert expected in str(error(tmp_path, "notes"))


# --- the store: nothing from a bad corpus; one edited document re-synced ----------------------


@pytest.mark.parametrize("corpus", ["notes", "table", "pq"])
def test_bad_file_stores_nothing_and_keeps_the_last_good_state(tmp_path: Path, corpus: str) -> None:
    root = tmp_path / "src"
    folder = {"notes": text_corpus, "table": csv_corpus, "pq": parquet_corpus}[corpus](root)
    store = DuckDBStore(path=str(tmp_path / "store.duckdb"))
    fresh = tmp_path / "fresh.duckdb"
    bad = {
        "notes": ("zz.txt", b"\xff"),
        "table": ("zz.csv", b"note_id,body\n9,\n"),
        "pq": ("zz.parquet", b"PAR1 broken"),
    }[corpus]
    write(folder / bad[0], bad[1])
    with pytest.raises(CorpusError, match=bad[0].replace(".", r"\.")):
        sync(DuckDBStore(path=str(fresh)), root, corpus)
    assert stored(fresh, corpus) == []

    (folder / bad[0]).unlink()
    sync(store, root, corpus)
    good = stored(Path(store.path), corpus)
    assert good
    write(folder / bad[0], bad[1])
    with pytest.raises(CorpusError):
        sync(store, root, corpus, "r2")
    assert stored(Path(store.path), corpus) == good


def test_edited_text_file_is_the_only_change(tmp_path: Path) -> None:
    root = tmp_path / "src"
    folder = text_corpus(root)
    store = DuckDBStore(path=str(tmp_path / "store.duckdb"))
    assert sync(store, root, "notes").new == 3
    before = corpus_fingerprint(root, "notes")
    assert sync(store, root, "notes", "r2").reader.startswith("skipped")
    write(folder / "2024" / "c.txt", "Gamma, corrected.")
    assert corpus_fingerprint(root, "notes") != before
    result = sync(store, root, "notes", "r3")
    assert (result.changed, result.new, result.unchanged) == (1, 0, 2)
    assert result.changed_ids == ["2024/c.txt"]


def test_edited_csv_row_is_the_only_change_and_corpus_yaml_counts(tmp_path: Path) -> None:
    root = tmp_path / "src"
    folder = csv_corpus(root)
    store = DuckDBStore(path=str(tmp_path / "store.duckdb"))
    assert sync(store, root, "table").new == 2
    write(
        folder / "rows.csv",
        'note_id,body,other\n007,"First, with a comma",x\n8,"Second, fixed",z\n',
    )
    result = sync(store, root, "table", "r2")
    assert (result.changed, result.unchanged, result.changed_ids) == (1, 1, ["8"])
    before = corpus_fingerprint(root, "table")
    write(folder / "corpus.yaml", "id_key: other\ntext_key: body\n")
    assert corpus_fingerprint(root, "table") != before
    result = sync(store, root, "table", "r3")
    assert (result.new, result.deleted) == (2, 2)
