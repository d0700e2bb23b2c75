"""Corpora: where documents come from (``sources``) and the Dagster pieces that read them."""
