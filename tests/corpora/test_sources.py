"""Corpus sources: a bad source file must fail loudly with a message that says where.

The source folder is untrusted input (edited by hand, copied from elsewhere), and its
folder names become Dagster partition keys and SQL parameters, so every malformed input
must end in a CorpusError naming the corpus and the file:line or document id, and nothing
may ever be read from outside the source root.
"""

from __future__ import annotations

import json
import os
import unicodedata
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from extraction_assets.corpora.sources import (
    corpus_fingerprint,
    iter_corpus,
    list_corpora,
    read_corpus,
    validate_corpus_name,
)
from extraction_assets.errors import CorpusError
from extraction_assets.settings import Settings
from extraction_assets.types import content_hash

SAMPLE = Path(__file__).resolve().parents[2] / "extraction_assets" / "sample_data"


def write_jsonl(path: Path, rows: list[object]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(
        "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8"
    )
    return path


def good_corpus(root: Path, name: str = "c1") -> Path:
    write_jsonl(root / name / "a.jsonl", [{"id": "x1", "text": "Alpha.", "lang": "en"}])
    write_jsonl(root / name / "b.jsonl", [{"id": 7, "text": "مات سنة ستين ومائة", "title": "t"}])
    return root / name


def test_sample_corpus_reads_and_corrected_differs_in_exactly_three() -> None:
    assert Settings.from_env().source_root.resolve() == (SAMPLE / "corpora").resolve()
    assert list_corpora(SAMPLE / "corpora") == ["biographies"]
    base = {d.doc_id: d for d in read_corpus(SAMPLE / "corpora", "biographies")}
    fixed = {d.doc_id: d for d in read_corpus(SAMPLE / "corrected", "biographies")}
    assert len(base) == 40 and base.keys() == fixed.keys()
    langs = {i.split("-")[0] for i in base}
    assert {"en", "ar", "fr", "de", "tr"} <= langs
    changed = sorted(i for i in base if base[i].content_hash != fixed[i].content_hash)
    assert changed == ["ar-002", "en-005", "fr-001"]


def test_env_overrides_default_root(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("EXTRACTION_SOURCE_ROOT", str(tmp_path))
    assert Settings.from_env().source_root == tmp_path


def test_good_corpus(tmp_path: Path) -> None:
    good_corpus(tmp_path)
    (tmp_path / "c1" / "README.md").write_text("notes")
    (tmp_path / "c1" / ".hidden").write_bytes(b"\xff")
    docs = read_corpus(tmp_path, "c1")
    assert [(d.doc_id, d.source) for d in docs] == [("x1", "a.jsonl:1"), ("7", "b.jsonl:1")]
    # A literal (sha256 of the UTF-8 text, first 32 hex digits): stored hashes must not move
    # when the code does, or every stored document would read as changed.
    assert docs[1].content_hash == "a52a4635d6eab0e8c257c06a14f962ce"
    assert all(d.corpus == "c1" for d in docs)


def test_content_hash_is_stable_and_ignores_the_unicode_form() -> None:
    composed = "Zoë café"  # NFC
    decomposed = unicodedata.normalize("NFD", composed)
    assert decomposed != composed
    assert content_hash(composed) == content_hash(decomposed) == "bf1755a894f1f0c0b4cb2d6b5176dac2"
    assert content_hash(composed + ".") != content_hash(composed)


def test_list_corpora_skips_invalid_and_hidden(tmp_path: Path, caplog) -> None:
    good_corpus(tmp_path, "b corpus 'quoted'")
    good_corpus(tmp_path, "تراجم")
    good_corpus(tmp_path, ".hidden")
    good_corpus(tmp_path, "a,b")
    (tmp_path / "loose.jsonl").write_text("")
    assert list_corpora(tmp_path) == ["b corpus 'quoted'", "تراجم"]
    assert "a,b" in caplog.text


def bad(tmp_path: Path, name: str, content: bytes, corpus: str = "c") -> CorpusError:
    (tmp_path / corpus).mkdir(exist_ok=True)
    (tmp_path / corpus / name).write_bytes(content)
    with pytest.raises(CorpusError) as info:
        read_corpus(tmp_path, corpus)
    assert info.value.corpus == corpus
    assert repr(corpus) in str(info.value)
    return info.value


def test_invalid_utf8_names_byte_offset(tmp_path: Path) -> None:
    first = b'{"id": "a", "text": "ok"}\n'
    err = bad(tmp_path, "d.jsonl", first + b'{"id": "b", "text": "x\xff"}\n')
    assert "d.jsonl:2" in str(err)
    assert f"byte offset {len(first) + 22}" in str(err)


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        (b'{"id": "a", "text": ', "invalid JSON"),
        (b'["a", "b"]', "expected a JSON object"),
        (b'{"text": "no id"}', "missing or invalid 'id'"),
        (b'{"id": true, "text": "bool id"}', "missing or invalid 'id'"),
        (b'{"id": "a"}', "missing 'text'"),
        (b'{"id": "a", "text": 3}', "'text' is int"),
        (b'{"id": "a", "text": "\\ud800"}', "not valid Unicode"),
    ],
)
def test_bad_lines(tmp_path: Path, line: bytes, expected: str) -> None:
    err = bad(tmp_path, "d.jsonl", b'{"id": "z", "text": "fine"}\n\n' + line + b"\n")
    assert "d.jsonl:3" in str(err)
    assert expected in str(err)


