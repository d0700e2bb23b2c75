"""The Extraction component in a user project (a copy of examples/txt-notes): `dg scaffold defs`
creates one, `dg check defs` validates the code location with two extractions side by side (no
shared key, partitions, job, sensor, schedule or resource), refuses a bad defs.yaml naming the
problem, and a partition materialises through the real job on the real server."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import traceback
from pathlib import Path

import dagster as dg
import duckdb
import pytest

REPO = Path(__file__).resolve().parents[2]
EXAMPLE = REPO / "examples" / "txt-notes"
DG = Path(sys.executable).parent / "dg"

SPEC = """\
name: ticket
description: Support tickets
instructions: Give the product and the severity of the ticket.
output_tokens_per_item: 60
fields:
  product: {type: string, max_length: 40, nullable: true}
  severity: {type: string, enum: [low, high], nullable: true}
"""


def user_project(tmp_path: Path, letters: int = 3) -> Path:
    """The example project, copied, with `letters` of its letters."""
    project = tmp_path / "txt-notes"
    shutil.copytree(EXAMPLE, project, ignore=shutil.ignore_patterns(".extraction", "__pycache__"))
    for path in sorted((project / "data" / "letters").glob("*.txt"))[letters:]:
        path.unlink()
    return project


def dg_env(project: Path, tmp_path: Path) -> dict[str, str]:
    home = tmp_path / "dagster_home"
    home.mkdir(exist_ok=True)
    (home / "dagster.yaml").write_text("telemetry:\n  enabled: false\n")
    path = os.pathsep.join([str(REPO), str(project / "src"), os.environ.get("PYTHONPATH", "")])
    return {
        **os.environ,
        "PYTHONPATH": path,
        "DAGSTER_HOME": str(home),
        "EXTRACTION_HOME": str(tmp_path / "extraction_home"),
    }


def run_dg(project: Path, env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(DG), *args], cwd=project, env=env, capture_output=True, text=True, timeout=600
    )


def add_ticket_extraction(project: Path, env: dict[str, str]) -> None:
    """A second extraction, scaffolded by dg, then pointed at a CSV corpus and a YAML task."""
    scaffold = run_dg(
        project, env, "scaffold", "defs", "extraction_assets.components.Extraction", "tickets"
    )
    assert scaffold.returncode == 0, scaffold.stdout + scaffold.stderr
    yaml_path = project / "src" / "txt_notes" / "defs" / "tickets" / "defs.yaml"
    scaffolded = yaml_path.read_text()
    assert "type: extraction_assets.components.Extraction" in scaffolded
    assert "name: tickets" in scaffolded
    (project / "ticket.yaml").write_text(SPEC)
    (project / "tickets" / "support").mkdir(parents=True)
    (project / "tickets" / "support" / "t.csv").write_text("id,text\nt1,The printer is on fire.\n")
    yaml_path.write_text(
        scaffolded.replace("data/tickets", "tickets")
        .replace("my_project.tasks:MY_TASK", "ticket.yaml")
        .replace("sensor: true", "sensor: false")
    )


@pytest.mark.slow
def test_dg_scaffold_and_check_two_extractions_in_one_code_location(tmp_path: Path) -> None:
    project = user_project(tmp_path)
    env = dg_env(project, tmp_path)
    add_ticket_extraction(project, env)

    check = run_dg(project, env, "check", "defs")
    assert check.returncode == 0, check.stdout + check.stderr
    assert "All definitions loaded successfully" in check.stdout + check.stderr

    defs = _load(project, env)
    keys = {k.to_user_string() for k in defs.resolve_asset_graph().get_all_asset_keys()}
    assert keys == {
        "notes/corpus_documents",
        "notes/letter_extractions",
        "notes/letter_table",
        "tickets/corpus_documents",
        "tickets/ticket_extractions",
        "tickets/ticket_table",
    }
    repo = defs.get_repository_def()
    assert {j.name for j in repo.get_all_jobs() if not j.name.startswith("__")} == {
        "notes_extract_corpus",
        "tickets_extract_corpus",
    }
    assert {s.name for s in repo.sensor_defs} == {"notes_source_sensor", "tickets_source_sensor"}
    assert {s.name for s in repo.schedule_defs} == {"notes_catch_up", "tickets_catch_up"}
    partitions = {
        defs.resolve_assets_def(dg.AssetKey.from_user_string(k)).partitions_def.name  # type: ignore[union-attr]
        for k in ("notes/corpus_documents", "tickets/corpus_documents")
    }
    assert partitions == {"notes_corpora", "tickets_corpora"}
    statuses = {s.name: s.default_status for s in repo.sensor_defs}
    assert statuses["tickets_source_sensor"] == dg.DefaultSensorStatus.STOPPED
    assert statuses["notes_source_sensor"] == dg.DefaultSensorStatus.RUNNING


def _load(project: Path, env: dict[str, str]) -> dg.Definitions:
    """The project's code location, loaded the way `dg` does, in this process."""
    old = {k: os.environ.get(k) for k in ("EXTRACTION_HOME",)}
    os.environ["EXTRACTION_HOME"] = env["EXTRACTION_HOME"]
    sys.path.insert(0, str(project / "src"))
    try:
        for name in [m for m in sys.modules if m == "txt_notes" or m.startswith("txt_notes.")]:
            del sys.modules[name]
        return dg.load_from_defs_folder(path_within_project=project)
    finally:
        sys.path.remove(str(project / "src"))
        for k, v in old.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


