"""The identity domain's errors: each a stable code and a message in Chinese and English."""

from __future__ import annotations

from datetime import datetime
from typing import ClassVar

from contracts.errors import DomainError


class IdentityError(DomainError):
    """A refusal of this service (see DomainError)."""

    code: ClassVar[str] = "identity.error"
    message_zh: ClassVar[str] = "请求无效"
    message_en: ClassVar[str] = "The request is not valid"


class PersonAlreadyRegisteredError(IdentityError):
    code: ClassVar[str] = "person.already_registered"
    message_zh: ClassVar[str] = "该参保人已登记"
    message_en: ClassVar[str] = "This insured person is already registered"


class PersonNotRegisteredError(IdentityError):
    code: ClassVar[str] = "person.not_registered"
    message_zh: ClassVar[str] = "没有这个参保人"
    message_en: ClassVar[str] = "No such insured person"


class CallbackSignatureError(IdentityError):
    code: ClassVar[str] = "face_provider.signature"
    message_zh: ClassVar[str] = "回调签名无效"
    message_en: ClassVar[str] = "The callback signature is not valid"


class PersonalDataErasedError(IdentityError):
    code: ClassVar[str] = "person.erased"
    message_zh: ClassVar[str] = "该参保人的个人信息已删除"
    message_en: ClassVar[str] = "This insured person's personal data has been erased"


class InvalidNameError(IdentityError):
    code: ClassVar[str] = "person.name"
    message_zh: ClassVar[str] = "姓名应为1至64个字符，不含数字或控制字符"
    message_en: ClassVar[str] = "The name must be 1 to 64 characters, without digits or controls"
    field: ClassVar[str | None] = "name"


class InvalidInsuredPlaceError(IdentityError):
    code: ClassVar[str] = "insured_place.code"
    message_zh: ClassVar[str] = "参保地应为有效的6位行政区划代码"
    message_en: ClassVar[str] = "The insured place must be a valid 6-digit region code"
    field: ClassVar[str | None] = "insured_place"


class UnknownInsuredPlaceError(IdentityError):
    code: ClassVar[str] = "insured_place.unknown"
    message_zh: ClassVar[str] = "只能切换到本人已有的参保地"
    message_en: ClassVar[str] = "The current insured place must be one of the person's places"
    field: ClassVar[str | None] = "insured_place"


class FaceCheckRequiredError(IdentityError):
    code: ClassVar[str] = "voucher.face_check"
    message_zh: ClassVar[str] = "激活医保电子凭证需要本人通过人脸识别"
    message_en: ClassVar[str] = "Activating the e-voucher needs a passed face check of the person"


class VoucherNotActivatedError(IdentityError):
    code: ClassVar[str] = "voucher.not_activated"
    message_zh: ClassVar[str] = "请先激活医保电子凭证"
    message_en: ClassVar[str] = "Activate the e-voucher first"


class PaymentPasswordNotSetError(IdentityError):
    code: ClassVar[str] = "password.not_set"
    message_zh: ClassVar[str] = "尚未设置支付密码"
    message_en: ClassVar[str] = "No payment password has been set"


class PasswordLockedError(IdentityError):
    code: ClassVar[str] = "password.locked"
    message_zh: ClassVar[str] = "支付密码错误次数过多，已锁定，可使用人脸识别"
    message_en: ClassVar[str] = "Too many wrong payment passwords: locked; face verification works"

    def __init__(self, locked_until: datetime) -> None:
        self.locked_until = locked_until
        stamp = locked_until.isoformat()
        super().__init__(f"（至 {stamp}）", f" (until {stamp})")


class OldPasswordRequiredError(IdentityError):
    code: ClassVar[str] = "password.old_required"
    message_zh: ClassVar[str] = "修改支付密码需要原密码；忘记密码请先通过人脸识别"
    message_en: ClassVar[str] = (
        "Changing the payment password needs the old one; if forgotten, pass a face check first"
    )
    field: ClassVar[str | None] = "old_password"


class OldPasswordWrongError(IdentityError):
    code: ClassVar[str] = "password.old_wrong"
    message_zh: ClassVar[str] = "原支付密码错误"
    message_en: ClassVar[str] = "The old payment password is wrong"
    field: ClassVar[str | None] = "old_password"


class PasswordChangedMeanwhileError(IdentityError):
    code: ClassVar[str] = "password.changed_meanwhile"
    message_zh: ClassVar[str] = "支付密码刚被修改，请重新输入原密码"
    message_en: ClassVar[str] = "The payment password has just changed; give the old one again"
    field: ClassVar[str | None] = "old_password"


# Why a face check does not prove the person for a step-up such as a password reset. They are
# the person decider's refusals: the face check itself is in order, it just proves too little.
class FaceCheckProofError(IdentityError):
    code: ClassVar[str] = "face_check.not_proof"
    message_zh: ClassVar[str] = "该人脸识别不能用于此操作"
    message_en: ClassVar[str] = "This face check does not prove this step"
    field: ClassVar[str | None] = "face_check_id"


class FaceCheckPurposeError(FaceCheckProofError):
    code: ClassVar[str] = "face_check.purpose"
    message_zh: ClassVar[str] = "该人脸识别是为其他用途发起的"
    message_en: ClassVar[str] = "This face check was asked for another purpose"


class FaceCheckNotPassedError(FaceCheckProofError):
    code: ClassVar[str] = "face_check.not_passed"
    message_zh: ClassVar[str] = "该人脸识别未通过或尚无结果"
    message_en: ClassVar[str] = "This face check has not passed"


class FaceCheckStaleError(FaceCheckProofError):
    code: ClassVar[str] = "face_check.stale"
    message_zh: ClassVar[str] = "该人脸识别已超过有效时间，请重新识别"
    message_en: ClassVar[str] = "This face check is no longer recent; pass a new one"


class FaceCheckUsedError(FaceCheckProofError):
    code: ClassVar[str] = "face_check.used"
    message_zh: ClassVar[str] = "该人脸识别已使用过，请重新识别"
    message_en: ClassVar[str] = "This face check has already been used; pass a new one"
