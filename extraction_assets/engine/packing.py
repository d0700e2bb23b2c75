"""Packing documents into calls: input order, at most items_per_call, within the context.

Token counts are estimated conservatively (utf-8 bytes / chars_per_token) since the client has
no tokenizer; the server's "context length exceeded" answer is the backstop (the runner then
splits the pack).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from extraction_assets.engine.prompts import item_block, system_message
from extraction_assets.types import Document

if TYPE_CHECKING:
    from extraction_assets.engine import EngineSettings
    from extraction_assets.tasks.base import ExtractionTask

# Tokens the chat template adds around the two messages, and the user message's header line.
TEMPLATE_OVERHEAD_TOKENS = 48
# Output tokens beyond the items' own: the answer's outer braces and some slack.
ANSWER_OVERHEAD_TOKENS = 16
_KEY_PLACEHOLDER = "k00000000"  # same length as prompts.new_key()


@dataclass(frozen=True)
class Pack:
    """Documents answered by one call."""

    docs: tuple[Document, ...]
    attempt: int = 1  # 1 + the most attempts any of its documents already had
    budget_scale: float = 1.0  # > 1 when retrying items whose answer was truncated

    @property
    def ids(self) -> list[str]:
        return [d.doc_id for d in self.docs]

    def __len__(self) -> int:
        return len(self.docs)


def estimate_tokens(text: str, chars_per_token: float) -> int:
    return math.ceil(len(text.encode("utf-8")) / chars_per_token)


class PackPlanner:
    """Knows what a pack costs in tokens, and cuts a corpus into packs that fit."""

    def __init__(self, task: ExtractionTask, settings: EngineSettings) -> None:
        self.task = task
        self.settings = settings
        self.static_tokens = (
            estimate_tokens(system_message(task), settings.chars_per_token)
            + TEMPLATE_OVERHEAD_TOKENS
        )

    def _est(self, text: str) -> int:
        return estimate_tokens(text, self.settings.chars_per_token)

    def input_tokens(self, doc: Document) -> int:
        # The item block plus its id repeated in the header line.
        return self._est(item_block(99, doc, _KEY_PLACEHOLDER)) + self._est(doc.doc_id) + 2

    def output_tokens(self, doc: Document) -> int:
        extra = self.task.output_tokens_per_input_token * self._est(doc.text)
        return self.task.output_tokens_per_item + math.ceil(extra)

    def max_tokens(self, docs: Sequence[Document], budget_scale: float = 1.0) -> int:
        """The max_tokens of a call: the items' budgets (scaled), capped by the context room."""
        want = math.ceil(sum(self.output_tokens(d) for d in docs) * budget_scale)
        want += ANSWER_OVERHEAD_TOKENS
        room = self.settings.max_model_len - self.static_tokens
        room -= sum(self.input_tokens(d) for d in docs)
        base = sum(self.output_tokens(d) for d in docs) + ANSWER_OVERHEAD_TOKENS
        return max(base, min(want, room))

    def fits(self, docs: Sequence[Document]) -> bool:
        need = self.static_tokens + sum(self.input_tokens(d) + self.output_tokens(d) for d in docs)
        return need + ANSWER_OVERHEAD_TOKENS <= self.settings.max_model_len

    def plan(self, documents: Sequence[Document]) -> tuple[list[Pack], list[Document]]:
        """Packs in input order, and the documents that cannot fit the context even alone."""
        packs: list[Pack] = []
        too_long: list[Document] = []
        current: list[Document] = []
        used = self.static_tokens + ANSWER_OVERHEAD_TOKENS
        limit = self.settings.max_model_len
        per_call = max(1, self.settings.items_per_call)
        for doc in documents:
            cost = self.input_tokens(doc) + self.output_tokens(doc)
            if self.static_tokens + ANSWER_OVERHEAD_TOKENS + cost > limit:
                too_long.append(doc)
                continue
            if current and (len(current) >= per_call or used + cost > limit):
                packs.append(Pack(tuple(current)))
                current, used = [], self.static_tokens + ANSWER_OVERHEAD_TOKENS
            current.append(doc)
            used += cost
        if current:
            packs.append(Pack(tuple(current)))
        return packs, too_long


def halves(docs: Sequence[Document]) -> list[tuple[Document, ...]]:
    """Split in two (input order kept); a single document stays as is."""
    if len(docs) <= 1:
        return [tuple(docs)]
    mid = (len(docs) + 1) // 2
    return [tuple(docs[:mid]), tuple(docs[mid:])]
