"""The identity domain's errors: each a stable code and a message in Chinese and English."""

# Chinese messages use full-width punctuation, as Chinese text should.
# ruff: noqa: RUF001

from __future__ import annotations

from datetime import datetime
from typing import ClassVar

from services.runtime.errors import DomainError


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


class PersonErasedError(IdentityError):
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
    message_zh: ClassVar[str] = "请先通过此渠道激活医保电子凭证"
    message_en: ClassVar[str] = "Activate the e-voucher through this channel first"


class ResetChannelError(IdentityError):
    code: ClassVar[str] = "password.reset_channel"
    message_zh: ClassVar[str] = "请通过首次激活医保电子凭证的渠道重置支付密码"
    message_en: ClassVar[str] = "Reset the payment password through the channel of first activation"


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