# A wrong value in a component's defs.yaml, and the word the error must name.
WRONG = [
    (("txt_notes.tasks:LETTER", "txt_notes.tasks:NOPE"), "NOPE"),
    (("schedule: false", "schedule: false\n  colour: blue"), "colour"),
    (("items_per_call: 1", "items_per_call: 0"), "items_per_call"),
    (("source_root: data", "source_root: nowhere"), "nowhere"),
]


def _wrong_project(tmp_path: Path, change: tuple[str, str]) -> Path:
    project = user_project(tmp_path)
    yaml_path = project / "src" / "txt_notes" / "defs" / "notes" / "defs.yaml"
    text = yaml_path.read_text()
    assert change[0] in text
    yaml_path.write_text(text.replace(*change))
    return project


@pytest.mark.parametrize(("change", "expected"), WRONG)
def test_loading_names_what_is_wrong(
    tmp_path: Path, change: tuple[str, str], expected: str
) -> None:
    """In this process, the way `dg` loads the location: the error and its causes name it."""
    project = _wrong_project(tmp_path, change)
    try:
        _load(project, dg_env(project, tmp_path))
    except Exception as exc:  # any error: what it says is the test
        assert expected in "".join(traceback.format_exception(exc))
    else:
        raise AssertionError("the code location loaded")


@pytest.mark.slow
def test_dg_check_defs_names_what_is_wrong(tmp_path: Path) -> None:
    """What `dg check defs` prints for one of them (the other cases are found the same way)."""
    change, expected = WRONG[2]
    project = _wrong_project(tmp_path, change)
    check = run_dg(project, dg_env(project, tmp_path), "check", "defs")
    assert check.returncode == 1
    assert expected in check.stdout + check.stderr


@pytest.mark.vllm
@pytest.mark.slow
def test_component_materialises_a_partition(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, vllm_url: str, vllm_model: str
) -> None:
    project = user_project(tmp_path, letters=2)
    monkeypatch.setenv("LLM_BACKEND", "vllm")
    monkeypatch.setenv("LLM_BASE_URL", vllm_url)
    monkeypatch.setenv("LLM_MODEL", vllm_model)
    env = dg_env(project, tmp_path)
    add_ticket_extraction(project, env)
    defs = _load(project, env)
    (tmp_path / "instance").mkdir()
    with dg.instance_for_test(temp_dir=str(tmp_path / "instance")) as instance:
        instance.add_dynamic_partitions("notes_corpora", ["letters"])
        result = defs.resolve_job_def("notes_extract_corpus").execute_in_process(
            instance=instance, partition_key="letters"
        )
        assert result.success
        materialised = {
            e.asset_key.to_user_string() for e in result.get_asset_materialization_events()
        }
        assert materialised == {
            "notes/corpus_documents",
            "notes/letter_extractions",
            "notes/letter_table",
        }
    store = project / ".extraction" / "notes.duckdb"
    with duckdb.connect(str(store), read_only=True) as con:
        calls = con.execute("SELECT max(pack_size), count(*) FROM calls").fetchone()
        columns = {r[0]: r[1] for r in con.execute("DESCRIBE letter_extractions").fetchall()}
        ids = con.execute("SELECT doc_id FROM extractions ORDER BY doc_id").fetchall()
    assert calls is not None and calls[0] == 1  # the recipe from defs.yaml: one per call
    assert columns["year"] == "BIGINT" and columns["topics"] == "VARCHAR[]"
    assert [i[0] for i in ids] == ["ada-to-babbage.txt", "curie-to-einstein.txt"]
    assert not (project / ".extraction" / "tickets.duckdb").exists()
