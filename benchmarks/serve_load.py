"""Load test of ``sr-deploy serve`` on loopback: latency, throughput, errors and server memory, batched against
unbatched and one request at a time.

Starts the server as its own process on a free 127.0.0.1 port (``--max-batch`` windows per batch, then 1),
sends ``--requests`` requests at ``--concurrency`` with a mix of LR sizes cut from the embedded photos, plus a
share of deliberate decompression bombs (a PNG header claiming 12000x12000, answered 413), and records every
request's status and latency and the server's resident memory (polled every 50 ms). Runs, in this order:

1. ``batched``: cross-request batching (``--max-batch``, ``--batch-wait-ms``) at ``--concurrency``, twice
   on the same server (``batched`` and ``batched, again``): the second run shows whether memory grows;
2. ``unbatched``: a server with ``--max-batch 1`` at the same concurrency;
3. ``one at a time``: the batched server at concurrency 1.

Bounded: ``--requests`` per run, ``--max-seconds`` per run (no new requests after it), and a request
timeout; everything talks to 127.0.0.1 only and the servers are stopped (SIGTERM) at the end. Writes
``serve_load.{csv,md}`` to ``--out`` (``{machine}`` replaced by the machine's folder name).

    python benchmarks/serve_load.py --model srresnet-x4 --backend torch --out 'benchmarks/results/{machine}'
"""

from __future__ import annotations

import argparse
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import httpx
import numpy as np
import polars as pl
import psutil

from sr_deploy.bench.environment import environment
from sr_deploy.bench.report import markdown_table
from sr_deploy.bench.results import results_folder, save_markdown, save_table
from sr_deploy.data.datasets import embedded_images
from sr_deploy.data.image_io import encode_image, read_image
from sr_deploy.hardware import this_cpu

BOMB = "bomb"


@dataclass
class Outcome:
    kind: str  # the request's size ("48x48") or "bomb"
    status: int  # HTTP status, 0 for a transport error
    seconds: float


def bomb_png(width: int = 12_000, height: int = 12_000) -> bytes:
    """A PNG whose header claims ``width x height`` RGB pixels, a few dozen bytes long."""
    import struct
    import zlib

    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0" * 16)) + chunk(b"IEND", b"")


def payloads(sizes: list[tuple[int, int]], bombs: float, count: int, seed: int) -> list[tuple[str, bytes]]:
    """``count`` request bodies: crops of the embedded photos in the given sizes (PNG), and a share ``bombs``
    of decompression bombs, in a seeded random order."""
    rng = np.random.default_rng(seed)
    photos = [read_image(p)[:, :, :3] for p in embedded_images("train")]
    crops = {}
    for h, w in sizes:
        photo = next(p for p in photos if p.shape[0] >= h and p.shape[1] >= w)
        crops[f"{h}x{w}"] = encode_image(np.ascontiguousarray(photo[:h, :w]), "png")
    bomb = bomb_png()
    kinds = list(crops)
    out = []
    for _ in range(count):
        if rng.random() < bombs:
            out.append((BOMB, bomb))
        else:
            kind = kinds[int(rng.integers(len(kinds)))]
            out.append((kind, crops[kind]))
    return out


