"""The evaluation run: sample gold documents, extract them with the real engine at several pack
sizes, score, and write JSON + markdown + a plot of score against pack size."""

from __future__ import annotations

import json
import logging
import random
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from extraction_assets.errors import GoldFileMissingError
from extraction_assets.evaluation.crosstalk import first_packs, gold_crosstalk, shuffled_groups
from extraction_assets.evaluation.gold import GOLD_SETS, GoldDocument
from extraction_assets.evaluation.scoring import FieldSpec, contamination, score_documents
from extraction_assets.evaluation.task_gold import gold_set
from extraction_assets.tasks import ExtractionTask, load_task
from extraction_assets.types import CallOutcome, Document

log = logging.getLogger("extraction_assets.evaluation")


@dataclass
class EvalConfig:
    # A built-in gold set (redocred, taqrib, sample), or None: the task's own gold file.
    gold: str | None
    limit: int = 20
    items_per_call: Sequence[int] = (1, 5, 20)
    seed: int = 0
    max_concurrency: int = 4
    task: str = "biography"  # any task reference (load_task)
    out: Path = Path("benchmarks/results/eval")
    # A corpus folder holding the texts of gold lines without a "text" (the task's own gold).
    corpus_dir: Path | None = None
    # The engine re-runs alone an item whose pack answer borrows from a pack-mate; off measures
    # the raw cross-item contamination of a pack size (what that re-run prevents).
    isolate_suspicious: bool = True


class RecordingClient:
    """The LLM client, recording the document ids of every request as the server gets them:
    the original pack membership, taken from the wire, not from the engine's bookkeeping."""

    def __init__(self, client: Any) -> None:
        self._client = client
        self.requests: list[list[str]] = []

    def __getattr__(self, name: str) -> Any:
        return getattr(self._client, name)

    async def complete(self, messages: Any, schema: dict, schema_name: str, max_tokens: int) -> Any:
        self.requests.append(list(schema.get("properties", {})))
        return await self._client.complete(messages, schema, schema_name, max_tokens)


def sample(docs: Sequence[GoldDocument], limit: int, seed: int) -> list[GoldDocument]:
    """A deterministic sample (same seed, same documents), in id order."""
    ordered = sorted(docs, key=lambda d: d.doc_id)
    if limit >= len(ordered):
        return ordered
    return sorted(random.Random(seed).sample(ordered, limit), key=lambda d: d.doc_id)


async def run_pack_size(
    task: ExtractionTask,
    docs: Sequence[GoldDocument],
    client: Any,
    items_per_call: int,
    max_concurrency: int,
    max_model_len: int,
    corpus: str,
    isolate_suspicious: bool = True,
) -> dict[str, Any]:
    """Extract `docs` at one pack size. Returns predictions, the packs answers came from, and
    the run summary."""
    from extraction_assets.engine import EngineSettings, extract
    from extraction_assets.errors import ServerUnavailableError

    documents = [Document.make(corpus, d.doc_id, d.text, d.source) for d in docs]
    predictions: dict[str, dict[str, Any] | None] = {}
    errors: dict[str, str] = {}
    packs: list[list[str]] = []

    async def on_outcome(outcome: CallOutcome) -> None:
        # Items settled by one call were answered together: they were pack-mates (a lower
        # bound on the pack; items retried elsewhere are not listed here).
        if outcome.results:
            packs.append([r.doc_id for r in outcome.results])
        for r in outcome.results:
            predictions[r.doc_id] = r.fields if r.status == "ok" else None
            if r.status != "ok":
                errors[r.doc_id] = r.error or ""

    settings = EngineSettings(
        items_per_call=items_per_call,
        max_concurrency=max_concurrency,
        max_model_len=max_model_len,
        isolate_suspicious=isolate_suspicious,
    )
    summary: dict[str, Any] = {}
    error = None
    recorder = RecordingClient(client)
    try:
        summary = (
            await extract(task, documents, recorder, settings, on_outcome, log=log)
        ).as_metadata()
    except ServerUnavailableError as exc:
        # Keep what finished; the unfinished documents score as unanswered and the run says why.
        error = str(exc)
        log.error("items_per_call=%s: %s", items_per_call, exc)
    return {
        "predictions": predictions,
        "errors": errors,
        "packs": packs,
        "summary": summary,
        "error": error,
        "original_packs": first_packs(recorder.requests),
    }


