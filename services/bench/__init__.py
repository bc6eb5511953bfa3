"""`qinqing bench`: ratios against raw ceilings, measured in one run on the real local stack.

Every figure is `ours / ceiling`, both measured here, seconds apart, on the same PostgreSQL
and the same Kafka broker, so the ratio says how much the runtime costs on top of what the
machine can do at all:

* `append_vs_raw_insert` (`appends`): `GroupCommitEventStore.append` (8 writers, 1-event
  commands with a command id, each writer on its own streams; the per-stream hash chain is
  computed inside the store's `append_batch()`) against plain single-row INSERTs of rows of the same
  columns and sizes into a plain table (same columns, defaults and primary key; no function,
  trigger, secondary index or command row) with the same 8-way concurrency. Runs alternate in
  rounds so that drift (checkpoints, autovacuum) hits both sides alike.
* `append_vs_raw_insert_batch10` (`appends`): events/s of 10-event commands / the same raw
  rows/s.
* `relay_vs_producer_perf` (`relay`, `kafka`): events/s the outbox relay publishes (acks=all)
  from a backlog of ~1 KB events / records/s of Kafka's own `ProducerPerformance` with 1 KB
  records, acks=all.
* `rebuild_vs_raw_read` (`rebuild`): events/s of `ProjectionRunner.rebuild` of a small
  projection (events per stream type) / rows/s of a plain server-side-cursor read of the same
  rows in order.

Two absolute figures (`identity`) have no ceiling, so no ratio or target: each is an object
with the rate under `value`, its `definition` and details, shown in a table of their own.

* `id_validations_per_s`: `parse_id_number` calls/s in-process on one core over generated
  numbers, half valid, half refused (10 % each: length, format, region, check character,
  birth date).
* `password_verifications_per_s`: `verify_payment_password` calls/s on one core with the
  project's argon2id parameters; reports them, the ms per verification and why that cost
  (the lockout after 5 attempts, not the KDF, protects a space of 10^6).

Three end-to-end figures (`flows`) have absolute targets: complete bindings by ID number +
materials through identity, binding and review (each in its own process, as deployed, served
over loopback HTTP and talking only through Kafka; a full run also measures them in one
process, under `binding_flows.in_one_process`; review auto-approves by policy, the face
simulator answers at once), 1,000 flows with 50 in flight after untimed setup
(registrations, uploads, warm-up):

* `binding_flows_per_s` (target >= 200): flows / seconds from the first POST /bindings to
  the last `MemberBound` received from Kafka.
* `binding_flow_p50_ms`, `binding_flow_p99_ms` (target <= 1000): from a flow's POST to its
  `MemberBound` arriving at a Kafka consumer in the bench's (driver's) process.

Beside them, `binding_flows` says where the time goes: each hop between services as seen on
Kafka, HTTP time per call, CPU of each service's process, the driver, PostgreSQL and Kafka,
events and consumed
messages per flow, and the cluster's oldest open transaction (the relays' read horizon). A
figure counts only if every flow was bound (`valid`).

Everything happens in fresh `bench_<hex>` schemas and fresh topics, dropped at the end
(`run`); `report` describes the machine and writes the JSON, Markdown and table.
"""

from services.bench.common import ABSOLUTES, FIGURES, FLOW_FIGURES, QUICK
from services.bench.report import write_outputs
from services.bench.run import bench_command, run_bench

__all__ = [
    "ABSOLUTES",
    "FIGURES",
    "FLOW_FIGURES",
    "QUICK",
    "bench_command",
    "run_bench",
    "write_outputs",
]
