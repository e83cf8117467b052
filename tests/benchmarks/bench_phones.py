"""Time `phone_columns.normalize` on a million mixed numbers against a `normalize_one` loop.

Run: python tests/benchmarks/bench_phones.py [rows]   (not collected by pytest)
"""

from __future__ import annotations

import random
import sys
import time

import pandas as pd

from batchsms.plan.phone_columns import normalize
from batchsms.plan.phones import normalize_one

SAMPLE = 20_000


def _digits(rng: random.Random, count: int) -> str:
    return "".join(rng.choice("0123456789") for _ in range(count))


def _row(rng: random.Random) -> tuple[str, str | None]:
    """One contact-sheet cell and its country column value."""
    shapes = (
        lambda: (f"+45 2{_digits(rng, 1)} {_digits(rng, 2)} {_digits(rng, 2)} {_digits(rng, 2)}",
                 None),
        lambda: (f"0045{rng.choice('2345')}{_digits(rng, 7)}", None),
        lambda: (f"+33 6 {_digits(rng, 2)} {_digits(rng, 2)} {_digits(rng, 2)} {_digits(rng, 2)}",
                 None),
        lambda: (f"06 {_digits(rng, 2)} {_digits(rng, 2)} {_digits(rng, 2)} {_digits(rng, 2)}",
                 "FR"),
        lambda: (f"0{rng.choice('12345')}.{_digits(rng, 2)}.{_digits(rng, 2)}.{_digits(rng, 2)}."
                 f"{_digits(rng, 2)}", "fr"),
        lambda: (f"({rng.randint(201, 989)}) {rng.randint(200, 999)}-{_digits(rng, 4)}", "US"),
        lambda: (f"+1 416 {rng.randint(200, 999)} {_digits(rng, 4)}", None),
        lambda: (f"+44 7{rng.choice('4589')}{_digits(rng, 2)} {_digits(rng, 6)}", None),
        lambda: (f"{rng.choice('2345')}{_digits(rng, 7)}.0", None),
        lambda: (f"33{rng.choice('67')}{_digits(rng, 8)}", None),
        lambda: (f"+45 {_digits(rng, rng.randint(3, 7))}", None),
        lambda: (rng.choice(["n/a", "unknown", "-", "", "ask Bob"]), None),
    )
    weights = (20, 8, 12, 12, 6, 12, 6, 10, 4, 4, 4, 2)
    return rng.choices(shapes, weights)[0]()


def contacts(rows: int, seed: int = 7) -> tuple[pd.Series, pd.Series]:
    rng = random.Random(seed)
    cells = [_row(rng) for _ in range(rows)]
    return (pd.Series([phone for phone, _ in cells], dtype="str"),
            pd.Series([country for _, country in cells], dtype="str"))


def _timed(phones: pd.Series, regions: pd.Series | None) -> tuple[float, float, pd.DataFrame]:
    wall, cpu = time.perf_counter(), time.process_time()
    result = normalize(phones, "DK", regions)
    return time.perf_counter() - wall, time.process_time() - cpu, result


def main(rows: int, repeat: int = 3) -> None:
    phones, countries = contacts(rows)
    for label, regions in (("default_region=DK", None), ("DK + country column", countries)):
        runs = [_timed(phones, regions) for _ in range(repeat)]
        wall, cpu, result = min(runs, key=lambda run: run[0])
        sendable = int(result["reason"].isna().sum())
        print(f"normalize, {label}: {rows:,} rows in {wall:.3f} s wall, {cpu:.3f} s CPU "
              f"(best of {repeat}; first run {runs[0][0]:.3f} s; {sendable:,} sendable)")
    start = time.perf_counter()
    for phone, country in zip(phones[:SAMPLE], countries[:SAMPLE], strict=True):
        normalize_one(phone, "DK", country)
    per_row = (time.perf_counter() - start) / SAMPLE
    print(f"normalize_one loop: {per_row * 1e6:.2f} µs/row, "
          f"{per_row * rows:.1f} s for {rows:,} rows (extrapolated from {SAMPLE:,})")


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 1_000_000)
