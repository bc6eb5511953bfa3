"""No resident ID number in plaintext on any qinqing topic the suite wrote (checked last).

Every integration test that registers people uses real, checksum-valid ID numbers; this scan
looks for any such number in the keys, values and headers of every record on every `qinqing.*`
topic of the broker, whichever test wrote it. Log lines and other output of every test are
scanned the same way by tests/conftest.py. Names cannot be found by shape; the targeted scan in
test_no_plaintext.py covers them.
"""

from __future__ import annotations

import pytest
from aiokafka import AIOKafkaConsumer

from tests.integration.test_no_plaintext import read_to_end
from tests.leaks import id_numbers_in


def test_the_scan_finds_a_valid_id_number_and_ignores_other_digits() -> None:
    assert id_numbers_in(b'{"n":"11010519491231002X"}') == ["110***********002X"]
    assert id_numbers_in(b"11010519491231002x") == ["110***********002X"]
    assert id_numbers_in(b"110105194912310021 and 1234567890123456789") == []


@pytest.mark.after_all  # so that it reads what every other test wrote
async def test_no_topic_holds_a_plaintext_id_number(kafka_bootstrap: str) -> None:
    lister = AIOKafkaConsumer(bootstrap_servers=kafka_bootstrap)
    await lister.start()
    try:
        topics = sorted(t for t in await lister.topics() if t.startswith("qinqing."))
    finally:
        await lister.stop()
    assert topics, "the integration suite should have written to qinqing topics by now"
    leaks, scanned = [], 0
    for topic in topics:
        for record in await read_to_end(kafka_bootstrap, topic):
            scanned += 1
            places = [record.key or b"", record.value or b""]
            places += [name.encode() + b"=" + value for name, value in record.headers]
            leaks += [f"{topic}@{record.offset}: {n}" for p in places for n in id_numbers_in(p)]
    assert scanned > 0
    assert leaks == []
