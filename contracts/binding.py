"""What other services consume from `qinqing.binding.v1` (so far: the request identity acts on)."""

from __future__ import annotations

from datetime import datetime
from typing import Literal, Self

from pydantic import BaseModel, ConfigDict, Field, model_validator

from contracts.envelope import topic

TOPIC = topic("binding")

BindingKind = Literal["family_account", "mutual_aid", "proxy"]
BindingMethod = Literal["id_number", "birth_certificate", "proxy_with_id", "proxy_without_id"]
# Whose face the binding waits for: nobody, the member (aged 16+, or a proxy member with an ID
# card), or the mother of a newborn bound by birth certificate.
FaceCheckNeeded = Literal["none", "member", "mother"]


class FaceCheckNeed(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    who: FaceCheckNeeded
    subject: str | None = Field(
        default=None, description="Pseudonym of the person to check; absent when `who` is none."
    )

    @model_validator(mode="after")
    def _subject_iff_needed(self) -> Self:
        if (self.who == "none") != (self.subject is None):
            raise ValueError("subject is required for a face check and absent without one")
        return self


class MemberBindRequested(BaseModel):
    """Key and subject: the holder's binding stream. Identity opens the face check it names."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    request_id: str
    holder: str = Field(description="Pseudonym of the holder (account owner).")
    member: str = Field(description="Pseudonym of the member to bind.")
    kind: BindingKind
    method: BindingMethod
    face_check: FaceCheckNeed
    deadline: datetime = Field(description="When the request expires without its outcomes.")


EVENTS: dict[str, type[BaseModel]] = {"MemberBindRequested": MemberBindRequested}
