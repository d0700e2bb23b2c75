"""The gold_sample check: extraction quality on a small gold sample, with every materialisation.

The gold documents go through the same engine and store as any corpus, as a pseudo-corpus per
gold set (`[gold]sample`, `[gold]taqrib`; brackets are not allowed in corpus folder names, so it
can never meet a real corpus). So they are extracted once per task version, with the run's
recipe, and later runs only re-score what the store holds. The check passes when the mean of
the gold sets' mean field scores reaches the threshold; it warns (never fails the step) below it,
and also when a configured gold set is missing or its documents could not be extracted.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any

import dagster as dg

from extraction_assets.engine import EngineSettings, extract
from extraction_assets.errors import GoldFileError, GoldFileMissingError, ServerUnavailableError
from extraction_assets.evaluation.gold import GOLD_SETS, GoldDocument
from extraction_assets.evaluation.harness import sample
from extraction_assets.evaluation.scoring import FieldSpec, score_documents
from extraction_assets.evaluation.task_gold import gold_set, gold_set_names
from extraction_assets.extractions.metadata import markdown_table
from extraction_assets.settings import Settings
from extraction_assets.tasks import ExtractionTask
from extraction_assets.types import GOLD_CORPUS_PREFIX, Document
from resources.store import CallContext, DuckDBStore

GOLD_CHECK = "gold_sample"
GOLD_CHECK_DESCRIPTION = (
    "Mean field score on the configured gold sample (EXTRACTION_GOLD_SAMPLE) is at least "
    "EXTRACTION_GOLD_THRESHOLD; per-field scores, overall and per language, in the metadata."
)


def gold_corpus(gold_set: str) -> str:
    """The pseudo-corpus a gold set is extracted into."""
    return f"{GOLD_CORPUS_PREFIX}{gold_set}"


def gold_sets_for(task: ExtractionTask, settings: Settings) -> list[tuple[str, int | None]]:
    """The configured gold sets written for this task (an unknown name is kept: the check
    reports it rather than dropping it), and the task's own gold, named after the task."""
    sizes = dict(settings.gold_sample)
    return [(n, sizes.get(n)) for n in gold_set_names(task, list(sizes))]


@dataclass
class GoldRun:
    """What the extraction step lends the check: its store, client and recipe."""

    store: DuckDBStore
    client: Any
    backend: str
    model: str
    task_version: str
    run_id: str
    engine_settings: EngineSettings
    retry_limit: int
    log: Any
    # The partition's corpus: gold lines without a text score its documents of those ids.
    corpus: str | None = None


async def _extract_gold(
    task: ExtractionTask, docs: list[GoldDocument], corpus: str, run: GoldRun
) -> int:
    """Sync the gold documents into their pseudo-corpus and extract what is pending there;
    returns how many were pending."""
    documents = [Document.make(corpus, d.doc_id, d.text, d.source) for d in docs]

    # Two partitions finishing together would extract the same gold documents: one waits.
    with run.store.extraction_lock(corpus, task.name, on_wait=run.log.info):
        await asyncio.to_thread(run.store.recover_journals)
        await asyncio.to_thread(run.store.sync_documents, corpus, documents, run.run_id)
        pending = await asyncio.to_thread(
            run.store.pending_documents,
            corpus,
            task.name,
            run.task_version,
            run.retry_limit,
            run.engine_settings.max_model_len,
        )
        if pending:
            run.log.info(f"gold sample {corpus}: extracting {len(pending)} documents")
            context = CallContext(
                run.run_id, corpus, task.name, run.task_version, run.backend, run.model
            )
            async with run.store.outcome_writer(context) as writer:
                await extract(
                    task, pending, run.client, run.engine_settings, writer.write, log=run.log
                )
    return len(pending)


def _sampled_gold_set(
    task: ExtractionTask, settings: Settings, name: str, size: int | None
) -> tuple[list[GoldDocument], list[FieldSpec]]:
    """The configured sample of one gold set and its field specs; raises what `gold_set` raises
    for an unknown or unreadable set."""
    docs, specs = gold_set(task, name, settings.eval_data_dir)
    return sample(docs, size or len(docs), settings.gold_seed), specs


