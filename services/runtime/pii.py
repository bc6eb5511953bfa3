"""Person pseudonyms, per-person data keys with crypto-shredding, and keyed lookup hashes."""

from __future__ import annotations

import base64
import binascii
import enum
import hashlib
import hmac
import secrets
from abc import ABC, abstractmethod
from datetime import UTC, datetime

import asyncpg
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from services.runtime.events import check_schema_name
from services.runtime.logging import get_logger
from services.runtime.settings import Settings

log = get_logger(__name__)

_FORMAT = "v1"
_NONCE_BYTES = 12  # 96 bits, the size AES-GCM is designed for
_KEY_BYTES = 32  # AES-256


class Erased(enum.Enum):
    """Type of `ERASED`, what `decrypt` returns once a person's key has been deleted."""

    ERASED = "erased"


ERASED = Erased.ERASED


class PiiError(Exception):
    """Base of the key vault's typed errors (messages carry pseudonyms, never plaintext)."""


class TamperedCiphertextError(PiiError):
    """A token was altered, truncated, or belongs to another person or field."""


class UnknownPersonKeyError(PiiError):
    """No key was ever created for this pseudonym (a wiring bug, not an erasure)."""


class PersonErasedError(PiiError):
    """The person was erased: no new data may be encrypted for them, nor a key created."""


def new_pseudonym() -> str:
    """A random, URL-safe person pseudonym (128 bits): the Kafka key and subject for a person."""
    return "p_" + secrets.token_urlsafe(16)


def lookup_hash(secret: bytes, value: str) -> str:
    """HMAC-SHA256 of `value` (hex): finds an ID number without storing it in plaintext.

    Callers normalise first (e.g. upper-case `X`): equal hashes need equal text.
    """
    return hmac.new(secret, value.encode(), hashlib.sha256).hexdigest()


def master_key(settings: Settings) -> bytes:
    """The key that wraps every data key at rest (`QINQING_MASTER_KEY`)."""
    return _key_setting(settings, "master_key")


def lookup_key(settings: Settings) -> bytes:
    """The HMAC key of `lookup_hash` (`QINQING_LOOKUP_KEY`)."""
    return _key_setting(settings, "lookup_key")


def warn_if_dev_default(settings: Settings, field: str) -> None:
    """Log loudly when a secret still has the development default published in settings.py."""
    if getattr(settings, field) == Settings.model_fields[field].default:
        log.warning(
            "development default secret in use: production must set it",
            setting=f"QINQING_{field.upper()}",
        )


def _key_setting(settings: Settings, field: str) -> bytes:
    warn_if_dev_default(settings, field)
    try:
        key = base64.b64decode(getattr(settings, field).get_secret_value(), validate=True)
    except binascii.Error as exc:
        raise ValueError(f"QINQING_{field.upper()} is not valid base64") from exc
    if len(key) != _KEY_BYTES:
        raise ValueError(f"QINQING_{field.upper()} must decode to {_KEY_BYTES} bytes")
    return key


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _aad(pseudonym: str, context: str) -> bytes:
    # Length-prefixed so no (pseudonym, context) pair can be spelled as another.
    p, c = pseudonym.encode(), context.encode()
    return b"qinqing.pii.v1|%d|%b|%d|%b" % (len(p), p, len(c), c)


class KeyVault(ABC):
    """Port: one AES-256-GCM data key per person; deleting it erases their data everywhere.

    Adapters store keys; encryption is the same for all. Ciphertext tokens read
    `v1.<nonce>.<ciphertext>` (base64url) and are bound to the person and the field (`context`),
    so a token copied to another person or field fails to decrypt.
    """

    @abstractmethod
    async def create_key(self, pseudonym: str) -> None:
        """Give the person a key; a repeat does nothing. Refused once the person was erased."""

    @abstractmethod
    async def erase(self, pseudonym: str) -> bool:
        """Delete the person's key and record when; True if a key was deleted by this call."""

    @abstractmethod
    async def erased_at(self, pseudonym: str) -> datetime | None:
        """When the person was erased, or None."""

    @abstractmethod
    async def _data_key(self, pseudonym: str) -> bytes | Erased:
        """The person's key, or ERASED; raises UnknownPersonKeyError when there never was one."""

    async def encrypt(self, pseudonym: str, plaintext: str, *, context: str) -> str:
        key = await self._data_key(pseudonym)
        if key is ERASED:
            raise PersonErasedError(f"person {pseudonym} was erased")
        nonce = secrets.token_bytes(_NONCE_BYTES)
        sealed = AESGCM(key).encrypt(nonce, plaintext.encode(), _aad(pseudonym, context))
        return f"{_FORMAT}.{_b64(nonce)}.{_b64(sealed)}"

    async def decrypt(self, pseudonym: str, token: str, *, context: str) -> str | Erased:
        key = await self._data_key(pseudonym)
        if key is ERASED:
            return ERASED
        version, _, rest = token.partition(".")
        nonce_text, _, sealed_text = rest.partition(".")
        try:
            if version != _FORMAT:
                raise ValueError(version)
            nonce, sealed = _unb64(nonce_text), _unb64(sealed_text)
            if len(nonce) != _NONCE_BYTES:
                raise ValueError(len(nonce))
            plain = AESGCM(key).decrypt(nonce, sealed, _aad(pseudonym, context))
        except (ValueError, InvalidTag) as exc:  # binascii.Error is a ValueError
            raise TamperedCiphertextError(
                f"ciphertext for person {pseudonym}, field {context!r} does not verify"
            ) from exc
        return plain.decode()


