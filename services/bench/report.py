"""What a run reports: the machine and stack it ran on, and its JSON, Markdown and table output."""

from __future__ import annotations

import contextlib
import json
import os
import platform
import subprocess
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import asyncpg

from services.bench.common import ABSOLUTES, FIGURES, FLOW_FIGURES
from services.bench.kafka import kafka_libs, kafka_version
from services.bench.review import REVIEW_FIGURES
from services.runtime.infra import repo_root


def _cpu_model() -> str:
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor() or platform.machine()


def _memory_gib() -> float | None:
    with contextlib.suppress(OSError, ValueError, IndexError):
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                return round(int(line.split()[1]) / 1024 / 1024, 1)
    return None


def _git_commit() -> str | None:
    with contextlib.suppress(OSError, subprocess.SubprocessError):
        out = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"],  # noqa: S607
            capture_output=True, text=True, cwd=repo_root(), timeout=5, check=True,
        )  # fmt: skip
        return out.stdout.strip() or None
    return None


async def machine_info(pool: asyncpg.Pool) -> dict[str, Any]:
    pg = await pool.fetchrow(
        "SELECT current_setting('server_version') AS version,"
        " current_setting('synchronous_commit') AS synchronous_commit,"
        " current_setting('fsync') AS fsync, current_setting('shared_buffers') AS shared_buffers"
    )
    assert pg is not None
    return {
        "cpu_count": os.cpu_count(),
        "cpu_model": _cpu_model(),
        "memory_gib": _memory_gib(),
        "os": platform.platform(),
        "python": platform.python_version(),
        "postgresql": pg["version"],
        "postgresql_settings": {
            k: pg[k] for k in ("synchronous_commit", "fsync", "shared_buffers")
        },
        "kafka": kafka_version(kafka_libs()),
        "asyncpg": asyncpg.__version__,
        "git_commit": _git_commit(),
    }


def _absolutes(key: str, fig: dict[str, Any]) -> tuple[str, str]:
    if key.startswith("append"):
        lat = fig["append_latency_ms"]
        raw_lat = fig["raw_insert_latency_ms"]
        return (
            f"{fig['append_events_per_s']:,.0f} events/s (p50 {lat['p50']:.2f} ms, "
            f"p99 {lat['p99']:.2f} ms per append)",
            f"{fig['raw_insert_rows_per_s']:,.0f} rows/s (p50 {raw_lat['p50']:.2f} ms, "
            f"p99 {raw_lat['p99']:.2f} ms per INSERT)",
        )
    if key == "relay_vs_producer_perf":
        return (
            f"{fig['relay_events_per_s']:,.0f} events/s relayed",
            f"{fig['producer_perf_records_per_s']:,.0f} records/s ProducerPerformance",
        )
    return (
        f"{fig['rebuild_events_per_s']:,.0f} events/s rebuilt ({fig['events']:,} events)",
        f"{fig['raw_read_rows_per_s']:,.0f} rows/s cursor read",
    )


def _absolute_row(key: str, fig: dict[str, Any]) -> tuple[str, str]:
    """Value and details of an absolute figure (no ceiling, so no ratio and no target)."""
    if key == "id_validations_per_s":
        mix = fig["mix"]
        valid = 100 * mix.get("valid", 0) / max(sum(mix.values()), 1)
        return (
            f"{fig['value']:,.0f} validations/s",
            f"{fig['us_per_validation']:.1f} µs each; {valid:.0f} % valid, the rest refused "
            "in equal shares for length, format, region, check character and birth date",
        )
    kdf = fig["kdf"]
    return (
        f"{fig['value']:,.1f} verifications/s",
        f"{fig['ms_per_verification']:.1f} ms each; {kdf['algorithm']} m={kdf['memory_kib']} KiB,"
        f" t={kdf['time_cost']}, p={kdf['parallelism']}",
    )


