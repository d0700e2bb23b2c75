"""Gold sets from the real evaluation data beside the repository (../shared/data, never copied).

- Re-DocRED: English Wikipedia leads whose subject is a person with a birth or death date.
- Taqrib al-Tahdhib: Ibn Hajar's narrator entries (two editions), gold from AR-Sanad's curated
  narrator table where an entry links to exactly one narrator, otherwise from what the entry
  itself states. Every gold value records where it came from.
"""

from __future__ import annotations

import csv
import json
import re
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from extraction_assets.errors import GoldFileMissingError
from extraction_assets.evaluation.normalize import (
    complete_century,
    find_death_year,
    find_kunya,
    generation_from_text,
    grade_from_text,
    parse_year,
)
from extraction_assets.settings import Settings
from extraction_assets.text import arabic_tokens

REDOCRED_FILE = "redocred/dev_revised.json"
TAQRIB_EDITIONS = {
    "JK000121": "taqrib/taqrib.JK000121.txt",
    "Shamela0008609": "taqrib/taqrib.Shamela0008609.txt",
}
NARRATORS_FILE = "ar-sanad/lite_narrators.csv"


def data_dir() -> Path:
    """$EXTRACTION_EVAL_DATA, else ../shared/data beside the checkout."""
    return Settings.from_env().eval_data_dir


def _require(root: Path, rel: str) -> Path:
    path = root / rel
    if not path.is_file():
        raise GoldFileMissingError(
            f"gold file missing: {path} (set EXTRACTION_EVAL_DATA to the folder holding "
            f"{rel.split('/')[0]}/)"
        )
    return path


@dataclass
class GoldDocument:
    doc_id: str
    text: str
    lang: str
    gold: dict[str, Any]  # field -> value, list of values, or list of alias lists
    source: str  # where the document came from, e.g. "redocred/dev_revised.json#17"
    gold_sources: dict[str, str] = field(default_factory=dict)  # field -> where the value came from
    uncovered: dict[str, Any] = field(default_factory=dict)  # gold the task has no field for
    notes: dict[str, Any] = field(default_factory=dict)  # context, e.g. the year as written


# --- Re-DocRED --------------------------------------------------------------------------------

FAMILY_RELATIONS = {
    "P22": "father",
    "P25": "mother",
    "P26": "spouse",
    "P40": "child",
    "P3373": "sibling",
}
# Gold relations the biography task has no field for (reported, not dropped).
UNCOVERED_RELATIONS = {
    "P27": "citizenship",
    "P69": "educated_at",
    "P106": "occupation",
    "P108": "employer",
    "P463": "member_of",
}


def _detokenize(tokens: list[str]) -> str:
    text = " ".join(tokens)
    text = re.sub(r" ([,.;:!?%)\]}])", r"\1", text)
    text = re.sub(r"([(\[{]) ", r"\1", text)
    return text.replace(" 's", "'s").replace(" n't", "n't")


def _aliases(entity: list[dict[str, Any]]) -> list[str]:
    return list(dict.fromkeys(m["name"].replace('"', " ").strip() for m in entity))


def _subject(doc: dict[str, Any], heads: set[int]) -> int | None:
    """The biography's subject: a dated PER head whose mentions share the title's last word
    ("Pete Ham" -> "Peter William Ham"). Other dated people in a lead are not its subject."""
    title = re.sub(r"\s*\(.*\)$", "", doc["title"]).split(",")[0].lower().split()
    if not title:
        return None
    for h in sorted(heads):
        if any(title[-1] in m["name"].lower().split() for m in doc["vertexSet"][h]):
            return h
    return None