async def evaluate(config: EvalConfig, llm: Any = None) -> dict[str, Any]:
    """Run the evaluation; write results under config.out; return the results dict."""
    from resources.llm import LLMResource

    llm = llm or LLMResource.from_env()
    task = load_task(config.task)
    gold_name = config.gold or task.name
    all_docs, specs, not_covered = load_task_gold_set(task, gold_name, config.corpus_dir)
    gold_docs = sample(all_docs, config.limit, config.seed)
    uncovered_gold = sorted(
        {k for d in gold_docs for k in d.uncovered} - {s.gold_field for s in specs}
    )
    client = llm.get_client()
    texts = {d.doc_id: d.text for d in gold_docs}
    runs = []
    try:
        version = task.version(llm.model, client.generation_params())
        for k in config.items_per_call:
            started = time.time()
            out = await run_pack_size(
                task,
                gold_docs,
                client,
                k,
                config.max_concurrency,
                llm.max_model_len,
                f"eval-{gold_name}",
                config.isolate_suspicious,
            )
            scores = score_documents(gold_docs, out["predictions"], specs)
            cont = contamination(out["packs"], texts, out["predictions"])
            original = out["original_packs"]
            runs.append(
                {
                    "items_per_call": k,
                    "scores": scores,
                    "contamination": cont.as_dict(),
                    **crosstalk(original, gold_docs, out["predictions"], specs, config.seed),
                    "packs": out["packs"],
                    "original_packs": original,
                    "run_summary": out["summary"],
                    "error": out["error"],
                    "failed": out["errors"],
                    "predictions": out["predictions"],
                    "wall_s": round(time.time() - started, 2),
                }
            )
            log.info(
                "items_per_call=%s: mean score %s, contamination %s",
                k,
                scores["overall"]["mean_score"],
                cont.rate,
            )
    finally:
        await client.aclose()
    results = {
        "gold": gold_name,
        "backend": llm.backend,
        "model": llm.model,
        "task": task.name,
        "task_ref": config.task,
        "task_version": version,
        "n_documents": len(gold_docs),
        "seed": config.seed,
        "isolate_suspicious": config.isolate_suspicious,
        "doc_ids": [d.doc_id for d in gold_docs],
        "gold_sources": {d.doc_id: d.gold_sources for d in gold_docs},
        "scored_fields": [s.gold_field for s in specs],
        "not_covered_by_task": sorted(set(not_covered) | set(uncovered_gold)),
        "runs": runs,
    }
    write_results(results, Path(config.out))
    return results


def rescore(path: Path, corpus_dir: Path | None = None) -> dict[str, Any]:
    """Score a saved run's predictions again with the current gold and scoring (no LLM call),
    e.g. after a normalisation fix; rewrites the JSON, markdown and plot beside it."""
    results = json.loads(Path(path).read_text(encoding="utf-8"))
    saved = _predictions_path(Path(path))
    if saved.exists():  # predictions are kept beside the results, out of git
        for run, predictions in zip(
            results["runs"], json.loads(saved.read_text("utf-8")), strict=True
        ):
            run["predictions"] = predictions
    task = load_task(results.get("task_ref") or results["task"])
    gold_docs, specs, _ = load_task_gold_set(task, results["gold"], corpus_dir)
    by_id = {d.doc_id: d for d in gold_docs}
    docs = [by_id[i] for i in results["doc_ids"]]
    texts = {d.doc_id: d.text for d in docs}
    for run in results["runs"]:
        run["scores"] = score_documents(docs, run["predictions"], specs)
        run["contamination"] = contamination(run["packs"], texts, run["predictions"]).as_dict()
        if "original_packs" in run:
            run.update(
                crosstalk(run["original_packs"], docs, run["predictions"], specs, results["seed"])
            )
    results["scored_fields"] = [s.gold_field for s in specs]
    results.pop("files", None)
    write_results(results, Path(path).parent)
    return results