async def prefetch_gold_sample(task: ExtractionTask, settings: Settings, run: GoldRun) -> int:
    """Extract the gold sample's pending documents without scoring them; returns how many were
    pending. The extraction step runs this beside the corpus (one batch on the server instead of
    two in a row), so the check usually only scores; what fails here the check reports."""
    extracted = 0
    for name, size in gold_sets_for(task, settings):
        try:
            docs, _ = _sampled_gold_set(task, settings, name, size)
        except (KeyError, GoldFileMissingError, GoldFileError):
            continue
        with_text = [d for d in docs if d.text]
        if with_text:
            extracted += await _extract_gold(task, with_text, gold_corpus(name), run)
    return extracted


def _fmt(x: float | None) -> str:
    return "-" if x is None else f"{x:.2f}"


async def evaluate_gold_sample(
    task: ExtractionTask, settings: Settings, run: GoldRun
) -> dg.AssetCheckResult:
    """Extract (if needed) and score the configured gold sample; the check result."""
    problems: list[str] = []
    scores: dict[str, dict[str, Any]] = {}
    extracted = documents = 0
    if not gold_sets_for(task, settings):
        problems.append(f"no gold set for task {task.name} in EXTRACTION_GOLD_SAMPLE")
    for name, size in gold_sets_for(task, settings):
        try:
            docs, specs = _sampled_gold_set(task, settings, name, size)
        except KeyError:
            problems.append(f"{name}: unknown gold set (known: {', '.join(sorted(GOLD_SETS))})")
            continue
        except (GoldFileMissingError, GoldFileError) as exc:
            problems.append(f"{name}: {exc}")
            continue
        with_text = [d for d in docs if d.text]
        answers = {}
        if with_text:
            corpus = gold_corpus(name)
            try:
                await _extract_gold(task, with_text, corpus, run)
            except ServerUnavailableError as exc:
                problems.append(
                    f"{name}: the LLM server stayed unavailable ({exc}); unscored "
                    "documents count as wrong"
                )
            # Extracted by this run here or beside the corpus in the extraction step.
            accounting = await asyncio.to_thread(run.store.run_accounting, run.run_id, corpus)
            extracted += len(accounting["extracted_ids"])
            answers = await asyncio.to_thread(
                run.store.current_fields, corpus, task.name, run.task_version
            )
        if len(with_text) < len(docs) and run.corpus is not None:
            # Gold for documents of the corpus itself: its extractions, no extra call.
            in_corpus = await asyncio.to_thread(
                run.store.current_fields, run.corpus, task.name, run.task_version
            )
            docs = with_text + [d for d in docs if not d.text and d.doc_id in in_corpus]
            answers.update({d.doc_id: in_corpus[d.doc_id] for d in docs if not d.text})
        else:
            docs = with_text
        if not docs:
            continue  # none of this gold is about this corpus
        scores[name] = score_documents(docs, {d.doc_id: answers.get(d.doc_id) for d in docs}, specs)
        documents += len(docs)

    means = [s["overall"]["mean_score"] for s in scores.values()]
    mean = sum(means) / len(means) if means and None not in means else None
    # No gold document about this corpus (and nothing missing): nothing to warn about.
    passed = not problems and (not scores or (mean is not None and mean >= settings.gold_threshold))
    metadata: dict[str, Any] = {
        "gold_sets": ", ".join(f"{n}:{k or 'all'}" for n, k in gold_sets_for(task, settings)),
        "threshold": settings.gold_threshold,
        "documents": documents,
        "answered": sum(s["overall"]["answered"] for s in scores.values()),
        "extracted_this_run": extracted,
        "task_version": run.task_version,
    }
    if mean is not None:
        metadata["mean_score"] = round(mean, 4)
    if problems:
        metadata["missing"] = "; ".join(problems)
    rows = []
    for name, result in scores.items():
        for lang, block in [("all", result["overall"]), *result["by_language"].items()]:
            row = {
                "gold": name,
                "language": lang,
                "answered": f"{block['answered']}/{block['n_documents']}",
            }
            for field, f in block["fields"].items():
                row[field] = _fmt(f["score"])
                if lang == "all" and f["score"] is not None:
                    metadata[f"score/{name}/{field}"] = round(f["score"], 4)
            row["mean"] = _fmt(block["mean_score"])
            rows.append(row)
    columns = list(dict.fromkeys(k for r in rows for k in r))
    table = [{c: r.get(c, "-") for c in columns} for r in rows]
    metadata["scores"] = dg.MetadataValue.md(markdown_table(table, columns))
    return dg.AssetCheckResult(
        check_name=GOLD_CHECK,
        passed=passed,
        severity=dg.AssetCheckSeverity.WARN,
        metadata=metadata,
        description=None
        if not problems
        else "gold sample missing or incomplete: " + "; ".join(problems),
    )
