"""The invariant checks fail on what they look for: a lost flow, a doubled effect, an event
missing from its topic. (The chaos run shows them holding; these show they can fail.)"""

from __future__ import annotations

from datetime import date

from contracts.vocabulary import Relation
from services.bench.stack import Insured
from services.chaos.invariants import Logs, Topic, Verdict, check_effects, check_flows, check_topics
from services.chaos.load import Flow, FlowKind
from services.demo.people import Person

SOMEONE = Insured(Person("p", "李伟", date(1980, 1, 1), female=False), "", "pseudonym")


def _flow(kind: FlowKind, request_id: str | None, outcome: str) -> Flow:
    return Flow(kind, SOMEONE, SOMEONE, Relation.PARENT, request_id=request_id, outcome=outcome)


def _bound(logs: Logs, request_id: str, *, face: bool, bound_events: int = 1) -> None:
    logs.end[request_id] = "bound"
    logs.holder_kind[request_id] = ("holder-h", "family_account")
    effects = logs.effects[request_id]
    effects["binding MemberBindRequested"] = 1
    effects["binding MemberBound"] = bound_events
    effects["identity FaceCheckRequested"] = int(face)


def _topic(*bound: str) -> Topic:
    topic = Topic()
    for n, request_id in enumerate(bound):
        topic.bound[request_id].add(f"event-{n}")
    return topic


def test_flows_that_ended_as_expected_pass() -> None:
    logs, verdict = Logs(), Verdict()
    _bound(logs, "r1", face=True)
    flows = [_flow(FlowKind.ADULT, "r1", "bound"), _flow(FlowKind.SIXTH, None, "refused")]
    check_flows(verdict, flows, logs)
    check_effects(verdict, flows, logs, _topic("r1"))
    assert verdict.ok, verdict.checks
    assert (verdict.lost, verdict.doubled) == (0, 0)


def test_a_flow_still_pending_in_the_log_is_lost() -> None:
    logs, verdict = Logs(), Verdict()
    logs.holder_kind["r1"] = ("holder-h", "family_account")
    check_flows(verdict, [_flow(FlowKind.ADULT, "r1", "incomplete")], logs)
    assert not verdict.ok
    assert verdict.lost == 1


def test_a_sixth_member_admitted_is_lost_too() -> None:
    logs, verdict = Logs(), Verdict()
    _bound(logs, "r6", face=True)
    check_flows(verdict, [_flow(FlowKind.SIXTH, "r6", "bound")], logs)
    assert verdict.lost == 1


def test_a_second_member_bound_in_the_log_is_doubled() -> None:
    logs, verdict = Logs(), Verdict()
    _bound(logs, "r1", face=True, bound_events=2)
    check_effects(verdict, [_flow(FlowKind.ADULT, "r1", "bound")], logs, _topic("r1", "r1"))
    assert not verdict.ok
    assert verdict.doubled == 1


def test_a_member_bound_missing_from_the_topic_fails() -> None:
    logs, verdict = Logs(), Verdict()
    _bound(logs, "r1", face=True)
    check_effects(verdict, [_flow(FlowKind.ADULT, "r1", "bound")], logs, _topic())
    assert not verdict.checks[0].ok


def test_a_face_check_opened_for_a_child_fails() -> None:
    logs, verdict = Logs(), Verdict()
    _bound(logs, "r1", face=True)
    check_effects(verdict, [_flow(FlowKind.CHILD, "r1", "bound")], logs, _topic("r1"))
    assert [c.ok for c in verdict.checks] == [True, False]


def test_an_event_missing_from_its_topic_or_foreign_to_it_fails() -> None:
    logs = Logs(event_ids={"binding": {"a", "b"}})
    verdict = Verdict()
    check_topics(verdict, logs, {"binding": Topic(records=2, event_ids={"a", "b"})})
    assert verdict.ok
    check_topics(verdict, logs, {"binding": Topic(records=1, event_ids={"a"})})
    check_topics(verdict, logs, {"binding": Topic(records=3, event_ids={"a", "b", "c"})})
    assert [c.ok for c in verdict.checks] == [True, False, False]
