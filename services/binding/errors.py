"""The binding domain's errors: each a stable code and a message in Chinese and English."""

from __future__ import annotations

from typing import ClassVar

from contracts.errors import DomainError


class BindingError(DomainError):
    """A refusal of this service (see DomainError)."""

    code: ClassVar[str] = "binding.error"
    message_zh: ClassVar[str] = "绑定请求无效"
    message_en: ClassVar[str] = "The binding request is not valid"


class FamilyFullError(BindingError):
    code: ClassVar[str] = "binding.family_full"
    message_zh: ClassVar[str] = "已绑定或待审核的成员已达上限"
    message_en: ClassVar[str] = "The member limit is reached (bound or pending)"

    def __init__(self, limit: int) -> None:
        self.limit = limit
        super().__init__(f"：最多{limit}人", f": at most {limit} members")


class RelationNotAllowedError(BindingError):
    code: ClassVar[str] = "binding.relation_not_allowed"
    message_zh: ClassVar[str] = "该绑定类型不接受此关系"
    message_en: ClassVar[str] = "This kind of binding does not accept this relation"
    field: ClassVar[str | None] = "relation"


class MethodNotAllowedError(BindingError):
    code: ClassVar[str] = "binding.method_not_allowed"
    message_zh: ClassVar[str] = "该绑定类型不支持此绑定方式"
    message_en: ClassVar[str] = "This kind of binding does not offer this method"
    field: ClassVar[str | None] = "method"


class AlreadyBoundError(BindingError):
    code: ClassVar[str] = "binding.already_bound"
    message_zh: ClassVar[str] = "该成员已绑定或正在绑定中"
    message_en: ClassVar[str] = "This member is already bound, or a binding is pending"
    field: ClassVar[str | None] = "member"


class SelfBindingError(BindingError):
    code: ClassVar[str] = "binding.self"
    message_zh: ClassVar[str] = "不能绑定本人"
    message_en: ClassVar[str] = "A holder cannot bind themselves"
    field: ClassVar[str | None] = "member"


class ProxyWithoutIdTooOldError(BindingError):
    code: ClassVar[str] = "binding.proxy_without_id_too_old"
    message_zh: ClassVar[str] = "年满16周岁的成员无法通过未办理身份证方式提交，请使用身份证绑定"
    message_en: ClassVar[str] = "A member aged 16 or over cannot be bound without an ID card"
    field: ClassVar[str | None] = "method"


class BirthCertificateTooOldError(BindingError):
    code: ClassVar[str] = "binding.birth_certificate_too_old"
    message_zh: ClassVar[str] = "年满16周岁的成员须本人人脸验证，不能使用出生医学证明绑定"
    message_en: ClassVar[str] = (
        "A member aged 16 or over must pass their own face check, not a birth certificate"
    )
    field: ClassVar[str | None] = "method"


class MotherRequiredError(BindingError):
    code: ClassVar[str] = "binding.mother_required"
    message_zh: ClassVar[str] = "使用出生医学证明绑定须提供母亲信息"
    message_en: ClassVar[str] = "Binding by birth certificate needs the mother"
    field: ClassVar[str | None] = "mother"


class CommitmentRequiredError(BindingError):
    code: ClassVar[str] = "binding.commitment_required"
    message_zh: ClassVar[str] = "请先阅读并同意承诺书"
    message_en: ClassVar[str] = "Read and accept the commitment letter first"
    field: ClassVar[str | None] = "commitment_accepted"


class PersonalAccountRequiredError(BindingError):
    code: ClassVar[str] = "binding.personal_account_required"
    message_zh: ClassVar[str] = "家庭共济须本人有职工医保个人账户"
    message_en: ClassVar[str] = "Mutual aid needs the holder's employee-insurance personal account"


class MemberRegionNotAllowedError(BindingError):
    code: ClassVar[str] = "binding.member_region"
    message_zh: ClassVar[str] = "该绑定类型仅适用于本省参保人员"
    message_en: ClassVar[str] = "This kind of binding is for members insured in its province only"
    field: ClassVar[str | None] = "member_insured_place"


