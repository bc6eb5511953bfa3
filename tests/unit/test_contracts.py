"""Published contracts: checked-in JSON Schemas match the models; topic and type naming."""

from __future__ import annotations

from contracts.envelope import dead_letter_topic, event_type, topic
from contracts.schemas import SCHEMA_DIR, expected_files


def test_checked_in_schemas_match_the_models() -> None:
    expected = expected_files()
    on_disk = {p.name: p.read_text(encoding="utf-8") for p in SCHEMA_DIR.glob("*.json")}
    assert sorted(on_disk) == sorted(expected), "run `python -m contracts.schemas`"
    for name, text in expected.items():
        assert on_disk[name] == text, (
            f"{name} changed: regenerate a compatible change with `python -m contracts.schemas`,"
            " give an incompatible one a new version"
        )


def test_topics_and_types_carry_their_version() -> None:
    assert topic("binding") == "qinqing.binding.v1"
    assert dead_letter_topic(topic("binding")) == "qinqing.binding.v1.dlq"
    assert event_type("binding", "MemberBound", 2) == "qinqing.binding.MemberBound.v2"
