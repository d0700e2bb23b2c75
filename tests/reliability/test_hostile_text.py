"""Why: documents are untrusted text. A document saying "ignore previous instructions", imitating the
item delimiters or forging another item's id must not change another item's answer. Planted canary
documents in packs of 1, 5 and 20 on the real vLLM server measure how often an answer mentions another
document's canary; re-running suspicious items alone must bring that to zero (alone, there is no other
document to borrow from). The rates are figures (benchmarks/reliability.py); the test holds the
mitigation to zero and the contamination to what the per-call key and id-keyed schema allow."""

from __future__ import annotations

import pytest

from tests.reliability.canary import measure

pytestmark = [pytest.mark.vllm, pytest.mark.slow]


@pytest.mark.parametrize("size", [1, 5, 20])
def test_canary_contamination_by_pack_size(vllm_url, vllm_model, size):
    result = measure(vllm_url, vllm_model, size, packs=2)
    assert result.items + result.failed == 2 * (size - 1 if size > 1 else 1)
    if size == 1:
        assert result.contaminated == []  # nothing else in the prompt to borrow from
    # The 135M model does mix items sometimes; more than half would mean the defences are gone.
    assert result.rate <= 0.5, result.contaminated
    assert result.after_mitigation == [], "an item answered alone still names another document"
