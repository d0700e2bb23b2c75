"""The two Taqrib editions as a real source correction, through the real pipeline.

A seeded sample of entries present in both editions (K whose text differs, K identical) is
written as corpus `taqrib` with the first edition's texts and extracted by the project CLI
(`python -m extraction_assets run taqrib`: the Dagster job, store and engine, in a subprocess
with its own home). The file is then replaced by the second edition's texts for the same ids
and the job runs again. From the store: the documents the sync saw change, the documents
re-extracted by the second run (its extraction rows), which must be exactly the same set, and
the gold agreement of the rows before and after the correction.

    .venv/bin/python benchmarks/editions.py --k 15          # writes benchmarks/results/editions.*
    .venv/bin/python benchmarks/editions.py --k 2 --no-write

The LLM server: --url (default $LLM_BASE_URL, else http://127.0.0.1:8000/v1, the shared dev
server). Exit codes: 0 done, 1 re-extracted != changed, 2 gold data missing, 3 a run failed.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import random
import re
import subprocess
import sys
import tempfile
import time
import unicodedata
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from extraction_assets import serve
from extraction_assets.errors import GoldFileMissingError
from extraction_assets.evaluation.gold import (
    TAQRIB_EDITIONS,
    GoldDocument,
    compare_editions,
    data_dir,
    load_taqrib,
)
from extraction_assets.evaluation.scoring import TAQRIB_FIELDS, covered_specs, score_documents
from extraction_assets.tasks import get_task
from resources.store import DuckDBStore

REPO = Path(__file__).resolve().parents[1]
RESULTS = Path(__file__).with_name("results")
CORPUS = "taqrib"
TASK = "biography"
EDITION_1, EDITION_2 = list(TAQRIB_EDITIONS)  # JK000121, then Shamela0008609
RETRY_LIMIT = 3  # the asset's default: a failed document is retried by later runs up to this
_RUN_LINE = re.compile(r"^run (\S+): (success|FAILED)$", re.M)


def content_hash(text: str) -> str:
    """The store's document hash (sha256 of the NFC text): what makes the pipeline see a change."""
    return hashlib.sha256(unicodedata.normalize("NFC", text).encode()).hexdigest()


def _arsanad_fields(doc: GoldDocument) -> dict[str, str]:
    return {k: v for k, v in doc.gold_sources.items() if v.startswith("ar-sanad")}


# --- the sample --------------------------------------------------------------------------------


def load_editions(
    root: Path | None = None,
) -> tuple[dict[str, GoldDocument], dict[str, GoldDocument]]:
    """Both editions through the project's gold loader (gold per edition), by entry id."""
    root = root or data_dir()
    return (
        {d.doc_id: d for d in load_taqrib(root, EDITION_1)},
        {d.doc_id: d for d in load_taqrib(root, EDITION_2)},
    )


def full_counts(
    ed1: dict[str, GoldDocument], ed2: dict[str, GoldDocument], root: Path | None = None
) -> dict[str, Any]:
    """Whole-dictionary counts: raw differences (what the store sees) and the harness's."""
    common = set(ed1) & set(ed2)
    harness = compare_editions(root)
    return {
        "entries": {EDITION_1: len(ed1), EDITION_2: len(ed2)},
        "common": len(common),
        "text_differs_raw": sum(
            content_hash(ed1[i].text) != content_hash(ed2[i].text) for i in common
        ),
        "text_identical_raw": sum(
            content_hash(ed1[i].text) == content_hash(ed2[i].text) for i in common
        ),
        "text_differs_harness": harness["changed"],
        "text_differs_whitespace_fold_only": harness["changed_whitespace_only_fold"],
        "linked_to_arsanad": {
            EDITION_1: sum(bool(_arsanad_fields(d)) for d in ed1.values()),
            EDITION_2: sum(bool(_arsanad_fields(d)) for d in ed2.values()),
        },
    }


def _same_link(a: GoldDocument, b: GoldDocument) -> bool:
    la, lb = _arsanad_fields(a), _arsanad_fields(b)
    return bool(la) and set(la.values()) == set(lb.values())


