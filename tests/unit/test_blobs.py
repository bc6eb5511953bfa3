"""Material checks, and the blob-store contract held by the in-memory and folder stores.

The folder store lives here: no service keeps materials in files, but a second adapter on
another medium keeps the contract suite honest about what a store must guarantee.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import tempfile
from pathlib import Path

import pytest

from services.runtime.blobs import (
    CONTENT_TYPES,
    MAX_MATERIAL_BYTES,
    Blob,
    BlobStore,
    InMemoryBlobStore,
    MaterialEmptyError,
    MaterialError,
    MaterialTooLargeError,
    MaterialTypeMismatchError,
    UnsupportedMaterialTypeError,
    blob_migrations,
    check_material,
    sniff_type,
)
from tests.contract.blob_store import JPEG, PDF, PNG, BlobStoreContract


class FolderBlobStore(BlobStore):
    """Blobs as files `<root>/ab/cd/abcd…` (two levels keep folders small).

    No sidecar: the content type is sniffed again on read, as it was decided from the bytes.
    """

    def __init__(self, root: Path) -> None:
        self.root = root

    def path_of(self, sha256: str) -> Path:
        return self.root / sha256[:2] / sha256[2:4] / sha256

    async def _save(self, blob: Blob) -> None:
        await asyncio.to_thread(self._write, self.path_of(blob.sha256), blob.data)

    async def _load(self, sha256: str) -> Blob | None:
        try:
            data = await asyncio.to_thread(self.path_of(sha256).read_bytes)
        except FileNotFoundError:
            return None
        content_type = sniff_type(data)
        assert content_type is not None, "only checked materials are ever written"
        return Blob(sha256, content_type, len(data), data)

    @staticmethod
    def _write(path: Path, data: bytes) -> None:
        if path.exists():
            return
        path.parent.mkdir(parents=True, exist_ok=True)
        # Written aside then renamed: a reader sees the whole file or none, even after a crash.
        fd, temp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-")
        try:
            with os.fdopen(fd, "wb") as f:
                f.write(data)
                f.flush()
                os.fsync(f.fileno())
            os.replace(temp, path)
        except BaseException:
            Path(temp).unlink(missing_ok=True)
            raise


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
