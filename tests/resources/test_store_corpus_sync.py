"""Syncing a corpus folder: DuckDB's reader must store exactly what the Python reader would.

Planning a million-document corpus in seconds needs DuckDB to parse and hash the JSONL, and an
unchanged folder must not be read at all. Both shortcuts are only safe if they can never store
something the reference reader (extraction_assets.corpora.sources) would reject or store
differently: same ids, texts, content hashes and file:line provenance, and the same errors.
"""

from __future__ import annotations

import importlib.abc
import json
import string
import sys
from collections.abc import Iterable
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from extraction_assets.corpora.sources import iter_corpus, scan_corpus
from extraction_assets.errors import CorpusError
from extraction_assets.types import Document
from resources.store import DuckDBStore

SAMPLE = Path(__file__).resolve().parents[2] / "extraction_assets" / "sample_data"


def rows(store: DuckDBStore, corpus: str) -> list[tuple]:
    with store.connect(read_only=True) as con:
        return con.execute(
            "SELECT doc_id, text, content_hash, source, deleted FROM documents "
            "WHERE corpus = ? ORDER BY doc_id",
            [corpus],
        ).fetchall()


class Reader:
    """The Python reader, counting how often the store falls back to it."""

    def __init__(self, root: Path, corpus: str) -> None:
        self.root, self.corpus, self.calls = root, corpus, 0

    def __call__(self) -> Iterable[Document]:
        self.calls += 1
        return iter_corpus(self.root, self.corpus)


def sync_both(root: Path, corpus: str, tmp: Path) -> tuple[DuckDBStore, DuckDBStore, str]:
    """The same folder through sync_corpus and through the reference sync_documents."""
    fast = DuckDBStore(path=str(tmp / "fast.duckdb"))
    ref = DuckDBStore(path=str(tmp / "ref.duckdb"))
    result = fast.sync_corpus(scan_corpus(root, corpus), "r1", Reader(root, corpus))
    ref.sync_documents(corpus, iter_corpus(root, corpus), "r1")
    return fast, ref, result.reader


@pytest.mark.parametrize("edition", ["corpora", "corrected"])
def test_sample_corpus_duckdb_reader_matches_python(edition: str, tmp_path: Path) -> None:
    fast, ref, reader = sync_both(SAMPLE / edition, "biographies", tmp_path)
    assert reader == "duckdb"
    assert rows(fast, "biographies") == rows(ref, "biographies")
    assert len(rows(fast, "biographies")) == 40


def write(path: Path, data: bytes) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path


def test_unicode_crlf_int_ids_and_extra_keys_take_the_fast_path(tmp_path: Path) -> None:
    lines = [
        {"id": 7, "text": "caf\u0065\u0301 (not NFC)", "lang": "fr", "meta": {"k": [1, 2]}},
        {"id": "ar-1", "text": "حدثنا محمد بن إسماعيل، مات سنة ست وخمسين ومائتين"},
        {"id": "x", "text": 'line\nbreak "quoted" \u00e9 \U0001f600', "title": None},
        {"text": "key order swapped", "id": "y"},
    ]
    data = "\r\n".join(json.dumps(r, ensure_ascii=False) for r in lines).encode()
    write(tmp_path / "src" / "c" / "a.jsonl", data)  # no newline after the last line
    write(tmp_path / "src" / "c" / "b.jsonl", b'{"id": "z", "text": "second file"}\n')
    fast, ref, reader = sync_both(tmp_path / "src", "c", tmp_path)
    assert reader == "duckdb"
    assert rows(fast, "c") == rows(ref, "c")
    assert [r[3] for r in rows(fast, "c")] == [
        "a.jsonl:1",
        "a.jsonl:2",
        "a.jsonl:3",
        "a.jsonl:4",
        "b.jsonl:1",
    ]