def load_redocred(root: Path | None = None) -> list[GoldDocument]:
    """Person biographies of the Re-DocRED dev set, gold mapped onto the biography task."""
    path = _require(root or data_dir(), REDOCRED_FILE)
    docs = json.loads(path.read_text(encoding="utf-8"))
    out = []
    for index, doc in enumerate(docs):
        vs = doc["vertexSet"]
        heads = {
            lab["h"]
            for lab in doc["labels"]
            if lab["r"] in ("P569", "P570") and vs[lab["h"]][0]["type"] == "PER"
        }
        subject = _subject(doc, heads)
        if subject is None:
            continue
        gold: dict[str, Any] = {"name": _aliases(vs[subject])}
        sources = {"name": "redocred:vertexSet"}
        uncovered: dict[str, list[list[str]]] = defaultdict(list)
        family: list[dict[str, Any]] = []
        for lab in doc["labels"]:
            if lab["h"] != subject:
                continue
            r, tail = lab["r"], vs[lab["t"]]
            if r in ("P569", "P570"):
                years = [y.value for m in tail if (y := parse_year(m["name"])) and y.value]
                if years:
                    key = "birth_year" if r == "P569" else "death_year"
                    gold[key] = sorted(set(years))
                    sources[key] = f"redocred:{r}"
            elif r in ("P19", "P20"):
                key = "birth_place" if r == "P19" else "death_place"
                gold[key] = _aliases(tail)
                sources[key] = f"redocred:{r}"
            elif r in FAMILY_RELATIONS:
                family.append({"relation": FAMILY_RELATIONS[r], "aliases": _aliases(tail)})
            elif r in UNCOVERED_RELATIONS:
                uncovered[UNCOVERED_RELATIONS[r]].append(_aliases(tail))
        if family:
            gold["family"] = family
            sources["family"] = "redocred:P22/P25/P26/P40/P3373"
        out.append(
            GoldDocument(
                doc_id=f"redocred-{index}",
                text=" ".join(_detokenize(s) for s in doc["sents"]),
                lang="en",
                gold=gold,
                source=f"{REDOCRED_FILE}#{index}",
                gold_sources=sources,
                uncovered=dict(uncovered),
            )
        )
    return out


# --- Taqrib -----------------------------------------------------------------------------------

_MILESTONE = re.compile(r"\bms\d+\b|\bPageV\d+P\d+\b")
_JK_ENTRY = re.compile(r"^### \${1,2} (\d+)\s*(.*)$")  # $ men, $$ women (numbered)
_SHAMELA_ENTRY = re.compile(r"^### \| (\d+)-\s*(.*)$")


@dataclass(frozen=True)
class TaqribEntry:
    entry_id: str  # "taqrib-N" (a repeated number N gets "taqrib-N-2")
    number: int
    text: str
    line: int  # 1-based line of the entry header


def _clean(text: str) -> str:
    return " ".join(_MILESTONE.sub(" ", text).split())


def parse_taqrib(path: Path) -> list[TaqribEntry]:
    """Numbered entries of one OpenITI edition of the Taqrib.

    JK000121 writes `### $ N text` (`### $$ N` for the women) with `~~` continuation lines;
    Shamela0008609 writes `### | N-` then a `# text` paragraph with `~~` lines. Unnumbered
    cross-reference entries (`### $$$`, `# [] ...`) and page/milestone markers are left out.
    """
    entries: list[TaqribEntry] = []
    seen: dict[int, int] = defaultdict(int)
    current: tuple[int, int, list[str]] | None = None
    expect_paragraph = False

    def close() -> None:
        if current is not None:
            number, line, parts = current
            seen[number] += 1
            suffix = "" if seen[number] == 1 else f"-{seen[number]}"
            entries.append(
                TaqribEntry(f"taqrib-{number}{suffix}", number, _clean(" ".join(parts)), line)
            )

    with path.open(encoding="utf-8") as fh:
        for lineno, raw in enumerate(fh, 1):
            line = raw.rstrip("\n")
            m = _JK_ENTRY.match(line) or _SHAMELA_ENTRY.match(line)
            if m:
                close()
                current = (int(m.group(1)), lineno, [m.group(2)])
                expect_paragraph = _SHAMELA_ENTRY.match(line) is not None and not m.group(2)
                continue
            if current is None:
                continue
            if line.startswith("~~"):
                current[2].append(line[2:])
            elif expect_paragraph and line.startswith("# ") and not line.startswith("# Page"):
                current[2].append(line[2:])
                expect_paragraph = False
            elif line.startswith("# Page") or not line.strip():
                continue
            else:  # another block (header, cross-reference): the entry ended
                close()
                current = None
    close()
    return [e for e in entries if e.text]


def _fold_whitespace(text: str) -> str:
    return " ".join(text.split())


def _fold_ibn(text: str) -> str:
    """Whitespace and the Shamela edition's spelling ابن for بن (a convention, not an edit)."""
    return " ".join("بن" if t == "ابن" else t for t in text.split())


