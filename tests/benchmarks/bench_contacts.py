"""Time reading a large contact CSV: batchsms.plan.contacts against plain pandas and pyarrow.

    python tests/benchmarks/bench_contacts.py [--rows 1000000] [--quoted] [--keep DIR]

Each reader runs in a fresh process over the same file (read once beforehand, so it is in the
page cache); the time is the best of three runs, counted after the imports (pandas, pyarrow
and batchsms, shown apart), and the peak memory is that process's, imports included.
"""

from __future__ import annotations

import argparse
import random
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HEADER = "name,phone,email,city,code\n"
NAMES = ["Anna", "Bo", "Carl", "Dorte", "Erik", "Frida", "Gustav", "Hanne"]
CITIES = ["Copenhagen", "Aarhus", "Odense", "Aalborg", "Esbjerg"]


def generate(path: Path, rows: int, quoted: bool) -> None:
    rng = random.Random(1)
    city = '"{}, DK"' if quoted else "{}"
    with path.open("w", newline="", encoding="utf-8") as f:
        f.write(HEADER)
        for start in range(0, rows, 100_000):
            f.write("".join(
                f"{rng.choice(NAMES)} Jensen{i % 97},+45{rng.randrange(10**7, 10**8)},"
                f"user{i}@example.com,{city.format(rng.choice(CITIES))},{i:07d}\n"
                for i in range(start, min(rows, start + 100_000))))


def read_batchsms(path: Path) -> int:
    from batchsms.plan.campaign import ContactsConfig
    from batchsms.plan.contacts import read_contacts

    return sum(len(chunk) for chunk in read_contacts(ContactsConfig(path=path)))


def read_pandas(path: Path) -> int:
    import pandas as pd

    chunks = pd.read_csv(path, dtype=str, keep_default_na=False, chunksize=250_000)
    return sum(len(chunk) for chunk in chunks)


def read_pyarrow(path: Path) -> int:
    import pyarrow.csv as pacsv

    reader = pacsv.open_csv(path)
    return sum(batch.num_rows for batch in reader)


READERS = {"batchsms": read_batchsms, "pandas (C parser, chunksize)": read_pandas,
           "pyarrow open_csv (raw, inferred types)": read_pyarrow}


def child(reader: str, path: Path) -> None:
    started = time.perf_counter()
    import pandas  # noqa: F401
    import pyarrow.csv  # noqa: F401

    import batchsms.plan.contacts  # noqa: F401

    imported = time.perf_counter()
    rows = READERS[reader](path)
    done = time.perf_counter()
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"{done - imported:.3f} {imported - started:.3f} {peak:.0f} {rows}")


def measure(reader: str, path: Path) -> tuple[float, float, float, int]:
    runs = []
    for _ in range(3):
        out = subprocess.run([sys.executable, __file__, "--child", reader, str(path)],
                             check=True, capture_output=True, text=True).stdout.split()
        runs.append((float(out[0]), float(out[1]), float(out[2]), int(out[3])))
    best = min(runs)
    return best[0], best[1], max(r[2] for r in runs), best[3]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--quoted", action="store_true", help="quote one field in every row")
    parser.add_argument("--keep", type=Path, help="write the file here instead of a temp dir")
    parser.add_argument("--child", nargs=2, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args.child[0], Path(args.child[1]))
        return
    with tempfile.TemporaryDirectory() as tmp:
        path = (args.keep or Path(tmp)) / f"contacts-{args.rows}.csv"
        generate(path, args.rows, args.quoted)
        path.read_bytes()
        print(f"{args.rows:,} rows, {path.stat().st_size / 1e6:.1f} MB")
        for reader in READERS:
            seconds, imports, peak, rows = measure(reader, path)
            print(f"{reader:40} {seconds:6.3f} s (+{imports:.2f} s imports)  "
                  f"peak RSS {peak:6.0f} MB  rows {rows:,}")


if __name__ == "__main__":
    main()
