"""End to end: the harness extracts real gold documents with the real engine and a real vLLM
server, scores them and writes its files. The model is the 135M plumbing model, so only the
plumbing is asserted (files exist, scores are proportions), not quality."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest

from extraction_assets.evaluation.harness import EvalConfig, evaluate
from resources.llm import LLMResource


@pytest.mark.vllm
@pytest.mark.slow
def test_harness_end_to_end(vllm_url: str, vllm_model: str, tmp_path: Path) -> None:
    llm = LLMResource(backend="vllm", base_url=vllm_url, model=vllm_model, max_model_len=8192)
    config = EvalConfig(
        gold="taqrib", limit=3, items_per_call=(3,), seed=1, max_concurrency=1, out=tmp_path
    )
    results = asyncio.run(evaluate(config, llm=llm))

    assert results["n_documents"] == 3 and results["model"] == vllm_model
    assert results["task_version"] and results["backend"] == "vllm"
    files = {kind: Path(p) for kind, p in results["files"].items()}
    assert set(files) == {"json", "md", "png"}
    assert all(p.is_file() and p.stat().st_size > 0 for p in files.values())
    saved = json.loads(files["json"].read_text(encoding="utf-8"))
    (run,) = saved["runs"]
    assert run["items_per_call"] == 3
    assert run["run_summary"]["items_total"] == 3
    for field in run["scores"]["overall"]["fields"].values():
        for key in ("accuracy", "precision", "recall", "f1"):
            assert field[key] is None or 0.0 <= field[key] <= 1.0
    rate = run["contamination"]["rate"]
    assert rate is None or 0.0 <= rate <= 1.0
    assert "| 3 |" in files["md"].read_text(encoding="utf-8")


def test_results_say_whether_suspicious_items_were_isolated(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A contamination rate means something else with and without the engine's re-run alone:
    the files say which, and the two runs never overwrite each other."""
    from extraction_assets.evaluation.__main__ import main
    from extraction_assets.evaluation.harness import markdown, write_results

    base = {
        "gold": "sample",
        "backend": "vllm",
        "model": "m",
        "task": "biography",
        "task_version": "v",
        "n_documents": 0,
        "seed": 0,
        "scored_fields": [],
        "not_covered_by_task": [],
        "runs": [],
    }
    on = write_results({**base, "isolate_suspicious": True}, tmp_path)
    off = write_results({**base, "isolate_suspicious": False}, tmp_path)
    assert on["json"] != off["json"] and off["json"].name == "sample-m-no-isolation.json"
    assert "alone off" in markdown({**base, "isolate_suspicious": False})
    assert "alone on" in markdown({**base, "isolate_suspicious": True})
    # the command line takes the switch: --help exits 0 and lists it (an unknown option would
    # exit 2 without --help; with it, argparse exits before complaining, so check both)
    with pytest.raises(SystemExit) as exited:
        main(["--no-isolate", "--help"])
    assert exited.value.code == 0 and "--no-isolate" in capsys.readouterr().out


def test_rescore_recomputes_scores_from_saved_predictions(tmp_path: Path) -> None:
    """After a scoring fix, saved predictions are scored again without an LLM call."""
    from extraction_assets.evaluation.harness import rescore

    saved = {
        "gold": "sample",
        "backend": "vllm",
        "model": "m",
        "task": "biography",
        "task_version": "v",
        "n_documents": 2,
        "seed": 0,
        "doc_ids": ["ar-001", "en-001"],
        "scored_fields": [],
        "not_covered_by_task": [],
        "runs": [
            {
                "items_per_call": 2,
                "packs": [["ar-001", "en-001"]],
                "scores": {"overall": {"fields": {}}},
                "run_summary": {},
                "contamination": {"rate": None},
                "predictions": {
                    "ar-001": {"kunya": "أبو عبد الله المدني", "grade": "weak"},
                    "en-001": None,
                },
            }
        ],
    }
    path = tmp_path / "sample-m.json"
    path.write_text(json.dumps(saved, ensure_ascii=False), encoding="utf-8")
    results = rescore(path)
    fields = results["runs"][0]["scores"]["overall"]["fields"]
    assert fields["kunya"]["accuracy"] == 1.0 and fields["grade"]["accuracy"] == 0.0
    assert fields["name"]["n"] == 2 and fields["name"]["correct"] == 0  # en-001 unanswered
    assert (
        json.loads(path.read_text(encoding="utf-8"))["runs"][0]["scores"]
        == results["runs"][0]["scores"]
    )