def _flow_row(key: str, fig: dict[str, Any], flows: dict[str, Any]) -> tuple[str, str, str]:
    """Value (marked against its target), target and details of an end-to-end flow figure."""
    mark = "" if fig["meets_target"] is None else (" ✓" if fig["meets_target"] else " ✗")
    target = fig["target"] or "—"
    if key == "binding_flows_per_s":
        refused = sum(flows["flows_refused"].values()) + flows["flows_rejected"]
        details = (
            f"{flows['flows_bound']:,} of {flows['flows_requested']:,} bound, "
            f"{flows['flows_incomplete']} incomplete, {refused} refused or rejected; "
            f"{flows['in_flight']} in flight; {fig['seconds']:.1f} s"
        )
        return f"{fig['value']:,.1f} flows/s{mark}", target, details
    lat = flows["latency_ms"]
    details = (
        f"mean {lat['mean']:,.0f} ms, max {lat['max']:,.0f} ms; request to MemberBound "
        "received from Kafka"
    )
    return f"{fig['value']:,.0f} ms{mark}", target, details


def _review_row(fig: dict[str, Any]) -> tuple[str, str, str]:
    """Value (marked against its target), target and details of a reviewer query figure."""
    mark = " ✓" if fig["meets_target"] else " ✗"
    lat, city, province = (
        fig["latency_ms"],
        fig["by_scope_ms"]["city"],
        fig["by_scope_ms"]["province"],
    )
    details = (
        f"p50 {lat['p50']:.2f} ms; p99 {city['p99']:.2f} ms for city, {province['p99']:.2f} ms"
        f" for province reviewers; {fig['queries']} queries"
    )
    return f"{fig['value']:.2f} ms{mark}", fig["target"], details


_LAYOUTS = {
    "process_per_service": ", each service in a process of its own (as deployed)",
    "in_one_process": ", the three services in one process with the driver",
}


def flow_note(flows: dict[str, Any]) -> str:
    """Where a flow's time goes, in one paragraph, from the phase's own measurements."""
    alone = flows.get("one_at_a_time") or {}
    primitives = flows["cpu"].get("primitives") or {}
    parts = []
    if alone:
        parts.append(
            f"A flow alone takes {alone['latency_ms']['p50']:,.0f} ms at p50 (each hop between "
            "services mostly the relay's 50 ms poll)."
        )
    parts.append(_consumer_hops(flows, alone))
    if primitives:
        pg = primitives["postgres_commit_ms"]["p50"]
        kafka = primitives["kafka_offset_commit_ms"]["p50"]
        parts.append(
            f"Each message a consumer acts on costs an inbox transaction (a one-row commit alone: "
            f"{pg:.1f} ms) and a Kafka offset commit ({kafka:.1f} ms alone), so one consumer "
            f"handles at most ~{1000 / (pg + kafka):,.0f} such messages/s before any work; types "
            "it does not act on are passed by without either."
        )
    parts.append(_costs(flows))
    return " ".join(parts)


def _consumer_hops(flows: dict[str, Any], alone: dict[str, Any]) -> str:
    """The hops through each consumer, loaded and alone, and the slowest of them."""
    hops = flows["stages_ms"]

    def p50(hop: str) -> str:
        return f"{hops.get(hop, {}).get('p50', 0):,.0f}"

    def alone_p50(hop: str) -> str:
        return f"{(alone.get('hops_p50_ms') or {}).get(hop) or 0:,.0f}"

    consumers = {
        "requested_to_face_check_opened": "identity's consumer of binding's topic",
        "face_verified_to_face_recorded": "binding's consumer of identity's topic",
        "submitted_to_review_approved": "review's consumer of binding's topic",
        "review_approved_to_approval_recorded": "binding's consumer of review's topic",
    }
    listed = "; ".join(
        f"{name} {p50(hop)} ms (alone {alone_p50(hop)})" for hop, name in consumers.items()
    )
    slowest = max(consumers, key=lambda hop: hops.get(hop, {}).get("p50", 0))
    return (
        f"With {flows['in_flight']} in flight, the hops through each consumer at p50, from the "
        f"event on Kafka to its consequence on Kafka: {listed}; the three HTTP calls "
        f"{p50('post_to_submit_done')} ms. The slowest, {consumers[slowest]}, is a queue: a "
        "consumer takes one message at a time."
    )