class InMemoryKeyVault(KeyVault):
    """Same contract as PostgresKeyVault, keys in a dict; for unit tests only."""

    def __init__(self) -> None:
        self._keys: dict[str, bytes] = {}
        self._erased: dict[str, datetime] = {}

    async def create_key(self, pseudonym: str) -> None:
        if pseudonym in self._erased:
            raise PersonErasedError(f"person {pseudonym} was erased")
        self._keys.setdefault(pseudonym, AESGCM.generate_key(bit_length=256))

    async def erase(self, pseudonym: str) -> bool:
        self._erased.setdefault(pseudonym, datetime.now(UTC))
        return self._keys.pop(pseudonym, None) is not None

    async def erased_at(self, pseudonym: str) -> datetime | None:
        return self._erased.get(pseudonym)

    async def _data_key(self, pseudonym: str) -> bytes | Erased:
        if pseudonym in self._erased:
            return ERASED
        try:
            return self._keys[pseudonym]
        except KeyError:
            raise UnknownPersonKeyError(f"no key for person {pseudonym}") from None


class PostgresKeyVault(KeyVault):
    """Keys in `<schema>.person_keys` (migration 0003), wrapped with the master key at rest.

    Wrapping means a copy of the table alone reveals nothing; deleting the row still shreds the
    person, though database backups keep the wrapped key until they expire. Keys are read on
    every call and never cached, so an erasure takes effect at once in every process.
    """

    def __init__(self, pool: asyncpg.Pool, schema: str, *, master_key: bytes) -> None:
        if len(master_key) != _KEY_BYTES:
            raise ValueError(f"the master key must be {_KEY_BYTES} bytes")
        self.pool, self.schema = pool, check_schema_name(schema)
        self._master = AESGCM(master_key)

    async def _lock(self, conn: asyncpg.pool.PoolConnectionProxy, pseudonym: str) -> None:
        # Create and erase of one person run one at a time, so a key created concurrently with
        # an erasure can never survive it.
        await conn.execute("SELECT pg_advisory_xact_lock(hashtextextended($1, 0))", pseudonym)

    async def create_key(self, pseudonym: str) -> None:
        nonce = secrets.token_bytes(_NONCE_BYTES)
        data_key = AESGCM.generate_key(bit_length=256)
        wrapped = nonce + self._master.encrypt(nonce, data_key, _aad(pseudonym, "data_key"))
        async with self.pool.acquire() as conn, conn.transaction():
            await self._lock(conn, pseudonym)
            erased = await conn.fetchval(
                f"SELECT true FROM {self.schema}.person_erasures WHERE pseudonym = $1", pseudonym
            )
            if erased:
                raise PersonErasedError(f"person {pseudonym} was erased")
            await conn.execute(
                f"INSERT INTO {self.schema}.person_keys (pseudonym, wrapped_key) VALUES ($1, $2)"
                " ON CONFLICT (pseudonym) DO NOTHING",
                pseudonym,
                wrapped,
            )

    async def erase(self, pseudonym: str) -> bool:
        async with self.pool.acquire() as conn, conn.transaction():
            await self._lock(conn, pseudonym)
            await conn.execute(
                f"INSERT INTO {self.schema}.person_erasures (pseudonym) VALUES ($1)"
                " ON CONFLICT (pseudonym) DO NOTHING",
                pseudonym,
            )
            deleted: str = await conn.execute(
                f"DELETE FROM {self.schema}.person_keys WHERE pseudonym = $1", pseudonym
            )
        return deleted == "DELETE 1"

    async def erased_at(self, pseudonym: str) -> datetime | None:
        at: datetime | None = await self.pool.fetchval(
            f"SELECT erased_at FROM {self.schema}.person_erasures WHERE pseudonym = $1", pseudonym
        )
        return at

    async def _data_key(self, pseudonym: str) -> bytes | Erased:
        row = await self.pool.fetchrow(
            f"SELECT (SELECT wrapped_key FROM {self.schema}.person_keys WHERE pseudonym = $1),"
            f" EXISTS (SELECT FROM {self.schema}.person_erasures WHERE pseudonym = $1)",
            pseudonym,
        )
        assert row is not None
        wrapped, erased = row[0], row[1]
        if erased:
            return ERASED
        if wrapped is None:
            raise UnknownPersonKeyError(f"no key for person {pseudonym}")
        wrapped = bytes(wrapped)
        try:
            return self._master.decrypt(
                wrapped[:_NONCE_BYTES], wrapped[_NONCE_BYTES:], _aad(pseudonym, "data_key")
            )
        except InvalidTag:
            raise TamperedCiphertextError(
                f"the stored key of person {pseudonym} does not unwrap: wrong master key?"
            ) from None
