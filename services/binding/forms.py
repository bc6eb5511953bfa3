"""What a holder fills in to bind a member, per method (003/004), before it is resolved."""

from __future__ import annotations

from typing import ClassVar

from pydantic import BaseModel, ConfigDict, Field, StrictBool

from contracts.names import PersonName
from contracts.vocabulary import BindingKind, Relation
from services.binding.errors import BindingError
from services.binding.rules import Method
from services.runtime.params import IsoDate


class BindingForm(BaseModel):
    """The request body of `POST /bindings`. Names and ID numbers are read to resolve the
    member, masked for the commitment letter, and never stored or logged in full."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    kind: BindingKind
    method: Method
    relation: Relation
    # Checked at the edge (contracts.names): the letter prints it masked, the directory of
    # proxy members without an ID card derives their pseudonym from it.
    member_name: PersonName = Field(repr=False)
    # By ID number, or a proxy member with an ID card.
    member_id_number: str | None = Field(default=None, max_length=32, repr=False)
    # A newborn (birth certificate) or a proxy member without an ID card.
    member_birth_date: IsoDate | None = None
    # A proxy member without an ID card is not in the registry: the holder names the place.
    member_insured_place: str | None = Field(default=None, pattern=r"^[1-9]\d{5}$")
    # Birth certificate: the mother, found by her ID number, and the certificate's number.
    mother_name: PersonName | None = Field(default=None, repr=False)
    mother_id_number: str | None = Field(default=None, max_length=32, repr=False)
    birth_certificate_number: str | None = Field(
        default=None, pattern=r"^[A-Z0-9]{6,20}$", repr=False
    )
    # 我已阅读并同意 the commitment letter (proxy without ID)
    commitment_accepted: StrictBool = False


class MissingFieldError(BindingError):
    code: ClassVar[str] = "binding.missing_field"
    message_zh: ClassVar[str] = "该绑定方式须填写此项"
    message_en: ClassVar[str] = "This binding method needs this field"

    def __init__(self, field: str) -> None:
        super().__init__(f"：{field}", f": {field}", field=field)


# The fields each method needs beyond kind, relation and the member's name.
REQUIRED_FIELDS: dict[Method, tuple[str, ...]] = {
    Method.ID_NUMBER: ("member_id_number",),
    Method.PROXY_WITH_ID: ("member_id_number",),
    Method.BIRTH_CERTIFICATE: (
        "member_birth_date",
        "mother_name",
        "mother_id_number",
        "birth_certificate_number",
    ),
    Method.PROXY_WITHOUT_ID: ("member_birth_date", "member_insured_place"),
}


def check_required(form: BindingForm) -> None:
    for name in REQUIRED_FIELDS[form.method]:
        if getattr(form, name) in (None, ""):
            raise MissingFieldError(name)
