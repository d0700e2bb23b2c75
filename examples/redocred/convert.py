"""Re-DocRED -> a JSONL corpus and a gold file for the relations task (run before extracting).

Reads the dataset where it lies (never copied into the project):
    python convert.py [--data DIR] [--limit 20] [--out data]
(DIR defaults to $EXTRACTION_EVAL_DATA/redocred, else ../shared/data/redocred beside the repository)
writes `data/corpora/redocred/documents.jsonl` (one document per Wikipedia lead, sentences
numbered "[i] ...", the evidence ids the task asks for) and `data/gold.jsonl` (per document the
gold triples, each entity given by all its mentions, relations by their labels). `data/` is
git-ignored: the dataset stays outside the repository.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
from pathlib import Path

from extraction_assets.tasks import read_spec

HERE = Path(__file__).resolve().parent
# $EXTRACTION_EVAL_DATA/redocred (as the evaluation CLI), else ../shared/data beside the repository.
DEFAULT_DATA = (
    Path(os.environ.get("EXTRACTION_EVAL_DATA") or HERE.parents[2] / "shared" / "data") / "redocred"
)
CORPUS = "redocred"


def detokenize(tokens: list[str]) -> str:
    text = " ".join(tokens)
    text = re.sub(r" ([,.;:!?%)\]}])", r"\1", text)
    text = re.sub(r"([(\[{]) ", r"\1", text)
    return text.replace(" 's", "'s").replace(" n't", "n't").replace("( ", "(")


def mentions(entity: list[dict]) -> list[str]:
    return list(
        dict.fromkeys(m["name"].replace('"', " ").replace("  ", " ").strip() for m in entity)
    )


def relation_labels(data: Path) -> dict[str, str]:
    """rel_info.json (P-id -> label), checked against the labels the task spec allows."""
    labels: dict[str, str] = json.loads((data / "rel_info.json").read_text(encoding="utf-8"))
    spec = read_spec(HERE / "relations.yaml")
    allowed = spec["fields"]["relations"]["items"]["fields"]["relation"]["enum"]
    if sorted(allowed) != sorted(labels.values()):
        missing = sorted(set(labels.values()) - set(allowed))
        raise SystemExit(
            f"relations.yaml's relation enum differs from {data}/rel_info.json "
            f"(missing: {missing[:5]}, extra: {sorted(set(allowed) - set(labels.values()))[:5]})"
        )
    return labels


def convert(data: Path, out: Path, limit: int | None) -> tuple[int, int]:
    """Write the corpus and the gold; (documents, gold triples)."""
    labels = relation_labels(data)
    docs = json.loads((data / "dev_revised.json").read_text(encoding="utf-8"))[:limit]
    corpus_file = out / "corpora" / CORPUS / "documents.jsonl"
    corpus_file.parent.mkdir(parents=True, exist_ok=True)
    triples = 0
    with (
        corpus_file.open("w", encoding="utf-8") as corpus,
        (out / "gold.jsonl").open("w", encoding="utf-8") as gold,
    ):
        for index, doc in enumerate(docs):
            doc_id = f"dev-{index:03d}"
            text = " ".join(f"[{i}] {detokenize(s)}" for i, s in enumerate(doc["sents"]))
            corpus.write(
                json.dumps(
                    {"id": doc_id, "title": doc["title"], "lang": "en", "text": text},
                    ensure_ascii=False,
                )
                + "\n"
            )
            vertices = doc["vertexSet"]
            # The standard relation F1 counts each (head entity, relation, tail entity) once.
            seen: set[tuple[int, str, int]] = set()
            relations = []
            for label in doc["labels"]:
                key = (label["h"], label["r"], label["t"])
                if key in seen:
                    continue
                seen.add(key)
                relations.append(
                    {
                        "head": mentions(vertices[label["h"]]),
                        "relation": labels[label["r"]],
                        "tail": mentions(vertices[label["t"]]),
                    }
                )
            triples += len(relations)
            gold.write(
                json.dumps(
                    {"id": doc_id, "lang": "en", "fields": {"relations": relations}},
                    ensure_ascii=False,
                )
                + "\n"
            )
    return len(docs), triples


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument(
        "--data",
        type=Path,
        default=DEFAULT_DATA,
        help="folder holding dev_revised.json and rel_info.json",
    )
    parser.add_argument("--limit", type=int, default=20, help="first N dev documents (default 20)")
    parser.add_argument("--out", type=Path, default=HERE / "data")
    args = parser.parse_args(argv)
    for name in ("dev_revised.json", "rel_info.json"):
        if not (args.data / name).is_file():
            print(
                f"error: {args.data / name} not found (--data: the Re-DocRED folder)",
                file=sys.stderr,
            )
            return 2
    n, triples = convert(args.data, args.out, args.limit)
    print(f"{n} documents, {triples} gold triples -> {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