class Server:
    """``sr-deploy serve`` as a child process on a free loopback port, with its peak memory polled."""

    def __init__(self, args: argparse.Namespace, max_batch: int) -> None:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            self.port = s.getsockname()[1]
        cmd = [sys.executable, "-m", "sr_deploy.cli", "serve", "--model", args.model, "--backend", args.backend,
               "--port", str(self.port), "--max-batch", str(max_batch), "--batch-wait-ms", str(args.batch_wait_ms),
               "--max-queue", str(args.max_queue), "--grace", "30"]
        if args.window:
            cmd += ["--window", str(args.window)]
        self.command = " ".join(cmd[2:])
        self.proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        self.url = f"http://127.0.0.1:{self.port}"
        deadline = time.monotonic() + args.start_timeout
        while True:
            if self.proc.poll() is not None:
                raise RuntimeError(f"the server exited: {self.proc.stderr.read()[-2000:] if self.proc.stderr else ''}")
            if time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"the server was not ready within {args.start_timeout} s")
            try:
                if httpx.get(f"{self.url}/readyz", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            time.sleep(0.5)
        self.process = psutil.Process(self.proc.pid)

    def rss(self) -> int:
        return int(self.process.memory_info().rss)

    def stop(self) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(60)
            except subprocess.TimeoutExpired:
                self.proc.kill()
        return self.proc.wait()


def server_counters(server: Server) -> dict[str, float]:
    """Batches, windows and model seconds so far, from the server's ``/metrics``."""
    text = httpx.get(f"{server.url}/metrics", timeout=10).text
    names = {"batches": "sr_deploy_batch_size_count", "windows": "sr_deploy_batch_size_sum",
             "model_s": "sr_deploy_model_seconds_total"}
    values = {}
    for key, name in names.items():
        match = re.search(rf"^{name} (\S+)$", text, re.M)
        values[key] = float(match.group(1)) if match else float("nan")
    return values


def load(server: Server, bodies: list[tuple[str, bytes]], concurrency: int, max_seconds: float
         ) -> tuple[list[Outcome], float, int, int, dict[str, float]]:
    """Send ``bodies`` at ``concurrency``; (outcomes, wall seconds, peak RSS bytes, RSS at the end, what the
    server's counters say about this run: batches, windows, model seconds)."""
    before = server_counters(server)
    peak = [server.rss()]
    done = threading.Event()

    def poll() -> None:
        while not done.wait(0.05):
            peak[0] = max(peak[0], server.rss())

    stop_at = time.monotonic() + max_seconds
    with httpx.Client(base_url=server.url, timeout=120) as client:

        def send(item: tuple[str, bytes]) -> Outcome | None:
            kind, body = item
            if time.monotonic() > stop_at:
                return None
            start = time.perf_counter()
            try:
                status = client.post("/v1/upscale", content=body, headers={"content-type": "image/png"}).status_code
            except httpx.TransportError:
                status = 0
            return Outcome(kind, status, time.perf_counter() - start)

        poller = threading.Thread(target=poll, daemon=True)
        poller.start()
        start = time.perf_counter()
        with ThreadPoolExecutor(concurrency) as pool:
            results = [r for r in pool.map(send, bodies) if r is not None]
        wall = time.perf_counter() - start
        done.set()
        poller.join()
    after = server_counters(server)
    counters = {key: after[key] - before[key] for key in after}
    return results, wall, max(peak[0], server.rss()), server.rss(), counters


def summarize(name: str, concurrency: int, max_batch: int, outcomes: list[Outcome], wall: float, peak: int,
              end: int, counters: dict[str, float]) -> dict[str, object]:
    served = [o.seconds for o in outcomes if o.status == 200]
    pct = np.percentile(served, [50, 90, 99]) if served else [float("nan")] * 3
    count = {s: sum(1 for o in outcomes if o.status == s) for s in (200, 413, 503)}
    wrong_413 = sum(1 for o in outcomes if o.status == 413 and o.kind != BOMB)
    bombs_not_413 = sum(1 for o in outcomes if o.kind == BOMB and o.status != 413)
    errors = len(outcomes) - sum(count.values()) + wrong_413 + bombs_not_413
    return {"run": name, "concurrency": concurrency, "max_batch": max_batch, "requests": len(outcomes),
            "ok": count[200], "deliberate_413": count[413] - wrong_413, "busy_503": count[503], "errors": errors,
            "p50_ms": round(float(pct[0]) * 1000), "p90_ms": round(float(pct[1]) * 1000),
            "p99_ms": round(float(pct[2]) * 1000), "images_per_s": round(count[200] / wall, 2),
            "wall_s": round(wall, 1), "mean_batch": round(counters["windows"] / max(counters["batches"], 1), 2),
            "model_s": round(counters["model_s"], 1), "peak_rss_mb": round(peak / 2**20),
            "end_rss_mb": round(end / 2**20)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="srresnet-x4")
    parser.add_argument("--backend", default="torch")
    parser.add_argument("--requests", type=int, default=200)
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--sizes", default="24x24,32x32,40x40,48x48,32x64", help="LR HxW, comma-separated")
    parser.add_argument("--bombs", type=float, default=0.05, help="share of deliberate 413 requests")
    parser.add_argument("--max-batch", type=int, default=8)
    parser.add_argument("--batch-wait-ms", type=float, default=10.0)
    parser.add_argument("--max-queue", type=int, default=16)
    parser.add_argument("--window", type=int, default=128)
    parser.add_argument("--max-seconds", type=float, default=300.0, help="per run: no new requests after it")
    parser.add_argument("--start-timeout", type=float, default=300.0)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", required=True, help="results folder ({machine} is replaced)")
    args = parser.parse_args()
    sizes = [tuple(int(v) for v in s.lower().split("x")) for s in args.sizes.split(",")]
    bodies = payloads(sizes, args.bombs, args.requests, args.seed)  # type: ignore[arg-type]
    rows = []
    batched = Server(args, args.max_batch)
    try:
        command = batched.command
        for name in ("batched", "batched, again"):
            rows.append(summarize(name, args.concurrency, args.max_batch,
                                  *load(batched, bodies, args.concurrency, args.max_seconds)))
            print(rows[-1], flush=True)
        single = Server(args, 1)
        try:
            rows.append(summarize("unbatched", args.concurrency, 1,
                                  *load(single, bodies, args.concurrency, args.max_seconds)))
            print(rows[-1], flush=True)
        finally:
            single.stop()
        rows.append(summarize("one at a time", 1, args.max_batch, *load(batched, bodies, 1, args.max_seconds)))
        print(rows[-1], flush=True)
    finally:
        exit_code = batched.stop()
    table = pl.DataFrame(rows)
    env = environment()
    out = results_folder(args.out, env)
    save_table(table, out, "serve_load", formats=("csv",))
    cpu = this_cpu()
    first, again = rows[0], rows[1]
    text = [
        f"# `sr-deploy serve` under load ({args.model}, {args.backend})",
        "",
        f"CPU: {cpu.model} ({cpu.isa}), {env['cpu']['logical_cores']} cores, **shared with other jobs while "
        f"measured** (compare rows, not absolute numbers). {args.requests} requests per run, LR sizes "
        f"{args.sizes} (crops of the embedded photos, PNG) and {args.bombs:.0%} decompression bombs (PNG header "
        f"claiming 12000x12000: 413 by design); window {args.window}, batch wait {args.batch_wait_ms:g} ms, "
        f"max queue {args.max_queue}. Latency percentiles of the 200 answers; `errors` counts anything but "
        "200 for an image and 413 for a bomb, and 503s are listed apart (`busy_503`); `mean_batch`: windows per "
        "batch and `model_s`: seconds inside the model, from the server's /metrics. Server memory: resident "
        "set of the server process, polled every 50 ms.",
        "",
        markdown_table(table),
        "",
        f"Batched vs one request at a time: {first['images_per_s']} vs {rows[3]['images_per_s']} images/s; "
        f"batched vs unbatched at concurrency {args.concurrency}: {first['images_per_s']} vs "
        f"{rows[2]['images_per_s']} images/s. Peak server RSS, first and second batched run: "
        f"{first['peak_rss_mb']} MB and {again['peak_rss_mb']} MB (end of run: {first['end_rss_mb']} MB and "
        f"{again['end_rss_mb']} MB). Server exit status after SIGTERM: {exit_code}.",
        "",
        f"Server: `{command}`",
        "",
        f"Command: `python benchmarks/serve_load.py --model {args.model} --backend {args.backend} --requests "
        f"{args.requests} --concurrency {args.concurrency} --sizes {args.sizes} --bombs {args.bombs} --max-batch "
        f"{args.max_batch} --batch-wait-ms {args.batch_wait_ms:g} --max-queue {args.max_queue} --window "
        f"{args.window} --out 'benchmarks/results/{{machine}}'`",
    ]
    print(save_markdown(out, "serve_load", text))


if __name__ == "__main__":
    os.environ.setdefault("COLUMNS", "200")
    main()
