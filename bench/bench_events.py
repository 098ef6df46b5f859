"""Per-event cost: CPU time of each stage an event goes through (a script, not a test).

    python bench/bench_events.py                       # stages + engine at N = 1,000; ~1 minute
    python bench/bench_events.py --runs 9 --events 4000
    python bench/bench_events.py --profile             # cProfile of one thread's appends
    python bench/bench_events.py --compare bench/results/baseline.json

An event the engine records goes through, in order: ``make_event`` (the payload, with the run
id and a time stamp, as ``Run._append`` builds it), the canonical JSON encoding, the seal
(associated data + XChaCha20-Poly1305), the chain hash (BLAKE2b), the store's commit (group
commit: many requests in one transaction, one durable flush; or one request per transaction)
and the fold into the stage's state (``_projection.apply``: typed event + fold). Each stage is
timed alone, in process, over ``--events`` lifecycle payloads of the engine's shape (an intent
and an outcome per resource), as CPU time (``time.process_time``: user + system, all threads)
per event; the stages are interleaved run by run and medians are reported.

Then the whole path: ``Journal.append`` of one event from 1 thread and from ``--threads``
threads (group commit), and the engine alone (``run_program`` / ``destroy_stage`` with
``bench_scale``'s provider that calls nothing) at ``--n`` resources, as CPU per event.
"""

from __future__ import annotations

import argparse
import cProfile
import io
import os
import pstats
import shutil
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import bench_scale as scale
from _common import Metric, environment, finish, parse_args, print_header, print_table

from journal import _crypto
from journal._events import make_event
from journal._journal import Journal, KdfParams
from journal._projection import StreamState, apply
from journal._store import AppendRequest, Row

PASSWORD = "benchmark password"
STREAM = "bench-events/dev"
RUN_ID = "0123456789abcdef"
#: requests per transaction in the batched store case (what group commit gathers under load)
BATCH = 64


