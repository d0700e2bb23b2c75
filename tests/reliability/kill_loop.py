"""The SIGKILL loop: the real CLI run killed at random moments of extraction, restarted, checked.

Shared by tests/reliability/test_kill_loop.py (assertions) and benchmarks/reliability.py (figures).
Lost work per kill = calls the server completed during that run (recording proxy's log) minus calls
the store recorded for it, once the killed run's journal is merged (as the next run does first);
every such call was in flight when the process died.
"""

from __future__ import annotations

import os
import random
import signal
import time
from dataclasses import dataclass, field

from resources.store import DuckDBStore
from tests.reliability.harness import (
    CliProject,
    RecordingProxy,
    StoreSnapshot,
    snapshot,
    wait_for,
)


@dataclass
class KillFigure:
    kill: int
    after_s: float  # seconds after the run's first LLM request, or after its first stored call
    after_stored_call: bool  # the kill waited until the run had stored a call
    stored_before: int
    stored_after: int
    server_completed_calls: int  # calls the server answered during this run
    stored_calls: int  # calls the store recorded during this run
    lost_calls: int
    lost_items: int  # documents answered by the server but not stored (extracted again later)


@dataclass
class KillLoopResult:
    kills: list[KillFigure] = field(default_factory=list)
    violations: list[str] = field(default_factory=list)
    final_rc: int | None = None
    final_output: str = ""
    documents: int = 0
    final: StoreSnapshot | None = None
    redone_items: int = 0  # extraction_history rows at the end (finished work done again)

    @property
    def total_lost_calls(self) -> int:
        return sum(k.lost_calls for k in self.kills)


def check_invariants(before: StoreSnapshot, after: StoreSnapshot, where: str) -> list[str]:
    """Finished work is never lost or changed, nothing is stored twice, one task version."""
    problems = []
    if after.duplicates:
        problems.append(f"{where}: {after.duplicates} documents stored twice")
    lost = [i for i, row in before.rows.items() if row[0] == "ok" and after.rows.get(i) != row]
    if lost:
        problems.append(f"{where}: finished work lost or rewritten for {lost[:5]}")
    if len(after.versions) > 1:
        problems.append(f"{where}: several task versions {sorted(after.versions)}")
    if after.history:
        problems.append(f"{where}: {after.history} finished documents were extracted again")
    return problems


def kill_loop(
    project: CliProject,
    proxy: RecordingProxy,
    corpus: str,
    n_docs: int,
    kills: int,
    *,
    items_per_call: int,
    max_concurrency: int,
    kill_after_s: tuple[float, float],
    wait_stored_call: bool = False,
    late_kill_after_s: tuple[float, float] | None = None,
    start_timeout_s: float = 120,
    seed: int = 0,
    final_recipe: tuple[int, int] = (10, 4),
) -> KillLoopResult:
    """`kills` runs each SIGKILLed at a random moment after its first LLM request, then one run to
    the end. `wait_stored_call`: kill only after the run stored a call (slow servers: makes each
    kill interrupt real progress). `late_kill_after_s`: every other kill (the odd ones) waits for
    a stored call and then this long, the even ones `kill_after_s` after the first request, so
    the loop covers both early kills and kills in the middle of stored progress by design, not
    by chance. `final_recipe`: (items per call, in flight) of the last run, which finishes."""
    rng = random.Random(seed)
    result = KillLoopResult(documents=n_docs)
    log = project.workdir / "cli.log"
    for k in range(kills):
        before = snapshot(project.db, corpus)
        if len(before.rows) >= n_docs:
            result.violations.append(f"kill {k}: corpus already finished; enlarge it")
            break
        mark = proxy.mark()
        proc = project.popen(
            corpus, log=log, items_per_call=items_per_call, max_concurrency=max_concurrency
        )
        started = wait_for(lambda m=mark: proxy.mark() > m, start_timeout_s, proc)
        late = wait_stored_call or (late_kill_after_s is not None and k % 2 == 1)
        if late:
            started = started and wait_for(
                lambda b=before.calls: snapshot(project.db, corpus).calls > b,
                start_timeout_s,
                proc,
                interval_s=0.1 if late_kill_after_s else 0.3,
            )
        t_first = time.monotonic()
        delay = rng.uniform(*(late_kill_after_s if late and late_kill_after_s else kill_after_s))
        while time.monotonic() - t_first < delay and proc.poll() is None:
            time.sleep(0.01)
        if proc.poll() is not None:
            result.violations.append(
                f"kill {k}: the run ended (rc={proc.returncode}) before the kill; started={started}"
            )
            continue
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
        # Let calls that were in flight at the server finish, so the log is complete.
        wait_for(lambda m=mark: all(c.completed for c in proxy.calls[m:]), 600)
        # What the next run does first: merge the killed run's journal (calls it had
        # acknowledged but not yet merged into the store).
        DuckDBStore(path=str(project.db)).recover_journals()
        after = snapshot(project.db, corpus)
        result.violations += check_invariants(before, after, f"kill {k}")
        completed = proxy.completed(mark)
        answered = {i for c in completed for i in c.ids}
        stored_calls = after.calls - before.calls
        lost_items = answered - set(after.rows)
        result.kills.append(
            KillFigure(
                kill=k,
                after_s=round(delay, 2),
                after_stored_call=late,
                stored_before=len(before.rows),
                stored_after=len(after.rows),
                server_completed_calls=len(completed),
                stored_calls=stored_calls,
                lost_calls=len(completed) - stored_calls,
                lost_items=len(lost_items),
            )
        )
        if len(completed) - stored_calls > max_concurrency:
            result.violations.append(
                f"kill {k}: {len(completed) - stored_calls} completed calls not stored, "
                f"more than the {max_concurrency} that can be in flight"
            )
    before = snapshot(project.db, corpus)
    final = project.run(
        corpus, timeout=900, items_per_call=final_recipe[0], max_concurrency=final_recipe[1]
    )
    result.final_rc = final.returncode
    result.final_output = (final.stdout + final.stderr)[-4000:]
    result.final = snapshot(project.db, corpus)
    result.violations += check_invariants(before, result.final, "final run")
    result.redone_items = result.final.history
    return result