# Inputs where DuckDB's reader and Python's disagree or cannot tell line numbers: the store
# must fall back to the Python reader and end exactly as it would (stored rows or an error).
EDGE_CASES = {
    "blank line": b'{"id": "a", "text": "x"}\n\n{"id": "b", "text": "y"}\n',
    "whitespace line": b'{"id": "a", "text": "x"}\n   \n{"id": "b", "text": "y"}\n',
    "duplicate key": b'{"id": "a", "text": "first", "text": "second"}\n',
    "lone surrogate": b'{"id": "a", "text": "x\\ud800y"}\n',
    "raw tab in string": b'{"id": "a", "text": "x\ty"}\n',
    "byte order mark": b'\xef\xbb\xbf{"id": "a", "text": "x"}\n',
    "big integer id": b'{"id": 123456789012345678901234567890, "text": "x"}\n',
    "float id": b'{"id": 1.5, "text": "x"}\n',
    "bool id": b'{"id": true, "text": "x"}\n',
    "empty id": b'{"id": "", "text": "x"}\n',
    "ideographic-space text": '{"id": "a", "text": "\u3000\u2003"}\n'.encode(),
    "numeric text": b'{"id": "a", "text": 5}\n',
    "missing text": b'{"id": "a"}\n',
    "duplicated id": b'{"id": "a", "text": "x"}\n{"id": "a", "text": "y"}\n',
    "invalid utf-8": b'{"id": "a", "text": "x\xffy"}\n',
    "not an object": b"[1, 2]\n",
    "two objects on a line": b'{"id": "a", "text": "x"} {"id": "b", "text": "y"}\n',
    "lone carriage return": b'{"id": "a", "text": "x"}\r{"id": "b", "text": "y"}\n',
}


@pytest.mark.parametrize("case", sorted(EDGE_CASES))
def test_edge_cases_end_as_the_python_reader_ends(case: str, tmp_path: Path) -> None:
    root = tmp_path / "src"
    write(root / "c" / "a.jsonl", EDGE_CASES[case])
    fast = DuckDBStore(path=str(tmp_path / "fast.duckdb"))
    # Something already stored for this corpus must survive a failed sync untouched.
    fast.sync_documents("c", [Document.make("c", "old", "stored before", "old.jsonl:1")], "r0")
    before = rows(fast, "c")
    try:
        expected = [(d.doc_id, d.text, d.content_hash, d.source) for d in iter_corpus(root, "c")]
    except CorpusError as exc:
        with pytest.raises(CorpusError) as raised:
            fast.sync_corpus(scan_corpus(root, "c"), "r1", Reader(root, "c"))
        assert str(raised.value) == str(exc)
        assert rows(fast, "c") == before
        assert fast.synced_fingerprint("c") is None
        return
    reader = Reader(root, "c")
    result = fast.sync_corpus(scan_corpus(root, "c"), "r1", reader)
    assert (result.reader, reader.calls) == ("python", 1)
    current = [r[:4] for r in rows(fast, "c") if not r[4]]
    assert current == sorted(expected)


def test_unchanged_folder_is_not_read_again(tmp_path: Path) -> None:
    root = tmp_path / "src"
    path = write(root / "c" / "a.jsonl", b'{"id": "a", "text": "x"}\n{"id": "b", "text": "y"}\n')
    store = DuckDBStore(path=str(tmp_path / "s.duckdb"))
    reader = Reader(root, "c")
    first = store.sync_corpus(scan_corpus(root, "c"), "r1", reader)
    assert (first.reader, first.new) == ("duckdb", 2)
    again = store.sync_corpus(scan_corpus(root, "c"), "r2", reader)
    assert again.reader.startswith("skipped")
    assert (again.unchanged, again.total_current, again.new, reader.calls) == (2, 2, 0, 0)
    with store.connect(read_only=True) as con:
        assert con.execute("SELECT count(*) FROM changes WHERE run_id = 'r2'").fetchone() == (0,)
    path.write_bytes(b'{"id": "a", "text": "x corrected"}\n')
    third = store.sync_corpus(scan_corpus(root, "c"), "r3", reader)
    assert (third.reader, third.changed, third.deleted) == ("duckdb", 1, 1)
    assert store.synced_fingerprint("c") == scan_corpus(root, "c").fingerprint


