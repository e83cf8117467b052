"""Benchmark: the emulators' own CPU cost per send request and per recipient.

Not a test (pytest does not collect this folder): it measures and prints.

    python tests/benchmarks/bench_emulator.py                     # Mailjet and MailerSend
    python tests/benchmarks/bench_emulator.py --provider mailersend --requests 2000

It starts `python -m batchsms emulator` (uvicorn) in its own process, lifts the rate limits
through the control interface, drives send requests shaped as the runner sends them (Mailjet:
one message a request; MailerSend: 50 recipients with personalized texts) with an httpx
client keeping ``--in-flight`` requests open, and reads the emulator process's CPU time
(utime + stime in /proc/<pid>/stat) before and after. The client runs in this process, so
its CPU is not counted.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import time

import httpx
from bench_send import emulator

RECIPIENTS = {"mailjet": 1, "mailersend": 50}
TEXT = "Hi Name{i}, your order {order} is ready for pickup today."


def number(i: int) -> str:
    return f"+1{212 + i // 8_000_000}{2_000_000 + i % 8_000_000:07d}"


def bodies(provider: str, requests: int) -> list[bytes]:
    """Request bodies as the runner's clients build them, every recipient distinct."""
    per = RECIPIENTS[provider]
    out = []
    for r in range(requests):
        rows = range(r * per, (r + 1) * per)
        if provider == "mailjet":
            i = rows[0]
            body = {"From": "BenchShop", "To": number(i), "Text": TEXT.format(i=i, order=i)}
        else:
            body = {"from": "+12015550100", "to": [number(i) for i in rows], "text": "{{ text }}",
                    "personalization": [{"phone_number": number(i),
                                         "data": {"text": TEXT.format(i=i, order=i)}}
                                        for i in rows]}
        out.append(json.dumps(body).encode())
    return out


PATHS = {"mailjet": "/mailjet/v4/sms-send", "mailersend": "/mailersend/v1/sms"}
TOKENS = {"mailjet": "rehearsal-token", "mailersend": "rehearsal-key"}
ACCEPTED = {"mailjet": 200, "mailersend": 202}


async def drive(url: str, provider: str, payloads: list[bytes], in_flight: int) -> None:
    headers = {"Authorization": f"Bearer {TOKENS[provider]}",
               "Content-Type": "application/json"}
    queue = iter(payloads)

    async def worker(client: httpx.AsyncClient) -> None:
        for payload in queue:
            response = await client.post(url, content=payload, headers=headers)
            if response.status_code != ACCEPTED[provider]:
                raise RuntimeError(f"{provider} answered {response.status_code}")

    limits = httpx.Limits(max_connections=in_flight)
    async with httpx.AsyncClient(limits=limits, timeout=30) as client:
        await asyncio.gather(*(worker(client) for _ in range(in_flight)))


def measure(provider: str, requests: int, in_flight: int) -> None:
    payloads = bodies(provider, requests + requests // 10)
    warm, timed = payloads[:requests // 10], payloads[requests // 10:]
    with emulator() as served:
        url = served.root + PATHS[provider]
        asyncio.run(drive(url, provider, warm, in_flight))
        cpu, started = served.cpu(), time.perf_counter()
        asyncio.run(drive(url, provider, timed, in_flight))
        seconds, cpu = time.perf_counter() - started, served.cpu() - cpu
    per_request = cpu / requests * 1e6
    recipients = RECIPIENTS[provider]
    print(f"  {provider:<11} {requests:>6,} requests x {recipients:>2} recipients "
          f"in {seconds:6.2f} s: emulator CPU {per_request:7.0f} µs/request, "
          f"{per_request / recipients:6.1f} µs/recipient, "
          f"{requests * recipients / seconds:>8,.0f} recipients/s")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--provider", choices=sorted(RECIPIENTS), nargs="*",
                        default=sorted(RECIPIENTS))
    parser.add_argument("--requests", type=int, default=None,
                        help="send requests per provider (default: 20,000 Mailjet, 2,000 "
                             "MailerSend)")
    parser.add_argument("--in-flight", type=int, default=8)
    args = parser.parse_args()
    print(f"emulator CPU per send request ({os.cpu_count()} CPUs, {args.in_flight} in flight)")
    for provider in args.provider:
        default = 20_000 if provider == "mailjet" else 2_000
        measure(provider, args.requests or default, args.in_flight)


if __name__ == "__main__":
    main()
