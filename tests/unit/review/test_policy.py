"""Review policies: the longest region prefix wins per case type, checks as data, changes as
versioned events that only new cases see."""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta

import pytest

from contracts.vocabulary import BindingKind, MaterialRole, Relation
from services.binding.rules import KINDS
from services.review.errors import PolicyChecksError, RegionPrefixError
from services.review.events import CaseType, Check, OnFailure, ReviewMode, ReviewPolicyChanged
from services.review.policy import (
    ACCEPTED_RELATIONS,
    DEFAULT_CHECKS,
    ChangePolicy,
    Policy,
    PolicyBook,
    Submission,
    failed_checks,
    policy_decider,
    region_prefix,
)
from tests.specs import DeciderSpec
from tests.unit.review.builders import MATERIALS, NOW, material

spec = DeciderSpec(policy_decider)
BINDING = CaseType.MEMBER_BINDING


def change(region: str, mode: ReviewMode, *checks: Check, **over: object) -> ChangePolicy:
    command = ChangePolicy(region, BINDING, mode, checks, OnFailure.MANUAL, "ops-1", NOW)
    return replace(command, **over)  # type: ignore[arg-type]


def changed(prefix: str, mode: ReviewMode, version: int = 1, **over: object) -> ReviewPolicyChanged:
    fields: dict[str, object] = {
        "policy_id": f"{prefix or '*'}/member_binding",
        "region_prefix": prefix,
        "case_type": BINDING,
        "mode": mode,
        "version": version,
        "changed_by": "ops-1",
        "changed_at": NOW,
    } | over
    return ReviewPolicyChanged.model_validate(fields)


def book(*events: ReviewPolicyChanged) -> PolicyBook:
    return policy_decider.fold(events)


def test_without_any_policy_a_reviewer_decides() -> None:
    policy = PolicyBook().applying_to("360102", BINDING)
    assert (policy.mode, policy.version, policy.policy_id) == (
        ReviewMode.MANUAL,
        0,
        "*/member_binding",
    )


def test_the_longest_region_prefix_wins() -> None:
    policies = book(
        changed("36", ReviewMode.AUTO_APPROVE),
        changed("3601", ReviewMode.MANUAL),
        changed("360102", ReviewMode.RULES, checks=DEFAULT_CHECKS[BINDING]),
    )
    assert policies.applying_to("360102", BINDING).mode is ReviewMode.RULES  # the district
    assert policies.applying_to("360103", BINDING).mode is ReviewMode.MANUAL  # its city
    assert policies.applying_to("360702", BINDING).mode is ReviewMode.AUTO_APPROVE  # the province
    assert policies.applying_to("110101", BINDING).mode is ReviewMode.MANUAL  # no policy: default


def test_policies_are_per_case_type() -> None:
    policies = book(changed("36", ReviewMode.AUTO_APPROVE))
    assert policies.applying_to("360102", CaseType.FILING).mode is ReviewMode.MANUAL


def test_a_policy_for_everywhere_is_overridden_by_any_region() -> None:
    policies = book(changed("", ReviewMode.AUTO_APPROVE), changed("36", ReviewMode.MANUAL))
    assert policies.applying_to("110101", BINDING).mode is ReviewMode.AUTO_APPROVE
    assert policies.applying_to("360102", BINDING).mode is ReviewMode.MANUAL


@pytest.mark.parametrize(
    ("given", "prefix"),
    [
        ("36", "36"),
        ("360000", "36"),
        ("3601", "3601"),
        ("360100", "3601"),
        ("360102", "360102"),
        ("*", ""),
    ],
)
def test_region_codes_name_their_prefix_as_reviewer_regions_do(given: str, prefix: str) -> None:
    assert region_prefix(given) == prefix


@pytest.mark.parametrize("given", ["3", "360", "36010", "3601021", "06", "ab", ""])
def test_a_region_that_is_not_a_code_prefix_is_refused(given: str) -> None:
    with pytest.raises(RegionPrefixError):
        region_prefix(given)


