"""What the flows phase reports: the three flow figures against their targets, and the details
behind them (hops, HTTP calls, CPU, rows per flow)."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from typing import Any

from services.bench.common import FLOW_TARGETS, BenchConfig, BenchError, Say, rate
from services.bench.flow_driver import FlowRun
from services.bench.meters import percentile, summary_ms
from services.bench.watch import FlowWatch

PER_SERVICE, IN_ONE_PROCESS = "process_per_service", "in_one_process"
SERVED = {
    PER_SERVICE: "each served in an OS process of its own (`qinqing <service> serve`, as "
    "deployed; the driver in another)",
    IN_ONE_PROCESS: "served in one Python process together with the driver",
}
# The hops of a flow, each from one stage (or HTTP call) to the next as seen on Kafka.
_HOPS = (
    ("post_to_requested", "post", "requested"),
    ("requested_to_face_check_opened", "requested", "face_check_opened"),
    ("face_check_opened_to_face_verified", "face_check_opened", "face_verified"),
    ("face_verified_to_face_recorded", "face_verified", "face_recorded"),
    ("post_to_submit_done", "post", "submit_done"),
    ("submit_done_to_submitted", "submit_done", "submitted"),
    ("submitted_to_review_approved", "submitted", "review_approved"),
    ("review_approved_to_approval_recorded", "review_approved", "approval_recorded"),
    ("submit_done_to_bound", "submit_done", "bound"),
)
_CALLS = ("request", "sign", "submit")  # the HTTP calls of one flow, in order
DEFINITION = (
    "complete bindings by ID number + materials (family account, member aged 16+) through "
    "identity, binding and review {served}, over loopback HTTP, talking only "
    "through Kafka (fresh schemas and topics): POST /bindings, sign the commitment letter with "
    "an uploaded signature, submit both household pages; binding -> review (policy "
    "auto_approve for member_binding, so no reviewer) -> binding, and binding -> identity "
    "(the member's face check, simulator answering at once) -> binding -> MemberBound. Latency: "
    "from just before the POST to the arrival of that MemberBound at a Kafka consumer of "
    "binding's topic in the driver's process (bound as published on Kafka). Closed loop: "
    "{concurrency} flows in flight, {flows} flows after {warmup} warm-up flows; holders with "
    "5 members each, a holder's flows never in flight together; flows/s = flows / seconds from "
    "the first POST to the last MemberBound"
)


@dataclass(frozen=True)
class Measured:
    """What the timed flows left, and what was measured around them: `delta` holds the rows
    and commits they added, `setup` the untimed setup's figures and the flows one at a time."""

    run: FlowRun
    watch: FlowWatch
    cpu: dict[str, Any]
    delta: dict[str, int]
    policy: dict[str, Any]
    load: tuple[list[float] | None, list[float] | None]
    setup: dict[str, Any]


def flow_results(
    cfg: BenchConfig, measured: Measured, *, layout: str, say: Say
) -> dict[str, dict[str, Any]]:
    """The three flow figures against their targets, and the phase's details."""
    run, cpu = measured.run, measured.cpu
    bound = len(run.latencies)
    if bound == 0 or run.first_start is None:
        raise BenchError(
            f"no flow was bound (errors {dict(run.errors)}, incomplete {run.incomplete})"
        )
    seconds = run.last_end - run.first_start
    per_s = rate(bound, seconds)
    latencies = list(run.latencies.values())
    p50, p99 = percentile(latencies, 50) * 1000, percentile(latencies, 99) * 1000
    valid = cfg.flows == bound
    busy = ", ".join(f"{group} {cores:.2f}" for group, cores in cpu["cores_busy"].items())
    say(
        f"flows: {per_s:,.1f} flows/s, p50 {p50:,.0f} ms, p99 {p99:,.0f} ms ({layout}); "
        f"{bound} of {cfg.flows} bound, {run.incomplete} incomplete, "
        f"{sum(run.errors.values())} refused, {run.rejected} rejected; cores busy: {busy}"
    )
    definition = DEFINITION.format(
        served=SERVED[layout],
        concurrency=cfg.flow_concurrency,
        flows=cfg.flows,
        warmup=cfg.flow_warmup,
    )
    details = _details(cfg, measured, definition=definition, layout=layout, valid=valid)
    per_s_extra = {"flows": bound, "seconds": round(seconds, 3)}
    return {
        "binding_flows_per_s": _target(
            "binding_flows_per_s", per_s, "flows/s", details, per_s_extra
        ),
        "binding_flow_p50_ms": _target("binding_flow_p50_ms", p50, "ms", details),
        "binding_flow_p99_ms": _target("binding_flow_p99_ms", p99, "ms", details),
        "binding_flows": details,
    }


