"""Kafka topics a service needs, created before its consumers subscribe to them."""

from __future__ import annotations

import contextlib
from collections.abc import Iterable

from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import TopicAlreadyExistsError

DEFAULT_PARTITIONS = 3


async def ensure_topics(
    bootstrap: str, names: Iterable[str], partitions: int = DEFAULT_PARTITIONS
) -> None:
    """Create the missing ones (single-replica on a dev broker; a deployment's own topic
    policy may have made them already). A consumer subscribed to a topic that does not exist
    yet would only notice it at its next metadata refresh, minutes later."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        existing = set(await admin.list_topics())
        missing = sorted(set(names) - existing)
        if missing:
            # Another process may create one between the list and the create.
            with contextlib.suppress(TopicAlreadyExistsError):
                await admin.create_topics([NewTopic(n, partitions, 1) for n in missing])
    finally:
        await admin.close()


async def delete_topics(bootstrap: str, names: Iterable[str]) -> None:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        await admin.delete_topics(list(names))
    finally:
        await admin.close()
