"""Sweeps on a Dask cluster: the only module that imports Dask (an optional extra).

A chunk of seeds (sweep.Chunk) is the unit of work. What travels to a worker is the resolved
config as YAML text, the seed tuple and a device string; the worker rebuilds the config,
trains the chunk with `sweep.train_chunk` (a pure function of config and seeds) and sends back
plain tensors: per-seed parameters, losses, epochs, outcomes. No models, no pickled configs,
no shared filesystem: the client writes the sweep directory, chunk by chunk, as results come
back in any order. Seed k's result does not depend on the other seeds of its chunk, the chunk
size, the thread count or the machine's BLAS path for batches of one (see engine.py), so a
sweep on any number of workers is bit-identical to the same sweep in one process.

Faults: a task is retried (`RETRIES`), and Dask reschedules the chunks of a worker that died,
so a lost worker costs only the chunks it was training. A lost scheduler, SIGINT or SIGTERM
cancel what is in flight; the sweep ends interrupted with every chunk that came back stored,
and `tiny sweep --resume` finishes it, with a cluster or without.
"""

from __future__ import annotations

import contextlib
import logging
import socket
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from typing import Any

from tiny_cli.errors import TinyError

INSTALL = "pip install -e '.[dask]'"
RETRIES = 2  # a chunk whose task raised (say, a worker out of memory) is tried twice more
# Seconds to reach a scheduler, and to get it back once lost: Dask's own setting
# (distributed.comm.timeouts.connect, 30 s; DASK_DISTRIBUTED__COMM__TIMEOUTS__CONNECT=5s).
CONNECT_TIMEOUT = "distributed.comm.timeouts.connect"
POLL = 0.2  # seconds between looks at the stop flag (futures wake the loop at once)
STATUS_EVERY = 1.0  # seconds between asking the scheduler how many workers it has
CUDA_SHARE = 0.5  # of a GPU's free memory a chunk may use (activations, saved copies)


REFUSED_WITHIN = 1.0  # seconds: a refused connection, or an unknown host, is known at once


def refuse_fast(address: str) -> None:
    """Fail in a second when a tcp address refuses the connection or names no host, before
    Dask's connect timeout (meant for a scheduler that is slow to answer) is waited out.
    A host that does not answer in that second is left to Dask's timeout."""
    from urllib.parse import urlsplit

    where = urlsplit(address if "://" in address else f"tcp://{address}")
    try:
        host, port = where.hostname, where.port
    except ValueError:  # a port that is not a number: Dask says what is wrong with it
        return
    if where.scheme != "tcp" or not host or port is None:
        return
    try:
        socket.create_connection((host, port), timeout=REFUSED_WITHIN).close()
    except ConnectionRefusedError:
        raise TinyError(
            f"--cluster {address}: cannot reach a scheduler: connection refused "
            f"(nothing listens on {host}:{port})"
        ) from None
    except socket.gaierror as exc:
        raise TinyError(
            f"--cluster {address}: cannot reach a scheduler: unknown host {host!r} ({exc.strerror})"
        ) from None
    except OSError:  # no answer yet (a timeout), unreachable network, ...: Dask's timeout
        return


def require() -> None:
    """One line if Dask is missing (or broken); the CLI asks before it imports torch."""
    try:
        import distributed  # noqa: F401
    except ImportError:
        raise TinyError(f"--cluster and --workers need Dask distributed: {INSTALL}") from None


def train_remote(config_yaml: str, seeds: tuple[int, ...], device: str) -> dict[str, Any]:
    """What a worker runs for one chunk: config text and seeds in, plain tensors out."""
    import torch
    import yaml

    from tiny_cli import config
    from tiny_cli.app import sweep

    # One torch thread per Dask thread: a worker with --nthreads k trains k chunks at once.
    torch.set_num_threads(1)
    cfg = config.validate(yaml.safe_load(config_yaml), "the sweep's config (from the client)")
    part = sweep.train_chunk(cfg, seeds, device=device)
    assert part is not None  # nothing asks a worker's chunk to stop; cancelling drops it
    return part


