"""Extraction-quality evaluation: field normalisation, gold sets, scoring, and the harness.

`python -m extraction_assets.evaluation --gold redocred|taqrib ...` or `--task SPEC` for a task's
own gold file (see __main__ and task_gold).
"""

from extraction_assets.evaluation.gold import (
    GoldDocument,
    compare_editions,
    load_gold,
    load_redocred,
    load_taqrib,
)
from extraction_assets.evaluation.scoring import contamination, score_documents, value_match
from extraction_assets.evaluation.task_gold import load_task_gold, task_field_specs

__all__ = [
    "GoldDocument",
    "compare_editions",
    "contamination",
    "load_gold",
    "load_redocred",
    "load_taqrib",
    "load_task_gold",
    "score_documents",
    "task_field_specs",
    "value_match",
]
