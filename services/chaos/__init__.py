"""`qinqing chaos`: the fault-injection suite, real binding flows while the services, Kafka and
PostgreSQL are killed and restarted, then the invariants that say nothing was lost or doubled.

* `plan`: the seeded fault schedule, bounded in count and time;
* `load`: the flows (adults with a face check, children without, faces that fail, a sixth
  member refused) through HTTP calls that outlast a fault, and the face provider;
* `faults`: injecting one fault and timing the recovery;
* `invariants`: quiescence, then the checks on the logs, topics and read models;
* `run`: one run and its table; `identity`: identity served with the provider outside.
"""

from services.chaos.run import ChaosConfig, ChaosReport, chaos_command, run_chaos, table

__all__ = ["ChaosConfig", "ChaosReport", "chaos_command", "run_chaos", "table"]