def _pick(pools: list[list[str]], k: int, rng: random.Random) -> tuple[list[str], list[int]]:
    """k ids, taken from the pools in order of preference; how many came from each pool."""
    picked: list[str] = []
    taken = []
    for pool in pools:
        pool = [i for i in pool if i not in picked]
        n = min(k - len(picked), len(pool))
        picked += rng.sample(pool, n)
        taken.append(n)
    return picked, taken


def draw_sample(
    ed1: dict[str, GoldDocument], ed2: dict[str, GoldDocument], k: int, seed: int
) -> dict[str, Any]:
    """K entries whose text differs (after the harness's normalisation) and K byte-identical ones,
    each preferring entries with gold: an AR-Sanad link to the same narrator in both editions,
    then any gold value the entry text states."""
    from extraction_assets.evaluation.gold import _fold_ibn  # the harness's normalisation

    common = sorted(set(ed1) & set(ed2), key=lambda i: (int(i.split("-")[1]), i))
    identical = [i for i in common if content_hash(ed1[i].text) == content_hash(ed2[i].text)]
    differs = [i for i in common if _fold_ibn(ed1[i].text) != _fold_ibn(ed2[i].text)]

    def pools(ids: list[str]) -> list[list[str]]:
        linked = [i for i in ids if _same_link(ed1[i], ed2[i])]
        gold = [i for i in ids if i not in set(linked) and ed1[i].gold and ed2[i].gold]
        rest = [i for i in ids if i not in set(linked) | set(gold)]
        return [linked, gold, rest]

    rng = random.Random(seed)
    d_pools, i_pools = pools(differs), pools(identical)
    changed, c_taken = _pick(d_pools, k, rng)
    unchanged, u_taken = _pick(i_pools, k, rng)
    names = ["AR-Sanad link (same narrator in both editions)", "entry-text gold only", "no gold"]

    def how(taken: list[int], ps: list[list[str]]) -> dict[str, str]:
        return {n: f"{t} of {len(p)}" for n, t, p in zip(names, taken, ps, strict=True)}

    return {
        "seed": seed,
        "k": k,
        "changed_ids": sorted(changed, key=common.index),
        "unchanged_ids": sorted(unchanged, key=common.index),
        "how": (
            f"random.Random({seed}); {k} of the {len(differs)} common entries whose text differs "
            f"after the harness's normalisation (whitespace, ابن/بن) and {k} of the "
            f"{len(identical)} whose text is byte-identical, each drawn first from entries linked "
            "to the same AR-Sanad narrator in both editions, then from entries with gold stated in "
            "their text, then from the rest"
        ),
        "drawn_from": {"changed": how(c_taken, d_pools), "unchanged": how(u_taken, i_pools)},
    }


# --- the pipeline ------------------------------------------------------------------------------


@dataclass
class CliRun:
    label: str
    run_id: str | None
    returncode: int
    wall_s: float
    output_tail: str = field(repr=False, default="")


def write_corpus(source_root: Path, docs: dict[str, GoldDocument], ids: list[str]) -> Path:
    """Corpus `taqrib`: one JSONL file, replaced whole (one edition at a time)."""
    folder = source_root / CORPUS
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "taqrib.jsonl"
    tmp = path.with_suffix(".tmp")
    with tmp.open("w", encoding="utf-8") as fh:
        for i in ids:
            fh.write(
                json.dumps(
                    {"id": i, "text": docs[i].text, "lang": docs[i].lang}, ensure_ascii=False
                )
                + "\n"
            )
    tmp.replace(path)
    return path


def pipeline_env(work: Path, url: str, model: str) -> dict[str, str]:
    env = {
        k: v for k, v in os.environ.items() if k not in ("EXTRACTION_DB", "EXTRACTION_EXPORT_DIR")
    }
    env.update(
        {
            "EXTRACTION_SOURCE_ROOT": str(work / "sources"),
            "EXTRACTION_HOME": str(work / "home"),
            "DAGSTER_HOME": str(work / "dagster"),
            "LLM_BACKEND": "vllm",
            "LLM_BASE_URL": url,
            "LLM_MODEL": model,
            "EXTRACTION_TASKS": TASK,
            "EXTRACTION_AUTOMATION_DEFAULT": "stopped",
            # The gold_sample check would extract its own gold documents into the same store.
            "EXTRACTION_GOLD_SAMPLE": "none",
        }
    )
    return env


