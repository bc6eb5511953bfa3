"""Watching the flows on Kafka: when each request reached each stage, as the three topics tell."""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections import defaultdict
from collections.abc import Callable
from typing import Any

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient

from contracts.envelope import event_type
from services.bench.common import BenchError

# The events a flow passes through, watched on the three topics: stage name by CloudEvents
# type. Identity's face-check events carry the check id; its request is the check's
# `correlation_id`, which `FaceCheckRequested` carries.
STAGES = {
    event_type("binding", "MemberBindRequested", 1): "requested",
    event_type("binding", "BindingMaterialsSubmitted", 1): "submitted",
    event_type("binding", "BindingFaceVerified", 1): "face_recorded",
    event_type("binding", "BindingMaterialsApproved", 1): "approval_recorded",
    event_type("binding", "MemberBound", 1): "bound",
    event_type("binding", "BindingRejected", 1): "rejected",
    event_type("identity", "FaceCheckRequested", 1): "face_check_opened",
    event_type("identity", "FaceVerified", 1): "face_verified",
    event_type("review", "MaterialsApproved", 1): "review_approved",
}
ENDS = ("bound", "rejected")  # the stages that end a flow


async def assigned_partitions(bootstrap: str, topics: list[str]) -> list[TopicPartition]:
    """Every partition of `topics`; BenchError if a topic has none (it does not exist)."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        described = await admin.describe_topics(topics)
    finally:
        await admin.close()
    assigned = [
        TopicPartition(t["topic"], p["partition"])
        for t in described
        for p in t.get("partitions", [])
    ]
    if {tp.topic for tp in assigned} != set(topics):
        raise BenchError(f"not every topic of {topics} has partitions")
    return assigned


# Told of each face check a bind request opened: (check id, request id, subject's pseudonym).
FaceCheckHook = Callable[[str, str, str], None]


class FlowWatch:
    """A consumer of the three topics (no group, from their ends): when each request reached
    each stage, as `time.perf_counter()` on arrival, and waiters for its end (`MemberBound` or
    `BindingRejected`). `on_face_check` hears of every face check opened for a request."""

    def __init__(
        self, bootstrap: str, topics: list[str], on_face_check: FaceCheckHook | None = None
    ) -> None:
        self.topics, self.bootstrap = topics, bootstrap
        self.consumer = AIOKafkaConsumer(
            bootstrap_servers=bootstrap, enable_auto_commit=False, fetch_max_wait_ms=50
        )
        self.on_face_check = on_face_check
        self.stages: dict[str, dict[str, float]] = defaultdict(dict)
        self.published_ms: dict[str, int] = {}  # request id -> MemberBound's record timestamp
        self.ends: list[float] = []  # arrival of every flow's end, in order
        self.messages = 0
        self._checks: dict[str, str] = {}  # face check id -> request id
        self._waiters: dict[str, asyncio.Future[float]] = {}
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        assigned = await assigned_partitions(self.bootstrap, self.topics)
        await self.consumer.start()
        self.consumer.assign(assigned)
        await self.consumer.seek_to_end(*assigned)
        for tp in assigned:  # resolve the end offsets now, before any flow starts
            await self.consumer.position(tp)
        self._task = asyncio.create_task(self._run())

    async def _run(self) -> None:
        while True:
            batch = await self.consumer.getmany(timeout_ms=200)
            arrived = time.perf_counter()
            for records in batch.values():
                for record in records:
                    self.messages += 1
                    self._seen(record.headers, record.value, record.timestamp, arrived)

    def _seen(self, headers: Any, value: bytes | None, timestamp: int, arrived: float) -> None:
        ce_type = next((v for k, v in headers if k == "ce_type"), b"").decode()
        stage = STAGES.get(ce_type)
        if stage is None or value is None:
            return
        data = json.loads(value)
        if stage == "face_check_opened":
            check_id, request_id = str(data["check_id"]), str(data["correlation_id"])
            self._checks[check_id] = request_id
            if self.on_face_check is not None:
                self.on_face_check(check_id, request_id, str(data["subject"]))
        elif stage == "face_verified":
            request_id = self._checks.get(str(data["check_id"]), "")
        else:
            request_id = str(data["request_id"])
        seen = self.stages[request_id]
        if stage in seen:
            return  # delivered again (the relay publishes at least once): the first counts
        seen[stage] = arrived
        if stage in ENDS:
            self.ends.append(arrived)
            if stage == "bound":
                self.published_ms[request_id] = timestamp
            waiter = self._waiters.pop(request_id, None)
            if waiter is not None and not waiter.done():
                waiter.set_result(arrived)

    def end_of(self, request_id: str) -> str | None:
        """ "bound" or "rejected" once its end was seen, else None."""
        seen = self.stages.get(request_id, {})
        return next((stage for stage in ENDS if stage in seen), None)

    async def ended(self, request_id: str, timeout_s: float) -> float:
        """When the request's MemberBound (or BindingRejected) arrived; TimeoutError."""
        end = self.end_of(request_id)
        if end is not None:
            return self.stages[request_id][end]
        waiter = self._waiters.setdefault(request_id, asyncio.get_running_loop().create_future())
        return await asyncio.wait_for(asyncio.shield(waiter), timeout_s)

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        await self.consumer.stop()
