"""The personal commitment letter (个人承诺书) a holder signs, rendered as a deterministic PDF."""

from __future__ import annotations

import io
import re
from dataclasses import dataclass
from datetime import date
from xml.sax.saxutils import escape

from reportlab.lib.pagesizes import A4
from reportlab.lib.styles import ParagraphStyle
from reportlab.lib.units import mm
from reportlab.pdfbase import pdfmetrics
from reportlab.pdfbase.cidfonts import UnicodeCIDFont
from reportlab.pdfgen.canvas import Canvas
from reportlab.platypus import Paragraph, SimpleDocTemplate, Spacer
from reportlab.platypus.doctemplate import BaseDocTemplate

from contracts.vocabulary import KIND_ZH, RELATION_ZH, BindingKind, Relation

# One of the Adobe CJK fonts every PDF reader ships: the file stays small and needs no font file.
_FONT = "STSong-Light"
pdfmetrics.registerFont(UnicodeCIDFont(_FONT))

TITLE = "个人承诺书"

# What `mask_name` and `mask_id_number` produce: the letter never sees the full values. The
# character shown may be any, `*` too (a name typed as "*王" before names were checked at the
# edge is masked "**"): the letter prints it escaped, as text.
_MASKED_NAME = re.compile(r"(?s).\**")
_MASKED_ID = re.compile(r"\d{3}\*{11}[\dX]{4}")


@dataclass(frozen=True)
class CommitmentLetter:
    """What the letter shows; name and ID number only in their masked forms."""

    request_id: str
    member_name_masked: str  # "张*"
    member_id_masked: str  # "360***********1234"
    relation: Relation
    kind: BindingKind
    issued_on: date

    def __post_init__(self) -> None:
        # A full name or ID number here would be printed and kept with the signed letter.
        if not _MASKED_NAME.fullmatch(self.member_name_masked):
            raise ValueError("member_name_masked must be masked (first character, then *)")
        if not _MASKED_ID.fullmatch(self.member_id_masked):
            raise ValueError("member_id_masked must be masked (first 3 and last 4 shown)")


def date_zh(day: date) -> str:
    """`2026年11月25日`."""
    return f"{day.year}年{day.month}月{day.day}日"


def commitment_letter_pdf(letter: CommitmentLetter) -> bytes:
    """The letter as an A4 PDF; the same letter always gives the same bytes.

    The holder's signature is recorded with the hash of these bytes, so a re-download must hash
    the same: reportlab's invariant mode drops the random file id, and the dates are `issued_on`.
    """
    body = ParagraphStyle("body", fontName=_FONT, fontSize=12, leading=22, wordWrap="CJK")
    title = ParagraphStyle("title", parent=body, fontSize=20, leading=30, alignment=1)
    text = (
        "本人郑重承诺：所填写的被绑定人信息及所上传的本人和被绑定人户口本（常住人口登记卡）"
        "页面真实、准确、完整；本人是被绑定人的"
        f"{RELATION_ZH[letter.relation]}，申请以“{KIND_ZH[letter.kind]}”方式绑定被绑定人。"
        "如有虚假，本人愿承担由此产生的一切法律责任。"
    )
    lines = [
        f"被绑定人姓名：{letter.member_name_masked}",
        f"被绑定人身份证号：{letter.member_id_masked}",
        f"申请编号：{letter.request_id}",
    ]
    story = [
        Paragraph(TITLE, title),
        Spacer(0, 10 * mm),
        Paragraph(escape(text), body),
        Spacer(0, 6 * mm),
        *(Paragraph(escape(line), body) for line in lines),
        Spacer(0, 20 * mm),
        Paragraph("承诺人（签名）：", body),
        Paragraph(f"日期：{date_zh(letter.issued_on)}", body),
    ]
    stamp = f"D:{letter.issued_on:%Y%m%d}000000+08'00'"

    def dated(canvas: Canvas, _doc: BaseDocTemplate) -> None:
        canvas.setDateFormatter(lambda *_: stamp)

    out = io.BytesIO()
    doc = SimpleDocTemplate(
        out,
        pagesize=A4,
        invariant=1,
        title=TITLE,
        subject=letter.request_id,
        creator="qinqing",
        leftMargin=25 * mm,
        rightMargin=25 * mm,
        topMargin=30 * mm,
    )
    doc.build(story, onFirstPage=dated, onLaterPages=dated)
    return out.getvalue()
