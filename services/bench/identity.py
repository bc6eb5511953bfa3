"""Identity phase: ID-number validations and argon2id password verifications per second."""

from __future__ import annotations

import itertools
import random
import time
from collections import Counter
from datetime import date, timedelta
from importlib.metadata import version
from typing import Any

from contracts.id_number import CHECK_CHARS, IdNumberError, check_char, parse_id_number
from services.bench.common import BenchConfig, BenchError, Say, now, rate
from services.identity import password_hashing as pw
from services.identity.password import DEFAULT_LOCKOUT

# County codes stdnum's database knows; a birth year before a county existed is retried.
_REGIONS = ("110101", "310101", "330106", "360102", "420106", "440305", "510104", "610113")
# Out of every 10 generated numbers: 5 valid, then one of each invalid kind, in this order.
_INVALID_KINDS = (
    "id_number.length",
    "id_number.format",
    "id_number.region",
    "id_number.check_digit",
    "id_number.birth_date",
)
_VALID = "valid"
_SEED = 20_240_611
# The bench's password and a wrong one; verified alternately (a wrong one costs the same).
_PASSWORD, _WRONG, _BIRTH = "305917", "305918", date(1990, 3, 7)


def _outcome(number: str, today: date) -> str:
    try:
        parse_id_number(number, today)
    except IdNumberError as exc:
        return exc.code
    return _VALID


def _valid_number(rng: random.Random, today: date) -> str:
    first, span = date(1940, 1, 1), (today - date(1940, 1, 1)).days
    for _ in range(100):
        born = first + timedelta(days=rng.randrange(span))
        body = f"{rng.choice(_REGIONS)}{born:%Y%m%d}{rng.randrange(1000):03d}"
        number = body + check_char(body)
        if _outcome(number, today) == _VALID:
            return number
    raise BenchError("could not generate a valid ID number (stdnum's region database changed?)")


def _invalid_number(valid: str, kind: str, rng: random.Random, today: date) -> str:
    body = valid[:17]
    if kind == "id_number.length":  # the old 15-digit form: region, YYMMDD, sequence
        return valid[:6] + valid[8:17]
    if kind == "id_number.format":
        return valid[:10] + "A" + valid[11:]
    if kind == "id_number.region":
        body = "00" + body[2:]
    elif kind == "id_number.check_digit":
        return body + rng.choice(CHECK_CHARS.replace(valid[17], ""))
    elif rng.random() < 0.5:  # a birth date that does not exist
        body = f"{body[:6]}{rng.randrange(1950, 2010)}0230{body[14:]}"
    else:  # a birth date after today
        born = today + timedelta(days=rng.randrange(1, 3650))
        body = f"{body[:6]}{born:%Y%m%d}{body[14:]}"
    return body + check_char(body)


def id_number_mix(count: int, today: date, seed: int = _SEED) -> list[tuple[str, str]]:
    """`count` generated numbers with the outcome each must have: 50 % valid, 10 % per kind."""
    rng = random.Random(seed)  # noqa: S311 -- test data, not a secret
    mix: list[tuple[str, str]] = []
    for i in range(count):
        valid = _valid_number(rng, today)
        slot = i % 10
        kind = _VALID if slot < 5 else _INVALID_KINDS[slot - 5]
        number = valid if kind == _VALID else _invalid_number(valid, kind, rng, today)
        mix.append((number, kind))
    return mix


def id_validations(cfg: BenchConfig, say: Say) -> dict[str, Any]:
    today = now().date()
    mix = id_number_mix(cfg.id_numbers, today)
    # Checking every outcome first is the warm-up too (stdnum loads its database lazily).
    wrong = [kind for number, kind in mix if _outcome(number, today) != kind]
    if wrong:
        raise BenchError(
            f"{len(wrong)} generated ID numbers did not give their outcome: {wrong[:3]}"
        )
    numbers = [number for number, _ in mix]
    say(f"identity: {cfg.id_validations:,} ID-number validations over {len(numbers):,} numbers")
    accepted = 0
    cpu_started, started = time.process_time(), time.perf_counter()
    for number in itertools.islice(itertools.cycle(numbers), cfg.id_validations):
        try:
            parse_id_number(number, today)
            accepted += 1
        except IdNumberError:
            pass
    seconds = time.perf_counter() - started
    cpu_s = time.process_time() - cpu_started
    per_s = rate(cfg.id_validations, seconds)
    say(f"identity: {per_s:,.0f} ID-number validations/s")
    return {
        "value": round(per_s, 1),
        "unit": "validations/s",
        "definition": (
            "contracts.id_number.parse_id_number(raw, today) calls per second, in-process "
            "on one core (one thread, no I/O), cycling over generated 18-character numbers: 50 % "
            "valid (8 county codes, birth dates 1940..today, random sequence, correct check "
            "character) and 10 % each refused as id_number.length (the 15-digit form), "
            "id_number.format (a letter inside), id_number.region (province 00), "
            "id_number.check_digit (wrong check character) and id_number.birth_date (30 February "
            "or a future date); a refusal is a raised IdNumberError, caught. Every number's "
            "outcome is checked before the timed loop"
        ),
        "mix": dict(sorted(Counter(kind for _, kind in mix).items())),
        "distinct_numbers": len(numbers),
        "validations": cfg.id_validations,
        "accepted": accepted,
        "seconds": round(seconds, 3),
        "us_per_validation": round(seconds / cfg.id_validations * 1e6, 2),
        "cpu_us_per_validation": round(cpu_s / cfg.id_validations * 1e6, 2),
        "python_stdnum": version("python-stdnum"),
    }