class DeadlineError(BindingError):
    code: ClassVar[str] = "binding.deadline"
    message_zh: ClassVar[str] = "截止时间应晚于请求时间"
    message_en: ClassVar[str] = "The deadline must be after the request"
    field: ClassVar[str | None] = "deadline"


class RequestConflictError(BindingError):
    code: ClassVar[str] = "binding.request_conflict"
    message_zh: ClassVar[str] = "该请求编号已用于另一个绑定请求"
    message_en: ClassVar[str] = "This request id is already used by another binding request"


class NotBoundError(BindingError):
    code: ClassVar[str] = "binding.not_bound"
    message_zh: ClassVar[str] = "该成员未绑定"
    message_en: ClassVar[str] = "This member is not bound"
    field: ClassVar[str | None] = "member"


class RevocationNotConfirmedError(BindingError):
    code: ClassVar[str] = "binding.revocation_not_confirmed"
    message_zh: ClassVar[str] = "解除绑定须通过支付密码或人脸识别确认"
    message_en: ClassVar[str] = "Unbinding must be confirmed by payment password or face check"


class RequestNotFoundError(BindingError):
    code: ClassVar[str] = "binding.request_not_found"
    message_zh: ClassVar[str] = "未找到该绑定请求"
    message_en: ClassVar[str] = "No such binding request"


class RequestNotPendingError(BindingError):
    code: ClassVar[str] = "binding.request_not_pending"
    message_zh: ClassVar[str] = "该绑定请求已结束"
    message_en: ClassVar[str] = "This binding request is no longer pending"


class MaterialsNotNeededError(BindingError):
    code: ClassVar[str] = "binding.materials_not_needed"
    message_zh: ClassVar[str] = "该绑定方式无需上传材料"
    message_en: ClassVar[str] = "This binding method takes no materials"


class MaterialRoleError(BindingError):
    code: ClassVar[str] = "binding.material_role"
    message_zh: ClassVar[str] = "材料类别不符"
    message_en: ClassVar[str] = "A material was given in the wrong place"


class CommitmentNotSignedError(BindingError):
    code: ClassVar[str] = "binding.commitment_not_signed"
    message_zh: ClassVar[str] = "请先签署个人承诺书"
    message_en: ClassVar[str] = "Sign the commitment letter first"


class MaterialsAlreadySubmittedError(BindingError):
    code: ClassVar[str] = "binding.materials_already_submitted"
    message_zh: ClassVar[str] = "材料已提交，等待审核"
    message_en: ClassVar[str] = "The materials are already submitted and wait for review"


class HolderUnknownError(BindingError):
    code: ClassVar[str] = "binding.holder_unknown"
    message_zh: ClassVar[str] = "尚未收到您的参保登记信息，请稍后再试"
    message_en: ClassVar[str] = "Your registration has not reached this service yet; try again"


class PersonNotFoundError(BindingError):
    """The ID number names nobody the registry knows (or the registration is still on its way)."""

    code: ClassVar[str] = "binding.person_not_found"
    message_zh: ClassVar[str] = "未查询到该证件号码的参保人员"
    message_en: ClassVar[str] = "No insured person has this ID number"

    def __init__(self, field: str) -> None:
        super().__init__(field=field)


class MaterialNotUploadedError(BindingError):
    code: ClassVar[str] = "binding.material_not_found"
    message_zh: ClassVar[str] = "未找到该材料，请先上传"
    message_en: ClassVar[str] = "No such material; upload it first"

    def __init__(self, field: str) -> None:
        super().__init__(field=field)


class MaterialTypeError(BindingError):
    code: ClassVar[str] = "binding.material_type"
    message_zh: ClassVar[str] = "材料格式不符：签名与户口本页须为图片或PDF"
    message_en: ClassVar[str] = "Wrong material type for this place"

    def __init__(self, field: str) -> None:
        super().__init__(field=field)


class BirthDateInFutureError(BindingError):
    code: ClassVar[str] = "binding.birth_date_in_future"
    message_zh: ClassVar[str] = "出生日期不能晚于今天"
    message_en: ClassVar[str] = "The birth date cannot be after today"
    field: ClassVar[str | None] = "member_birth_date"
