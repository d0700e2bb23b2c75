"""The outcome journal: a run's completed calls, durable on disk before they reach the store.

Opening the DuckDB file, committing and checkpointing cost ~40-60 ms of CPU per transaction
whatever it holds; on a machine where the inference server shares the cores, a transaction per
call (or per small group of calls) takes throughput from the server. So a run appends its calls
to its own journal (JSON lines, fsync'd: a call is acknowledged once it is there) and merges
them into the store every few seconds, in one transaction. A killed run leaves its journal
behind; the next run on the store merges it first (idempotent: a call id already stored is
skipped), so no finished call is lost.

One journal per writer under ``<store>.journals/``, held with an exclusive ``flock`` while the
writer lives: a journal nobody holds is an orphan to recover. A journal is created and locked
under a temporary name that recovery ignores, then renamed: recovery never sees a journal its
writer has not locked yet (it would read it empty, delete it, and the writer's calls would go to
a file nobody can find).
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any

from extraction_assets.types import CallOutcome, CallRecord, ItemResult

# A journal being created; "*.jsonl" does not match it, so recovery never sees it.
CREATING_SUFFIX = ".jsonl.creating"
# A journal still being created this long after it was made: its writer died before renaming it.
STALE_CREATING_S = 60.0


def journal_dir(store_path: str) -> Path:
    return Path(f"{store_path}.journals")


def _sync_dir(folder: Path) -> None:
    """Make a rename in ``folder`` durable."""
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _encode(outcome: CallOutcome) -> str:
    return json.dumps(asdict(outcome), ensure_ascii=False, separators=(",", ":"))


def _decode(line: str) -> CallOutcome:
    raw = json.loads(line)
    return CallOutcome(
        call=CallRecord(**raw["call"]), results=[ItemResult(**r) for r in raw["results"]]
    )


class OutcomeJournal:
    """Append-only, fsync'd, exclusively locked file of one writer's call outcomes."""

    def __init__(self, store_path: str, context: dict[str, str]) -> None:
        folder = journal_dir(store_path)
        folder.mkdir(parents=True, exist_ok=True)
        name = uuid.uuid4().hex
        creating = folder / f"{name}{CREATING_SUFFIX}"
        self._file = creating.open("a+", encoding="utf-8")
        fcntl.flock(self._file, fcntl.LOCK_EX | fcntl.LOCK_NB)
        # The first line says where the outcomes belong (run, corpus, task version, model).
        self._header = json.dumps({"context": context}) + "\n"
        self._write(self._header)
        self.path = folder / f"{name}.jsonl"
        creating.rename(self.path)  # the lock stays with the file
        _sync_dir(folder)

    def _write(self, text: str) -> None:
        self._file.write(text)
        self._file.flush()
        os.fsync(self._file.fileno())

    def append(self, outcomes: Sequence[CallOutcome]) -> None:
        self._write("".join(_encode(o) + "\n" for o in outcomes))

    def clear(self) -> None:
        """Everything so far is in the store: start over (a replay would be a no-op anyway)."""
        self._file.seek(0)
        self._file.truncate()
        self._write(self._header)

    def close(self, delete: bool) -> None:
        if delete:
            self.path.unlink(missing_ok=True)
        with contextlib.suppress(OSError):
            fcntl.flock(self._file, fcntl.LOCK_UN)
        self._file.close()


def read_journal(path: Path) -> tuple[dict[str, Any], list[CallOutcome]]:
    """The context and outcomes of a journal; a torn last line (killed mid-append) is dropped:
    that call was never acknowledged."""
    lines = path.read_text(encoding="utf-8").split("\n")
    context: dict[str, Any] = {}
    outcomes = []
    for i, line in enumerate(lines):
        if not line.strip():
            continue
        try:
            if i == 0:
                context = json.loads(line)["context"]
            else:
                outcomes.append(_decode(line))
        except (ValueError, KeyError, TypeError):
            if i != len(lines) - 1:  # a complete line that does not parse: damaged, not torn
                raise ValueError(f"damaged outcome journal {path}, line {i + 1}") from None
    return context, outcomes


def _remove_stale_creating(folder: Path) -> None:
    """Remove journals whose writer died between creating and renaming them: they hold only a
    header (calls are appended after the rename, so nothing in them was acknowledged). Old and
    unlocked only: a writer may be between its open and its lock right now."""
    if not folder.exists():
        return
    for path in folder.glob(f"*{CREATING_SUFFIX}"):
        try:
            if time.time() - path.stat().st_mtime < STALE_CREATING_S:
                continue
            with path.open("r", encoding="utf-8") as handle:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
                path.unlink()
        except (FileNotFoundError, BlockingIOError):
            continue


@contextlib.contextmanager
def orphaned_journals(store_path: str) -> Iterator[list[Path]]:
    """Journals no living writer holds, locked for the caller while it merges them."""
    folder = journal_dir(store_path)
    held = []
    _remove_stale_creating(folder)
    try:
        for path in sorted(folder.glob("*.jsonl")) if folder.exists() else []:
            try:
                handle = path.open("r", encoding="utf-8")
            except FileNotFoundError:  # its writer finished and deleted it meanwhile
                continue
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:  # its writer is alive
                handle.close()
                continue
            held.append((path, handle))
        yield [p for p, _ in held]
    finally:
        for _, handle in held:
            handle.close()


class JournaledCommit:
    """The commit step of a run's writer: journal a batch (then it is acknowledged), and merge
    everything journaled into the store once ``merge_interval_s`` has passed since the last
    merge. The first batch, and any after a quiet interval, is merged at once."""

    def __init__(
        self,
        journal: OutcomeJournal,
        merge: Callable[[Sequence[CallOutcome]], None],
        merge_interval_s: float,
    ) -> None:
        self.journal = journal
        self.merge = merge
        self.merge_interval_s = merge_interval_s
        self.unmerged: list[CallOutcome] = []
        self.merges = 0
        self._last_merge = float("-inf")

    def __call__(self, batch: Sequence[CallOutcome]) -> None:
        self.journal.append(batch)
        self.unmerged.extend(batch)
        if time.monotonic() - self._last_merge >= self.merge_interval_s:
            self.flush()

    def flush(self) -> None:
        if self.unmerged:
            self.merge(self.unmerged)
            self.merges += 1
            self.unmerged = []
            self.journal.clear()
        self._last_merge = time.monotonic()

    def close(self) -> None:
        """Merge the rest; the journal is deleted only once everything in it is in the store."""
        try:
            self.flush()
        finally:
            self.journal.close(delete=not self.unmerged)
