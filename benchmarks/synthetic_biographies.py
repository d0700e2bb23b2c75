"""A synthetic corpus of short biographies for the biography task (forecast error at scale).

`python -m benchmarks.synthetic_biographies ROOT N [--corpus NAME] [--seed S]` writes
`ROOT/NAME/documents.jsonl` with N documents shaped like the sample corpus (2-3 sentences: name,
years, birthplace, occupation, a teacher, a work), content a function of the seed only.
"""

from __future__ import annotations

import argparse
import json
import random
from pathlib import Path

FIRST = (
    "Amina",
    "Bernard",
    "Chen",
    "Dmitri",
    "Elena",
    "Farid",
    "Greta",
    "Hiroshi",
    "Ines",
    "Jonas",
    "Kamala",
    "Luis",
    "Mariam",
    "Nikolai",
    "Olga",
    "Pedro",
    "Qasim",
    "Rosa",
    "Sven",
    "Tariq",
    "Ursula",
    "Viktor",
    "Wen",
    "Yusuf",
    "Zofia",
)
LAST = (
    "Abbas",
    "Bauer",
    "Costa",
    "Dubois",
    "Eriksen",
    "Fischer",
    "Garcia",
    "Haddad",
    "Ivanov",
    "Jensen",
    "Kowalski",
    "Laurent",
    "Moreau",
    "Nakamura",
    "Okafor",
    "Petrov",
    "Rossi",
    "Santos",
    "Tanaka",
    "Weber",
)
PLACES = (
    "Lisbon",
    "Cairo",
    "Kraków",
    "Osaka",
    "Lyon",
    "Tabriz",
    "Bergen",
    "Valparaíso",
    "Tunis",
    "Riga",
    "Cork",
    "Samarkand",
    "Porto",
    "Aleppo",
    "Kyoto",
)
JOBS = (
    "astronomer",
    "physician",
    "poet",
    "architect",
    "botanist",
    "composer",
    "engineer",
    "historian",
    "mathematician",
    "painter",
    "chemist",
    "geographer",
)
WORKS = (
    "a treatise on optics",
    "a catalogue of stars",
    "a book of odes",
    "a survey of rivers",
    "a theory of tides",
    "a herbal of mountain plants",
    "a history of the city",
    "a set of tables for navigation",
)


def documents(n: int, seed: int) -> list[dict[str, str]]:
    rng = random.Random(seed)
    docs = []
    for i in range(n):
        name = f"{rng.choice(FIRST)} {rng.choice(LAST)}"
        born = rng.randint(1100, 1950)
        died = born + rng.randint(30, 90)
        teacher = f"{rng.choice(FIRST)} {rng.choice(LAST)}"
        text = (
            f"{name} ({born}-{died}) was a {rng.choice(JOBS)} born in {rng.choice(PLACES)}. "
            f"After studying with {teacher} in {rng.choice(PLACES)}, {name.split()[0]} wrote "
            f"{rng.choice(WORKS)}, which was read for generations."
        )
        if rng.random() < 0.5:
            text += (
                f" In {born + rng.randint(20, 29)} {name.split()[0]} settled in "
                f"{rng.choice(PLACES)} and taught there until {died}."
            )
        docs.append({"id": f"syn-{seed}-{i:04d}", "text": text})
    return docs


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("root", type=Path)
    parser.add_argument("n", type=int)
    parser.add_argument("--corpus", default="synthetic")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    folder = args.root / args.corpus
    folder.mkdir(parents=True, exist_ok=True)
    with (folder / "documents.jsonl").open("w", encoding="utf-8") as f:
        for d in documents(args.n, args.seed):
            f.write(json.dumps(d, ensure_ascii=False) + "\n")
    print(folder)


if __name__ == "__main__":
    main()