def _costs(flows: dict[str, Any]) -> str:
    """CPU, rows and transactions per flow, the read horizon, and the one-process layout."""
    cpu, per = flows["cpu"], flows["per_flow"]
    per_flow, busy, cores = cpu["cpu_ms_per_flow"], cpu["cores_busy"], cpu["machine_cores"]
    idle = (cpu.get("idle") or {}).get("cores_busy", {})
    horizon = (cpu.get("read_horizon") or {}).get("oldest_transaction_ms", {})
    text = (
        f"{_python_cpu(per_flow, busy, idle, cores)}, PostgreSQL "
        f"{per_flow.get('postgres', 0):,.0f} ms, Kafka {per_flow.get('kafka', 0):,.0f} ms; the "
        f"machine {100 * (cpu.get('machine_busy_fraction') or 0):.0f} % busy. Per flow: "
        f"{per['events']:g} events, {per['inbox_rows']:g} consumed messages, "
        f"{per['database_transactions']:g} database transactions (the whole database)"
    )
    if horizon:
        text += (
            f"; the oldest open transaction in the cluster, which every relay waits for, was "
            f"{horizon['p50']:,.0f} ms old at p50, {horizon['max']:,.0f} ms at most"
        )
    together = flows.get("in_one_process")
    if together:
        one = together["cpu"]["cpu_ms_per_flow"].get("this_process", 0)
        text += (
            f". The same flows with the three services and the driver in one Python process: "
            f"{together['binding_flows_per_s']:,.1f} flows/s, p50 "
            f"{together['binding_flow_p50_ms']:,.0f} ms, p99 "
            f"{together['binding_flow_p99_ms']:,.0f} ms; that process {one:,.0f} ms of CPU per "
            f"flow, {together['cpu']['cores_busy'].get('this_process', 0):.2f} cores busy"
        )
    return text


def _python_cpu(
    per_flow: dict[str, float], busy: dict[str, float], idle: dict[str, float], cores: int
) -> str:
    """The Python processes' CPU per flow: one per service (each at most one core) and the
    driver, or one process serving all three services and the driver."""
    services = [s for s in ("identity", "binding", "review") if s in per_flow]
    if not services:
        python_ms = per_flow.get("this_process", 0) or 1
        return (
            f"CPU per flow: the one Python process serving all three services (and the driver) "
            f"{python_ms:,.0f} ms, so its one core carries at most ~{1000 / python_ms:,.0f} "
            f"flows/s; it was {busy.get('this_process', 0):.2f} cores busy (idle: "
            f"{idle.get('this_process', 0):.2f}; at most 1 of {cores})"
        )
    each = ", ".join(
        f"{s} {per_flow[s]:,.1f} ms ({busy.get(s, 0):.2f} cores busy, idle {idle.get(s, 0):.2f})"
        for s in services
    )
    busiest = max(services, key=lambda s: per_flow[s])
    total = sum(busy.get(s, 0) for s in (*services, "driver"))
    return (
        f"CPU per flow, each service in a Python process of its own (at most one core each): "
        f"{each}; the busiest, {busiest}, carries at most ~{1000 / (per_flow[busiest] or 1):,.0f}"
        f" flows/s on its core; the driver {per_flow.get('driver', 0):,.1f} ms "
        f"({busy.get('driver', 0):.2f} cores); the Python processes together {total:.2f} of "
        f"{cores} cores"
    )


def render_markdown(result: dict[str, Any]) -> str:
    machine = result["machine"]
    lines = [
        f"Measured {result['date']} ({result['mode']} run) on {machine['cpu_count']} x "
        f"{machine['cpu_model']}, {machine['memory_gib']} GiB, Python {machine['python']}, "
        f"PostgreSQL {machine['postgresql']}, Kafka {machine['kafka']}; load average "
        f"{machine.get('load_average_at_start')} at the start. "
        "Ratios are ours / the raw ceiling, both measured in the same run; "
        "`qinqing bench` regenerates this table and `docs/benchmarks.json`.",
        "",
        "| Figure | Ratio | Target | Ours | Ceiling |",
        "|---|---:|---:|---|---|",
    ]
    for key in FIGURES:
        fig = result[key]
        ours, ceiling = _absolutes(key, fig)
        ratio = f"{fig['ratio']:.2f}"
        mark = " ✓" if fig["meets_target"] else " ✗"
        lines.append(f"| `{key}` | {ratio}{mark} | >= {fig['target']} | {ours} | {ceiling} |")
    lines += _absolute_lines(result) + _flow_lines(result) + _review_lines(result)
    return "\n".join(lines) + "\n"