def run_cli(
    label: str, env: dict[str, str], items_per_call: int, max_concurrency: int, log: Any = print
) -> CliRun:
    """`python -m extraction_assets run taqrib` in a subprocess: the project's own CLI and job."""
    t0 = time.monotonic()
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "extraction_assets",
            "run",
            CORPUS,
            "--items-per-call",
            str(items_per_call),
            "--max-concurrency",
            str(max_concurrency),
        ],
        env=env,
        capture_output=True,
        text=True,
        cwd=REPO,
        timeout=3600,
    )
    wall = time.monotonic() - t0
    m = _RUN_LINE.search(proc.stdout)
    run = CliRun(
        label,
        m.group(1) if m else None,
        proc.returncode,
        round(wall, 1),
        (proc.stdout[-2000:] + "\n" + proc.stderr[-3000:]).strip(),
    )
    log(f"{label}: run {run.run_id} rc={proc.returncode} in {wall:.0f} s")
    return run


def store_rows(db: Path) -> dict[str, dict[str, Any]]:
    """The current extraction row per document of the corpus."""
    return DuckDBStore(path=str(db)).extraction_rows(CORPUS, TASK)


def run_accounting(db: Path, run_id: str) -> dict[str, Any]:
    """What one run did, from the store: sync changes, extraction rows, calls, field changes."""
    return DuckDBStore(path=str(db)).run_accounting(run_id, CORPUS)


def pending_count(db: Path, version: str) -> int:
    return DuckDBStore(path=str(db)).count_pending(CORPUS, TASK, version, RETRY_LIMIT)


# --- the experiment ----------------------------------------------------------------------------


class PipelineRunError(RuntimeError):
    """A CLI run exited non-zero or printed no run id."""


def _checked(run: CliRun) -> CliRun:
    if run.returncode != 0 or run.run_id is None:
        raise PipelineRunError(
            f"{run.label}: exit code {run.returncode}, run id {run.run_id}\n{run.output_tail}"
        )
    return run


def run_editions(
    k: int,
    seed: int,
    url: str,
    model: str,
    work: Path,
    *,
    items_per_call: int = 5,
    max_concurrency: int = 10,
    root: Path | None = None,
    log: Any = print,
) -> dict[str, Any]:
    """Edition 1, then edition 2, through the CLI in `work`; the store's account of both."""
    ed1, ed2 = load_editions(root)
    sample = draw_sample(ed1, ed2, k, seed)
    ids = sorted(
        sample["changed_ids"] + sample["unchanged_ids"], key=lambda i: (int(i.split("-")[1]), i)
    )
    expected = sorted(i for i in ids if content_hash(ed1[i].text) != content_hash(ed2[i].text))
    env = pipeline_env(work, url, model)
    db = work / "home" / "store.duckdb"

    write_corpus(work / "sources", ed1, ids)
    runs = [_checked(run_cli("edition 1", env, items_per_call, max_concurrency, log))]
    # Failed documents are retried by later runs (up to the retry limit) whatever the source
    # says; run edition 1 again until nothing is pending, as the schedule would, so that the
    # second edition's run has only the corrections to do.
    version = next(iter({r["task_version"] for r in store_rows(db).values()}), None)
    while version and pending_count(db, version) and len(runs) <= RETRY_LIMIT:
        runs.append(
            _checked(
                run_cli(f"edition 1, retry {len(runs)}", env, items_per_call, max_concurrency, log)
            )
        )
    before = store_rows(db)

    write_corpus(work / "sources", ed2, ids)
    second = _checked(run_cli("edition 2", env, items_per_call, max_concurrency, log))
    after = store_rows(db)
    accounts = {r.run_id: run_accounting(db, r.run_id) for r in [*runs, second]}
    acc2 = accounts[second.run_id]
    sets = {
        "expected_changed": expected,
        "store_changed": acc2["changed_ids"],
        "re_extracted": acc2["extracted_ids"],
    }
    check = {
        "equal": len({frozenset(v) for v in sets.values()}) == 1,  # as id sets
        **{f"n_{name}": len(v) for name, v in sets.items()},
        **sets,
        "re_extracted_not_changed": sorted(set(acc2["extracted_ids"]) - set(acc2["changed_ids"])),
        "changed_not_re_extracted": sorted(set(acc2["changed_ids"]) - set(acc2["extracted_ids"])),
    }
    return {
        "sample": sample,
        "doc_ids": ids,
        "runs": [
            {"label": r.label, "run_id": r.run_id, "wall_s": r.wall_s, **accounts[r.run_id]}
            for r in [*runs, second]
        ],
        "check": check,
        "task_version": {
            "before": sorted({r["task_version"] for r in before.values()}),
            "after": sorted({r["task_version"] for r in after.values()}),
        },
        "agreement": agreement(ed1, ed2, ids, expected, before, after),
        "status": {"before": _status_counts(before), "after": _status_counts(after)},
    }


