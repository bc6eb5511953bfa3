"""The demo's cast: valid resident ID numbers made up for each run, and their materials."""

from __future__ import annotations

import io
import random
from dataclasses import dataclass
from datetime import date

from PIL import Image, ImageDraw
from reportlab.lib.pagesizes import A6, landscape
from reportlab.pdfbase import pdfmetrics
from reportlab.pdfbase.cidfonts import UnicodeCIDFont
from reportlab.pdfgen import canvas

from contracts.id_number import check_char, mask_id_number
from contracts.names import mask_name

NANCHANG_DISTRICT = "360102"  # 南昌市东湖区, Jiangxi: where the whole family is insured
# Where the ID number was issued (南昌县): a code that existed in every birth year of the cast,
# unlike 360102, which the region database knows only from the 1980s on.
ID_REGION = "360121"
FONT = "STSong-Light"


@dataclass(frozen=True)
class Person:
    role: str  # how the story calls them
    name: str
    birth_date: date
    female: bool

    def id_number(self, rng: random.Random) -> str:
        """A valid number (region, birth date, sequence, check character) unique to the run."""
        sequence = rng.randrange(0, 499) * 2 + (0 if self.female else 1)
        body = f"{ID_REGION}{self.birth_date:%Y%m%d}{sequence:03d}"
        return body + check_char(body)


def born(today: date, years: int, month: int = 3, day: int = 9) -> date:
    """A birthday `years` ago that has already passed this year (ages are exact)."""
    earlier = date(today.year - years, month, day)
    return earlier if earlier <= today else date(today.year - years - 1, month, day)


def signature_png(name: str) -> bytes:
    """A hand-drawn-looking stroke for the holder's signature (承诺书签名)."""
    image = Image.new("RGB", (240, 80), "white")
    draw = ImageDraw.Draw(image)
    seed = sum(map(ord, name))
    points = [(20 + i * 25, 40 + ((seed >> i) % 5 - 2) * 7) for i in range(9)]
    draw.line(points, fill="navy", width=3)
    out = io.BytesIO()
    image.save(out, format="PNG", optimize=False)
    return out.getvalue()


def household_page_pdf(person: Person, id_number: str) -> bytes:
    """A stand-in for a household register page (常住人口登记卡): masked data only."""
    if FONT not in pdfmetrics.getRegisteredFontNames():
        pdfmetrics.registerFont(UnicodeCIDFont(FONT))
    out = io.BytesIO()
    page = canvas.Canvas(out, pagesize=landscape(A6), invariant=1)
    page.setFont(FONT, 14)
    page.drawString(30, 220, "常住人口登记卡（演示）")
    page.setFont(FONT, 11)
    page.drawString(30, 190, f"姓名：{mask_name(person.name)}")
    page.drawString(30, 170, f"公民身份号码：{mask_id_number(id_number)}")
    page.drawString(30, 150, f"出生日期：{person.birth_date:%Y年%m月%d日}")
    page.showPage()
    page.save()
    return out.getvalue()
