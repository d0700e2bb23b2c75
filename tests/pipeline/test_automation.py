"""The sensor and the schedule, evaluated against a real (temporary) Dagster instance: users rely on a
corrected source file triggering a run for that corpus only, and on the schedule covering every corpus."""

from __future__ import annotations

import datetime as dt

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
    """One tick, applied the way the daemon applies it: partitions added first, then runs requested."""
    sensor = p.defs.resolve_sensor_def("corpus_source_sensor")
    context = dg.build_sensor_context(instance=instance, cursor=cursor, definitions=p.defs)
    result = sensor(context)
    for request in result.dynamic_partitions_requests or []:
        instance.add_dynamic_partitions(request.partitions_def_name, list(request.partition_keys))
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
        instance.add_dynamic_partitions(corpus_partitions.name, ["a", "b", "c"])
        tick = schedule.evaluate_tick(
            dg.build_schedule_context(
                instance=instance,
                scheduled_execution_time=when,
                repository_def=p.defs.get_repository_def(),
            )
        )
        assert sorted(r.partition_key for r in tick.run_requests) == ["a", "b", "c"]
        assert len({r.run_key for r in tick.run_requests}) == 3
