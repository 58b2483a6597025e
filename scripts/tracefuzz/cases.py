"""Byte-level mutators, and a fuzz case: a seed, its mutations, a form — reproducible."""

from __future__ import annotations

import gzip
import random
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from tracefuzz.mutators import MUTATORS
from tracefuzz.seeds import SEEDS, dumps, seed_doc

# ---- byte-level mutators: (bytes, rng) → bytes --------------------------------------------------


def b_truncate(data: bytes, rng: random.Random) -> bytes:
    return data[: rng.randrange(len(data) + 1)]


def b_flip(data: bytes, rng: random.Random) -> bytes:
    out = bytearray(data)
    for _ in range(rng.randint(1, 10)):
        if out:
            out[rng.randrange(len(out))] = rng.randrange(256)
    return bytes(out)


def b_insert(data: bytes, rng: random.Random) -> bytes:
    i = rng.randrange(len(data) + 1)
    junk = rng.choice((b"\x00", b"\xff\xfe", b"NaN", b"1e999", b"123456789012345678901234567890", b"]}", b"\\ud800"))
    return data[:i] + junk + data[i:]


def b_number(data: bytes, rng: random.Random) -> bytes:
    """A number literal replaced by an extreme one (1e999, a 40-digit int, -0, 1e-400)."""
    spots = [m.start() for m in re.finditer(rb'"(?:ts|dur)": ', data[:200_000])]
    if not spots:
        return data
    i = rng.choice(spots)
    j = data.index(b" ", i) + 1
    k = j
    while k < len(data) and data[k : k + 1] in b"-+.0123456789eE":
        k += 1
    big = rng.choice((b"1e999", b"9" * 40, b"-0", b"1e-400", b"-1e308", b"18446744073709551616"))
    return data[:j] + big + data[k:]


BYTE_MUTATORS: dict[str, Callable[[bytes, random.Random], bytes]] = {
    "truncate": b_truncate,
    "flip": b_flip,
    "insert": b_insert,
    "number": b_number,
}
FORMS = ("json", "gz", "array", "gz-damaged")


@dataclass(frozen=True)
class Case:
    """One fuzz input, reproducible from these fields alone."""

    seed: str
    mutations: tuple[tuple[str, int], ...] = ()
    form: str = "json"
    byte_mutation: tuple[str, int] | None = None

    def describe(self) -> str:
        muts = "+".join(f"{m}:{s}" for m, s in self.mutations) or "none"
        byte = f" bytes={self.byte_mutation[0]}:{self.byte_mutation[1]}" if self.byte_mutation else ""
        return f"seed={self.seed} mutations={muts} form={self.form}{byte}"


def build(case: Case) -> bytes:
    doc = seed_doc(case.seed)
    for name, s in case.mutations:
        MUTATORS[name](doc, random.Random(s))
    if case.form == "array":
        body: Any = doc.get("traceEvents", [])
    else:
        body = doc
    data = dumps(body)
    if case.byte_mutation is not None:
        name, s = case.byte_mutation
        data = BYTE_MUTATORS[name](data, random.Random(s))
    if case.form in ("gz", "gz-damaged"):
        data = gzip.compress(data, compresslevel=1)
        if case.form == "gz-damaged":
            data = BYTE_MUTATORS["truncate" if len(data) % 2 else "flip"](data, random.Random(len(data)))
    return data


def random_case(rng: random.Random) -> Case:
    muts = tuple((rng.choice(list(MUTATORS)), rng.randrange(2**32)) for _ in range(rng.choice((1, 1, 2, 3))))
    form = rng.choices(FORMS, weights=(6, 3, 2, 1))[0]
    byte = (rng.choice(list(BYTE_MUTATORS)), rng.randrange(2**32)) if rng.random() < 0.15 else None
    return Case(rng.choice(list(SEEDS)), muts, form, byte)
