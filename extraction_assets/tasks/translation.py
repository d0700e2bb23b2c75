"""Translation of each document into English."""

from __future__ import annotations

from pydantic import BaseModel, Field

from extraction_assets.tasks.base import ExtractionTask


class Translation(BaseModel):
    source_language: str = Field(
        max_length=40, description="the language of the item's text, in English, e.g. Arabic"
    )
    translation_en: str = Field(
        max_length=3000, description="faithful English translation of the whole item text"
    )


INSTRUCTIONS = """\
You translate texts into English. For each item, translate the item's whole text faithfully \
and name its language. Keep proper names transliterated; do not add commentary."""

TRANSLATION = ExtractionTask(
    name="translation",
    description="English translation of each document.",
    item_model=Translation,
    instructions=INSTRUCTIONS,
    output_tokens_per_item=64,
    output_tokens_per_input_token=1.5,
)