def _target(
    key: str, value: float, unit: str, details: dict[str, Any], extra: dict[str, Any] | None = None
) -> dict[str, Any]:
    """One figure against its target; a run with a flow not bound meets no target."""
    rule, valid = FLOW_TARGETS[key], details["valid"]
    meets = None
    if rule is not None:
        op, limit = rule
        meets = valid and (value >= limit if op == ">=" else value <= limit)
    return {
        "value": round(value, 1),
        "unit": unit,
        "target": f"{rule[0]} {rule[1]:g}" if rule else None,
        "meets_target": meets,
        "valid": valid,
        "definition": details["definition"],
        **(extra or {}),
    }


def _details(
    cfg: BenchConfig, measured: Measured, *, definition: str, layout: str, valid: bool
) -> dict[str, Any]:
    run, watch, setup = measured.run, measured.watch, measured.setup
    bound = len(run.latencies)
    published = [
        watch.published_ms[r] / 1000 - run.starts_wall[r]
        for r in run.latencies
        if r in watch.published_ms
    ]
    return {
        "definition": definition,
        "layout": layout,
        "flows_requested": cfg.flows,
        "flows_bound": bound,
        "flows_incomplete": run.incomplete,
        "flows_refused": dict(run.errors),
        "flows_rejected": run.rejected,
        "timeout_s": cfg.flow_timeout_s,
        "in_flight": cfg.flow_concurrency,
        "warmup_flows": cfg.flow_warmup,
        "valid": valid,
        "latency_ms": summary_ms(list(run.latencies.values())),
        "latency_to_record_timestamp_ms": summary_ms(published),
        "http_call_ms": {call: summary_ms(run.calls[call]) for call in _CALLS},
        "stages_ms": stages(run, watch),
        "cpu": measured.cpu,
        "per_flow": _per_flow(measured.delta, bound),
        "load_average": {"start": measured.load[0], "end": measured.load[1]},
        "one_at_a_time": setup.pop("one_at_a_time"),
        "setup": {
            **setup,
            "review_policy": {
                k: measured.policy.get(k) for k in ("region_prefix", "case_type", "mode", "version")
            },
        },
        "watched_messages": watch.messages,
    }


def stages(run: FlowRun, watch: FlowWatch) -> dict[str, Any]:
    """Each hop's spread over the bound flows, from the arrival times of its two ends."""
    spans: dict[str, list[float]] = defaultdict(list)
    for request_id in run.latencies:
        seen = {
            **watch.stages[request_id],
            "post": run.starts[request_id],
            "submit_done": run.submitted[request_id],
        }
        for name, start, end in _HOPS:
            if start in seen and end in seen:
                spans[name].append(seen[end] - seen[start])
    return {name: summary_ms(spans[name]) for name, _, _ in _HOPS}


def _per_flow(delta: dict[str, int], flows: int) -> dict[str, float]:
    per = {key: round(value / flows, 2) for key, value in delta.items() if flows}
    per["events"] = round(sum(v for k, v in delta.items() if k.endswith("_events")) / flows, 2)
    per["inbox_rows"] = round(sum(v for k, v in delta.items() if k.endswith("_inbox")) / flows, 2)
    per["database_transactions"] = per.pop("xact_commit")
    return per
