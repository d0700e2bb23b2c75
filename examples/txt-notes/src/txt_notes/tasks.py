"""The task: four fields from each letter, defined as a pydantic model plus instructions."""

from pydantic import BaseModel, Field

from extraction_assets.tasks import ExtractionTask


class Letter(BaseModel):
    sender: str | None = Field(None, max_length=80, description="who wrote the letter")
    recipient: str | None = Field(None, max_length=80, description="to whom it is addressed")
    year: int | None = Field(None, ge=1000, le=2100, description="the year it was written")
    topics: list[str] = Field(default_factory=list, max_length=3, description="up to 3 subjects")


LETTER = ExtractionTask(
    name="letter",
    description="Sender, recipient, year and topics of a letter.",
    item_model=Letter,
    instructions=(
        "You read letters. For each letter give the sender, the recipient, the year it was "
        "written and up to three topics, as stated in the text; null when the text does not say."
    ),
    output_tokens_per_item=120,
)
