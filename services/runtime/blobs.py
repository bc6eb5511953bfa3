"""The content-addressed store of uploaded materials (our S3): port, checks, and its adapters."""

from __future__ import annotations

import hashlib
import re
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from importlib import resources
from typing import ClassVar

import asyncpg

from contracts.errors import DomainError
from services.runtime.events import check_schema_name
from services.runtime.migrate import Migration

# Shared infrastructure, not a service: every service may read materials by hash.
BLOB_SCHEMA = "blobs"

MAX_MATERIAL_BYTES = 10 * 1024 * 1024

# The type is decided by the first bytes, never by the client's name or header for the file.
_MAGIC: dict[str, bytes] = {
    "image/jpeg": b"\xff\xd8\xff",
    "image/png": b"\x89PNG\r\n\x1a\n",
    "application/pdf": b"%PDF-",
}
CONTENT_TYPES: frozenset[str] = frozenset(_MAGIC)

# What a client sends when it does not know the type: no claim to check against the bytes.
_UNDECLARED = frozenset({"", "application/octet-stream"})

_SHA256 = re.compile(r"[0-9a-f]{64}")


class MaterialError(DomainError):
    """An uploaded material refused before it is stored (see DomainError)."""

    code: ClassVar[str] = "material.invalid"
    message_zh: ClassVar[str] = "上传的材料无效"
    message_en: ClassVar[str] = "The uploaded material is not valid"
    field: ClassVar[str | None] = "file"


class MaterialEmptyError(MaterialError):
    code: ClassVar[str] = "material.empty"
    message_zh: ClassVar[str] = "上传的文件为空"
    message_en: ClassVar[str] = "The uploaded file is empty"


class MaterialTooLargeError(MaterialError):
    code: ClassVar[str] = "material.too_large"
    message_zh: ClassVar[str] = "上传的文件过大，不能超过10MB"
    message_en: ClassVar[str] = "The uploaded file is too large: 10 MiB at most"


class UnsupportedMaterialTypeError(MaterialError):
    code: ClassVar[str] = "material.unsupported_type"
    message_zh: ClassVar[str] = "仅支持JPEG、PNG图片或PDF文件"
    message_en: ClassVar[str] = "Only JPEG or PNG images and PDF files are accepted"


class MaterialTypeMismatchError(MaterialError):
    code: ClassVar[str] = "material.type_mismatch"
    message_zh: ClassVar[str] = "文件内容与声明的文件类型不符"
    message_en: ClassVar[str] = "The file's content does not match its declared type"


def sniff_type(data: bytes) -> str | None:
    """The content type the magic bytes say, or None when they are none we accept."""
    return next((t for t, magic in _MAGIC.items() if data.startswith(magic)), None)


def check_material(data: bytes, declared_type: str | None = None) -> str:
    """The content type of an acceptable material; raises a MaterialError otherwise.

    `declared_type` is what the client claimed (e.g. the multipart part's Content-Type); a
    claim that the bytes contradict is refused rather than corrected.
    """
    if not data:
        raise MaterialEmptyError
    if len(data) > MAX_MATERIAL_BYTES:
        raise MaterialTooLargeError
    sniffed = sniff_type(data)
    if sniffed is None:
        raise UnsupportedMaterialTypeError
    declared = (declared_type or "").split(";", 1)[0].strip().lower()
    if declared not in _UNDECLARED and declared != sniffed:
        raise MaterialTypeMismatchError
    return sniffed


@dataclass(frozen=True)
class StoredBlob:
    """What events carry about a material: its address and type, never its bytes."""

    sha256: str  # hex, lower case
    content_type: str
    size: int


@dataclass(frozen=True)
class Blob(StoredBlob):
    data: bytes = field(repr=False)  # a repr in a log line must not carry the material


class BlobStore(ABC):
    """Port: materials stored once, addressed by the SHA-256 of their bytes.

    Checks and addressing are the same for every adapter; adapters only keep bytes.
    """

    async def put(self, data: bytes, declared_type: str | None = None) -> StoredBlob:
        """Check and store `data`; storing the same bytes again writes nothing new."""
        stored = StoredBlob(
            sha256=hashlib.sha256(data).hexdigest(),
            content_type=check_material(data, declared_type),
            size=len(data),
        )
        await self._save(Blob(stored.sha256, stored.content_type, stored.size, data))
        return stored

    async def get(self, sha256: str) -> Blob | None:
        """The material at this address; None when unknown or not a SHA-256 hex digest."""
        if not _SHA256.fullmatch(sha256):
            return None
        return await self._load(sha256)

    @abstractmethod
    async def _save(self, blob: Blob) -> None:
        """Keep `blob` unless its address is already taken (same address, same bytes)."""

    @abstractmethod
    async def _load(self, sha256: str) -> Blob | None: ...


class InMemoryBlobStore(BlobStore):
    """Same contract as the others, blobs in a dict; for unit tests only."""

    def __init__(self) -> None:
        self.blobs: dict[str, Blob] = {}

    async def _save(self, blob: Blob) -> None:
        self.blobs.setdefault(blob.sha256, blob)

    async def _load(self, sha256: str) -> Blob | None:
        return self.blobs.get(sha256)


class PostgresBlobStore(BlobStore):
    """Blobs in `<schema>.blobs` (blob_migrations/0001), the `blobs` schema unless told."""

    def __init__(self, pool: asyncpg.Pool, schema: str = BLOB_SCHEMA) -> None:
        self.pool, self.schema = pool, check_schema_name(schema)

    async def _save(self, blob: Blob) -> None:
        await self.pool.execute(
            f"INSERT INTO {self.schema}.blobs (sha256, content_type, size, data)"
            " VALUES ($1, $2, $3, $4) ON CONFLICT (sha256) DO NOTHING",
            blob.sha256,
            blob.content_type,
            blob.size,
            blob.data,
        )

    async def _load(self, sha256: str) -> Blob | None:
        row = await self.pool.fetchrow(
            f"SELECT content_type, size, data FROM {self.schema}.blobs WHERE sha256 = $1", sha256
        )
        if row is None:
            return None
        return Blob(sha256, row["content_type"], row["size"], bytes(row["data"]))


def blob_migrations() -> list[Migration]:
    """The `blob_migrations/*.sql` files of this package, for the `blobs` schema."""
    folder = resources.files("services.runtime") / "blob_migrations"
    files = sorted((f for f in folder.iterdir() if f.name.endswith(".sql")), key=lambda f: f.name)
    return [
        Migration(f"services.runtime/blob_migrations/{f.name}", f.read_text(encoding="utf-8"))
        for f in files
    ]