def compare_editions(root: Path | None = None) -> dict[str, Any]:
    """Which Taqrib entries differ between the two editions (a real "source text corrected" case).

    `changed` compares after folding whitespace and the Shamela edition's ابن-for-بن spelling
    (without that fold nearly every entry "changes": see `changed_whitespace_only_fold`);
    `changed_ignoring_punctuation_and_hamza` also drops brackets/punctuation and folds letters."""
    root = root or data_dir()
    a = {e.entry_id: e.text for e in parse_taqrib(_require(root, TAQRIB_EDITIONS["JK000121"]))}
    b = {
        e.entry_id: e.text for e in parse_taqrib(_require(root, TAQRIB_EDITIONS["Shamela0008609"]))
    }
    common = sorted(set(a) & set(b), key=_id_order)
    raw_changed = [i for i in common if _fold_whitespace(a[i]) != _fold_whitespace(b[i])]
    changed = [i for i in raw_changed if _fold_ibn(a[i]) != _fold_ibn(b[i])]

    def letters(text: str) -> str:
        return " ".join("بن" if t == "ابن" else t for t in arabic_tokens(text))

    changed_letters = [i for i in changed if letters(a[i]) != letters(b[i])]
    return {
        "entries": {"JK000121": len(a), "Shamela0008609": len(b)},
        "common": len(common),
        "only_in_JK000121": sorted(set(a) - set(b), key=_id_order),
        "only_in_Shamela0008609": sorted(set(b) - set(a), key=_id_order),
        "changed": len(changed),
        "changed_ids": changed,
        "changed_whitespace_only_fold": len(raw_changed),
        "changed_ignoring_punctuation_and_hamza": len(changed_letters),
    }


def _id_order(entry_id: str) -> tuple[int, str]:
    num = entry_id.split("-")[1]
    return int(num), entry_id


# --- AR-Sanad narrators and the join ----------------------------------------------------------


def _csv_value(value: str | None) -> str | None:
    value = (value or "").strip()
    return None if value in ("", "-") else value


def _name_key(text: str, n: int) -> tuple[str, ...]:
    return tuple("بن" if t == "ابن" else t for t in arabic_tokens(text)[:n])


def load_narrators(root: Path | None = None) -> list[dict[str, str]]:
    path = _require(root or data_dir(), NARRATORS_FILE)
    with path.open(encoding="utf-8", newline="") as fh:
        return list(csv.DictReader(fh))


def link_narrators(entries: list[TaqribEntry], narrators: list[dict[str, str]]) -> dict[str, dict]:
    """entry id -> narrator row, where the two identify each other uniquely.

    A row matches an entry when the entry's text starts with the row's name (first five
    tokens, ابن/بن folded; at least "X بن Y") and, when both state a grade, the row's
    Ibnhajar_rank maps to the same grade as the entry's text. Only one-to-one pairs are kept.
    """
    by_head: dict[tuple[str, ...], list[TaqribEntry]] = defaultdict(list)
    for e in entries:
        by_head[_name_key(e.text, 3)].append(e)
    entry_grade = {e.entry_id: grade_from_text(e.text) for e in entries}
    row_matches: dict[int, list[str]] = {}
    for i, row in enumerate(narrators):
        name = re.split(r"[:،]", row["name"])[0]
        key = _name_key(name, 5)
        if len(key) < 3 or key[1] != "بن":
            continue
        row_grade = grade_from_text(_csv_value(row.get("Ibnhajar_rank")))
        hits = []
        for e in by_head.get(key[:3], []):
            if _name_key(e.text, len(key)) != key:
                continue
            eg = entry_grade[e.entry_id]
            if row_grade and eg and row_grade != eg:
                continue
            hits.append(e.entry_id)
        row_matches[i] = hits
    entry_rows: dict[str, list[int]] = defaultdict(list)
    for i, hits in row_matches.items():
        for h in hits:
            entry_rows[h].append(i)
    return {
        eid: narrators[rows[0]]
        for eid, rows in entry_rows.items()
        if len(rows) == 1 and len(row_matches[rows[0]]) == 1
    }


def _csv_years(text: str | None) -> list[int]:
    """Every year the CSV's death_year allows: "235 هـ ، أو 234 هـ" -> [234, 235];
    a decade range "121 هـ : 130 هـ" -> 121..130."""
    if not text:
        return []
    years: set[int] = set()
    for m in re.finditer(r"(\d{1,4})\s*هـ?\s*:\s*(\d{1,4})\s*هـ", text):
        lo, hi = int(m.group(1)), int(m.group(2))
        if 0 < hi - lo <= 20:
            years.update(range(lo, hi + 1))
    years.update(int(y) for y in re.findall(r"(\d{1,4})\s*هـ", text))
    return sorted(years)