def _extra(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--events", type=int, default=2000, help="events per stage and run")
    parser.add_argument("--threads", type=int, default=16, help="appending threads")
    parser.add_argument("--n", type=int, default=1000, help="resources of the engine case")
    parser.add_argument("--engine-runs", type=int, default=None, help="default: --runs")
    parser.add_argument("--no-engine", action="store_true", help="skip the engine case")
    parser.add_argument("--profile", action="store_true", help="cProfile of 1-thread appends")
    parser.add_argument("--dir", type=Path, default=None, help="where the journals go")


def _now() -> str:
    from journal._engine import _run

    return _run._now()


def lifecycle_payloads(count: int) -> list[tuple[str, dict[str, Any]]]:
    """(name, fields) of ``count`` events as the engine makes them for creates: an intent
    and an outcome per resource, in the shape a null-provider run records."""
    out: list[tuple[str, dict[str, Any]]] = []
    for i in range(count):
        rid = f"db-{i // 2}"
        common = {
            "deps": ["project"],
            "refs": {"project": "project"},
            "delete": True,
            "options": {"adopt": False, "endpoint": "local"},
        }
        props = {"name": f"database-{i // 2}", "region": "us-east-1", "project": "cprj1234"}
        if i % 2 == 0:
            out.append(("resource.create.requested", {"props": props, **common}))
        else:
            outputs = {"id": f"db_{i:012d}", "name": props["name"], "status": "ready"}
            out.append(("resource.created", {"props": props, "outputs": outputs, **common}))
        out[-1][1].update(resource=rid, resource_type="prisma_postgres.Database")
    return out


def built(specs: list[tuple[str, dict[str, Any]]]) -> list[dict[str, Any]]:
    payloads = []
    for name, fields in specs:
        payload = make_event(name, **fields)
        payload.setdefault("run", RUN_ID)
        payload["time"] = _now()
        payloads.append(payload)
    return payloads


def _open(path: Path) -> Journal:
    return Journal.open(path, password=PASSWORD, kdf=KdfParams.minimum())


def _remove(path: Path) -> None:
    for suffix in ("", "-wal", "-shm"):
        Path(str(path) + suffix).unlink(missing_ok=True)
    shutil.rmtree(str(path) + ".locks", ignore_errors=True)


# --- the stages, one by one ------------------------------------------------------------------

#: a stage: (setup, timed) — setup returns the state the timed part needs; the timed part
#: returns how many events it handled
Stage = Callable[[], Callable[[], int]]


def stage_make_event(n: int) -> Stage:
    specs = lifecycle_payloads(n)

    def setup() -> Callable[[], int]:
        copies = [(name, dict(fields)) for name, fields in specs]

        def timed() -> int:
            built(copies)
            return n

        return timed

    return setup


def stage_encode(journal: Journal, n: int) -> Stage:
    payloads = built(lifecycle_payloads(n))
    codec = journal._codecs[journal._meta.current_key_id]

    def setup() -> Callable[[], int]:
        def timed() -> int:
            for payload in payloads:
                codec.serialize(payload)
            return n

        return timed

    return setup


def stage_decode(journal: Journal, n: int) -> Stage:
    """Plaintext back to a payload (what ``append`` did to hand the events back)."""
    codec = journal._codecs[journal._meta.current_key_id]
    plains = [codec.serialize(p) for p in built(lifecycle_payloads(n))]

    def setup() -> Callable[[], int]:
        def timed() -> int:
            for plain in plains:
                codec.deserialize(plain)
            return n

        return timed

    return setup


def stage_seal(journal: Journal, n: int) -> Stage:
    codec = journal._codecs[journal._meta.current_key_id]
    plains = [codec.serialize(p) for p in built(lifecycle_payloads(n))]
    jid, kid, prev = journal.journal_id, journal._meta.current_key_id, journal.genesis

    def setup() -> Callable[[], int]:
        def timed() -> int:
            for seq, plain in enumerate(plains, start=1):
                codec.seal(plain, _crypto.event_ad(jid, STREAM, seq, seq, kid, prev))
            return n

        return timed

    return setup


def stage_hash(journal: Journal, n: int) -> Stage:
    codec = journal._codecs[journal._meta.current_key_id]
    jid, kid, prev = journal.journal_id, journal._meta.current_key_id, journal.genesis
    sealed = []
    for seq, payload in enumerate(built(lifecycle_payloads(n)), start=1):
        ad = _crypto.event_ad(jid, STREAM, seq, seq, kid, prev)
        sealed.append((seq, ad, codec.seal(codec.serialize(payload), ad)))

    def setup() -> Callable[[], int]:
        def timed() -> int:
            for seq, ad, data in sealed:
                _crypto.chain_hash(prev, seq, ad, data)
            return n

        return timed

    return setup


def stage_commit(folder: Path, n: int, batch: int) -> Stage:
    """The store alone: rows sealed beforehand, ``batch`` one-row requests a transaction."""
    sample = os.urandom(330)  # about one sealed lifecycle event

    def setup() -> Callable[[], int]:
        path = folder / f"commit-{batch}-{os.urandom(4).hex()}.db"
        journal = _open(path)
        journal.append(STREAM, [{"type": "bench"}])  # the store is created and warm
        store = journal.store
        genesis = journal.genesis
        fake_hash = os.urandom(32)

        def seal(stream: str, seq: int, version: int, prev: bytes, plain: bytes) -> Row:
            return Row(seq, stream, version, "k", prev, fake_hash, sample)

        def timed() -> int:
            try:
                for start in range(0, n, batch):
                    count = min(batch, n - start)
                    store.append(
                        [AppendRequest(STREAM, None, [b""]) for _ in range(count)], seal, genesis
                    )
            finally:
                journal.close()
                _remove(path)
            return n

        return timed

    return setup


def stage_fold(n: int) -> Stage:
    events = [(seq, seq, p) for seq, p in enumerate(built(lifecycle_payloads(n)), start=1)]

    def setup() -> Callable[[], int]:
        state = StreamState(stream=STREAM)

        def timed() -> int:
            for seq, version, payload in events:
                apply(state, seq, version, payload)
            return n

        return timed

    return setup


def stage_append(folder: Path, n: int, threads: int) -> Stage:
    """``Journal.append`` of one event at a time, from ``threads`` threads."""
    payloads = built(lifecycle_payloads(n))

    def setup() -> Callable[[], int]:
        path = folder / f"append-{threads}-{os.urandom(4).hex()}.db"
        journal = _open(path)
        journal.append(STREAM, [{"type": "bench"}])
        per = n // threads
        barrier = threading.Barrier(threads + 1)

        def work(k: int) -> None:
            barrier.wait()
            for payload in payloads[k * per : (k + 1) * per]:
                journal.append(STREAM, [payload])

        def timed() -> int:
            try:
                if threads == 1:
                    for payload in payloads:
                        journal.append(STREAM, [payload])
                    return n
                pool = [threading.Thread(target=work, args=(k,)) for k in range(threads)]
                for thread in pool:
                    thread.start()
                barrier.wait()
                for thread in pool:
                    thread.join()
                return per * threads
            finally:
                journal.close()
                _remove(path)

        return timed

    return setup


def cpu_per_event(stage: Stage) -> float:
    """µs of CPU (all threads of this process) per event of one run of ``stage``."""
    timed = stage()
    cpu0 = time.process_time()
    count = timed()
    return (time.process_time() - cpu0) / count * 1e6


# --- the engine alone ----------------------------------------------------------------------


def engine_runs(root: Path, n: int, runs: int) -> tuple[list[float], list[float], int, int]:
    """CPU s of first deploys and destroys of ``n`` null resources (fresh journal each); and
    the events each appended."""
    folder = root / "engine"
    scale.write_program(folder, scale.NULL_PROVIDER, "bench_null_provider.py")
    program = scale.write_program(folder, scale.NULL_PROGRAM)
    location = folder / ".journal" / "journal.db"
    deploys: list[float] = []
    destroys: list[float] = []
    made = gone = 0
    with scale.environ(scale._env_for(n, "cprj-bench")):
        for _ in range(runs + 1):  # the first is a warm-up (imports, the provider module)
            shutil.rmtree(location.parent, ignore_errors=True)
            location.parent.mkdir(parents=True)
            Journal.open(location, password=scale.PASSWORD).close()
            sample, _ = scale.measure(lambda: scale.deploy(program, location, "deploy", None), None)
            deploys.append(sample.cpu)
            with Journal.open(location, password=scale.PASSWORD, create=False) as jr:
                made = jr.head()[0]
            sample, _ = scale.measure(lambda: scale.destroy(location, None), None)
            destroys.append(sample.cpu)
            with Journal.open(location, password=scale.PASSWORD, create=False) as jr:
                gone = jr.head()[0] - made
    shutil.rmtree(folder, ignore_errors=True)
    return deploys[1:], destroys[1:], made, gone


def profile_appends(folder: Path, n: int, top: int = 30) -> str:
    payloads = built(lifecycle_payloads(n))
    path = folder / "profile.db"
    journal = _open(path)
    journal.append(STREAM, [{"type": "bench"}])
    state = StreamState(stream=STREAM)
    prof = cProfile.Profile()
    prof.enable()
    for payload in payloads:
        for ev in journal.append(STREAM, [payload]):
            apply(state, ev.seq, ev.version, ev.payload)
    prof.disable()
    journal.close()
    _remove(path)
    out = io.StringIO()
    pstats.Stats(prof, stream=out).sort_stats("tottime").print_stats(top)
    return out.getvalue()


# --- main ------------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    args = parse_args(__doc__.splitlines()[0], name="bench_events", extra=_extra, argv=argv)
    env = environment()
    print_header("bench_events", env)
    load_start = scale.load_average()
    n = args.events
    print(f"# {args.runs} runs, interleaved, medians; {n:,} events per stage; load {load_start}\n")
    folder = Path(tempfile.mkdtemp(prefix="bench-events-", dir=args.dir))
    metrics: list[Metric] = []
    tables: dict[str, tuple[Sequence[str], Sequence[Sequence[object]]]] = {}
    try:
        keyed = _open(folder / "keys.db")  # a codec, a journal id and a genesis to work with
        stages: dict[str, tuple[Stage, str]] = {
            "make_event (+ run id, time)": (stage_make_event(n), "make_event"),
            "encode (canonical JSON)": (stage_encode(keyed, n), "encode"),
            "seal (AD + XChaCha20-Poly1305)": (stage_seal(keyed, n), "seal"),
            "hash (BLAKE2b chain)": (stage_hash(keyed, n), "hash"),
            f"store commit, {BATCH} rows a transaction": (
                stage_commit(folder, n, BATCH),
                "commit_batched",
            ),
            "store commit, 1 row a transaction": (stage_commit(folder, n, 1), "commit_single"),
            "fold (typed event + projection)": (stage_fold(n), "fold"),
            "decode (JSON back to a payload)": (stage_decode(keyed, n), "decode"),
            "Journal.append, 1 thread": (stage_append(folder, n, 1), "append_1"),
            f"Journal.append, {args.threads} threads": (
                stage_append(folder, n, args.threads),
                f"append_{args.threads}",
            ),
        }
        samples: dict[str, list[float]] = {label: [] for label in stages}
        for _ in range(max(1, args.runs)):
            for label, (stage, _key) in stages.items():  # interleaved
                samples[label].append(cpu_per_event(stage))
        keyed.close()

        one = statistics.median(samples["Journal.append, 1 thread"])
        rows: list[list[object]] = []
        for label, (_stage, key) in stages.items():
            values = samples[label]
            med = statistics.median(values)
            spread = f"{min(values):.1f} / {med:.1f} / {max(values):.1f}"
            rows.append([label, med, spread, f"{med / one:.0%}" if one else "-"])
            metrics.append(Metric(f"events.{key}_us", med, "us", higher_is_better=False))
        headers = ["stage", "CPU µs/event", "min / median / max", "of append, 1 thread"]
        print("## CPU per event, stage by stage (in process)")
        print_table(headers, rows)
        tables["stages"] = (headers, rows)

        if not args.no_engine:
            runs = args.engine_runs or args.runs
            deploys, destroys, made, gone = engine_runs(folder, args.n, runs)
            d, x = statistics.median(deploys), statistics.median(destroys)
            engine_rows: list[list[object]] = [
                [f"first deploy, N = {args.n:,}", d, made, d / made * 1e6, scale.spread(deploys)],
                [f"destroy, N = {args.n:,}", x, gone, x / gone * 1e6, scale.spread(destroys)],
            ]
            engine_headers = ["engine alone (null provider)", "CPU s", "events", "CPU µs/event",
                              "CPU s min / median / max"]  # fmt: skip
            print(f"## the engine alone, provider that calls nothing ({runs} runs, medians)")
            print_table(engine_headers, engine_rows)
            tables["engine"] = (engine_headers, engine_rows)
            metrics += [
                Metric(f"events.engine_deploy_cpu_s@{args.n}", d, "s", higher_is_better=False),
                Metric(f"events.engine_destroy_cpu_s@{args.n}", x, "s", higher_is_better=False),
            ]
        load_end = scale.load_average()
        tables["conditions"] = (
            ["load average at the start", "at the end"],
            [[load_start, load_end]],
        )
        print(f"# load average: start {load_start}, end {load_end}\n")
        if args.profile:
            print("## cProfile: Journal.append + fold, one thread, one event at a time")
            print(profile_appends(folder, n))
        return finish(args, env, metrics, tables=tables)
    finally:
        shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    raise SystemExit(main())
