"""The base of every domain's refusals: a stable code and a message in Chinese and English.

Published language: every API answers a refusal with its code, field and both messages, and
the ID-number refusals of `contracts.id_number` are shared by every service that reads one.
"""

from __future__ import annotations

from typing import ClassVar


class DomainError(ValueError):
    """A refused input or command; `code` is stable, the messages are for people.

    Messages never carry a name or an ID number: at most a masked form (first 3 + last 4).
    APIs answer with `code`, `field` and both messages (4xx, never a stack trace).
    """

    code: ClassVar[str] = "request.invalid"
    message_zh: ClassVar[str] = "请求无效"
    message_en: ClassVar[str] = "The request is not valid"
    field: ClassVar[str | None] = None  # the input field at fault, for field-level HTTP answers

    def __init__(
        self, detail_zh: str = "", detail_en: str = "", *, field: str | None = None
    ) -> None:
        self.zh = f"{self.message_zh}{detail_zh}"
        self.en = f"{self.message_en}{detail_en}"
        # The field at fault for this refusal: the class's, unless the raiser names another.
        self.input_field = field or self.field
        super().__init__(f"{self.code}: {self.en}")