def test_a_change_is_recorded_with_who_when_and_version_one() -> None:
    spec.given([]).when(change("360000", ReviewMode.AUTO_APPROVE)).then(
        [changed("36", ReviewMode.AUTO_APPROVE)]
    )


def test_each_change_of_one_policy_counts_a_version() -> None:
    later = NOW + timedelta(hours=1)
    spec.given([changed("36", ReviewMode.AUTO_APPROVE)]).when(
        change("36", ReviewMode.MANUAL, at=later)
    ).then([changed("36", ReviewMode.MANUAL, 2, changed_at=later)])


def test_setting_the_policy_in_force_again_records_nothing() -> None:
    spec.given([changed("36", ReviewMode.AUTO_APPROVE)]).when(
        change("360000", ReviewMode.AUTO_APPROVE)
    ).then([])


def test_rules_without_named_checks_run_the_case_types_default_checks() -> None:
    spec.given([]).when(change("36", ReviewMode.RULES)).then(
        [changed("36", ReviewMode.RULES, checks=DEFAULT_CHECKS[BINDING])]
    )


def test_checks_belong_to_the_rules_mode_only() -> None:
    command = change("36", ReviewMode.MANUAL, Check.MATERIALS_PRESENT)
    spec.given([]).when(command).raises(PolicyChecksError)


def test_a_bad_region_is_refused_by_the_decider() -> None:
    spec.given([]).when(change("3", ReviewMode.MANUAL)).raises(RegionPrefixError)


# ---------------------------------------------------------------------------- checks

RULES = Policy("36", BINDING, ReviewMode.RULES, DEFAULT_CHECKS[BINDING], version=1)


def submission(**over: object) -> Submission:
    base = Submission(BINDING, BindingKind.FAMILY_ACCOUNT, Relation.PARENT, MATERIALS)
    return replace(base, **over)  # type: ignore[arg-type]


def test_complete_materials_of_the_right_types_and_an_allowed_relation_pass() -> None:
    assert failed_checks(RULES, submission()) == ()


def test_a_missing_household_page_fails_the_presence_check() -> None:
    assert failed_checks(RULES, submission(materials=MATERIALS[:3])) == (Check.MATERIALS_PRESENT,)


def test_a_commitment_letter_that_is_not_a_pdf_fails_the_type_check() -> None:
    letter = material(MaterialRole.COMMITMENT_LETTER, "image/png", "e")
    assert failed_checks(RULES, submission(materials=(letter, *MATERIALS[1:]))) == (
        Check.MATERIAL_TYPES,
    )


def test_a_signature_must_be_an_image() -> None:
    signature = material(MaterialRole.SIGNATURE, "application/pdf", "e")
    materials = (MATERIALS[0], signature, *MATERIALS[2:])
    assert failed_checks(RULES, submission(materials=materials)) == (Check.MATERIAL_TYPES,)


def test_mutual_aid_accepts_only_spouse_children_and_parents_as_binding_rules_say() -> None:
    sibling = submission(kind=BindingKind.MUTUAL_AID, relation=Relation.SIBLING)
    assert failed_checks(RULES, sibling) == (Check.RELATION_ALLOWED,)
    family = submission(kind=BindingKind.FAMILY_ACCOUNT, relation=Relation.SIBLING)
    assert failed_checks(RULES, family) == ()


def test_review_accepts_for_each_kind_exactly_the_relations_binding_accepts() -> None:
    # Two services, two tables of one rule: review never imports binding, this test does.
    assert {kind: rule.relations for kind, rule in KINDS.items()} == ACCEPTED_RELATIONS


def test_only_the_checks_a_policy_names_run() -> None:
    presence_only = replace(RULES, checks=(Check.MATERIALS_PRESENT,))
    odd = submission(kind=BindingKind.MUTUAL_AID, relation=Relation.SIBLING)
    assert failed_checks(presence_only, odd) == ()