def load_task_gold_set(
    task: ExtractionTask, name: str, corpus_dir: Path | None = None
) -> tuple[list[GoldDocument], list[FieldSpec], list[str]]:
    """(gold documents with their texts, field specs, gold fields the task cannot answer).

    A built-in set, or the task's own gold (`name` = the task's name); lines of the latter
    without a "text" take it from the corpus folder `corpus_dir`."""
    docs, specs = gold_set(task, name)
    not_covered: list[str] = []
    if name in GOLD_SETS and name != task.name:
        from extraction_assets.evaluation.scoring import FIELD_SPECS

        fields = set(task.item_model.model_fields)
        not_covered = [s.gold_field for s in FIELD_SPECS[name] if s.task_field not in fields]
    missing = [d for d in docs if not d.text]
    if missing:
        if corpus_dir is None:
            raise GoldFileMissingError(
                f'{len(missing)} gold lines of {name} have no "text" (e.g. {missing[0].doc_id}):'
                " give the corpus folder holding them (--corpus)"
            )
        from extraction_assets.corpora.sources import read_corpus

        texts = {d.doc_id: d for d in read_corpus(corpus_dir.parent, corpus_dir.name)}
        absent = [d.doc_id for d in missing if d.doc_id not in texts]
        if absent:
            raise GoldFileMissingError(
                f"{len(absent)} gold ids are not in corpus {corpus_dir} (e.g. {absent[0]})"
            )
        for d in missing:
            d.text = texts[d.doc_id].text
            d.source = texts[d.doc_id].source or d.source
    return docs, specs, not_covered


def crosstalk(
    original_packs: Sequence[Sequence[str]],
    docs: Sequence[GoldDocument],
    predictions: Any,
    specs: Any,
    seed: int,
) -> dict[str, Any]:
    """The gold-based contamination against the original packs, and its chance level."""
    return {
        "crosstalk": gold_crosstalk(original_packs, docs, predictions, specs).as_dict(),
        "crosstalk_chance": gold_crosstalk(
            shuffled_groups(original_packs, seed), docs, predictions, specs
        ).as_dict(),
    }


def _count(block: dict[str, Any] | None) -> str:
    if not block or not block.get("answers"):
        return "-"
    return f"{block['rate']:.2f} ({block['contaminated']}/{block['answers']})"


def _fmt(x: float | None) -> str:
    return "-" if x is None else f"{x:.2f}"


