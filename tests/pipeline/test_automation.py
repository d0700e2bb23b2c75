"""The sensor and the schedule, evaluated against a real (temporary) Dagster instance: users rely on a
corrected source file triggering a run for that corpus only, and on the schedule covering every corpus."""

from __future__ import annotations

import datetime as dt
import shutil

import dagster as dg

from extraction_assets.corpora.partitions import corpus_partitions
from tests.pipeline.helpers import (
    SAMPLE_CORPUS,
    make_project,
    project,
    read_jsonl,
    real_instance,
    write_jsonl,
)


def _evaluate_sensor(p, instance, cursor):
    """One tick, applied the way the daemon applies it: partitions added or deleted first, then runs
    requested."""
    sensor = p.defs.resolve_sensor_def("corpus_source_sensor")
    context = dg.build_sensor_context(instance=instance, cursor=cursor, definitions=p.defs)
    result = sensor(context)
    for request in result.dynamic_partitions_requests or []:
        if isinstance(request, dg.AddDynamicPartitionsRequest):
            instance.add_dynamic_partitions(
                request.partitions_def_name, list(request.partition_keys)
            )
        else:
            for key in request.partition_keys:
                instance.delete_dynamic_partition(request.partitions_def_name, key)
    known = set(instance.get_dynamic_partitions(corpus_partitions.name))
    assert {r.partition_key for r in result.run_requests} <= known
    return result


def test_sensor_adds_partitions_and_requests_only_changed_corpora(tmp_path, monkeypatch):
    settings = make_project(tmp_path, monkeypatch, "http://127.0.0.1:9/v1", "unused")
    docs = read_jsonl(SAMPLE_CORPUS)[:4]
    write_jsonl(settings.source_root / "alpha" / "documents.jsonl", docs)
    write_jsonl(settings.source_root / "beta corpus" / "documents.jsonl", docs[:2])
    with real_instance(tmp_path / "dh") as instance:
        p = project(settings, instance)
        first = _evaluate_sensor(p, instance, None)
        assert sorted(r.partition_key for r in first.run_requests) == ["alpha", "beta corpus"]
        assert sorted(instance.get_dynamic_partitions(corpus_partitions.name)) == [
            "alpha",
            "beta corpus",
        ]

        # Nothing changed: no run.
        again = _evaluate_sensor(p, instance, first.cursor)
        assert again.run_requests == []

        # One document corrected in one corpus: a run for that partition only, with a new run key.
        docs[1] = {**docs[1], "text": docs[1]["text"] + " (corrected)"}
        write_jsonl(settings.source_root / "alpha" / "documents.jsonl", docs)
        changed = _evaluate_sensor(p, instance, again.cursor)
        assert [r.partition_key for r in changed.run_requests] == ["alpha"]
        assert changed.run_requests[0].run_key not in {r.run_key for r in first.run_requests}

        # A new corpus folder becomes a partition and gets a run.
        write_jsonl(settings.source_root / "gamma" / "documents.jsonl", docs[:1])
        new = _evaluate_sensor(p, instance, changed.cursor)
        assert [r.partition_key for r in new.run_requests] == ["gamma"]
        assert "gamma" in instance.get_dynamic_partitions(corpus_partitions.name)


def test_schedule_requests_every_corpus_partition(tmp_path, monkeypatch):
    settings = make_project(tmp_path, monkeypatch, "http://127.0.0.1:9/v1", "unused")
    with real_instance(tmp_path / "dh") as instance:
        p = project(settings, instance)
        schedule = p.defs.resolve_schedule_def("catch_up_schedule")
        when = dt.datetime(2026, 11, 29, 2, 0, tzinfo=dt.UTC)
        empty = schedule.evaluate_tick(
            dg.build_schedule_context(
                instance=instance,
                scheduled_execution_time=when,
                repository_def=p.defs.get_repository_def(),
            )
        )
        assert not empty.run_requests
        for name in ("a", "b", "c"):
            write_jsonl(
                settings.source_root / name / "documents.jsonl", read_jsonl(SAMPLE_CORPUS)[:1]
            )
        # "gone": a partition whose folder was removed (the sensor deletes it; if it has not yet,
        # the schedule still requests no run for it).
        instance.add_dynamic_partitions(corpus_partitions.name, ["a", "b", "c", "gone"])
        tick = schedule.evaluate_tick(
            dg.build_schedule_context(
                instance=instance,
                scheduled_execution_time=when,
                repository_def=p.defs.get_repository_def(),
            )
        )
        assert sorted(r.partition_key for r in tick.run_requests) == ["a", "b", "c"]
        assert len({r.run_key for r in tick.run_requests}) == 3


def test_removed_folder_deletes_its_partition_and_a_returning_one_runs_again(tmp_path, monkeypatch):
    settings = make_project(tmp_path, monkeypatch, "http://127.0.0.1:9/v1", "unused")
    docs = read_jsonl(SAMPLE_CORPUS)[:2]
    write_jsonl(settings.source_root / "kept" / "documents.jsonl", docs)
    write_jsonl(settings.source_root / "leaving" / "documents.jsonl", docs[:1])
    with real_instance(tmp_path / "dh") as instance:
        p = project(settings, instance)
        first = _evaluate_sensor(p, instance, None)
        assert sorted(r.partition_key for r in first.run_requests) == ["kept", "leaving"]

        # The folder goes: its partition is deleted, no run is requested for it (or anything else).
        shutil.move(settings.source_root / "leaving", tmp_path / "leaving-aside")
        removed = _evaluate_sensor(p, instance, first.cursor)
        assert removed.run_requests == []
        assert [type(r) for r in removed.dynamic_partitions_requests] == [
            dg.DeleteDynamicPartitionsRequest
        ]
        assert instance.get_dynamic_partitions(corpus_partitions.name) == ["kept"]
        quiet = _evaluate_sensor(p, instance, removed.cursor)
        assert quiet.run_requests == [] and quiet.dynamic_partitions_requests == []

        # It comes back: a partition again, with a run.
        shutil.move(tmp_path / "leaving-aside", settings.source_root / "leaving")
        back = _evaluate_sensor(p, instance, quiet.cursor)
        assert [r.partition_key for r in back.run_requests] == ["leaving"]
        assert sorted(instance.get_dynamic_partitions(corpus_partitions.name)) == [
            "kept",
            "leaving",
        ]
