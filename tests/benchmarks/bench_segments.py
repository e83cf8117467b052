"""Time batchsms.plan.segment_columns.count_column against a per-row `count` loop.

    python tests/benchmarks/bench_segments.py [--rows 1000000] [--script latin|cyrillic|chinese]
                                               [--loop-rows 100000]

The latin mix is the one the segment counter is tuned for: texts of 80-200 characters,
~70% GSM-7 (some with extension characters such as the euro sign and braces), ~30% UCS-2
(accents such as c-cedilla and l-stroke; some with emoji, flags, ZWJ families and skin
tones). The other scripts are whole texts in that script. Times are the best of three
runs, after a warm-up call; the per-row loop runs once, over the first --loop-rows texts
(100,000 by default; 0 for all of them), and is scaled to --rows.
"""

from __future__ import annotations

import argparse
import random
import time

import pandas as pd

from batchsms.plan.segment_columns import count_column, smart_replace_column
from batchsms.plan.segments import count

WORDS = ["hello", "your", "order", "is", "ready", "for", "pickup", "at", "the", "store", "on",
         "main", "street", "today", "please", "confirm", "reply", "STOP", "to", "opt", "out",
         "discount", "code", "valid", "until", "friday", "thanks", "shopping", "with", "us",
         "see", "you", "soon", "50%", "off", "everything"]
GSM_EXTRAS = ["\u20ac", "{", "}", "[", "]", "|", "~", "^", "\\", "\u00e9", "\u00fc", "\u00d8",
              "\u00f1", "\u00df", "\u00a3", "@", "\u0394"]
ACCENTS = ["\u00e7", "\u0142", "\u0105", "\u0119", "\u015b", "\u017c", "\u0151", "\u00e1",
           "\u00ed", "\u00f3", "\u00fa", "\u00e2", "\u00ea", "\u015f", "\u011f"]
EMOJI = ["\U0001f600", "\U0001f389", "\U0001f44d", "\u2764", "\U0001f525", "\u2705"]
CLUSTERS = ["\U0001f1e9\U0001f1f0", "\U0001f1eb\U0001f1f7",
            "\U0001f468\u200d\U0001f469\u200d\U0001f467", "\U0001f44d\U0001f3fd",
            "\U0001f469\U0001f3fb\u200d\U0001f4bb", "\u2764\ufe0f"]
SCRIPTS = {"cyrillic": "\u0430\u0431\u0432\u0433\u0434\u0435\u0451\u0436\u0437\u0438\u0439"
                       "\u043a\u043b\u043c\u043d\u043e\u043f\u0440\u0441\u0442\u0443\u0444",
           "chinese": "".join(chr(c) for c in range(0x4E00, 0x4E00 + 2000))}


def latin_text(rng: random.Random) -> str:
    kind = rng.random()
    if kind < 0.35:
        extras: list[str] = []
    elif kind < 0.70:
        extras = GSM_EXTRAS
    elif kind < 0.85:
        extras = ACCENTS
    elif kind < 0.92:
        extras = ACCENTS + EMOJI
    else:
        extras = ACCENTS + EMOJI + CLUSTERS
    return compose(rng, WORDS, extras)


def script_text(rng: random.Random, letters: str) -> str:
    words = ["".join(rng.choices(letters, k=rng.randint(2, 8))) for _ in range(50)]
    return compose(rng, words, [])


def compose(rng: random.Random, words: list[str], extras: list[str]) -> str:
    target, parts, size = rng.randint(80, 200), [], 0
    while size < target:
        piece = rng.choice(extras) if extras and rng.random() < 0.15 else rng.choice(words)
        parts.append(piece)
        size += len(piece) + 1
    return " ".join(parts)[:target]


def generate(rows: int, script: str) -> pd.Series:
    rng = random.Random(1)
    distinct = [latin_text(rng) if script == "latin" else script_text(rng, SCRIPTS[script])
                for _ in range(min(rows, 200_000))]
    return pd.Series((distinct * (rows // len(distinct) + 1))[:rows])


def best_of_three(function, texts: pd.Series) -> float:
    function(texts.iloc[:1000])
    runs = []
    for _ in range(3):
        started = time.perf_counter()
        function(texts)
        runs.append(time.perf_counter() - started)
    return min(runs)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--script", choices=["latin", *SCRIPTS], default="latin")
    parser.add_argument("--loop-rows", type=int, default=100_000,
                        help="texts for the per-row loop, scaled to --rows (0: all)")
    args = parser.parse_args()
    texts = generate(args.rows, args.script)
    frame = count_column(texts)
    print(f"{args.rows:,} {args.script} texts, {texts.str.len().mean():.0f} characters on "
          f"average; {(frame.encoding == 'UCS-2').mean():.0%} UCS-2; segments "
          f"{frame.segments.value_counts().sort_index().to_dict()}")
    print(f"count_column          {best_of_three(count_column, texts):7.3f} s")
    print(f"smart_replace_column  {best_of_three(smart_replace_column, texts):7.3f} s")
    sample = texts.iloc[: args.loop_rows or args.rows].tolist()
    started = time.perf_counter()
    for text in sample:
        count(text)
    loop = (time.perf_counter() - started) * args.rows / len(sample)
    scaled = "" if len(sample) == args.rows else f" (scaled from {len(sample):,} texts)"
    print(f"count() per row       {loop:7.3f} s{scaled}")


if __name__ == "__main__":
    main()