def test_documents_synced_without_a_scan_are_read_again(tmp_path: Path) -> None:
    """sync_documents (no fingerprint) must not leave a stale fingerprint that skips a change."""
    root = tmp_path / "src"
    path = write(root / "c" / "a.jsonl", b'{"id": "a", "text": "x"}\n')
    store = DuckDBStore(path=str(tmp_path / "s.duckdb"))
    store.sync_corpus(scan_corpus(root, "c"), "r1", Reader(root, "c"))
    store.sync_documents("c", [Document.make("c", "a", "set by hand")], "r2")
    path.write_bytes(b'{"id": "a", "text": "x"}\n')  # same bytes as the recorded fingerprint
    result = store.sync_corpus(scan_corpus(root, "c"), "r3", Reader(root, "c"))
    assert result.changed == 1 and rows(store, "c")[0][1] == "x"


def test_streamed_documents_cost_no_import_per_value(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """DuckDB 1.4 converts a Python list parameter value by value and, where pandas is not
    installed, tries ``import pandas`` for each: a full search of sys.path per value that made the
    Python reader's sync 20-60x slower. Counted, not timed: lookups must not grow with documents."""
    lookups: list[str] = []

    class Spy(importlib.abc.MetaPathFinder):
        def find_spec(self, name: str, path: object = None, target: object = None) -> None:
            lookups.append(name)

    store = DuckDBStore(path=str(tmp_path / "s.duckdb"))
    store.sync_documents("warm", [Document.make("warm", "w", "x")], "r0")  # lazy imports settle
    monkeypatch.setattr(sys, "meta_path", [Spy(), *sys.meta_path])
    counts: dict[int, int] = {}
    for n in (10, 1000):
        lookups.clear()
        store.sync_documents(f"c{n}", [Document.make(f"c{n}", f"d{i}", "t") for i in range(n)], "r")
        counts[n] = len(lookups)
        assert len(rows(store, f"c{n}")) == n
    assert counts[1000] <= counts[10] + 5, counts


# Combining marks (NFC differs), Arabic, Unicode spaces, astral characters, JSON escapes.
TEXT = st.text(
    alphabet=st.sampled_from([*string.printable, "é", "\u0301", "ب", "\u3000", "😀"]), max_size=12
)
LINE = st.one_of(
    st.builds(
        lambda i, t: json.dumps({"id": i, "text": t}), st.one_of(st.integers(-5, 50), TEXT), TEXT
    ),
    st.builds(lambda i, t: json.dumps({"id": i, "text": t}, ensure_ascii=False), TEXT, TEXT),
    st.sampled_from(["", "  ", "{}", "[]", '{"id": "q"}', '{"id": "d", "text": "a", "text": "b"}']),
)


@pytest.mark.slow
@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(lines=st.lists(LINE, max_size=6), newline=st.sampled_from(["\n", "\r\n"]))
def test_fuzzed_files_end_as_the_python_reader_ends(
    lines: list[str], newline: str, tmp_path_factory: pytest.TempPathFactory
) -> None:
    tmp = tmp_path_factory.mktemp("fuzz")
    write(tmp / "src" / "c" / "a.jsonl", newline.join(lines).encode())
    fast = DuckDBStore(path=str(tmp / "fast.duckdb"))
    try:
        expected = sorted(
            (d.doc_id, d.text, d.content_hash, d.source) for d in iter_corpus(tmp / "src", "c")
        )
    except CorpusError as exc:
        with pytest.raises(CorpusError) as raised:
            fast.sync_corpus(scan_corpus(tmp / "src", "c"), "r1", Reader(tmp / "src", "c"))
        assert str(raised.value) == str(exc)
        assert rows(fast, "c") == []
        return
    fast.sync_corpus(scan_corpus(tmp / "src", "c"), "r1", Reader(tmp / "src", "c"))
    assert [r[:4] for r in rows(fast, "c")] == expected
