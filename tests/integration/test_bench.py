"""Smoke test of the `qinqing bench` harness on the real stack: tiny sizes, no timing asserted."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import asyncpg
import pytest

from services.bench import ABSOLUTES, FIGURES, FLOW_FIGURES, QUICK, run_bench, write_outputs
from services.bench.review import REVIEW_FIGURES
from services.runtime.settings import Settings

TINY = dataclasses.replace(
    QUICK,
    mode="smoke",
    writers=2,
    warmup_s=0.2,
    phase_s=0.5,
    relay_warmup_events=100,
    relay_events=900,
    producer_perf_records=2_000,
    topic_partitions=1,
    id_validations=2_000,
    id_numbers=200,
    password_verifications=4,
    flows=10,
    flow_warmup=2,
    flow_concurrency=4,
    review_open_cases=2_000,
    review_queries=40,
)


@pytest.mark.integration
async def test_bench_writes_every_figure(
    database_url: str, kafka_bootstrap: str, tmp_path: Path
) -> None:
    settings = Settings(DATABASE_URL=database_url, KAFKA_BOOTSTRAP_SERVERS=kafka_bootstrap)
    lines: list[str] = []

    result = await run_bench(TINY, settings, say=lines.append)
    json_path, md_path = write_outputs(result, tmp_path)

    written = json.loads(json_path.read_text())
    for key in FIGURES:
        figure = written[key]
        assert isinstance(figure["ratio"], float), (key, figure)
        assert figure["ratio"] > 0, (key, figure)
    assert written["append_vs_raw_insert"]["append_events_per_s"] > 0
    assert written["append_vs_raw_insert"]["raw_insert_rows_per_s"] > 0
    assert written["append_vs_raw_insert"]["append_latency_ms"]["p99"] > 0
    assert written["relay_vs_producer_perf"]["relay_events"] == TINY.relay_events
    assert written["relay_vs_producer_perf"]["producer_perf_records_per_s"] > 0
    assert written["rebuild_vs_raw_read"]["events"] == TINY.relay_warmup_events + TINY.relay_events
    for key in ABSOLUTES:
        absolute = written[key]
        assert absolute["value"] > 0, (key, absolute)
        assert absolute["definition"], (key, absolute)
    assert written["id_validations_per_s"]["validations"] == TINY.id_validations
    password = written["password_verifications_per_s"]
    assert password["kdf"]["algorithm"] == "argon2id"
    assert password["ms_per_verification"] > 0
    assert "lock" in password["why"]
    assert written["machine"]["cpu_count"] >= 1
    assert written["machine"]["postgresql"]
    for key in FLOW_FIGURES:
        flow_figure = written[key]
        assert flow_figure["value"] > 0, (key, flow_figure)
        assert flow_figure["valid"] is True, (key, flow_figure)
        assert flow_figure["definition"], (key, flow_figure)
    assert written["binding_flows_per_s"]["target"] == ">= 200"
    assert written["binding_flow_p99_ms"]["target"] == "<= 1000"
    assert written["binding_flow_p50_ms"]["value"] <= written["binding_flow_p99_ms"]["value"]
    flows = written["binding_flows"]
    assert flows["flows_requested"] == TINY.flows
    assert flows["flows_bound"] == TINY.flows, flows
    assert flows["flows_incomplete"] == 0
    assert flows["flows_refused"] == {}
    assert flows["per_flow"]["binding_events"] == 7  # requested .. bound, nothing repeated
    # Quick and smoke runs measure the deployed layout only: a process per service.
    assert flows["layout"] == "process_per_service"
    assert "in_one_process" not in flows
    services = ("identity", "binding", "review")
    assert set(flows["cpu"]["cpu_s"]) >= {"driver", *services}, flows["cpu"]
    assert sum(flows["cpu"]["cpu_s"][s] for s in services) > 0, flows["cpu"]
    assert flows["stages_ms"]["submitted_to_review_approved"]["p50"] >= 0
    for key in REVIEW_FIGURES:
        review = written[key]
        assert review["value"] == review["latency_ms"]["p99"] > 0, (key, review)
        assert review["target"] == "<= 50", (key, review)
        assert review["queries"] == TINY.review_queries, (key, review)
        assert set(review["by_scope_ms"]) == {"city", "province"}, (key, review)
        assert review["open_cases"] == TINY.review_open_cases, (key, review)
        assert review["definition"], (key, review)
    # Each reviewer's first page has cases; some searched persons are in the reviewer's regions.
    assert written["review_queue_p99_ms"]["pages_with_cases"] > 0
    assert written["review_search_p99_ms"]["answers_with_cases"] > 0
    for key in (*FIGURES, *ABSOLUTES, *FLOW_FIGURES, *REVIEW_FIGURES):
        assert f"`{key}`" in md_path.read_text()
    assert "Where the time goes" in md_path.read_text()
    assert any(line.startswith("appends:") for line in lines)
    assert any(line.startswith("rebuild:") for line in lines)
    assert any(line.startswith("identity:") for line in lines)
    assert any(line.startswith("flows:") for line in lines)
    assert any(line.startswith("review:") for line in lines)

    # The run cleans up after itself: no bench schema is left behind.
    conn = await asyncpg.connect(database_url)
    try:
        left = await conn.fetch(
            "SELECT nspname FROM pg_namespace WHERE nspname LIKE 'bench\\_%\\_a'"
            " OR nspname LIKE 'bench\\_%\\_r' OR nspname LIKE 'bench\\_%\\_f\\_%'"
            " OR nspname LIKE 'bench\\_%\\_v'"
        )
    finally:
        await conn.close()
    assert [r["nspname"] for r in left] == []
