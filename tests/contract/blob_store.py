"""The blob-store contract: run against the in-memory, folder and PostgreSQL stores alike."""

from __future__ import annotations

import hashlib

import pytest

from services.runtime.blobs import (
    MAX_MATERIAL_BYTES,
    BlobStore,
    MaterialEmptyError,
    MaterialError,
    MaterialTooLargeError,
    MaterialTypeMismatchError,
    StoredBlob,
    UnsupportedMaterialTypeError,
)

# Enough of each format for the magic bytes; the store never parses further.
JPEG = b"\xff\xd8\xff\xe0\x00\x10JFIF\x00" + b"\x01" * 64
PNG = b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR" + b"\x02" * 64
PDF = b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n" + b"\x03" * 64


class BlobStoreContract:
    """Subclasses provide a `store` fixture giving an empty store, and `stored_count`."""

    async def stored_count(self, store: BlobStore) -> int:
        """How many blobs the adapter holds, read from its own storage."""
        raise NotImplementedError

    @pytest.mark.parametrize(
        ("data", "content_type"),
        [(JPEG, "image/jpeg"), (PNG, "image/png"), (PDF, "application/pdf")],
        ids=["jpeg", "png", "pdf"],
    )
    async def test_a_material_comes_back_by_its_hash(
        self, store: BlobStore, data: bytes, content_type: str
    ) -> None:
        stored = await store.put(data)
        assert stored == StoredBlob(hashlib.sha256(data).hexdigest(), content_type, len(data))
        blob = await store.get(stored.sha256)
        assert blob is not None
        assert (blob.sha256, blob.content_type, blob.size, blob.data) == (
            stored.sha256,
            content_type,
            len(data),
            data,
        )

    async def test_the_declared_type_may_agree_with_the_bytes(self, store: BlobStore) -> None:
        stored = await store.put(PNG, "image/png")
        assert stored.content_type == "image/png"

    async def test_the_same_bytes_again_are_stored_once(self, store: BlobStore) -> None:
        first = await store.put(JPEG)
        again = await store.put(JPEG, "image/jpeg")
        assert again == first
        assert await self.stored_count(store) == 1

    async def test_different_bytes_are_stored_apart(self, store: BlobStore) -> None:
        await store.put(JPEG)
        await store.put(JPEG + b"\x00")
        assert await self.stored_count(store) == 2

    @pytest.mark.parametrize(
        "address",
        [
            pytest.param(hashlib.sha256(b"never stored").hexdigest(), id="unknown"),
            pytest.param("", id="empty"),
            pytest.param("abc", id="short"),
            pytest.param(hashlib.sha256(JPEG).hexdigest().upper(), id="upper-case"),
            pytest.param("g" * 64, id="not-hex"),
            pytest.param("'; DROP TABLE blobs; --" + "0" * 40, id="sql"),
            pytest.param("../" * 21 + "a", id="path"),
        ],
    )
    async def test_an_unknown_or_malformed_hash_finds_nothing(
        self, store: BlobStore, address: str
    ) -> None:
        await store.put(JPEG)
        assert await store.get(address) is None

    async def test_exactly_the_size_limit_is_accepted(self, store: BlobStore) -> None:
        data = PDF + b"\x00" * (MAX_MATERIAL_BYTES - len(PDF))
        stored = await store.put(data)
        blob = await store.get(stored.sha256)
        assert blob is not None
        assert blob.size == MAX_MATERIAL_BYTES
        assert blob.data == data

    @pytest.mark.parametrize(
        ("data", "declared", "error", "code"),
        [
            pytest.param(b"", None, MaterialEmptyError, "material.empty", id="empty"),
            pytest.param(
                PDF + b"\x00" * (MAX_MATERIAL_BYTES + 1 - len(PDF)),
                None,
                MaterialTooLargeError,
                "material.too_large",
                id="one-byte-too-large",
            ),
            pytest.param(
                b"GIF89a" + b"\x00" * 64,
                None,
                UnsupportedMaterialTypeError,
                "material.unsupported_type",
                id="gif",
            ),
            pytest.param(
                JPEG,
                "image/png",
                MaterialTypeMismatchError,
                "material.type_mismatch",
                id="jpeg-declared-png",
            ),
        ],
    )
    async def test_a_refused_material_is_not_stored(
        self,
        store: BlobStore,
        data: bytes,
        declared: str | None,
        error: type[MaterialError],
        code: str,
    ) -> None:
        with pytest.raises(error) as caught:
            await store.put(data, declared)
        assert (caught.value.code, caught.value.field) == (code, "file")
        assert await store.get(hashlib.sha256(data).hexdigest()) is None
        assert await self.stored_count(store) == 0