def free_cuda_bytes(device: str) -> int:
    """A worker's free memory on `device` (0: no such CUDA device there)."""
    import torch

    if not torch.cuda.is_available():
        return 0
    index = torch.device(device).index
    if index is not None and index >= torch.cuda.device_count():
        return 0
    free, _ = torch.cuda.mem_get_info(index)
    return int(free)


def cuda_chunk(free_bytes: int, cfg: Any, n_samples: int) -> int:
    """Seeds per chunk so that a chunk's activations fill CUDA_SHARE of `free_bytes`."""
    from tiny_cli.app import sweep

    floats = int(free_bytes * CUDA_SHARE) // 4
    default = sweep.chunk_size(cfg, n_samples)  # at CHUNK_FLOATS floats
    scaled = default * floats // sweep.CHUNK_FLOATS
    return max(1, min(65536, scaled))


def _quiet() -> None:
    """The sweep says what happened in one line; Dask's own log (reconnect attempts, a lost
    worker) is for the scheduler's and workers' logs, not the client's stderr."""
    names = [n for n in logging.root.manager.loggerDict if n.split(".")[0] in _LOGGERS]
    for name in [*_LOGGERS, *names]:
        logging.getLogger(name).setLevel(logging.CRITICAL + 1)


_LOGGERS = ("distributed", "tornado", "bokeh", "asyncio")


