"""The commitment letter PDF: readable Chinese, masked data only, the same bytes every time."""

from __future__ import annotations

import io
from dataclasses import replace
from datetime import date
from typing import Any

import pytest
from hypothesis import given, settings
from pypdf import PdfReader

from contracts.names import mask_name
from contracts.vocabulary import KIND_ZH, RELATION_ZH, BindingKind, Relation
from services.binding.letter import CommitmentLetter, commitment_letter_pdf
from tests.unit.test_names import names

LETTER = CommitmentLetter(
    request_id="req-0001",
    member_name_masked="张*",
    member_id_masked="360***********1234",
    relation=Relation.PARENT,
    kind=BindingKind.FAMILY_ACCOUNT,
    issued_on=date(2026, 11, 25),
)


def text_of(pdf: bytes) -> str:
    # Lines wrap wherever the page ends: compare without the breaks.
    reader = PdfReader(io.BytesIO(pdf))
    return "".join(page.extract_text() for page in reader.pages).replace("\n", "")


def test_the_letter_is_a_one_page_a4_pdf() -> None:
    pdf = commitment_letter_pdf(LETTER)
    assert pdf.startswith(b"%PDF-")
    (page,) = PdfReader(io.BytesIO(pdf)).pages
    assert (round(float(page.mediabox.width)), round(float(page.mediabox.height))) == (595, 842)


def test_the_same_letter_gives_the_same_bytes() -> None:
    assert commitment_letter_pdf(LETTER) == commitment_letter_pdf(replace(LETTER))


def test_another_request_gives_other_bytes() -> None:
    other = replace(LETTER, request_id="req-0002")
    assert commitment_letter_pdf(other) != commitment_letter_pdf(LETTER)


def test_the_document_is_dated_on_the_day_it_was_issued() -> None:
    metadata = PdfReader(io.BytesIO(commitment_letter_pdf(LETTER))).metadata
    assert metadata is not None
    assert str(metadata["/CreationDate"]).startswith("D:20261125")


def test_the_letter_says_who_undertakes_what_for_whom() -> None:
    text = text_of(commitment_letter_pdf(LETTER))
    for expected in (
        "个人承诺书",
        "张*",
        "360***********1234",
        "req-0001",
        "父母",
        "亲情账户",
        "真实、准确",
        "法律责任",
        "承诺人（签名）：",
        "2026年11月25日",
    ):
        assert expected in text


@pytest.mark.parametrize("relation", list(Relation))
def test_every_relation_is_named_in_chinese_in_the_letter(relation: Relation) -> None:
    text = text_of(commitment_letter_pdf(replace(LETTER, relation=relation)))
    assert RELATION_ZH[relation] in text


@pytest.mark.parametrize("kind", list(BindingKind))
def test_every_binding_kind_is_named_in_chinese_in_the_letter(kind: BindingKind) -> None:
    text = text_of(commitment_letter_pdf(replace(LETTER, kind=kind)))
    assert KIND_ZH[kind] in text


def test_the_labels_cover_every_relation_and_kind() -> None:
    assert set(RELATION_ZH) == set(Relation)
    assert set(KIND_ZH) == set(BindingKind)


@pytest.mark.parametrize(
    "changes",
    [
        pytest.param({"member_name_masked": "张三"}, id="full-name"),
        pytest.param({"member_name_masked": ""}, id="empty-name"),
        pytest.param({"member_id_masked": "36010219900101123X"}, id="full-id-number"),
        pytest.param({"member_id_masked": "360102******1234"}, id="partly-masked-id"),
    ],
)
def test_a_letter_refuses_personal_data_that_is_not_masked(changes: dict[str, Any]) -> None:
    with pytest.raises(ValueError, match="masked"):
        replace(LETTER, **changes)


@pytest.mark.parametrize("shown", ["*", "<", "&", ">", '"', "'", "\\"])
def test_a_masked_name_that_looks_like_markup_or_a_star_is_printed_as_it_is(shown: str) -> None:
    # "*王" was accepted before names were checked at the edge: its letter answered 500.
    masked = f"{shown}**"
    text = text_of(commitment_letter_pdf(replace(LETTER, member_name_masked=masked)))
    assert f"被绑定人姓名：{masked}" in text


@settings(max_examples=25, deadline=None)
@given(names)
def test_every_name_the_edge_accepts_gives_a_letter_that_shows_it_masked(name: str) -> None:
    masked = mask_name(name)
    text = text_of(commitment_letter_pdf(replace(LETTER, member_name_masked=masked)))
    assert masked in text
