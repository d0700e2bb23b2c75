"""Relation F1 of the extracted triples against the Re-DocRED gold (after the Dagster job ran).

    python score.py [--store data/home/store.duckdb] [--out results.json]

Reads the task's typed table (DuckDB view `redocred_relations_extractions`) and scores it with
the package's type-driven scoring: a predicted triple is correct when its relation is the gold
one and its head and tail each match one of the gold entity's mentions (normalised); micro
precision, recall and F1 over all triples (each gold triple once; a document without a valid
answer predicts nothing). Evidence is not scored.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import duckdb

from extraction_assets.evaluation import load_task_gold, score_documents, task_field_specs
from extraction_assets.tasks import load_task

HERE = Path(__file__).resolve().parent


def score(store: Path, corpus: str = "redocred") -> dict:
    task = load_task(str(HERE / "relations.yaml"))
    gold = load_task_gold(task)
    with duckdb.connect(str(store), read_only=True) as con:
        rows = con.execute(
            f"SELECT doc_id, relations FROM {task.name}_extractions WHERE corpus = ?", [corpus]
        ).fetchall()
    predictions = {doc_id: {"relations": json.loads(rel) if rel else []} for doc_id, rel in rows}
    result = score_documents(gold, predictions, task_field_specs(task))
    f = result["overall"]["fields"]["relations"]
    return {
        "documents": len(gold),
        "answered": result["overall"]["answered"],
        "gold_triples": f["n_gold"],
        "predicted_triples": f["n_pred"],
        "correct": f["tp"],
        "precision": f["precision"],
        "recall": f["recall"],
        "f1": f["f1"],
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--store", type=Path, default=HERE / "data" / "home" / "store.duckdb")
    parser.add_argument("--out", type=Path, help="also write the figures as JSON here")
    args = parser.parse_args(argv)
    figures = score(args.store)
    print(json.dumps(figures, indent=1))
    if args.out:
        args.out.write_text(json.dumps(figures, indent=1) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