def _absolute_lines(result: dict[str, Any]) -> list[str]:
    absolutes = [key for key in ABSOLUTES if key in result]
    if not absolutes:
        return []
    lines = [
        "",
        "Identity rates, absolute (no ceiling to divide by), in-process on one core:",
        "",
        "| Figure | Value | Details |",
        "|---|---:|---|",
    ]
    for key in absolutes:
        value, details = _absolute_row(key, result[key])
        lines.append(f"| `{key}` | {value} | {details} |")
    if "password_verifications_per_s" in result:
        lines += ["", f"Why this KDF cost: {result['password_verifications_per_s']['why']}."]
    return lines


def _flow_lines(result: dict[str, Any]) -> list[str]:
    flows = result.get("binding_flows")
    if flows is None:
        return []
    lines = [
        "",
        "End-to-end binding flows (ID number + materials, review auto-approved, face check "
        "by the simulator at once) through identity, binding and review on the local stack"
        f"{_LAYOUTS.get(flows.get('layout', ''), '')}:",
        "",
        "| Figure | Value | Target | Details |",
        "|---|---:|---:|---|",
    ]
    for key in FLOW_FIGURES:
        value, target, details = _flow_row(key, result[key], flows)
        lines.append(f"| `{key}` | {value} | {target} | {details} |")
    return [*lines, "", f"Where the time goes: {flow_note(flows)}."]


def _review_lines(result: dict[str, Any]) -> list[str]:
    reviews = [key for key in REVIEW_FIGURES if key in result]
    if not reviews:
        return []
    first = result[reviews[0]]
    lines = [
        "",
        f"Reviewer queries, one at a time, over {first['open_cases']:,} open cases in "
        f"{first['regions']} regions, through the functions the API and the console call:",
        "",
        "| Figure | Value | Target | Details |",
        "|---|---:|---:|---|",
    ]
    for key in reviews:
        value, target, details = _review_row(result[key])
        lines.append(f"| `{key}` | {value} | {target} | {details} |")
    return lines


def render_table(result: dict[str, Any]) -> str:
    rows = [("figure", "ratio", "target", "ours", "ceiling")]
    for key in FIGURES:
        fig = result[key]
        ours, ceiling = _absolutes(key, fig)
        ratio = f"{fig['ratio']:.2f}"
        rows.append((key, ratio, f">= {fig['target']}", ours, ceiling))
    tables = [_columns(rows)]
    identity = [(key, *_absolute_row(key, result[key])) for key in ABSOLUTES if key in result]
    if identity:
        tables.append(_columns([("identity", "value", "details"), *identity]))
    flows = result.get("binding_flows")
    if flows is not None:
        flow_rows = [("flows", "value", "target", "details")]
        flow_rows += [(key, *_flow_row(key, result[key], flows)) for key in FLOW_FIGURES]
        tables.append(_columns(flow_rows))
    reviews = [(key, *_review_row(result[key])) for key in REVIEW_FIGURES if key in result]
    if reviews:
        tables.append(_columns([("review", "value", "target", "details"), *reviews]))
    return "\n\n".join(tables)


def _columns(rows: Sequence[Sequence[str]]) -> str:
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    return "\n".join(
        "  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in rows
    )


def write_outputs(result: dict[str, Any], output_dir: Path) -> tuple[Path, Path]:
    output_dir.mkdir(parents=True, exist_ok=True)
    json_path, md_path = output_dir / "benchmarks.json", output_dir / "benchmarks.md"
    json_path.write_text(json.dumps(result, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    md_path.write_text(render_markdown(result), encoding="utf-8")
    return json_path, md_path


README_START, README_END = "<!-- bench:start -->", "<!-- bench:end -->"


def update_readme(readme: Path, markdown: str) -> bool:
    """Put the latest full run's table between the README's bench markers, if it has them."""
    if not readme.exists():
        return False
    text = readme.read_text(encoding="utf-8")
    head, start, rest = text.partition(README_START)
    _, end, tail = rest.partition(README_END)
    if not start or not end:
        return False
    readme.write_text(f"{head}{start}\n{markdown.strip()}\n{end}{tail}", encoding="utf-8")
    return True