def test_duplicates_across_files_are_all_named(tmp_path: Path) -> None:
    write_jsonl(tmp_path / "c" / "1.jsonl", [{"id": "a", "text": "x"}, {"id": "b", "text": "y"}])
    write_jsonl(tmp_path / "c" / "2.jsonl", [{"id": "b", "text": "z"}, {"id": "a", "text": "w"}])
    with pytest.raises(CorpusError) as info:
        read_corpus(tmp_path, "c")
    msg = str(info.value)
    assert "'a' at 1.jsonl:1, 2.jsonl:2" in msg
    assert "'b' at 1.jsonl:2, 2.jsonl:1" in msg
    assert info.value.document == "b"  # found first


def test_empty_texts_are_all_named(tmp_path: Path) -> None:
    write_jsonl(
        tmp_path / "c" / "d.jsonl",
        [{"id": "a", "text": " \n"}, {"id": "b", "text": "ok"}, {"id": "c", "text": ""}],
    )
    with pytest.raises(CorpusError) as info:
        read_corpus(tmp_path, "c")
    assert "'a' (d.jsonl:1)" in str(info.value) and "'c' (d.jsonl:3)" in str(info.value)
    assert info.value.document == "a"


@pytest.mark.parametrize("name", ["data.xlsx", "blob.bin", "sub/blob.bin", "sub/README.doc"])
def test_unknown_entries_are_errors(tmp_path: Path, name: str) -> None:
    good_corpus(tmp_path, "c")
    (tmp_path / "c" / name).parent.mkdir(exist_ok=True)
    (tmp_path / "c" / name).write_text("x")
    with pytest.raises(CorpusError, match=repr(name)):
        read_corpus(tmp_path, "c")


def test_no_document_files(tmp_path: Path) -> None:
    (tmp_path / "c" / "empty-sub-folder").mkdir(parents=True)
    with pytest.raises(CorpusError, match=r"no document files \(\*\.jsonl, \*\.txt"):
        read_corpus(tmp_path, "c")


