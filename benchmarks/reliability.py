"""Reliability and security figures -> benchmarks/results/reliability.md.

    .venv/bin/python benchmarks/reliability.py [--vllm-url http://127.0.0.1:8000/v1] [--kills 20]

1. The SIGKILL loop against the fault-injecting fake (answers correctly after 0.8 s) and, with a
   vLLM URL, 3 kills against the real server: kills survived, work lost per kill.
2. The pass/fail of the fault, store, bad-input and secrets tests (run with pytest, junit XML).
3. Canary contamination per pack size (1, 5, 20) on the real server, before/after the engine's
   isolation of suspicious items (`isolate_suspicious` off, then on).

    .venv/bin/python benchmarks/reliability.py --canary-only --vllm-url http://127.0.0.1:8000/v1

measures only 3. and replaces that section of the existing results file.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
import xml.etree.ElementTree as ET
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.fakes.fault_injecting_openai_server import (  # noqa: E402
    FaultInjectingOpenAIServer,
    delayed,
)
from tests.reliability.canary import measure  # noqa: E402
from tests.reliability.harness import (  # noqa: E402
    RecordingProxy,
    cli_project,
    short_docs,
    write_corpus,
)
from tests.reliability.kill_loop import KillLoopResult, kill_loop  # noqa: E402

OUT = ROOT / "benchmarks" / "results" / "reliability.md"
TESTS = [
    "tests/reliability/test_faults_end_to_end.py",
    "tests/reliability/test_store_faults.py",
    "tests/reliability/test_bad_input.py",
    "tests/reliability/test_secrets.py",
    "tests/reliability/test_secrets_webserver.py",
]


def kill_section(name: str, r: KillLoopResult, ipc: int, conc: int) -> list[str]:
    lines = [
        f"### {name}",
        "",
        f"{r.documents} documents, `--items-per-call {ipc} --max-concurrency {conc}`; "
        f"final run rc={r.final_rc}; stored at the end: "
        f"{len(r.final.rows) if r.final else '?'} (duplicates "
        f"{r.final.duplicates if r.final else '?'}); finished documents extracted again: "
        f"{r.redone_items}; invariant violations: {len(r.violations)}",
        "",
    ]
    lines += [
        "| kill | after first request (s) | stored before | stored after | "
        "server-completed calls | stored calls | lost calls | lost documents |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for k in r.kills:
        lines.append(
            f"| {k.kill} | {k.after_s} | {k.stored_before} | {k.stored_after} | "
            f"{k.server_completed_calls} | {k.stored_calls} | {k.lost_calls} | "
            f"{k.lost_items} |"
        )
    lost = [k.lost_calls for k in r.kills]
    if lost:
        lines += [
            "",
            f"Lost calls per kill: mean {sum(lost) / len(lost):.2f}, max {max(lost)} "
            f"(bound: {conc} calls in flight). Lost = answered by the server after the "
            "process died, so never stored; those documents were extracted by the next "
            "run (not a duplicate: nothing of them was stored).",
        ]
    for v in r.violations:
        lines.append(f"- VIOLATION: {v}")
    return [*lines, ""]


def run_fake_kills(kills: int) -> KillLoopResult:
    with (
        tempfile.TemporaryDirectory() as tmp,
        FaultInjectingOpenAIServer(default=delayed(0.8)) as fake,
        RecordingProxy(fake.url) as proxy,
    ):
        project = cli_project(Path(tmp), proxy.url, "fake")
        write_corpus(project.source_root, "kills", short_docs(10 * kills))
        return kill_loop(
            project,
            proxy,
            "kills",
            10 * kills,
            kills,
            items_per_call=2,
            max_concurrency=2,
            kill_after_s=(0.05, 2.0),
            seed=8,
        )


def run_vllm_kills(url: str, model: str) -> KillLoopResult:
    with tempfile.TemporaryDirectory() as tmp, RecordingProxy(url) as proxy:
        project = cli_project(Path(tmp), proxy.url, model)
        write_corpus(project.source_root, "kills", short_docs(12))
        return kill_loop(
            project,
            proxy,
            "kills",
            12,
            3,
            items_per_call=2,
            max_concurrency=2,
            kill_after_s=(0.0, 3.0),
            wait_stored_call=True,
            start_timeout_s=600,
            seed=3,
        )


def run_tests() -> list[tuple[str, str, float]]:
    with tempfile.TemporaryDirectory() as tmp:
        xml = Path(tmp) / "junit.xml"
        subprocess.run(
            [
                sys.executable,
                "-m",
                "pytest",
                "-q",
                "-p",
                "no:cacheprovider",
                f"--junitxml={xml}",
                *TESTS,
            ],
            cwd=ROOT,
            capture_output=True,
        )
        rows = []
        for case in ET.parse(xml).getroot().iter("testcase"):
            outcome = "passed"
            if case.find("failure") is not None or case.find("error") is not None:
                outcome = "FAILED"
            elif case.find("skipped") is not None:
                outcome = "skipped"
            rows.append(
                (
                    f"{case.get('classname', '').rsplit('.', 1)[-1]}::{case.get('name')}",
                    outcome,
                    float(case.get("time", 0)),
                )
            )
        return rows


def flush(lines: list[str]) -> None:
    """Write what is measured so far (a long run cut short still leaves figures)."""
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text("\n".join(lines) + "\n", encoding="utf-8")


CANARY_TITLE = "## Hostile text: canary contamination (translation task, real vLLM)"


def canary_section(args: argparse.Namespace) -> list[str]:
    """The canary table: the same documents extracted without, then with, the engine's isolation."""
    rows = []
    if args.vllm_url:
        for size in (1, 5, 20):
            r = measure(args.vllm_url, args.vllm_model, size, packs=args.canary_packs)
            b, a = r.before, r.after
            rows.append(
                f"| {size} | {args.canary_packs} | {b.items} / {b.failed} | "
                f"{len(b.contaminated)} ({b.rate:.0%}) | {b.calls} | {b.seconds:.0f} | "
                f"{a.items} / {a.failed} | {a.rerun_alone} | {len(a.contaminated)} "
                f"({a.rate:.0%}) | {a.calls} | {a.seconds:.0f} |"
            )
            print(rows[-1], flush=True)
    lines = [
        CANARY_TITLE,
        "",
        'One hostile document per pack ("ignore previous instructions", a forged '
        "closing/opening item tag, another item's id); every document names a unique "
        "made-up person. Contaminated = a stored answer names another document's person "
        "(hostile items not counted). Before = `isolate_suspicious=False`; after = the "
        "engine's default: an item whose pack answer borrows from a pack-mate, or whose "
        "text looks like an injection, is re-run alone (extraction_assets/engine/"
        "contamination.py; the engine does not know the canaries). Measured by "
        "`tests/reliability/canary.py` (`benchmarks/reliability.py --canary-only --vllm-url "
        f"{args.vllm_url}`) on {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}.",
        "",
    ]
    if rows:
        lines += [
            "| pack size | packs | before: answered / failed | before: contaminated | "
            "before: calls | before: s | after: answered / failed | after: re-run alone | "
            "after: contaminated | after: calls | after: s |",
            "|---|---|---|---|---|---|---|---|---|---|---|",
            *rows,
        ]
    else:
        lines.append("(not measured: no --vllm-url)")
    return lines


