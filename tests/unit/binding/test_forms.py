"""The binding form: the names it takes are person names (contracts.names), checked field by
field before any request is resolved or recorded."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import ValidationError

from services.binding.forms import BindingForm

BY_ID: dict[str, Any] = {
    "kind": "family_account",
    "method": "id_number",
    "relation": "parent",
    "member_name": "阿依古丽·买买提",
    "member_id_number": "360121195001020013",
}
NEWBORN: dict[str, Any] = {
    "kind": "family_account",
    "method": "birth_certificate",
    "relation": "child",
    "member_name": "王小宝",
    "member_birth_date": "2026-10-01",
    "mother_name": "李梅",
    "mother_id_number": "360121199507090022",
    "birth_certificate_number": "Q360121000123",
}


@pytest.mark.parametrize(
    ("form", "field"), [(BY_ID, "member_name"), (NEWBORN, "mother_name"), (NEWBORN, "member_name")]
)
@pytest.mark.parametrize("typed", ["*王", "王\x00明", "王😀", "王"])
def test_a_name_that_is_not_a_person_name_is_refused_on_its_own_field(
    form: dict[str, Any], field: str, typed: str
) -> None:
    with pytest.raises(ValidationError) as caught:
        BindingForm.model_validate({**form, field: typed})
    assert [(e["loc"], e["type"]) for e in caught.value.errors()] == [((field,), "name.invalid")]


def test_the_names_are_taken_as_normalised() -> None:
    form = BindingForm.model_validate(
        {**NEWBORN, "member_name": " 王小宝 ", "mother_name": "李　梅"}
    )
    assert (form.member_name, form.mother_name) == ("王小宝", "李梅")


def test_the_names_stay_out_of_the_forms_repr() -> None:
    assert "李梅" not in repr(BindingForm.model_validate(NEWBORN))
    assert "王小宝" not in repr(BindingForm.model_validate(NEWBORN))
