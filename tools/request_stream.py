"""A request stream replayed by client threads, timed as the clients of a server see it.

Needs only the standard library and NumPy, so the peers' interpreter (`bench_peers.py --stream`) uses it as
well as `bench_stream.py`: both pick the same rows for their requests (`request_rows`) and report the same
figures (`replay`).
"""

from __future__ import annotations

import itertools
import threading
import time

import numpy as np

STREAM_SEED = 0


def request_rows(num_rows: int, rows_per_request: int, requests: int, seed: int = STREAM_SEED) -> np.ndarray:
    """The test rows of each request, int64 [requests, rows_per_request], drawn with replacement.

    The same arguments give the same rows in every process (NumPy's PCG64 stream is fixed by the seed), so
    tfxc's models and the peers answer the same requests.
    """
    if num_rows < 1:
        raise ValueError("no rows to draw requests from")
    return np.random.default_rng(seed).integers(0, num_rows, (requests, rows_per_request), dtype=np.int64)


def replay(call, requests: list, threads: int, rows_per_request: int, warmup: int = 10) -> dict:
    """Sends every request in `requests` once to `call`, from `threads` client threads.

    Each client sends its next request as soon as the last one is answered (a closed loop, the load a pool
    of synchronous clients puts on a server), so with more clients than cores requests queue for the
    cores as they would in a server. `warmup` requests are sent first, untimed, from one thread.

    Returns the figures a server's operator reads: `p50_ms` and `p99_ms`, each request's time from call to
    answer; `rows_per_s`, all rows answered over the wall time from the first send to the last answer.
    """
    for request in requests[:warmup]:
        call(request)
    latencies = np.zeros(len(requests))
    order = itertools.count()  # next() on a count is atomic under the GIL: each request goes out once
    failures = []

    def client():
        for i in order:
            if i >= len(requests) or failures:
                return
            start = time.perf_counter()
            try:
                call(requests[i])
            except Exception as error:  # noqa: BLE001 (re-raised below, in the caller's thread)
                failures.append(error)
                return
            latencies[i] = time.perf_counter() - start

    clients = [threading.Thread(target=client, daemon=True) for _ in range(threads)]
    start = time.perf_counter()
    for thread in clients:
        thread.start()
    for thread in clients:
        thread.join()
    wall = time.perf_counter() - start
    if failures:
        raise failures[0]
    ms = latencies * 1000
    return {"threads": threads, "rows_per_request": rows_per_request, "requests": len(requests),
            "p50_ms": float(np.median(ms)), "p99_ms": float(np.percentile(ms, 99)),
            "rows_per_s": len(requests) * rows_per_request / wall}


def stream_line(system: str, figures: dict) -> str:
    """One printed line of `replay`'s figures."""
    return (f"{system:18s} {figures['rows_per_request']:4d} rows x {figures['threads']} clients: "
            f"p50 {figures['p50_ms']:8.3f} ms  p99 {figures['p99_ms']:8.3f} ms  {figures['rows_per_s']:10,.0f} rows/s"
            + ("  (calls serialised)" if figures.get("serialised") else ""))
