"""Person names (contracts.names): real names of residents and permanent residents pass as
typed, what people type for them is normalised, anything else is refused as `name.invalid`."""

from __future__ import annotations

import pytest
from hypothesis import example, given
from hypothesis import strategies as st
from pydantic import TypeAdapter, ValidationError
from pydantic_core import PydanticCustomError

from contracts.names import (
    HAN_BLOCKS,
    MESSAGE_ZH,
    MIDDLE_DOT,
    NAME_INVALID,
    PersonName,
    mask_name,
    person_name,
)

NAME = TypeAdapter(PersonName)

han_char = st.sampled_from(HAN_BLOCKS).flatmap(lambda b: st.integers(b[0], b[1]).map(chr))
han_part = st.text(han_char, min_size=1, max_size=8)
# A resident's name: Han characters, the parts of a minority or transliterated name joined by ·.
han_names = (
    st.lists(han_part, min_size=1, max_size=4)
    .map(MIDDLE_DOT.join)
    .filter(lambda name: 2 <= len(name) <= 30)
)
latin_word = st.text(
    st.sampled_from("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"), min_size=1
)
# A permanent resident's name: Latin letters and single spaces.
latin_names = (
    st.lists(latin_word, min_size=1, max_size=5).map(" ".join).filter(lambda n: 2 <= len(n) <= 60)
)
names = han_names | latin_names
# What a name never holds: controls, format characters (zero-width, bidi overrides), halves
# of surrogate pairs, private-use characters, emoji, digits and symbols.
foreign = (
    st.characters(categories=["Cc", "Cf", "Cs", "Co"])
    | st.characters(min_codepoint=0x1F300, max_codepoint=0x1FAFF)
    | st.sampled_from("*0123456789!@#$%^&()_+=<>?/\\|~`'\";:,[]{}-")
)
# The dots people type for the middle dot, from phone and desktop keyboards.
typed_dots = st.sampled_from(
    [
        *(".", "\u2022", "\u2027", "\u2219", "\u22c5", "\u30fb", "\uff65", "\uff0e"),
        *("\u2e31", "\ua78f", "\u0387", MIDDLE_DOT),
    ]
)


def refused(typed: str) -> bool:
    """Refused as `name.invalid` (any other failure is raised)."""
    try:
        person_name(typed)
    except PydanticCustomError as exc:
        return exc.type == NAME_INVALID
    return False


@pytest.mark.parametrize(
    "name",
    [
        "王芳",
        "欧阳娜娜",
        "阿依古丽·买买提",
        "爱新觉罗·溥仪",
        "米哈伊尔·谢尔盖耶维奇·戈尔巴乔夫",
        "𠀀𪚥",  # rare characters of the extension blocks, as on some ID cards
        "JOHN SMITH",
        "Jane Mary Doe",
    ],
)
def test_real_names_are_accepted_as_typed(name: str) -> None:
    assert NAME.validate_python(name) == name


@given(names)
def test_every_name_of_the_rule_is_accepted_unchanged(name: str) -> None:
    assert person_name(name) == name


@given(names, typed_dots, st.sampled_from(["", " "]))
def test_a_typed_dot_with_or_without_spaces_becomes_the_middle_dot(
    name: str, dot: str, space: str
) -> None:
    typed = name.replace(MIDDLE_DOT, f"{space}{dot}{space}")
    assert person_name(typed) == name


@given(latin_names)
def test_full_width_letters_and_spaces_become_plain_ones(name: str) -> None:
    full_width = "".join("\u3000" if c == " " else chr(ord(c) + 0xFEE0) for c in name)
    assert person_name(f"  {full_width}\u3000") == name


def test_the_ends_are_trimmed_a_run_of_spaces_is_one_and_a_han_name_has_none() -> None:
    assert person_name("  JOHN   SMITH ") == "JOHN SMITH"
    assert person_name("\u3000王芳\u3000") == "王芳"
    assert person_name("王 小明") == person_name("王\u3000\u3000小明") == "王小明"
    assert refused("王 A")


@pytest.mark.parametrize(
    "typed",
    [
        pytest.param("*王", id="star-first"),
        pytest.param("王*", id="star-last"),
        pytest.param("王\x00明", id="nul"),
        pytest.param("\x00王", id="nul-first"),
        pytest.param("王\n明", id="newline"),
        pytest.param("王\u200b明", id="zero-width-space"),
        pytest.param("\u202e王明", id="bidi-override"),
        pytest.param("\ud800王明", id="half-surrogate"),
        pytest.param("王😀", id="emoji"),
        pytest.param("王3", id="digit"),
        pytest.param("王A", id="mixed-scripts"),
        pytest.param("O'BRIEN", id="apostrophe"),
        pytest.param("·王明", id="leading-dot"),
        pytest.param("王明·", id="trailing-dot"),
        pytest.param("王··明", id="double-dot"),
        pytest.param("王", id="one-han-character"),
        pytest.param("J", id="one-letter"),
        pytest.param("长" * 31, id="31-han-characters"),
        pytest.param("A" * 61, id="61-letters"),
        pytest.param("长" * 100_000, id="huge"),
        pytest.param("", id="empty"),
        pytest.param("   ", id="spaces"),
    ],
)
def test_anything_else_is_refused_as_name_invalid(typed: str) -> None:
    assert refused(typed)


def test_the_lengths_allowed_are_2_to_30_han_characters_and_2_to_60_letters() -> None:
    assert [refused("长" * n) for n in (1, 2, 30, 31)] == [True, False, False, True]
    assert [refused("A" * n) for n in (1, 2, 60, 61)] == [True, False, False, True]


@given(names, foreign, st.integers(min_value=0))
def test_a_name_with_a_character_no_name_holds_is_refused_wherever_it_stands(
    name: str, bad: str, at: int
) -> None:
    at %= len(name) + 1
    assert refused(name[:at] + bad + name[at:])


@given(st.text())
@example("*王")
@example("阿依古丽 • 买买提")
def test_any_text_is_either_refused_or_normalised_to_a_name_that_stays_as_it_is(
    typed: str,
) -> None:
    if not refused(typed):
        name = person_name(typed)
        assert person_name(name) == name
        masked = mask_name(name)
        assert masked[0].isprintable()
        assert masked[1:] == "*" * (len(name) - 1)


def test_the_refusal_is_bilingual_and_never_repeats_what_was_typed() -> None:
    with pytest.raises(ValidationError) as caught:
        NAME.validate_python("*王秘密")
    (error,) = caught.value.errors()
    assert error["type"] == NAME_INVALID
    assert error["ctx"] == {"zh": MESSAGE_ZH}
    assert "秘密" not in error["msg"]
    assert "秘密" not in MESSAGE_ZH


@pytest.mark.parametrize(
    ("name", "masked"),
    [
        ("张三丰", "张**"),
        ("JOHN SMITH", "J*********"),
        ("*王", "**"),
        ("\x00王", "**"),
        ("\ud800王", "**"),
    ],
)
def test_a_masked_name_shows_its_first_character_if_it_prints(name: str, masked: str) -> None:
    assert mask_name(name) == masked
