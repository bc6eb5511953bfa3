"""Idempotency keys (draft-ietf-httpapi-idempotency-key-header): a key names the command its
request sends, and the request's fingerprint binds the key to that request."""

from __future__ import annotations

import hashlib
import hmac
import json
from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, Header, Request
from starlette.datastructures import UploadFile

_FORMS = ("application/x-www-form-urlencoded", "multipart/form-data")


@dataclass(frozen=True)
class Idempotency:
    """A request's idempotency key and its fingerprint (kept with the command it names)."""

    key: str
    fingerprint: bytes


async def fingerprint(request: Request) -> bytes:
    """What makes two requests the same request: the method, the path, the query and the body
    in canonical form (JSON with sorted keys; form fields by name, each file by its SHA-256;
    any other body as its bytes).

    Keyed, with a key derived from the token secret: a body may hold an ID number, and a bare
    hash of something from so small a space could be reversed by trying them all.
    """
    parts = [request.method, request.url.path, *_pairs(request.query_params.multi_items())]
    content_type = request.headers.get("content-type", "")
    if content_type.startswith(_FORMS):
        for name, value in sorted((await request.form()).multi_items(), key=lambda i: i[0]):
            if isinstance(value, UploadFile):
                parts += [name, "file", await _sha256(value)]
            else:
                parts += [name, "text", value]
    else:
        parts.append(_canonical(await request.body()))
    secret: str = request.app.state.token_secret
    key = hmac.new(secret.encode(), b"qinqing/idempotency-fingerprint", hashlib.sha256).digest()
    framed = b"".join(len(p).to_bytes(8, "big") + p for p in (part.encode() for part in parts))
    return hmac.new(key, framed, hashlib.sha256).digest()


def _pairs(items: list[tuple[str, str]]) -> list[str]:
    return [text for pair in sorted(items, key=lambda i: i[0]) for text in pair]


def _canonical(body: bytes) -> str:
    try:
        parsed = json.loads(body)
    except (ValueError, RecursionError):  # not JSON: the bytes as they came
        return body.hex()
    return json.dumps(parsed, ensure_ascii=False, sort_keys=True, separators=(",", ":"))


async def _sha256(file: UploadFile) -> str:
    digest = hashlib.sha256()
    await file.seek(0)
    while chunk := await file.read(1024 * 1024):
        digest.update(chunk)
    await file.seek(0)  # the route reads it after us
    return digest.hexdigest()


async def keyed(request: Request, key: str) -> Idempotency:
    """The key a request carries (a header, or a form's field), bound to the request."""
    return Idempotency(key, await fingerprint(request))


async def _from_header(
    request: Request,
    key: Annotated[
        str | None,
        Header(
            alias="Idempotency-Key",
            max_length=128,
            description="Names the command this request sends: sent again with the same"
            " request, it answers as the first and changes nothing more; with another"
            " request, 422 `request.key_reused`. Without it, each request is a new command.",
        ),
    ] = None,
) -> Idempotency | None:
    return None if key is None else await keyed(request, key)


# A route's optional Idempotency-Key header: the same key with the same request is the same
# command (its first outcome again); with another request it is refused, 422 request.key_reused.
IdempotencyKey = Annotated[Idempotency | None, Depends(_from_header)]
