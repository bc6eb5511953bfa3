"""Material checks, and the blob-store contract held by the in-memory and folder stores."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import pytest

from services.runtime.blobs import (
    CONTENT_TYPES,
    MAX_MATERIAL_BYTES,
    Blob,
    BlobStore,
    FolderBlobStore,
    InMemoryBlobStore,
    MaterialEmptyError,
    MaterialError,
    MaterialTooLargeError,
    MaterialTypeMismatchError,
    UnsupportedMaterialTypeError,
    blob_migrations,
    check_material,
)
from tests.contract.blob_store import JPEG, PDF, PNG, BlobStoreContract


class TestInMemoryBlobStore(BlobStoreContract):
    @pytest.fixture
    def store(self) -> InMemoryBlobStore:
        return InMemoryBlobStore()

    async def stored_count(self, store: BlobStore) -> int:
        assert isinstance(store, InMemoryBlobStore)
        return len(store.blobs)


class TestFolderBlobStore(BlobStoreContract):
    @pytest.fixture
    def store(self, tmp_path: Path) -> FolderBlobStore:
        return FolderBlobStore(tmp_path / "blobs")

    async def stored_count(self, store: BlobStore) -> int:
        assert isinstance(store, FolderBlobStore)
        # Every file counts, so a temporary file left behind would show up here.
        return sum(1 for p in store.root.rglob("*") if p.is_file())


@pytest.mark.parametrize(
    ("data", "content_type"),
    [(JPEG, "image/jpeg"), (PNG, "image/png"), (PDF, "application/pdf")],
    ids=["jpeg", "png", "pdf"],
)
def test_the_type_is_read_from_the_magic_bytes(data: bytes, content_type: str) -> None:
    assert check_material(data) == content_type
    assert check_material(data, content_type) == content_type


def test_exactly_these_types_are_accepted() -> None:
    assert {"image/jpeg", "image/png", "application/pdf"} == CONTENT_TYPES


@pytest.mark.parametrize(
    "declared",
    ["IMAGE/PNG", "image/png; name=page1.png", " image/png ", "", "application/octet-stream"],
)
def test_a_declared_type_is_compared_without_case_or_parameters(declared: str) -> None:
    # An empty or octet-stream Content-Type claims nothing the bytes could contradict.
    assert check_material(PNG, declared) == "image/png"


@pytest.mark.parametrize("declared", ["image/jpeg", "application/pdf", "text/plain", "image/gif"])
def test_a_declared_type_the_bytes_contradict_is_refused(declared: str) -> None:
    with pytest.raises(MaterialTypeMismatchError):
        check_material(PNG, declared)


@pytest.mark.parametrize(
    "data",
    [
        pytest.param(b"GIF89a" + b"\x00" * 16, id="gif"),
        pytest.param(b"<html><body>", id="html"),
        pytest.param(b" %PDF-1.4", id="magic-not-at-start"),
        pytest.param(b"\x89PNG", id="truncated-png-magic"),
        pytest.param(b"\xff\xd8", id="truncated-jpeg-magic"),
    ],
)
def test_bytes_of_another_type_are_refused(data: bytes) -> None:
    with pytest.raises(UnsupportedMaterialTypeError):
        check_material(data, None)


def test_an_unsupported_type_is_refused_even_when_declared_as_supported() -> None:
    with pytest.raises(UnsupportedMaterialTypeError):
        check_material(b"GIF89a", "image/png")


def test_nothing_is_refused_as_empty() -> None:
    with pytest.raises(MaterialEmptyError):
        check_material(b"", "image/jpeg")


def test_the_size_limit_is_ten_mebibytes_inclusive() -> None:
    assert MAX_MATERIAL_BYTES == 10 * 1024 * 1024
    at_limit = JPEG + b"\x00" * (MAX_MATERIAL_BYTES - len(JPEG))
    assert check_material(at_limit) == "image/jpeg"
    with pytest.raises(MaterialTooLargeError):
        check_material(at_limit + b"\x00")


@pytest.mark.parametrize(
    ("error", "code"),
    [
        (MaterialEmptyError, "material.empty"),
        (MaterialTooLargeError, "material.too_large"),
        (UnsupportedMaterialTypeError, "material.unsupported_type"),
        (MaterialTypeMismatchError, "material.type_mismatch"),
    ],
)
def test_each_refusal_has_a_code_the_field_and_both_languages(
    error: type[MaterialError], code: str
) -> None:
    refusal = error()
    assert (refusal.code, refusal.field) == (code, "file")
    assert any("\u4e00" <= c <= "\u9fff" for c in refusal.zh)
    assert refusal.en.isascii()


def test_a_blob_repr_never_shows_its_bytes() -> None:
    blob = Blob("0" * 64, "application/pdf", len(PDF), PDF)
    assert "PDF" not in repr(blob)


async def test_the_folder_store_fans_out_by_the_first_hash_characters(tmp_path: Path) -> None:
    store = FolderBlobStore(tmp_path)
    stored = await store.put(JPEG)
    h = stored.sha256
    assert (tmp_path / h[:2] / h[2:4] / h).read_bytes() == JPEG
    assert h == hashlib.sha256(JPEG).hexdigest()


async def test_the_folder_store_leaves_a_stored_file_untouched(tmp_path: Path) -> None:
    store = FolderBlobStore(tmp_path)
    stored = await store.put(PDF)
    path = store.path_of(stored.sha256)
    before = path.stat()
    os.utime(path, ns=(before.st_atime_ns, 1_000_000_000))  # a mark a rewrite would replace
    await store.put(PDF)
    after = path.stat()
    assert (after.st_ino, after.st_mtime_ns) == (before.st_ino, 1_000_000_000)


def test_the_blob_schema_has_its_own_migrations() -> None:
    (migration,) = blob_migrations()
    assert migration.name == "services.runtime/blob_migrations/0001_blobs.sql"
    assert "CREATE TABLE blobs" in migration.sql
