"""Extraction-quality evaluation: field normalisation, gold sets, scoring, and the harness.

`python -m extraction_assets.evaluation --gold redocred|taqrib ...` (see __main__).
"""

from extraction_assets.evaluation.gold import (
    GoldDocument,
    GoldFileMissingError,
    compare_editions,
    load_gold,
    load_redocred,
    load_taqrib,
)
from extraction_assets.evaluation.scoring import contamination, score_documents

__all__ = [
    "GoldDocument",
    "GoldFileMissingError",
    "compare_editions",
    "contamination",
    "load_gold",
    "load_redocred",
    "load_taqrib",
    "score_documents",
]
