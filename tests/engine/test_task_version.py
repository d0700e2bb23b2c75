"""Why: the task version decides what gets re-extracted. It must change when the meaning of an
answer can change (instructions, schema, model, generation settings) and must not change
otherwise, or every run would re-extract the whole corpus."""

from __future__ import annotations

import dataclasses

from pydantic import BaseModel, Field

from extraction_assets.tasks import get_task

BIO = get_task("biography")
GEN = {"temperature": 0.0, "seed": 0}


def test_version_is_stable_and_twelve_hex() -> None:
    v = BIO.version("m", GEN)
    assert v == BIO.version("m", dict(reversed(list(GEN.items()))))
    assert len(v) == 12 and int(v, 16) >= 0
    # a copy with the same content (but another budget/description) keeps the version
    same = dataclasses.replace(BIO, description="other words", output_tokens_per_item=999)
    assert same.version("m", GEN) == v


def test_version_changes_with_instructions_schema_model_generation() -> None:
    base = BIO.version("m", GEN)

    class Other(BaseModel):
        name: str = Field(max_length=10)

    variants = [
        dataclasses.replace(BIO, instructions=BIO.instructions + " Be brief.").version("m", GEN),
        dataclasses.replace(BIO, item_model=Other).version("m", GEN),
        BIO.version("other-model", GEN),
        BIO.version("m", {**GEN, "temperature": 0.7}),
        BIO.version("m", {**GEN, "seed": 1}),
    ]
    assert base not in variants
    assert len(set(variants)) == len(variants)


def test_tasks_differ() -> None:
    assert BIO.version("m", GEN) != get_task("translation").version("m", GEN)
