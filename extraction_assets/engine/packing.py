"""Packing documents into calls: input order, at most items_per_call, within the context.

Token counts come from the server's tokenizer when the backend has one (vLLM's /tokenize:
`TokenCounter`, cached by content hash, the prompt's static part counted once), else a
conservative estimate (utf-8 bytes / chars_per_token). Only the documents' texts and the
instructions are counted exactly; the short item wrappers and the chat template stay
estimated (over-counted). The server's "context length exceeded" answer is the backstop (the
runner then splits the pack).
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from extraction_assets.engine.prompts import item_block, system_message
from extraction_assets.types import Document

if TYPE_CHECKING:
    from extraction_assets.engine import EngineSettings
    from extraction_assets.tasks.base import ExtractionTask
    from resources.backends.base import LLMClient

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


# Counts kept across runs of one process, per (backend, model, server) and text hash.
_COUNTED: dict[tuple[str, str], int] = {}
_COUNTED_MAX = 500_000  # entries (~100 bytes each); the cache starts over beyond


def _text_key(text: str) -> str:
    return hashlib.blake2b(text.encode("utf-8"), digest_size=16).hexdigest()


class TokenCounter:
    """Token counts by the server's tokenizer (after `prepare`), cached by content hash; texts
    it has not counted, or a backend without a tokenizer, get the bytes estimate."""

    def __init__(self, client: LLMClient | None, chars_per_token: float) -> None:
        self.client = client
        self.chars_per_token = chars_per_token
        urls = getattr(client, "base_urls", None) or [""]
        self.scope = f"{getattr(client, 'backend', '')}|{getattr(client, 'model', '')}|{urls[0]}"
        self.exact = 0  # texts counted by the tokenizer (this counter's lookups)
        self.estimated = 0

    async def prepare(self, texts: Sequence[str]) -> None:
        """Count the texts not counted yet, in one concurrent batch to the server."""
        count = getattr(self.client, "count_tokens", None)
        if count is None:
            return
        todo: dict[str, str] = {}
        for text in texts:
            key = _text_key(text)
            if (self.scope, key) not in _COUNTED:
                todo[key] = text
        if not todo:
            return
        counts = await count(list(todo.values()))
        if counts is None or len(counts) != len(todo):
            return
        if len(_COUNTED) + len(todo) > _COUNTED_MAX:
            _COUNTED.clear()
        for key, n in zip(todo, counts, strict=True):
            _COUNTED[(self.scope, key)] = n

    def count(self, text: str) -> int:
        n = _COUNTED.get((self.scope, _text_key(text)))
        if n is None:
            self.estimated += 1
            return estimate_tokens(text, self.chars_per_token)
        self.exact += 1
        return n


class PackPlanner:
    """Knows what a pack costs in tokens, and cuts a corpus into packs that fit."""

    def __init__(
        self, task: ExtractionTask, settings: EngineSettings, counter: TokenCounter | None = None
    ) -> None:
        self.task = task
        self.settings = settings
        self.counter = counter
        self.static_tokens = self._tokens(system_message(task)) + TEMPLATE_OVERHEAD_TOKENS
        self._doc_tokens: dict[str, int] = {}

    def _est(self, text: str) -> int:
        return estimate_tokens(text, self.settings.chars_per_token)

    def _tokens(self, text: str) -> int:
        return self.counter.count(text) if self.counter else self._est(text)

    def text_tokens(self, doc: Document) -> int:
        n = self._doc_tokens.get(doc.text)
        if n is None:
            n = self._doc_tokens[doc.text] = self._tokens(doc.text)
        return n

    def input_tokens(self, doc: Document) -> int:
        # The text, its item wrapper (estimated), and its id repeated in the header line.
        wrapper = item_block(
            99, Document(doc.corpus, doc.doc_id, "", "", doc.source), _KEY_PLACEHOLDER
        )
        return self.text_tokens(doc) + self._est(wrapper) + self._est(doc.doc_id) + 2

    def output_tokens(self, doc: Document) -> int:
        extra = self.task.output_tokens_per_input_token * self.text_tokens(doc)
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


async def counted_planner(
    task: ExtractionTask,
    settings: EngineSettings,
    client: LLMClient | None,
    documents: Sequence[Document],
) -> PackPlanner:
    """A planner whose counts of `documents` and the instructions come from the server's
    tokenizer when it has one (one concurrent batch for the texts not counted yet)."""
    counter = TokenCounter(client if settings.server_tokenizer else None, settings.chars_per_token)
    await counter.prepare([system_message(task), *(d.text for d in documents)])
    return PackPlanner(task, settings, counter)


def halves(docs: Sequence[Document]) -> list[tuple[Document, ...]]:
    """Split in two (input order kept); a single document stays as is."""
    if len(docs) <= 1:
        return [tuple(docs)]
    mid = (len(docs) + 1) // 2
    return [tuple(docs[:mid]), tuple(docs[mid:])]
