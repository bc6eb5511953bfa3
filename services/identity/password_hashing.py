"""Payment password hashing: argon2id with the project's parameters, hash and verify."""

from __future__ import annotations

from datetime import date

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

from services.identity.password import check_payment_password

# argon2id at OWASP's minimum profile (19 MiB, 2 passes, 1 lane): about 20 ms a verification
# on one core, so a payment burst stays cheap. No KDF cost protects a space of 10^6 values
# against someone holding the hash: these costs make cracking take CPU-hours per person, not
# seconds; the real defences are the lockout below and keeping hashes out of events, in a
# table of their own.
ARGON2_TIME_COST = 2
ARGON2_MEMORY_KIB = 19 * 1024
ARGON2_PARALLELISM = 1
ARGON2_HASH_BYTES = 32
ARGON2_SALT_BYTES = 16
# Recorded in PaymentPasswordSet, so the store knows which parameters made a stored hash.
KDF_SCHEME = f"argon2id-m{ARGON2_MEMORY_KIB}-t{ARGON2_TIME_COST}-p{ARGON2_PARALLELISM}"


def make_hasher() -> PasswordHasher:
    """The argon2id hasher with this module's parameters (a fresh random salt per hash)."""
    return PasswordHasher(
        time_cost=ARGON2_TIME_COST,
        memory_cost=ARGON2_MEMORY_KIB,
        parallelism=ARGON2_PARALLELISM,
        hash_len=ARGON2_HASH_BYTES,
        salt_len=ARGON2_SALT_BYTES,
    )


def hash_payment_password(
    hasher: PasswordHasher, password: str, birth_date: date, id_number: str | None = None
) -> str:
    """Check the rules, then hash: the only way a password becomes a stored credential."""
    check_payment_password(password, birth_date, id_number)
    return hasher.hash(password)


def verify_payment_password(hasher: PasswordHasher, encoded_hash: str, password: str) -> bool:
    """True if `password` matches; False on a mismatch or an unreadable hash, never raises."""
    try:
        return hasher.verify(encoded_hash, password)
    except (VerificationError, InvalidHashError):
        return False
