"""Who calls: roles and the principal a bearer token names, with the regions it covers."""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import StrEnum

# A reviewer's region is a 6-digit administrative code; trailing "00" pairs widen it, so
# 360000 is Jiangxi province, 360100 the city of Nanchang, 360102 one district of it.
_REGION = re.compile(r"^[1-9]\d{5}$")


class Role(StrEnum):
    INSURED = "insured"
    REVIEWER = "reviewer"
    INSTITUTION = "institution"
    AUDITOR = "auditor"
    OPERATOR = "operator"


# Roles whose access is limited to regions; the others are not region-scoped.
REGION_SCOPED = frozenset({Role.REVIEWER})


@dataclass(frozen=True)
class Principal:
    """Who calls: a person's pseudonym or a staff id, one role, and a reviewer's regions."""

    subject: str
    role: Role
    regions: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if not self.subject:
            raise ValueError("a principal needs a subject")
        bad = [r for r in self.regions if not _REGION.fullmatch(r)]
        if bad:
            raise ValueError(f"region codes are 6 digits, not starting with 0: {bad}")
        if self.role in REGION_SCOPED and not self.regions:
            raise ValueError(f"role {self.role} needs at least one region")
        if self.role not in REGION_SCOPED and self.regions:
            raise ValueError(f"role {self.role} is not limited to regions")

    def covers(self, region_code: str) -> bool:
        """Whether a region-scoped principal may act on `region_code` (its own or one below)."""
        if not _REGION.fullmatch(region_code):
            return False
        return any(region_code.startswith(_strip_zero_pairs(r)) for r in self.regions)


def _strip_zero_pairs(code: str) -> str:
    while code.endswith("00"):
        code = code[:-2]
    return code