def test_file_size_limit(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    good_corpus(tmp_path, "c")
    with pytest.raises(CorpusError, match=r"a\.jsonl is .* over the 10-byte limit"):
        read_corpus(tmp_path, "c", max_file_bytes=10)
    monkeypatch.setenv("EXTRACTION_MAX_FILE_BYTES", "10")
    with pytest.raises(CorpusError, match="10-byte limit"):
        read_corpus(tmp_path, "c", Settings.from_env().max_file_bytes)


def test_iteration_is_streaming(tmp_path: Path) -> None:
    """The first document arrives before a broken line further down is read."""
    p = tmp_path / "c" / "d.jsonl"
    p.parent.mkdir()
    p.write_bytes(b'{"id": "a", "text": "x"}\n' + b"not json\n")
    docs = iter_corpus(tmp_path, "c")
    assert next(docs).doc_id == "a"
    with pytest.raises(CorpusError, match=r"d\.jsonl:2: invalid JSON"):
        next(docs)


@pytest.mark.parametrize(
    "name",
    [
        "",
        "..",
        "a/b",
        "a\\b",
        ".x",
        "x" * 101,
        "😀" * 70,
        "a\nb",
        "a\x00b",
        "a..b",
        " a",
        "a|b",
        "a[0]",
    ],
)
def test_unsafe_corpus_names_rejected(tmp_path: Path, name: str) -> None:
    with pytest.raises(CorpusError, match="invalid corpus name"):
        validate_corpus_name(name)
    with pytest.raises(CorpusError):
        read_corpus(tmp_path, name)


@pytest.mark.parametrize("name", ["a b", 'it\'s "x"', "تراجم الرواة", "x" * 100, "Çelebi-2"])
def test_safe_corpus_names_allowed(name: str) -> None:
    assert validate_corpus_name(name) == name


def test_symlink_escape_rejected(tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    good_corpus(outside, "secret")
    root = tmp_path / "root"
    root.mkdir()
    os.symlink(outside / "secret", root / "link")
    good_corpus(root, "c")
    os.symlink(outside / "secret" / "a.jsonl", root / "c" / "z.jsonl")
    assert list_corpora(root) == ["c"]
    with pytest.raises(CorpusError, match="outside"):
        read_corpus(root, "link")
    with pytest.raises(CorpusError, match=r"z\.jsonl.*outside"):
        read_corpus(root, "c")


def test_symlink_loop_and_unreadable_entries_are_corpus_errors(tmp_path: Path) -> None:
    os.symlink(tmp_path / "loop", tmp_path / "loop")
    with pytest.raises(CorpusError):
        read_corpus(tmp_path, "loop")
    good_corpus(tmp_path, "c")
    fp = corpus_fingerprint(tmp_path, "c")
    os.symlink(tmp_path / "c" / "self.jsonl", tmp_path / "c" / "self.jsonl")
    with pytest.raises(CorpusError, match=r"self\.jsonl"):
        read_corpus(tmp_path, "c")
    assert corpus_fingerprint(tmp_path, "c") != fp  # counted, so the next run reports it


def test_fingerprint_changes_iff_content_changes(tmp_path: Path) -> None:
    folder = good_corpus(tmp_path, "c")
    fp = corpus_fingerprint(tmp_path, "c")
    os.utime(folder / "a.jsonl", (1, 1))  # touching is not a change
    (folder / "README.md").write_text("notes are ignored")
    assert corpus_fingerprint(tmp_path, "c") == fp
    original = (folder / "a.jsonl").read_bytes()
    (folder / "a.jsonl").write_bytes(original.replace(b"Alpha", b"Alphb"))  # same size
    changed = corpus_fingerprint(tmp_path, "c")
    assert changed != fp
    (folder / "a.jsonl").write_bytes(original)
    assert corpus_fingerprint(tmp_path, "c") == fp
    (folder / "a.jsonl").rename(folder / "a2.jsonl")
    assert corpus_fingerprint(tmp_path, "c") != fp
    (folder / "a2.jsonl").rename(folder / "a.jsonl")
    (folder / "x.csv").write_text("")
    assert corpus_fingerprint(tmp_path, "c") != fp


@settings(  # examples: the profile (tests/conftest.py)
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(
    name=st.one_of(
        st.text(min_size=0, max_size=40),
        st.text(alphabet=st.sampled_from("./\\ aب😀\x00\u202e"), min_size=0, max_size=110),
    ),
    content=st.one_of(
        st.binary(max_size=300),
        st.lists(
            st.fixed_dictionaries(
                {"id": st.one_of(st.text(max_size=5), st.integers(), st.none())},
                optional={"text": st.one_of(st.text(max_size=20), st.integers())},
            ),
            max_size=5,
        ).map(lambda rows: "\n".join(json.dumps(r) for r in rows).encode()),
    ),
)
def test_fuzz_never_escapes_root_and_only_raises_corpus_error(
    tmp_path_factory: pytest.TempPathFactory, name: str, content: bytes
) -> None:
    base = tmp_path_factory.mktemp("fuzz")
    root = base / "root"
    root.mkdir()
    # Bait: a readable corpus right outside the root that a traversal would reach.
    write_jsonl(base / "bait" / "x.jsonl", [{"id": "bait", "text": "outside the root"}])
    try:
        folder = root / name
        folder.mkdir(parents=True, exist_ok=True)
        (folder / "d.jsonl").write_bytes(content)
    except (OSError, ValueError):
        pass  # names the filesystem itself refuses
    for call in (read_corpus, corpus_fingerprint):
        try:
            result = call(root, name)
        except CorpusError:
            continue
        if call is read_corpus:
            assert all(d.doc_id != "bait" for d in result)
    try:
        listed = list_corpora(root)
    except CorpusError:
        listed = []
    assert all(validate_corpus_name(n) == n for n in listed)
