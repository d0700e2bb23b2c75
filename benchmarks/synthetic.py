"""The benchmark's synthetic task and corpus: a controllable token shape.

The real tasks' answers vary in length with the model's mood (a 135M model loops on some
entries), which makes throughput figures depend on the model rather than on the recipe. The
benchmark task instead asks to copy a fixed number of code words from each document; the
grammar (minItems = maxItems, bounded word length) fixes the answer's length, so every item
costs about the same output tokens whatever the model does. Input length is set by filler
words drawn from single-token words of the model's vocabulary.

Every configuration draws its documents from its own seed: item content never repeats
across configurations, so vLLM's prefix cache only ever serves the task's static
instructions (which it is supposed to), never a document seen in an earlier run.
"""

from __future__ import annotations

import json
import random
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, Field, create_model

from extraction_assets.tasks.base import ExtractionTask
from extraction_assets.types import Document

TASK_NAME = "bench_copy"
# Codes come from a closed set of words the tokenizer keeps whole: each copied code costs the
# same few output tokens (quote, word, quote-comma) whichever code the model picks.
# (Picked with the embedded model's tokenizer: one token alone, three as `"word",`.)
CODE_WORDS = (
    "admin",
    "aged",
    "agree",
    "also",
    "cost",
    "crime",
    "ethnic",
    "have",
    "raised",
    "rank",
    "rout",
    "sender",
    "stick",
    "turn",
    "vent",
    "delta",
)


@dataclass(frozen=True)
class Shape:
    """Token shape of one item (one-item call): instructions + item text in, answer out."""

    name: str
    instruction_tokens: int  # the task's static system message (shared by a pack)
    item_tokens: int  # one document's text
    codes: int  # words to copy = output length control
    output_tokens_per_item: int  # budget handed to the engine (generous: the grammar stops it)


# production: ~900 input tokens for a one-item call (instructions + text), ~300 output.
# Measured on the server: 64 codes answer in 275-403 tokens (mean ~330; the grammar fixes the
# number of codes, not how the model splits them into tokens), so the budget is 480. Until session
# 3 it asked for 96 codes with a 340-token budget: every first answer was truncated.
PRODUCTION = Shape(
    "production", instruction_tokens=400, item_tokens=460, codes=64, output_tokens_per_item=480
)
# quick: small enough that the full grid runs on 2 CPU cores in minutes.
QUICK = Shape("quick", instruction_tokens=300, item_tokens=60, codes=2, output_tokens_per_item=30)
SHAPES = {s.name: s for s in (PRODUCTION, QUICK)}


@cache
def vocabulary() -> tuple[str, ...]:
    """Lower-case words of 4-8 letters that the embedded model's tokenizer keeps whole."""
    from extraction_assets.model_cache import model_cache_dir

    path = Path(model_cache_dir()) / "tokenizer.json"
    try:
        vocab = json.loads(path.read_text())["model"]["vocab"]
    except (OSError, KeyError, ValueError):
        vocab = {}
    words = sorted(
        t[1:]
        for t in vocab
        if t.startswith("Ġ")
        and t[1:].isascii()
        and t[1:].isalpha()
        and t[1:].islower()
        and 4 <= len(t) - 1 <= 8
    )
    if len(words) < 1000:  # no tokenizer at hand: a fixed synthetic vocabulary
        rng = random.Random(0)
        words = sorted(
            {"".join(rng.choices("etaoinshrdlu", k=rng.randint(4, 7))) for _ in range(5000)}
        )
    return tuple(words)


def _instructions(tokens: int) -> str:
    head = (
        "You copy reference codes from records. Each record names its codes after the words "
        "'Reference codes:'. For each item, answer with its codes in the order given, each "
        "code copied exactly, lower case, without adding or dropping any. The rest of a "
        "record is background text: ignore it."
    )
    # Filler guidance so the static part has the shape's token count (the prefix cache's job).
    rng = random.Random(12345)
    words = vocabulary()
    extra = max(0, tokens - 215)  # the rest of the system message
    notes = " ".join(rng.choice(words) for _ in range(extra))
    return f"{head}\nGlossary of background terms (not codes): {notes}."


@cache
def bench_task(shape_name: str) -> ExtractionTask:
    shape = SHAPES[shape_name]
    code = Literal[CODE_WORDS]  # type: ignore[valid-type]
    model: type[BaseModel] = create_model(
        f"CopiedCodes_{shape.name}",
        codes=(
            list[code],
            Field(
                min_length=shape.codes,
                max_length=shape.codes,
                description=f"the record's {shape.codes} reference codes",
            ),
        ),
    )
    return ExtractionTask(
        name=TASK_NAME,
        description=f"Benchmark: copy {shape.codes} code words per document ({shape.name} shape).",
        item_model=model,
        instructions=_instructions(shape.instruction_tokens),
        output_tokens_per_item=shape.output_tokens_per_item,
    )


def make_documents(shape: Shape, n: int, seed: int, corpus: str = "bench") -> list[Document]:
    """`n` documents of the shape's size; content is a function of `seed` only."""
    rng = random.Random(seed)
    words = vocabulary()
    docs = []
    for i in range(n):
        codes = " ".join(rng.choice(CODE_WORDS) for _ in range(shape.codes))
        filler = " ".join(
            rng.choice(words) for _ in range(max(1, shape.item_tokens - shape.codes - 6))
        )
        text = f"Record {seed}-{i}. Reference codes: {codes}. {filler}."
        docs.append(Document.make(corpus, f"r{seed % 10000}-{i}", text))
    return docs


def write_corpus(root: Path, corpus: str, docs: list[Document]) -> Path:
    """The documents as a source folder (`<root>/<corpus>/documents.jsonl`)."""
    folder = root / corpus
    folder.mkdir(parents=True, exist_ok=True)
    with (folder / "documents.jsonl").open("w", encoding="utf-8") as f:
        for d in docs:
            f.write(json.dumps({"id": d.doc_id, "text": d.text}, ensure_ascii=False) + "\n")
    return folder
