"""Benchmark: `batchsms dry-run` on a generated sheet vs the I/O floor and a per-row loop.

Not a test (pytest does not collect this folder): it measures and prints.

    python tests/benchmarks/bench_dry_run.py                 # 1,000,000 rows
    python tests/benchmarks/bench_dry_run.py --rows 10000000 --no-baseline
    python tests/benchmarks/bench_dry_run.py --rows 200000 --no-baseline --window

The I/O floor is the least any tool could do with the same files, timed in the same run
as a subprocess like the dry run: start Python, import pyarrow, read the same CSV, build
the same texts with a string join, and write a CSV of the same rows (sheet columns and
text). Ratios against it and against the loop are what the README records (absolute
times vary with the machine and its load, which is printed alongside).

The sheet has several countries and number formats, a template with a few variables,
and a mix of GSM-7 and UCS-2 texts (accented names, emoji). The dry run is timed end to
end as a user runs it (a `batchsms` subprocess: start-up, reading, writing dry-run.csv),
with its peak memory. The baseline is the obvious per-row loop with the same libraries
(pandas rows → phonenumbers.parse/is_valid_number → Jinja render → segment count →
price); it is timed on the first --baseline-rows rows and extrapolated linearly (its
cost per row is constant), unless --baseline-rows is the whole sheet.
"""

from __future__ import annotations

import argparse
import os
import random
import subprocess
import sys
import tempfile
import time
from decimal import Decimal
from pathlib import Path

import pandas as pd
import phonenumbers
from jinja2 import StrictUndefined
from jinja2.sandbox import SandboxedEnvironment

from batchsms.plan.segments import count

TEMPLATE = ("Hi << first_name >>! Your order << order >> ships from << city >> today. "
            "Track it at shop.example/t/<< order >>. Questions? Reply HELP.\n")
FIRST = ["Anna", "Søren", "Amélie", "Oliver", "Zoë", "Jürgen", "Łucja", "Maria", "Kim",
         "Lucía 🌸", "Bo", "François", "Ingrid", "Ahmed", "Chloé", "Björn"]
CITIES = ["København", "Paris", "London", "Berlin", "Kraków", "Madrid", "Stockholm", "Aarhus"]
PRICES = {"DK": Decimal("0.04"), "FR": Decimal("0.07"), "GB": Decimal("0.045"),
          "DE": Decimal("0.075"), "SE": Decimal("0.06"), "PL": Decimal("0.035")}


def phone(rng: random.Random) -> str:
    kind = rng.randrange(8)
    if kind == 0:
        return f"+45 {rng.randint(20, 29)} {rng.randint(10, 99)} {rng.randint(10, 99)} " \
               f"{rng.randint(10, 99)}"
    if kind == 1:
        return f"0033 6 {rng.randint(10, 99)} {rng.randint(10, 99)} {rng.randint(10, 99)} " \
               f"{rng.randint(10, 99)}"
    if kind == 2:
        return f"+44 7400 {rng.randint(100000, 999999)}"
    if kind == 3:
        return f"+49 151 {rng.randint(10000000, 99999999)}"
    if kind == 4:
        return f"{rng.randint(20, 29)}{rng.randint(100000, 999999)}"  # national, DK default
    if kind == 5:
        return f"+46 70-{rng.randint(100, 999)} {rng.randint(10, 99)} {rng.randint(10, 99)}"
    if kind == 6:
        return f"+48 512 {rng.randint(100, 999)} {rng.randint(100, 999)}"
    return rng.choice(["n/a", "+45 1234", "+33 1 23 45 67 89"])  # junk, invalid, fixed line


def write_sheet(path: Path, rows: int, seed: int = 7) -> None:
    rng = random.Random(seed)
    with path.open("w", encoding="utf-8", newline="") as out:
        out.write("phone,first_name,city,order\n")
        block = []
        for i in range(rows):
            block.append(f"{phone(rng)},{rng.choice(FIRST)},{rng.choice(CITIES)},{100000 + i}\n")
            if len(block) == 100_000:
                out.write("".join(block))
                block.clear()
        out.write("".join(block))


WINDOW = ("send:\n  window: {hours: '09:00-20:00', days: [mon, tue, wed, thu, fri], "
          "skip_holidays: true}\n  opt_out: STOP to 1234\n")


def write_campaign(folder: Path, sheet: Path, window: bool = False) -> Path:
    (folder / "template.txt").write_text(TEMPLATE, encoding="utf-8")
    countries = ", ".join(f"{k}: {v}" for k, v in PRICES.items())
    campaign = folder / "bench.yaml"
    campaign.write_text(
        f"name: bench\ncontacts:\n  path: {sheet.name}\n  default_region: DK\n"
        "template:\n  path: template.txt\n"
        "provider:\n  name: mailjet\n  sender: BenchShop\n  sandbox: true\n"
        f"pricing:\n  currency: EUR\n  default: 0.05\n  countries: {{{countries}}}\n"
        + (WINDOW if window else ""),
        encoding="utf-8")
    return campaign


