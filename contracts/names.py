"""Person names as a person types them into the platform: the rule, its sources, `PersonName`.

Every service that takes a name (identity's registration, binding's forms) uses `PersonName`,
so a name one service accepts is a name every other one can show, mask, print and store.

The rule, and how sure we are of each part:

- **Resident names are Han characters** (汉字), and ethnic-minority and transliterated names
  separate their parts with the middle dot `·` (U+00B7, 间隔号): 阿依古丽·买买提. Sure: the
  household-register rules (户口登记规范 art. 48-49: 规范汉字, "少数民族名字中的分隔符是·") and
  the public-security draft 《姓名登记条例（初稿）》(2007), which refuses foreign letters, pinyin,
  Arabic digits and symbols (外国文字、汉语拼音字母、阿拉伯数字、符号) in a name.
- **At least 2 characters.** Sure for almost everyone: the draft and art. 49 (名字应不少于两个
  汉字). Art. 49 lets some minorities have a one-character name; we refuse those, as the
  national app's fields do (a known gap, to widen if a real case comes).
- **At most 30 characters, the dots counted.** Fairly sure: the draft's 6 characters binds only
  Han names without dots, and the longest Han name on the register had 15 (2007 statistics);
  minority names in Han transliteration run longer, and 30 is what the national app's name
  fields take.
- **Any Han character of GB 18030-2022**, i.e. every CJK unified ideograph block of Unicode up
  to extension I, since rare name characters (生僻字) live in the extensions. Sure: refusing a
  character an ID card prints is the worse mistake.
- **Names of foreigners with permanent residence** (外国人永久居留身份证) are Latin letters and
  single spaces, 2 to 60 characters. Less sure: the card prints the name in capitals; we take
  either case and allow a long name its room (the 60 is our decision, not a source's).
- **What people type is normalised first**, so that the same person gives the same name:
  Unicode NFKC (full-width letters and the ideographic space become plain ones), every dot a
  phone keyboard offers for the middle dot (`.` `•` `‧` `∙` `⋅` `・` `⸱` `ꞏ`, and their
  full- and half-width forms) becomes U+00B7 with no space around it, the ends are trimmed,
  a space between Han characters is dropped (王 小明 is 王小明: no Han name has one) and a
  run of spaces between letters is one. Nothing else is repaired: a digit, a symbol such as
  `*`, an emoji or a control character is refused as `name.invalid`.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from typing import Annotated

from pydantic import AfterValidator, Field
from pydantic_core import PydanticCustomError

NAME_INVALID = "name.invalid"
MESSAGE_ZH = "姓名应为2至30个汉字（少数民族姓名各部分以“·”分隔），或2至60个英文字母和空格"
MESSAGE_EN = (
    "A name is 2 to 30 Han characters (the parts of an ethnic-minority or transliterated name"
    " separated by ·), or 2 to 60 Latin letters and spaces"
)

MIDDLE_DOT = "\u00b7"
# After NFKC: the half-width katakana dot is U+30FB, the full-width full stop is ".", and the
# Greek ano teleia is already U+00B7.
_DOTS_TYPED = ".\u2022\u2027\u2219\u22c5\u30fb\u2e31\ua78f"
_TO_MIDDLE_DOT = str.maketrans(dict.fromkeys(_DOTS_TYPED, MIDDLE_DOT))

# The CJK unified ideograph blocks (Unicode 15.1), all in GB 18030-2022; compatibility
# ideographs need no block: NFKC turns them into these.
HAN_BLOCKS: tuple[tuple[int, int, str], ...] = (
    (0x3400, 0x4DBF, "extension A"),
    (0x4E00, 0x9FFF, "CJK unified ideographs"),
    (0x20000, 0x2A6DF, "extension B"),
    (0x2A700, 0x2B73F, "extension C"),
    (0x2B740, 0x2B81F, "extension D"),
    (0x2B820, 0x2CEAF, "extension E"),
    (0x2CEB0, 0x2EBEF, "extension F"),
    (0x2EBF0, 0x2EE5F, "extension I"),
    (0x30000, 0x3134F, "extension G"),
    (0x31350, 0x323AF, "extension H"),
)
_HAN = "".join(f"\\U{low:08x}-\\U{high:08x}" for low, high, _ in HAN_BLOCKS)


@dataclass(frozen=True)
class NameForm:
    """One way a name may be written: its shape and its length in characters."""

    shape: re.Pattern[str]
    min_length: int
    max_length: int


NAME_FORMS: tuple[NameForm, ...] = (
    NameForm(re.compile(rf"[{_HAN}]+(?:{MIDDLE_DOT}[{_HAN}]+)*"), 2, 30),  # a resident's
    NameForm(re.compile(r"[A-Za-z]+(?: [A-Za-z]+)*"), 2, 60),  # a permanent resident's
)
# Spaces beside a middle dot, or between two Han characters.
_SPACES_INSIDE_HAN = re.compile(
    rf" +(?={MIDDLE_DOT})|(?<={MIDDLE_DOT}) +|(?<=[{_HAN}]) +(?=[{_HAN}])"
)
# Longer input cannot normalise into an accepted name but for runs of spaces; it is refused
# before NFKC has to work through it.
_MAX_TYPED = 2 * max(form.max_length for form in NAME_FORMS)


def normalise_name(typed: str) -> str:
    """The name as the rule reads it (see the module docstring); not yet checked."""
    name = unicodedata.normalize("NFKC", typed).translate(_TO_MIDDLE_DOT)
    name = _SPACES_INSIDE_HAN.sub("", name.strip(" "))
    return re.sub(" +", " ", name)


def read_name(typed: str) -> str | None:
    """`typed` normalised, if it is a name of one of the `NAME_FORMS`; else None."""
    name = normalise_name(typed) if len(typed) <= _MAX_TYPED else ""
    if any(
        form.min_length <= len(name) <= form.max_length and form.shape.fullmatch(name)
        for form in NAME_FORMS
    ):
        return name
    return None


def person_name(typed: str) -> str:
    """`read_name` for pydantic: a name that is none of the `NAME_FORMS` is `name.invalid`."""
    name = read_name(typed)
    if name is None:
        # The message never holds what was typed: errors are logged and answered.
        raise PydanticCustomError(NAME_INVALID, MESSAGE_EN, {"zh": MESSAGE_ZH})
    return name


PersonName = Annotated[
    str,
    AfterValidator(person_name),
    Field(
        description="2 to 30 Han characters (parts joined by ·), or 2 to 60 Latin letters and"
        " spaces; normalised (NFKC, the dots people type become ·, spaces trimmed).",
        examples=["欧阳娜娜", "阿依古丽·买买提", "JOHN SMITH"],
    ),
]


def mask_name(name: str) -> str:
    """The first character shown, the rest starred (张三丰 -> 张**); a first character that
    would not print (a control character, half a surrogate pair) is starred too."""
    name = name.strip()
    first = name[:1] if name[:1].isprintable() else "*"
    return first + "*" * (len(name) - 1)