def replace_canary_section(args: argparse.Namespace) -> None:
    """Measure the canaries only and put their section in place of the old one."""
    text = OUT.read_text(encoding="utf-8")
    start = text.index(CANARY_TITLE)
    end = text.find("\n## ", start + len(CANARY_TITLE))
    section = "\n".join(canary_section(args)) + "\n"
    OUT.write_text(text[:start] + section + (text[end:] if end >= 0 else ""), encoding="utf-8")


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--vllm-url", default=None)
    parser.add_argument("--vllm-model", default="smollm2-135m-instruct")
    parser.add_argument("--kills", type=int, default=20)
    parser.add_argument("--canary-packs", type=int, default=2)
    parser.add_argument(
        "--canary-only",
        action="store_true",
        help="measure only the canaries; replace their section of the results",
    )
    args = parser.parse_args()
    if args.canary_only:
        replace_canary_section(args)
        print(OUT.read_text(encoding="utf-8"))
        return 0
    started = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    lines = [
        "# Reliability and security figures",
        "",
        f"Produced by `.venv/bin/python benchmarks/reliability.py"
        f"{' --vllm-url ' + args.vllm_url if args.vllm_url else ''}` on {started} "
        "(2 CPU cores, CPU vLLM with SmolLM2-135M, shared with other work).",
        "",
        "## SIGKILL of the extraction run (`python -m extraction_assets run`)",
        "",
    ]
    t0 = time.monotonic()
    fake = run_fake_kills(args.kills)
    lines += kill_section(
        f"{args.kills} kills against the delayed fake ({time.monotonic() - t0:.0f} s)", fake, 2, 2
    )
    flush(lines)
    vllm = None
    if args.vllm_url:
        t0 = time.monotonic()
        vllm = run_vllm_kills(args.vllm_url, args.vllm_model)
        lines += kill_section(
            f"3 kills against the real vLLM server ({time.monotonic() - t0:.0f} s)", vllm, 2, 2
        )
        flush(lines)

    tests = run_tests()
    lines += [
        "## Faults, store failures, bad input, secrets (pytest)",
        "",
        "`.venv/bin/pytest " + " ".join(TESTS) + "`",
        "",
        "| test | outcome | s |",
        "|---|---|---|",
    ]
    lines += [f"| {name} | {outcome} | {s:.0f} |" for name, outcome, s in tests]
    lines.append("")
    flush(lines)

    lines += canary_section(args)

    rows_lost = [v for r in (fake, vllm) if r for v in r.violations if "lost" in v]
    lines += [
        "",
        "## Summary",
        "",
        "| figure | value |",
        "|---|---|",
        f"| kills survived (fake / vLLM) | {len(fake.kills)} / "
        f"{len(vllm.kills) if vllm else '-'} |",
        f"| lost calls, total (fake / vLLM) | {fake.total_lost_calls} / "
        f"{vllm.total_lost_calls if vllm else '-'} |",
        f"| stored rows lost or rewritten after kills | {len(rows_lost)} |",
        f"| duplicates at the end | {fake.final.duplicates if fake.final else '?'} |",
        f"| tests passed | {sum(o == 'passed' for _, o, _ in tests)}/{len(tests)} |",
        "",
    ]
    flush(lines)
    print(OUT.read_text())
    return 0


if __name__ == "__main__":
    sys.exit(main())
