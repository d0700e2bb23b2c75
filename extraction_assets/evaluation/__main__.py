"""CLI: python -m extraction_assets.evaluation --gold redocred|taqrib|sample --limit 20
--items-per-call 1,5,20 --out benchmarks/results/eval [--seed 0] [--max-concurrency 4] [--no-isolate]
python -m extraction_assets.evaluation --task my_task.yaml [--corpus DIR]  (the task's own gold)
python -m extraction_assets.evaluation --compare-editions

The LLM comes from the environment (LLM_BACKEND, LLM_BASE_URL, LLM_MODEL, ...).
Exit codes: 0 done, 1 the LLM server failed during a run (partial results are still
written), 2 a gold file is missing or the arguments are wrong.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import sys
from pathlib import Path

from extraction_assets.errors import GoldFileError, GoldFileMissingError
from extraction_assets.evaluation.gold import GOLD_SETS, compare_editions


def _sizes(text: str) -> list[int]:
    try:
        sizes = [int(s) for s in text.split(",") if s.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"not a comma-separated list of integers: {text!r}"
        ) from None
    if not sizes or min(sizes) < 1:
        raise argparse.ArgumentTypeError("pack sizes must be >= 1")
    return sizes


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="extraction eval", description=__doc__.split("\n")[0])
    parser.add_argument(
        "--gold",
        choices=sorted(GOLD_SETS),
        help="a built-in gold set; default: the task's own gold file",
    )
    parser.add_argument("--limit", type=int, default=20, help="documents sampled (default 20)")
    parser.add_argument(
        "--items-per-call",
        type=_sizes,
        default=[1, 5, 20],
        help="pack sizes to compare, e.g. 1,5,20",
    )
    parser.add_argument("--seed", type=int, default=0, help="sampling seed (default 0)")
    parser.add_argument("--max-concurrency", type=int, default=4)
    parser.add_argument(
        "--task",
        default="biography",
        help="built-in name, module:ATTRIBUTE or spec file (default biography)",
    )
    parser.add_argument(
        "--corpus",
        type=Path,
        metavar="DIR",
        help='corpus folder with the texts of gold lines that have no "text"',
    )
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/eval"))
    parser.add_argument(
        "--no-isolate",
        action="store_true",
        help="keep pack answers that borrow from a pack-mate (measures the raw "
        "contamination the engine's re-run alone prevents)",
    )
    parser.add_argument(
        "--rescore",
        type=Path,
        metavar="JSON",
        help="score a saved results file again (current gold and scoring, no LLM "
        "call) and rewrite its files",
    )
    parser.add_argument(
        "--compare-editions",
        action="store_true",
        help="only compare the two Taqrib editions and print the counts",
    )
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    try:
        if args.compare_editions:
            diff = compare_editions()
            diff["changed_ids"] = diff["changed_ids"][:20] + (
                ["..."] if diff["changed"] > 20 else []
            )
            print(json.dumps(diff, ensure_ascii=False, indent=1))
            return 0
        if args.rescore:
            from extraction_assets.evaluation.harness import markdown, rescore

            print(markdown(rescore(args.rescore, args.corpus)))
            return 0
        from extraction_assets.errors import TaskSpecError
        from extraction_assets.evaluation.harness import EvalConfig, evaluate, markdown
        from extraction_assets.tasks import load_task

        try:
            has_gold = load_task(args.task).gold is not None
        except (TaskSpecError, KeyError) as exc:
            print(f"error: {str(exc).strip(chr(39))}", file=sys.stderr)
            return 2
        if not args.gold and not has_gold:
            parser.error(
                "--gold is required for a task without its own gold file (or --compare-editions)"
            )

        config = EvalConfig(
            gold=args.gold,
            limit=args.limit,
            items_per_call=args.items_per_call,
            seed=args.seed,
            max_concurrency=args.max_concurrency,
            task=args.task,
            out=args.out,
            isolate_suspicious=not args.no_isolate,
            corpus_dir=args.corpus,
        )
        results = asyncio.run(evaluate(config))
    except (GoldFileMissingError, GoldFileError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(markdown(results))
    for kind, path in results.get("files", {}).items():
        print(f"{kind}: {path}")
    failed_runs = [r["items_per_call"] for r in results["runs"] if r.get("error")]
    if failed_runs:
        print(
            f"error: the LLM server failed during the runs with items_per_call={failed_runs}; "
            "their unfinished documents count as unanswered",
            file=sys.stderr,
        )
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