FLOOR = """
import sys
import pyarrow as pa, pyarrow.compute as pc, pyarrow.csv as pacsv
names = ["phone", "first_name", "city", "order"]
t = pacsv.read_csv(sys.argv[1], convert_options=pacsv.ConvertOptions(
    column_types={n: pa.string() for n in names}))
parts = [p for p in sys.argv[3].replace(">>", "<<").split("<<")]
pieces = [t[p.strip()] if i % 2 else p for i, p in enumerate(parts)]
text = pc.binary_join_element_wise(*pieces, "")
pacsv.write_csv(t.append_column("text", text), sys.argv[2])
"""


def run_timed(args: list[str]) -> tuple[float, float]:
    """Wall seconds and peak memory (MiB) of one subprocess."""
    start = time.perf_counter()
    proc = subprocess.Popen(args, stdout=subprocess.DEVNULL)
    _, status, usage = os.wait4(proc.pid, 0)
    elapsed = time.perf_counter() - start
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode:
        raise RuntimeError(f"{args} exited {proc.returncode}")
    return elapsed, usage.ru_maxrss / 1024


def time_dry_run(campaign: Path, reports: Path) -> tuple[float, float]:
    return run_timed([sys.executable, "-m", "batchsms", "dry-run", str(campaign),
                      "--reports", str(reports), "--json"])


def time_floor(sheet: Path, out: Path) -> tuple[float, float]:
    return run_timed([sys.executable, "-c", FLOOR, str(sheet), str(out), TEMPLATE])


def baseline(sheet: Path, rows: int) -> float:
    """The obvious per-row loop, with the same libraries, on the first ``rows`` rows."""
    env = SandboxedEnvironment(variable_start_string="<<", variable_end_string=">>",
                               block_start_string="<%", block_end_string="%>",
                               undefined=StrictUndefined)
    template = env.from_string(TEMPLATE)
    start = time.perf_counter()
    frame = pd.read_csv(sheet, dtype=str, keep_default_na=False, nrows=rows)
    total = Decimal(0)
    for _, row in frame.iterrows():
        try:
            number = phonenumbers.parse(row["phone"], "DK")
        except phonenumbers.NumberParseException:
            continue
        if not phonenumbers.is_valid_number(number):
            continue
        text = template.render(**row.to_dict())
        region = phonenumbers.region_code_for_number(number)
        total += count(text).segments * PRICES.get(region, Decimal("0.05"))
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--baseline-rows", type=int, default=100_000)
    parser.add_argument("--no-baseline", action="store_true")
    parser.add_argument("--window", action="store_true",
                        help="quiet hours: a weekday window with holidays, and an opt-out line")
    parser.add_argument("--repeat", type=int, default=3, help="runs of each; the best counts")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        sheet = folder / "contacts.csv"
        t0 = time.perf_counter()
        write_sheet(sheet, args.rows)
        print(f"sheet: {args.rows:,} rows, {sheet.stat().st_size / 2**20:.0f} MiB "
              f"(generated in {time.perf_counter() - t0:.1f} s)")
        campaign = write_campaign(folder, sheet, args.window)
        print(f"load average before: {' '.join(f'{x:.2f}' for x in os.getloadavg())} "
              f"on {os.cpu_count()} CPUs, Python {sys.version.split()[0]}")
        runs = []
        for _ in range(args.repeat):  # interleaved, best of each: load from others varies
            runs.append((time_dry_run(campaign, folder / "reports"),
                         time_floor(sheet, folder / "floor.csv")))
        (elapsed, peak), _ = min(runs, key=lambda r: r[0][0])
        floor, floor_peak = min(r[1] for r in runs)
        print(f"batchsms dry-run: {elapsed:.2f} s wall, peak memory {peak:.0f} MiB, "
              f"{args.rows / elapsed:,.0f} rows/s (best of {args.repeat})")
        print(f"I/O floor:        {floor:.2f} s wall, peak memory {floor_peak:.0f} MiB")
        print(f"dry run / I/O floor: {elapsed / floor:.1f}x (target 3x)")
        if args.no_baseline:
            return
        n = min(args.baseline_rows, args.rows)
        spent = baseline(sheet, n)
        projected = spent * args.rows / n
        note = "" if n == args.rows else f" (measured on {n:,} rows, extrapolated)"
        print(f"per-row baseline: {projected:.1f} s for {args.rows:,} rows{note}")
        print(f"per-row loop / dry run: {projected / elapsed:.1f}x")
        print(f"load average after: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")

if __name__ == "__main__":
    main()
