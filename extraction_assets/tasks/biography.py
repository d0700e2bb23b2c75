"""Biographical entries of hadith narrators (tarajim), e.g. Ibn Hajar's Taqrib al-Tahdhib.

Every string has a maxLength and every list a maxItems: under grammar-constrained decoding
they bound how much a looping tiny model can emit. All fields are required, optional ones
are nullable (OpenAI strict mode requires both).
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, Field

from extraction_assets.tasks.base import ExtractionTask

Name = Annotated[str, Field(max_length=80)]
Place = Annotated[str, Field(max_length=60)]

# Ibn Hajar's grading vocabulary, collapsed to the levels a downstream table needs.
GRADES: dict[str, str] = {
    "companion": "صحابي - a Companion of the Prophet (not graded)",
    "trustworthy": "ثقة, ثقة ثبت, ثقة حافظ, إمام",
    "truthful": "صدوق, لا بأس به, صدوق يهم, صدوق له أوهام",
    "acceptable": "مقبول (acceptable when corroborated)",
    "weak": "ضعيف, لين, ليس بالقوي",
    "unknown": "مجهول, مستور, مجهول الحال (the narrator is not known)",
    "abandoned": "متروك, منكر الحديث",
    "liar": "كذاب, متهم بالكذب, وضاع",
    "not_stated": "the text gives no grade",
}
Grade = Literal[
    "companion",
    "trustworthy",
    "truthful",
    "acceptable",
    "weak",
    "unknown",
    "abandoned",
    "liar",
    "not_stated",
]


class Relative(BaseModel):
    relation: Literal[
        "father", "mother", "son", "daughter", "brother", "sister", "spouse", "other"
    ] = Field(description="how this person is related to the subject")
    name: Name = Field(description="the relative's name as written")


class Biography(BaseModel):
    name: Name = Field(description="the subject's main name as written in the text")
    kunya: Name | None = Field(
        description="the subject's kunya (أبو عبد الله, أم كلثوم) as written, null if none"
    )
    other_names: list[Name] = Field(
        max_length=3, description="laqab, nisba or other names of the subject (not the kunya)"
    )
    # Before the years: the model reads the generation first, then completes the century.
    generation: int | None = Field(
        ge=1,
        le=12,
        description="Ibn Hajar's generation (tabaqa) as a number 1-12, null if not stated",
    )
    birth_date_text: str | None = Field(
        max_length=60, description="birth date exactly as written, null if absent"
    )
    death_date_text: str | None = Field(
        max_length=60, description="death date exactly as written, null if absent"
    )
    birth_year: int | None = Field(
        ge=0, le=2100, description="birth year as a number in the source's calendar, or null"
    )
    death_year: int | None = Field(
        ge=0, le=2100, description="death year as a number in the source's calendar, or null"
    )
    calendar: Literal["AH", "CE"] | None = Field(
        description="calendar of the years: AH (hijri) or CE; null if no year"
    )
    birth_place: Place | None = Field(description="place of birth, or null")
    death_place: Place | None = Field(description="place of death, or null")
    teachers: list[Name] = Field(max_length=5, description="people he narrated from")
    students: list[Name] = Field(max_length=5, description="people who narrated from him")
    family: list[Relative] = Field(max_length=3, description="relatives named in the text")
    grade: Grade = Field(
        description="the narrator's grade: " + "; ".join(f"{k} = {v}" for k, v in GRADES.items())
    )
    summary_en: str = Field(max_length=200, description="one-line English summary")


INSTRUCTIONS = """\
You extract structured data from biographical entries (tarajim) of hadith narrators, \
mostly in Arabic. For each item, fill every field from that item's text only.
Rules:
- Copy names, places and dates as written in the text; do not translate them.
- Years are numbers in the calendar of the source; most Arabic sources count in AH (hijri).
- Use null or an empty list when the text does not say; never invent.
- grade follows the text's verdict on the narrator (for Ibn Hajar: ثقة, صدوق, مقبول, ضعيف, متروك).
- kunya is the subject's own kunya (أبو فلان, أم فلان); an أبي in the lineage (بن أبي بكر) is not \
his kunya.
- generation is Ibn Hajar's tabaqa as a number: من الأولى = 1, من الثانية = 2, من الثالثة = 3, \
... من العاشرة = 10, من الحادية عشرة = 11, من الثانية عشرة = 12; من كبار/صغار التاسعة = 9; a \
Companion (صحابي) is 1.
- Ibn Hajar often leaves out the century of a death date ("مات سنة سبع وأربعين"). death_year is \
always the full AH year: add the century from the generation. Generations 1-2 died before 100 \
(keep 47), 3-8 after 100 (add 100: 147), 9-12 after 200 (add 200: 247). A stated century \
("ومائتين") is kept as written. death_date_text stays as written.
- summary_en is one short English sentence about the subject."""

BIOGRAPHY = ExtractionTask(
    name="biography",
    description="Narrator biographies: names, dates, places, teachers, students, family, grade.",
    item_model=Biography,
    instructions=INSTRUCTIONS,
    # Measured on the sample corpus with SmolLM2-135M (compact JSON, one item per call, `make
    # demo` at d5d65f0): finishing answers 253-606 tokens (median 420); with a budget of 600, 12
    # of 40 answers (Arabic entries: their names cost several tokens a word) were cut and retried
    # alone, then needed 443-832 (median 745). 900 covers those in the first pass; the budget
    # only caps a call (a continuous-batching server holds KV blocks for tokens generated, not
    # for the cap), and a looping answer is still cut, retried with twice the budget, then failed.
    output_tokens_per_item=900,
)