def taqrib_gold(entry: TaqribEntry, row: dict[str, str] | None) -> GoldDocument:
    """Gold for one entry: the linked narrator row's values where it has them, else the
    entry's own statements; gold_sources says which, per field."""
    gold: dict[str, Any] = {}
    sources: dict[str, str] = {}
    uncovered: dict[str, Any] = {}
    notes: dict[str, Any] = {}
    row_ref = f"ar-sanad:id={row.get('id')}" if row else ""
    text_generation = generation_from_text(entry.text)

    grade = grade_from_text(_csv_value(row.get("Ibnhajar_rank"))) if row else None
    if grade:
        gold["grade"], sources["grade"] = grade, row_ref
    elif (text_grade := grade_from_text(entry.text)) is not None:
        gold["grade"], sources["grade"] = text_grade, "entry-text"
    else:  # no grade phrase we recognise: unscored rather than guessed "not_stated"
        sources["grade"] = "none: no grade phrase recognised in the entry"

    generation = (
        generation_from_text(_csv_value(row.get("tabaqa")), require_min=False) if row else None
    )
    if generation:
        gold["generation"], sources["generation"] = generation, row_ref
    elif text_generation:
        gold["generation"], sources["generation"] = text_generation, "entry-text"

    kunyas = (
        [
            k.strip()
            for k in re.split(r"[،,]|ويقال\s*:?|وقيل\s*:?", _csv_value(row.get("kunia")) or "")
            if k.strip()
        ]
        if row
        else []
    )
    if kunyas:
        gold["kunya"], sources["kunya"] = kunyas, row_ref
    elif (k := find_kunya(entry.text)) is not None:
        gold["kunya"], sources["kunya"] = [k], "entry-text"

    years = _csv_years(_csv_value(row.get("death_year"))) if row else []
    stated = find_death_year(entry.text)
    if stated is not None:
        full = complete_century(stated, text_generation)
        notes["death_year_as_written"] = stated.value
        if not years:
            years = full.candidates()
            sources["death_year"] = (
                "entry-text" if full == stated else "entry-text+century-rule(generation)"
            )
    if years and "death_year" not in sources:
        sources["death_year"] = row_ref
    if years:
        gold["death_year"] = years
    return GoldDocument(
        doc_id=entry.entry_id,
        text=entry.text,
        lang="ar",
        gold=gold,
        source=f"line {entry.line}",
        gold_sources=sources,
        uncovered=uncovered,
        notes=notes,
    )


def load_taqrib(root: Path | None = None, edition: str = "JK000121") -> list[GoldDocument]:
    """Every numbered entry of one edition, with gold (linked narrator row, else entry text)."""
    root = root or data_dir()
    rel = TAQRIB_EDITIONS[edition]
    entries = parse_taqrib(_require(root, rel))
    links = link_narrators(entries, load_narrators(root))
    docs = []
    for e in entries:
        doc = taqrib_gold(e, links.get(e.entry_id))
        doc.source = f"{rel}:{e.line}"
        docs.append(doc)
    return docs


# --- the bundled sample ------------------------------------------------------------------------

SAMPLE_GOLD_FILE = Path(__file__).resolve().parents[1] / "sample_data" / "gold" / "biography.jsonl"
SAMPLE_CORPUS = "biographies"


def load_sample_gold(root: Path | None = None) -> list[GoldDocument]:
    """Hand-written gold for 10 entries of the bundled sample corpus (five English/German, five
    Arabic), joined to their text in the corpus file: it ships with the package, so `root` (the
    shared data folder) is not used."""
    from extraction_assets.corpora.sources import read_corpus
    from extraction_assets.settings import SAMPLE_SOURCE_ROOT

    path = SAMPLE_GOLD_FILE
    if not path.is_file():
        raise GoldFileMissingError(f"gold file missing: {path} (the bundled sample gold)")
    texts = {d.doc_id: d for d in read_corpus(SAMPLE_SOURCE_ROOT, SAMPLE_CORPUS)}
    out = []
    for line in path.read_text(encoding="utf-8").splitlines():
        if not line.strip():
            continue
        row = json.loads(line)
        doc = texts[row["id"]]
        out.append(
            GoldDocument(
                doc_id=row["id"],
                text=doc.text,
                lang=row["id"].split("-")[0],  # the sample's ids start with their language
                gold=row["gold"],
                source=doc.source or f"{SAMPLE_CORPUS}/{row['id']}",
                gold_sources={
                    k: "sample-gold (hand-written from the entry text)" for k in row["gold"]
                },
            )
        )
    return out


GOLD_SETS = {"redocred": load_redocred, "taqrib": load_taqrib, "sample": load_sample_gold}
# The task each gold set is written for.
GOLD_SET_TASK = {"redocred": "biography", "taqrib": "biography", "sample": "biography"}


def load_gold(name: str, root: Path | None = None) -> list[GoldDocument]:
    try:
        loader = GOLD_SETS[name]
    except KeyError:
        raise KeyError(f"unknown gold set {name!r}; known: {sorted(GOLD_SETS)}") from None
    return loader(root)