def _status_counts(rows: dict[str, dict[str, Any]]) -> dict[str, int]:
    out: dict[str, int] = {}
    for r in rows.values():
        out[r["status"]] = out.get(r["status"], 0) + 1
    return out


# --- gold agreement ----------------------------------------------------------------------------


def _fixed_gold(a: GoldDocument, b: GoldDocument) -> GoldDocument:
    """The AR-Sanad values both editions link to (the same narrator's curated facts): a
    reference that the correction of the entry text does not move."""
    la, lb = _arsanad_fields(a), _arsanad_fields(b)
    keep = {
        f: b.gold[f]
        for f in la
        if lb.get(f) == la[f] and f in a.gold and a.gold[f] == b.gold.get(f)
    }
    return GoldDocument(
        doc_id=b.doc_id,
        text="",
        lang=b.lang,
        gold=keep,
        source=b.source,
        gold_sources={f: lb[f] for f in keep},
    )


def _predictions(rows: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any] | None]:
    return {i: r["fields"] if r["status"] == "ok" else None for i, r in rows.items()}


def _hits(doc: GoldDocument, preds: dict[str, Any], specs: list) -> dict[str, bool]:
    fields = score_documents([doc], preds, specs)["overall"]["fields"]
    return {f: bool(s["correct"]) for f, s in fields.items() if s["n"]}


def agreement(
    ed1: dict[str, GoldDocument],
    ed2: dict[str, GoldDocument],
    ids: list[str],
    changed: list[str],
    before: dict[str, dict[str, Any]],
    after: dict[str, dict[str, Any]],
) -> dict[str, Any]:
    """Scores of the rows before and after the correction, with the harness's scoring.

    `own_edition`: each edition's rows against that edition's gold (AR-Sanad where linked, else
    what the entry text states: the gold itself can move with the text). `fixed_arsanad`: both
    against the AR-Sanad values linked from both editions, which do not move."""
    specs, _ = covered_specs(TAQRIB_FIELDS, get_task(TASK).item_model.model_fields)
    pb, pa = _predictions(before), _predictions(after)
    fixed = {i: _fixed_gold(ed1[i], ed2[i]) for i in ids}
    views = {
        "own_edition": ({i: ed1[i] for i in ids}, {i: ed2[i] for i in ids}),
        "fixed_arsanad": (fixed, fixed),
    }
    subsets = {"all": ids, "changed": changed, "unchanged": [i for i in ids if i not in changed]}
    out: dict[str, Any] = {"fields": [s.gold_field for s in specs]}
    for view, (gold_b, gold_a) in views.items():
        out[view] = {}
        for name, subset in subsets.items():
            sb = score_documents([gold_b[i] for i in subset], pb, specs)["overall"]
            sa = score_documents([gold_a[i] for i in subset], pa, specs)["overall"]
            out[view][name] = {"before": sb, "after": sa}
    moved = []
    for i in changed:
        hb, ha = _hits(ed1[i], pb, specs), _hits(ed2[i], pa, specs)
        for f in sorted(set(hb) | set(ha)):
            if hb.get(f) != ha.get(f):
                moved.append({"doc_id": i, "field": f, "before": hb.get(f), "after": ha.get(f)})
    out["moved_own_edition"] = moved
    out["gold_values_differing_between_editions"] = sum(
        ed1[i].gold.get(s.gold_field) != ed2[i].gold.get(s.gold_field) for i in ids for s in specs
    )
    # Verdicts only: the model's answers quote the entries, and ../shared/data stays out of git.
    out["per_document"] = [
        {
            "doc_id": i,
            "group": "changed" if i in changed else "unchanged",
            "gold_sources": {s.gold_field: ed2[i].gold_sources.get(s.gold_field) for s in specs},
            "hits_before": _hits(ed1[i], pb, specs),
            "hits_after": _hits(ed2[i], pa, specs),
        }
        for i in ids
    ]
    return out


