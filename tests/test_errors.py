"""One error tree: every error the project raises on purpose derives from ExtractionError, is
defined in extraction_assets/errors.py and exported from there only (after httpx's
tests/test_exported_members.py)."""

from __future__ import annotations

import ast
import builtins
from pathlib import Path

import pytest

import extraction_assets.errors as errors

ROOT = Path(__file__).resolve().parents[1]
# Control flow inside the backends' retry loop, never raised to a caller.
INTERNAL = {"Retryable"}
BUILTIN_ERRORS = {
    n for n, v in vars(builtins).items() if isinstance(v, type) and issubclass(v, BaseException)
}


def test_all_lists_every_public_class_once() -> None:
    public = {
        name
        for name, value in vars(errors).items()
        if isinstance(value, type) and issubclass(value, BaseException) and not name.startswith("_")
    }
    assert errors.__all__ == sorted(errors.__all__)
    assert set(errors.__all__) == public
    for name in errors.__all__:
        assert getattr(errors, name).__module__ == "extraction_assets.errors"


@pytest.mark.parametrize(
    ("name", "bases"),
    [
        ("CorpusError", (errors.ExtractionError, ValueError)),
        ("StoreError", (errors.ExtractionError, RuntimeError)),
        ("StoreLockedError", (errors.StoreError, RuntimeError)),
        ("StoreWriteError", (errors.StoreError, RuntimeError)),
        ("LakeUnavailableError", (errors.StoreError, RuntimeError)),
        ("LLMError", (errors.ExtractionError,)),
        ("TransportError", (errors.LLMError,)),
        ("ContextLengthError", (errors.LLMError,)),
        ("RequestRejectedError", (errors.LLMError,)),
        ("ServerUnavailableError", (errors.LLMError, RuntimeError)),
        ("ServerError", (errors.ExtractionError, RuntimeError)),
        ("ModelUnavailable", (errors.ServerError, RuntimeError)),
        ("GoldError", (errors.ExtractionError,)),
        ("GoldFileMissingError", (errors.GoldError, FileNotFoundError)),
        ("GoldFileError", (errors.GoldError, ValueError)),
        ("TaskSpecError", (errors.ExtractionError, ValueError)),
    ],
)
def test_the_hierarchy_keeps_the_builtin_bases_callers_catch(
    name: str, bases: tuple[type, ...]
) -> None:
    cls = getattr(errors, name)
    assert all(issubclass(cls, base) for base in bases), cls.__mro__


def test_errors_keep_what_they_carry() -> None:
    corpus = errors.CorpusError("corpus 'c': bad line", "c", "doc-1")
    assert (str(corpus), corpus.corpus, corpus.document) == ("corpus 'c': bad line", "c", "doc-1")
    rejected = errors.RequestRejectedError("http://h/v1", 400, "bad schema")
    assert (str(rejected), rejected.status) == ("http://h/v1: HTTP 400: bad schema", 400)
    spec = errors.TaskSpecError("t.yaml", "fields.name", "unknown type")
    assert str(spec) == "t.yaml: fields.name: unknown type"


def _exception_classes(path: Path) -> list[str]:
    """Classes defined in `path` whose bases name a built-in exception or one of ours."""
    ours = set(errors.__all__) | BUILTIN_ERRORS
    tree = ast.parse(path.read_text(encoding="utf-8"))
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.ClassDef):
            names = {
                b.id if isinstance(b, ast.Name) else getattr(b, "attr", "") for b in node.bases
            }
            if names & ours and node.name not in INTERNAL:
                found.append(node.name)
    return found


def test_no_error_class_is_defined_outside_errors_py() -> None:
    elsewhere = {
        str(path.relative_to(ROOT)): _exception_classes(path)
        for package in ("extraction_assets", "resources")
        for path in (ROOT / package).rglob("*.py")
        if path.name != "errors.py"
    }
    assert {k: v for k, v in elsewhere.items() if v} == {}


def test_one_import_path_per_error() -> None:
    """No facade re-exports an error: `from extraction_assets.errors import X` is the one path."""
    facades = {}
    for path in [*(ROOT / "extraction_assets").rglob("*.py"), *(ROOT / "resources").rglob("*.py")]:
        if path.name == "errors.py":
            continue
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in tree.body:
            if isinstance(node, ast.Assign) and any(
                isinstance(t, ast.Name) and t.id == "__all__" for t in node.targets
            ):
                exported = {e.value for e in ast.walk(node.value) if isinstance(e, ast.Constant)}
                if exported & set(errors.__all__):
                    facades[str(path.relative_to(ROOT))] = sorted(exported & set(errors.__all__))
    assert facades == {}