def markdown(results: dict[str, Any]) -> str:
    """The results as a markdown report: one row per pack size, one column per field."""
    fields = results["scored_fields"]
    lines = [
        f"# Extraction quality: {results['gold']} ({results['n_documents']} documents)",
        "",
        f"backend `{results['backend']}`, model `{results['model']}`, task `{results['task']}` "
        f"version `{results['task_version']}`, seed {results['seed']}, re-run of suspicious "
        f"items alone {'on' if results.get('isolate_suspicious', True) else 'off'}",
        "",
        "| items_per_call | answered | "
        + " | ".join(fields)
        + " | mean | contamination | gold crosstalk (original packs) | chance | re-run alone "
        "| items/min |",
        "|" + "---|" * (len(fields) + 8),
    ]
    for run in results["runs"]:
        overall = run["scores"]["overall"]
        cells = [_fmt(overall["fields"][f]["score"]) for f in fields]
        lines.append(
            f"| {run['items_per_call']} | {overall['answered']}/{overall['n_documents']} | "
            + " | ".join(cells)
            + f" | {_fmt(overall['mean_score'])} | {_fmt(run['contamination']['rate'])} | "
            f"{_count(run.get('crosstalk'))} | {_count(run.get('crosstalk_chance'))} | "
            f"{run['run_summary'].get('rerun_alone', 0)} | "
            f"{run['run_summary'].get('items_per_min', 0):.1f} |"
        )
    languages = sorted({lang for run in results["runs"] for lang in run["scores"]["by_language"]})
    if len(languages) > 1:
        lines += [
            "",
            "Per language:",
            "",
            "| items_per_call | language | answered | " + " | ".join(fields) + " | mean |",
            "|" + "---|" * (len(fields) + 4),
        ]
        for run in results["runs"]:
            for lang, block in sorted(run["scores"]["by_language"].items()):
                cells = [_fmt(block["fields"][f]["score"]) for f in fields]
                lines.append(
                    f"| {run['items_per_call']} | {lang} | {block['answered']}/"
                    f"{block['n_documents']} | "
                    + " | ".join(cells)
                    + f" | {_fmt(block['mean_score'])} |"
                )
    lines += [
        "",
        "Scores: accuracy after normalisation; F1 for set fields (lists). "
        "Contamination: share of answers naming someone found only in another document of "
        "the call that settled them (the engine's own detector). Gold crosstalk "
        "(evaluation/crosstalk.py, independent of the engine): share of answers, among items "
        "with pack-mates in their ORIGINAL pack (the first request they were sent in), with a "
        "field matching a pack-mate's gold value and not their own gold; chance: the same on "
        "a seeded shuffle of the documents into groups of the same sizes.",
        "",
        "Gold fields not covered by the task: "
        + (", ".join(results["not_covered_by_task"]) or "none"),
    ]
    return "\n".join(lines) + "\n"


def plot(results: dict[str, Any], path: Path) -> bool:
    """Score per field and contamination against pack size. False if matplotlib is missing."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        log.warning("matplotlib not installed: no plot written")
        return False
    sizes = [r["items_per_call"] for r in results["runs"]]
    fig, ax = plt.subplots(figsize=(7, 4.5))
    for f in results["scored_fields"]:
        ys = [r["scores"]["overall"]["fields"][f]["score"] for r in results["runs"]]
        ax.plot(sizes, [float("nan") if y is None else y for y in ys], marker="o", label=f)
    cont = [r["contamination"]["rate"] for r in results["runs"]]
    ax.plot(
        sizes,
        [float("nan") if c is None else c for c in cont],
        "k--",
        marker="x",
        label="contamination",
    )
    ax.set_xscale("log")
    ax.minorticks_off()
    ax.set_xticks(sizes, [str(s) for s in sizes])
    ax.set_ylim(-0.02, 1.02)
    ax.set_xlabel("items per call (pack size)")
    ax.set_ylabel("score")
    ax.set_title(f"{results['gold']}: {results['model']} (n={results['n_documents']})")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return True


def _predictions_path(results_json: Path) -> Path:
    return results_json.with_name(results_json.stem + ".predictions.json")


def write_results(results: dict[str, Any], out: Path) -> dict[str, Path]:
    out.mkdir(parents=True, exist_ok=True)
    stem = f"{results['gold']}-{results['model'].replace('/', '_')}"
    if not results.get("isolate_suspicious", True):
        stem += "-no-isolation"
    paths = {"json": out / f"{stem}.json", "md": out / f"{stem}.md", "png": out / f"{stem}.png"}
    # The model's answers quote the gold documents (shared data that stays out of the project's
    # git): they go to a sibling file that .gitignore keeps out; the results hold only scores.
    _predictions_path(paths["json"]).write_text(
        json.dumps(
            [run.get("predictions") for run in results["runs"]],
            ensure_ascii=False,
            indent=1,
            default=str,
        ),
        encoding="utf-8",
    )
    public = {
        **results,
        "runs": [{k: v for k, v in run.items() if k != "predictions"} for run in results["runs"]],
    }
    paths["json"].write_text(
        json.dumps(public, ensure_ascii=False, indent=1, default=str), encoding="utf-8"
    )
    paths["md"].write_text(markdown(results), encoding="utf-8")
    if not plot(results, paths["png"]):
        paths.pop("png")
    results["files"] = {k: str(v) for k, v in paths.items()}
    return paths
