"""The review domain's errors: each a stable code and a message in Chinese and English."""

from __future__ import annotations

from typing import ClassVar

from contracts.errors import DomainError


class ReviewError(DomainError):
    """A refusal of this service (see DomainError)."""

    code: ClassVar[str] = "review.error"
    message_zh: ClassVar[str] = "审核请求无效"
    message_en: ClassVar[str] = "The review request is not valid"


class CaseNotFoundError(ReviewError):
    """Also the answer for a case outside the reviewer's regions: its existence does not leak."""

    code: ClassVar[str] = "case.not_found"
    message_zh: ClassVar[str] = "没有这个审核业务"
    message_en: ClassVar[str] = "No such review case"


class MaterialNotFoundError(ReviewError):
    code: ClassVar[str] = "case.material_not_found"
    message_zh: ClassVar[str] = "该审核业务没有这份材料"
    message_en: ClassVar[str] = "This review case has no such material"


class CaseDecidedError(ReviewError):
    code: ClassVar[str] = "case.decided"
    message_zh: ClassVar[str] = "该审核业务已有审核结果"
    message_en: ClassVar[str] = "This review case has already been decided"


class CaseWithdrawnError(ReviewError):
    code: ClassVar[str] = "case.withdrawn"
    message_zh: ClassVar[str] = "该业务已撤销或过期，无需审核"
    message_en: ClassVar[str] = "The request was withdrawn or expired; there is nothing to review"


class CaseClaimedError(ReviewError):
    code: ClassVar[str] = "case.claimed"
    message_zh: ClassVar[str] = "该审核业务已由其他审核人员领取"
    message_en: ClassVar[str] = "Another reviewer has claimed this case"


class NoteTooLongError(ReviewError):
    code: ClassVar[str] = "case.note_too_long"
    message_zh: ClassVar[str] = "审核意见不能超过200个字符"
    message_en: ClassVar[str] = "The note must be at most 200 characters"
    field: ClassVar[str | None] = "note"


class NotePersonalDataError(ReviewError):
    code: ClassVar[str] = "case.note_personal_data"
    message_zh: ClassVar[str] = "审核意见中不得填写证件号码等个人信息"
    message_en: ClassVar[str] = "The note must not hold an ID number or other personal data"
    field: ClassVar[str | None] = "note"


class CaseRegionError(ReviewError):
    code: ClassVar[str] = "case.region"
    message_zh: ClassVar[str] = "业务所属地区应为6位行政区划代码"
    message_en: ClassVar[str] = "The case's region must be a 6-digit region code"
    field: ClassVar[str | None] = "region"


class RegionPrefixError(ReviewError):
    code: ClassVar[str] = "policy.region"
    message_zh: ClassVar[str] = "地区应为2、4或6位行政区划代码（如36、3601、360102或360000）"
    message_en: ClassVar[str] = (
        "The region must be a region code of 2, 4 or 6 digits (36, 3601, 360102 or 360000)"
    )
    field: ClassVar[str | None] = "region"


class PolicyChecksError(ReviewError):
    code: ClassVar[str] = "policy.checks"
    message_zh: ClassVar[str] = "只有按规则审核（rules）才能设置校验项"
    message_en: ClassVar[str] = "Only the rules mode takes checks"
    field: ClassVar[str | None] = "checks"


class CursorError(ReviewError):
    code: ClassVar[str] = "queue.cursor"
    message_zh: ClassVar[str] = "分页参数无效，请从第一页重新查询"
    message_en: ClassVar[str] = "The page cursor is not valid; start again from the first page"
    field: ClassVar[str | None] = "after"


# HTTP statuses of the refusals (422 otherwise), for the API and the console alike; another
# region's case reads as not found, so a case's existence does not leak.
STATUS: dict[type[DomainError], int] = {
    CaseNotFoundError: 404,
    MaterialNotFoundError: 404,
    CaseDecidedError: 409,
    CaseWithdrawnError: 409,
    CaseClaimedError: 409,
}