def password_verifications(cfg: BenchConfig, say: Say) -> dict[str, Any]:
    hasher = pw.make_hasher()
    stored = pw.hash_payment_password(hasher, _PASSWORD, _BIRTH)
    # Warm-up, and proof the hash answers both ways.
    if not pw.verify_payment_password(hasher, stored, _PASSWORD) or pw.verify_payment_password(
        hasher, stored, _WRONG
    ):
        raise BenchError("verify_payment_password did not tell the right password from a wrong one")
    count = cfg.password_verifications
    say(f"identity: {count} payment-password verifications ({pw.KDF_SCHEME})")
    matched = 0
    cpu_started, started = time.process_time(), time.perf_counter()
    for i in range(count):
        matched += pw.verify_payment_password(hasher, stored, _WRONG if i % 2 else _PASSWORD)
    seconds = time.perf_counter() - started
    cpu_s = time.process_time() - cpu_started
    if matched != (count + 1) // 2:
        raise BenchError(f"{matched} of {count} verifications matched, expected {(count + 1) // 2}")
    per_s = rate(count, seconds)
    ms = seconds / count * 1000
    lockout = DEFAULT_LOCKOUT
    lock_hours = lockout.lock_for.total_seconds() / 3600
    exhaustive_cpu_hours = 10**6 * seconds / count / 3600
    say(f"identity: {per_s:,.1f} password verifications/s ({ms:.1f} ms each)")
    return {
        "value": round(per_s, 2),
        "unit": "verifications/s",
        "definition": (
            "services.identity.password_hashing.verify_payment_password calls per second against "
            "one argon2id hash made by hash_payment_password with make_hasher() (the project's "
            "parameters, below), in-process on one core (one thread, parallelism 1), right and "
            "wrong 6-digit passwords alternating (both cost the same)"
        ),
        "ms_per_verification": round(ms, 2),
        "cpu_ms_per_verification": round(cpu_s / count * 1000, 2),
        "verifications": count,
        "seconds": round(seconds, 3),
        "kdf": {
            "scheme": pw.KDF_SCHEME,
            "algorithm": "argon2id",
            "memory_kib": pw.ARGON2_MEMORY_KIB,
            "time_cost": pw.ARGON2_TIME_COST,
            "parallelism": pw.ARGON2_PARALLELISM,
            "hash_bytes": pw.ARGON2_HASH_BYTES,
            "salt_bytes": pw.ARGON2_SALT_BYTES,
            "library": f"argon2-cffi {version('argon2-cffi')}",
        },
        "exhaustive_search_cpu_hours": round(exhaustive_cpu_hours, 1),
        "why": (
            "argon2id at OWASP's minimum profile (19 MiB, 2 passes, 1 lane) keeps a verification "
            "to tens of milliseconds on one core, so a payment burst stays cheap. No KDF cost "
            "protects a space of 10^6 six-digit values against someone holding the hash: at this "
            f"cost trying all of them takes ~{exhaustive_cpu_hours:.1f} CPU-hours per person (the "
            "salt is per hash), not seconds. The real protection is the lockout: "
            f"{lockout.max_failures} wrong attempts lock password use for {lock_hours:g} h "
            f"(at most {lockout.max_failures} guesses in 10^6 per lock period), and hashes are "
            "kept out of events, in a table of their own"
        ),
    }


def identity_figures(cfg: BenchConfig, say: Say) -> dict[str, dict[str, Any]]:
    """The two absolute identity figures, measured one after the other on this thread."""
    return {
        "id_validations_per_s": id_validations(cfg, say),
        "password_verifications_per_s": password_verifications(cfg, say),
    }