class Cluster:
    """A connected Dask client (and the local cluster it started, if any); a sweep runner."""

    def __init__(
        self,
        address: str | None,
        workers: int | None,
        device: str = "cpu",
        on_status: Callable[[str], None] | None = None,
    ) -> None:
        import dask.config
        from dask.utils import parse_timedelta
        from distributed import Client, LocalCluster

        self.timeout = float(parse_timedelta(dask.config.get(CONNECT_TIMEOUT), "s") or 30)
        self.device = device
        self.on_status = on_status
        self.local: Any = None
        self._next_status = 0.0
        self._known: dict[str, int] = {}
        _quiet()
        if address is not None:
            refuse_fast(address)
            try:
                self.client = Client(address, timeout=self.timeout, set_as_default=False)
            except (OSError, TimeoutError, ValueError) as exc:
                first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
                raise TinyError(
                    f"--cluster {address}: cannot reach a scheduler (no answer within "
                    f"{self.timeout:g} s, {CONNECT_TIMEOUT}): {first}"
                ) from None
        else:
            self.local = LocalCluster(
                n_workers=workers,
                threads_per_worker=1,
                processes=True,
                silence_logs=logging.CRITICAL,
                dashboard_address=":0",
            )
            self.client = Client(self.local, set_as_default=False)
        self.where = address or f"a local cluster of {workers} worker(s)"
        self.lost = f"a lost scheduler ({address})" if address else "a lost local cluster"
        _quiet()  # again: loggers Dask made while connecting

    def dashboard(self) -> str | None:
        """Dask's dashboard link, if a dashboard answers there: without bokeh on the
        scheduler, Dask still names a link, which answers 404 or "Dask needs bokeh"."""
        import urllib.request

        try:
            link = str(self.client.dashboard_link or "")
            with urllib.request.urlopen(link, timeout=1) as answer:
                page = answer.read(4096)
        except Exception:
            return None
        return None if b"needs bokeh" in page else link

    def workers(self) -> dict[str, int]:
        """Worker address -> threads, as the scheduler last told the client."""
        info = self.client.scheduler_info(n_workers=-1).get("workers", {})
        return {addr: int(w.get("nthreads", 1)) for addr, w in info.items()}

    def slots(self) -> int:
        """Chunks the workers train at once now (their threads; at least 1): the sweep's
        chunk count is a multiple of it (`sweep.plan`)."""
        return max(1, sum(self.workers().values()))

    def cuda_free(self) -> int:
        """The least free memory on the device among the workers; every worker must have
        it (a TinyError names one that does not). Asked before anything is stored."""
        self.client.wait_for_workers(1, timeout=self.timeout)
        free = self.client.run(free_cuda_bytes, self.device)
        lacking = [addr for addr, b in free.items() if b <= 0]
        if lacking:
            raise TinyError(f"--device {self.device}: worker {lacking[0]} has no such CUDA device")
        return int(min(free.values()))

    def chunk_for(self, cfg: Any, n_samples: int) -> int | None:
        """On CUDA, seeds per chunk from the workers' free memory (None on the CPU: the
        usual memory rule)."""
        if not self.device.startswith("cuda"):
            return None
        return cuda_chunk(self.cuda_free(), cfg, n_samples)

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self.client.close(timeout=5)
        if self.local is not None:
            with contextlib.suppress(Exception):
                self.local.close(timeout=10)

    def __enter__(self) -> Cluster:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __call__(
        self,
        todo: Sequence[Any],
        points: Sequence[Any],
        should_stop: Callable[[], bool],
        on_epoch: Callable[[int], None],
    ) -> Iterator[tuple[Any, dict[str, Any]]]:
        """The sweep runner (sweep.Runner): chunks yielded as they come back, in any order.

        Only as many chunks are in flight as the workers have threads (more as workers
        join): a scheduler left to queue them all hands a single-threaded worker two at a
        time (its worker-saturation, 1.1, rounds up), and a 2-worker sweep of 2 chunks then
        trains both on one worker (measured).
        """
        from distributed import as_completed
        from distributed.comm.core import CommClosedError

        from tiny_cli import config
        from tiny_cli.app import sweep

        texts = {p: config.dump_yaml(points[p].cfg) for p in {c.point for c in todo}}
        tag = uuid.uuid4().hex[:8]  # keys unique on a shared scheduler, readable on its dashboard
        waiting = list(todo)
        waiting.reverse()  # pop() takes them in plan order
        futures: dict[Any, Any] = {}
        done = as_completed(loop=self.client.loop)
        arrived = threading.Event()
        lost_since: float | None = None
        try:
            while waiting or futures:
                if should_stop():
                    return
                while waiting and len(futures) < max(1, sum(self._workers().values())):
                    c = waiting.pop()
                    future = self.client.submit(
                        train_remote, texts[c.point], tuple(c.seeds), self.device,
                        key=f"tiny-{tag}-{c.file.removesuffix('.pt')}", retries=RETRIES,
                        pure=False,
                    )  # fmt: skip
                    futures[future] = c
                    done.add(future)
                    future.add_done_callback(lambda _: arrived.set())
                arrived.wait(POLL)  # back at once when a chunk is
                arrived.clear()
                for future in done.next_batch(block=False) if done.has_ready() else []:
                    chunk = futures.pop(future)
                    if future.status == "cancelled":
                        raise sweep.RunnerLost(self.lost)
                    try:
                        part = future.result()
                    except (CommClosedError, OSError) as exc:  # the scheduler went mid-fetch
                        raise sweep.RunnerLost(self.lost) from exc
                    future.release()
                    on_epoch(len(chunk.seeds) * points[chunk.point].cfg.train.epochs)
                    yield chunk, part
                if self.client.status != "running":
                    lost_since = lost_since or time.monotonic()
                    if time.monotonic() - lost_since > self.timeout:
                        raise sweep.RunnerLost(self.lost)
                else:
                    lost_since = None
                self._status(len(futures), len(waiting))
                on_epoch(0)  # still alive: the sweep's heartbeat
        finally:
            if futures:
                with contextlib.suppress(Exception):
                    self.client.cancel(list(futures))

    def _workers(self) -> dict[str, int]:
        """Worker address -> threads, asked of the scheduler every STATUS_EVERY seconds at
        most, never while the connection is down (the last answer stands)."""
        now = time.monotonic()
        if now >= self._next_status and self.client.status == "running":
            self._next_status = now + STATUS_EVERY
            with contextlib.suppress(Exception):
                self._known = self.workers()
        return self._known

    def _status(self, flying: int, queued: int) -> None:
        if self.on_status is None:
            return
        if self.client.status != "running":
            self.on_status(f"  waiting for {self.where}")
            return
        self.on_status(
            f"  {len(self._workers())} worker(s), {flying} chunk(s) in flight"
            + (f", {queued} queued" if queued else "")
        )