# --- report ------------------------------------------------------------------------------------


def _f(x: float | None) -> str:
    return "-" if x is None else f"{x:.2f}"


def _score_cells(block: dict[str, Any], fields: list[str]) -> list[str]:
    def cell(f: str) -> str:
        s = block["fields"][f]
        return "-" if not s["n"] else f"{s['correct']}/{s['n']}"

    return [cell(f) for f in fields] + [_f(block["mean_score"])]


def _kv(counts: dict[str, Any]) -> str:
    return ", ".join(f"{k} {v}" for k, v in counts.items())


def _no_link_note(sample: dict[str, Any]) -> str:
    linked = next(iter(sample["drawn_from"]["unchanged"].values()))
    if not linked.endswith(" of 0"):
        return ""
    return (
        " No byte-identical entry links to AR-Sanad: a link needs a name `X بن Y`, and "
        f"where {EDITION_1} writes `بن` {EDITION_2} writes `ابن`, so such texts differ."
    )


def markdown(res: dict[str, Any]) -> str:
    full, sample, check, ag = res["full"], res["sample"], res["check"], res["agreement"]
    fields = ag["fields"]
    lines = [
        "# The two Taqrib editions through the pipeline",
        "",
        f"Generated by `{res['command']}` on {res['date']} against `{res['url']}` "
        f"(model `{res['model']}`, task `{TASK}` version {', '.join(res['task_version']['after'])}, "
        f"items_per_call {res['items_per_call']}, max_concurrency {res['max_concurrency']}).",
        "",
        "## The whole dictionary",
        "",
        f"| | {EDITION_1} | {EDITION_2} |",
        "|---|---|---|",
        f"| numbered entries | {full['entries'][EDITION_1]} | {full['entries'][EDITION_2]} |",
        f"| linked to one AR-Sanad narrator | {full['linked_to_arsanad'][EDITION_1]} | "
        f"{full['linked_to_arsanad'][EDITION_2]} |",
        "",
        f"Entries in both: {full['common']}. Text differs byte for byte (what the store's content "
        f"hash sees): {full['text_differs_raw']}; identical: {full['text_identical_raw']}. "
        f"After folding whitespace only: {full['text_differs_whitespace_fold_only']}; after the "
        f"harness's normalisation (whitespace and the {EDITION_2} edition's ابن for بن): "
        f"{full['text_differs_harness']}.",
        "",
        "## The sample",
        "",
        f"{sample['how']}. Drawn: changed {_kv(sample['drawn_from']['changed'])}; unchanged "
        f"{_kv(sample['drawn_from']['unchanged'])}.{_no_link_note(sample)}",
        "",
        "## Runs",
        "",
        "| run | run id | wall s | sync | calls | items in calls | rows written | field changes |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in res["runs"]:
        sync = ", ".join(f"{k} {v}" for k, v in sorted(r["sync"].items())) or "none"
        lines.append(
            f"| {r['label']} | `{r['run_id'][:8]}` | {r['wall_s']:.0f} | {sync} | "
            f"{r['calls']} | {r['call_items']} | {len(r['extracted_ids'])} | "
            f"{r['field_changes']} |"
        )
    verdict = "**equal**" if check["equal"] else "**NOT EQUAL**"
    lines += [
        "",
        "Documents that fail are retried by later runs up to the retry limit (3) whatever the "
        "source says, so edition 1 is run again until nothing is pending (as the schedule would) "
        "before the corpus file is replaced by edition 2: the second edition's run then has only "
        "the corrections to do.",
        "",
        f"Texts changed (by hash, computed here): {check['n_expected_changed']}; documents the "
        f"store's sync marked `changed`: {check['n_store_changed']}; documents re-extracted by the "
        f"second run: {check['n_re_extracted']}. As id sets: {verdict}.",
    ]
    if not check["equal"]:
        lines.append(
            f"Re-extracted but not changed: {check['re_extracted_not_changed']}; changed "
            f"but not re-extracted: {check['changed_not_re_extracted']}."
        )
    lines += [
        "",
        f"Current rows: before the correction {_kv(res['status']['before'])}; after "
        f"{_kv(res['status']['after'])}.",
        "",
        "## Gold agreement before -> after",
        "",
        "Correct / scored per field (the harness's scoring: grade and generation exact, kunya "
        "after normalisation, death year +-1 against any candidate), mean of the field accuracies.",
        "`own edition`: each run's rows against its own edition's gold (AR-Sanad where linked, "
        "else the entry's own statement, so the gold can move with the text; "
        "gold values of the sample that differ between the editions: "
        f"{ag['gold_values_differing_between_editions']}). `fixed AR-Sanad`: both against the curated values of the narrator both "
        "editions link to.",
        "",
        "| gold | documents | run | " + " | ".join(fields) + " | mean |",
        "|" + "---|" * (len(fields) + 4),
    ]
    for view, vname in (("own_edition", "own edition"), ("fixed_arsanad", "fixed AR-Sanad")):
        for subset in ("all", "changed", "unchanged"):
            block = ag[view][subset]
            n = block["before"]["n_documents"]
            for when in ("before", "after"):
                lines.append(
                    f"| {vname} | {subset} ({n}) | {when} | "
                    + " | ".join(_score_cells(block[when], fields))
                    + " |"
                )
    moved = ag["moved_own_edition"]
    gained = sum(1 for m in moved if m["after"])
    lines += [
        "",
        f"On the changed documents (own edition), {len(moved)} field verdicts moved: "
        f"{gained} became correct, {len(moved) - gained} stopped being correct (a field scored on "
        "one side only counts as moved).",
        "",
        f"The model is `{res['model']}`"
        + (": the embedded 135M plumbing model on CPU" if "135m" in res["model"].lower() else "")
        + "; the figures are reported as they are.",
    ]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--k", type=int, default=15, help="entries per group (default 15)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--url", default=os.environ.get("LLM_BASE_URL", "http://127.0.0.1:8000/v1"))
    parser.add_argument("--model", default=None, help="default: the first model the server lists")
    parser.add_argument("--items-per-call", type=int, default=5)
    parser.add_argument("--max-concurrency", type=int, default=10)
    parser.add_argument("--out", type=Path, default=RESULTS / "editions")
    parser.add_argument("--no-write", action="store_true")
    args = parser.parse_args(argv)
    models = serve.list_models(args.url, timeout=10)
    if not models:
        print(f"error: no LLM server answers at {args.url}", file=sys.stderr)
        return 3
    model = args.model or models[0]
    t0 = time.monotonic()
    try:
        full = full_counts(*load_editions())
        with tempfile.TemporaryDirectory(prefix="editions-") as tmp:
            res = run_editions(
                args.k,
                args.seed,
                args.url,
                model,
                Path(tmp),
                items_per_call=args.items_per_call,
                max_concurrency=args.max_concurrency,
            )
    except GoldFileMissingError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except PipelineRunError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 3
    res.update(
        {
            "full": full,
            "url": args.url,
            "model": model,
            "items_per_call": args.items_per_call,
            "max_concurrency": args.max_concurrency,
            "wall_s": round(time.monotonic() - t0, 1),
            "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
            "command": "python benchmarks/editions.py " + " ".join(argv or sys.argv[1:]),
        }
    )
    report = markdown(res)
    print(report)
    if not args.no_write:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.with_suffix(".json").write_text(
            json.dumps(res, ensure_ascii=False, indent=1) + "\n", encoding="utf-8"
        )
        args.out.with_suffix(".md").write_text(report, encoding="utf-8")
    if not res["check"]["equal"]:
        c = res["check"]
        print(
            "\n" + "!" * 72 + "\nRE-EXTRACTED != CHANGED\n"
            f"  re-extracted but not changed: {c['re_extracted_not_changed']}\n"
            f"  changed but not re-extracted: {c['changed_not_re_extracted']}\n"
            f"  expected (by hash) {c['expected_changed']}\n" + "!" * 72,
            file=sys.stderr,
        )
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
