"""`journal ui` on a large journal: how long each page takes to answer.

    python bench/bench_ui.py                  # 1M events (about 2 minutes to build, kept)
    python bench/bench_ui.py --events 100k    # quick
    python bench/bench_ui.py --dir /tmp/j     # build once, measure again later

The journal (minimum key-derivation cost: the KDF runs once, at open, and is not measured)
holds one stage ``bench/prod`` with ``--resources`` resources created by a first run (a
project, then databases depending on it, then a connection each, with a secret output),
then runs up to the size: mostly no-op runs (``run.started`` + ``run.finished``, what a long
``dev`` session leaves) and, every ``--update-every`` runs, one that updates a database's
tag, plus a second stage ``bench/staging`` interleaved. Events are appended through the
public API (``Journal.append``) with payloads from ``journal._events.make_event``, and the
stages' snapshots are written every ``--snapshot-every`` events (default 1,000, ~450 runs:
sparser than the engine, which writes one at the end of every run).

Then ``journal ui``'s server starts in process on 127.0.0.1 and each page is fetched over
real HTTP: the first request of each page (nothing cached by the model), then the median
of ``--runs`` more. The pages named in the issue's target ("the first page answers in well
under a second"): the runs timeline, the event list (unfiltered and with each filter), the
stage's dependency graph and a resource's page.
"""

from __future__ import annotations

import argparse
import datetime as dt
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx

from journal._events import make_event
from journal._journal import Journal, KdfParams
from journal._projection import apply, load_state, snapshot_state
from journal._secret import Secret, secret_to_json
from journal._ui import UIServer

PASSWORD = "bench-ui password"
APP = "bench"


def _size(text: str) -> int:
    text = text.strip().lower().replace("_", "")
    scale = {"k": 1_000, "m": 1_000_000}.get(text[-1:], 1)
    return int(float(text.rstrip("km")) * scale)


def _stamp(payload: dict[str, Any], run: str, when: dt.datetime) -> dict[str, Any]:
    payload.update(run=run, time=when.isoformat(timespec="milliseconds"))
    return payload


def _started(run: str, when: dt.datetime, stage: str, actor: str) -> dict[str, Any]:
    return _stamp(
        make_event(
            "run.started",
            app=APP,
            stage=stage,
            command="deploy",
            actor=actor,
            host="bench-host",
            pid=4242,
            program="/bench/alchemy.run.py",
            program_hash="0" * 32,
        ),
        run,
        when,
    )


def _finished(run: str, when: dt.datetime, counts: dict[str, int]) -> dict[str, Any]:
    return _stamp(
        make_event("run.finished", status="succeeded", counts=counts, duration_s=0.05, failures=[]),
        run,
        when,
    )


def _resource(
    kind: str, rid: str, run: str, when: dt.datetime, props: dict[str, Any], **extra: Any
) -> dict[str, Any]:
    return _stamp(
        make_event(kind, resource=rid, resource_type="bench.Thing", props=props, **extra),
        run,
        when,
    )


def first_run(n: int, when: dt.datetime, stage: str) -> list[dict[str, Any]]:
    run = uuid.uuid4().hex[:16]
    out = [_started(run, when, stage, "alice")]
    ids = ["project"] + [f"db-{i}" for i in range(n // 2)] + [f"conn-{i}" for i in range(n // 2)]
    for rid in ids:
        deps = [] if rid == "project" else ["project"] if rid.startswith("db") else []
        if rid.startswith("conn"):
            deps = [f"db-{rid.split('-')[1]}"]
        props = {"name": f"{APP}-{rid}", "tag": "v1"}
        outputs = {"id": uuid.uuid4().hex, "name": props["name"]}
        if rid.startswith("conn"):
            outputs["password"] = secret_to_json(Secret(uuid.uuid4().hex))
        refs = {"parent": deps[0]} if deps else {}
        out.append(_resource("resource.create.requested", rid, run, when, props, deps=deps))
        out.append(
            _resource(
                "resource.created", rid, run, when, props, outputs=outputs, deps=deps, refs=refs
            )
        )
    out.append(_finished(run, when, {"create": len(ids)}))
    return out


def build(path: Path, total: int, resources: int, update_every: int, args_batch: int) -> float:
    t0 = time.perf_counter()
    with Journal.open(path, password=PASSWORD, kdf=KdfParams.minimum()) as jr:
        when = dt.datetime(2025, 1, 1, tzinfo=dt.UTC)
        prod, staging = f"{APP}/prod", f"{APP}/staging"
        jr.append(prod, first_run(resources, when, "prod"))
        jr.append(staging, first_run(4, when, "staging"))
        state = load_state(jr, prod)
        side = load_state(jr, staging)
        runs = 0
        tags = 1
        while jr.head()[0] < total:
            batch: list[dict[str, Any]] = []
            other: list[dict[str, Any]] = []
            while len(batch) < args_batch:
                when += dt.timedelta(seconds=20)
                run = uuid.uuid4().hex[:16]
                runs += 1
                actor = "alice" if runs % 3 else "bob"
                batch.append(_started(run, when, "prod", actor))
                if runs % update_every == 0:
                    tags += 1
                    rid = f"db-{runs % max(resources // 2, 1)}"
                    props = {"name": f"{APP}-{rid}", "tag": f"v{tags}"}
                    old = dict(state.resources[rid].props)
                    outputs = state.resources[rid].outputs
                    batch.append(
                        _resource("resource.update.requested", rid, run, when, props, old_props=old)
                    )
                    batch.append(
                        _resource("resource.updated", rid, run, when, props, outputs=outputs)
                    )
                    batch.append(_finished(run, when, {"noop": resources - 1, "update": 1}))
                else:
                    batch.append(_finished(run, when, {"noop": resources}))
                if runs % 50 == 0:
                    srun = uuid.uuid4().hex[:16]
                    other += [
                        _started(srun, when, "staging", "carol"),
                        _finished(srun, when, {"noop": 4}),
                    ]
            for ev in jr.append(prod, batch):
                apply(state, ev.seq, ev.version, ev.payload)
            snapshot_state(jr, state)  # real runs write one at every run's end
            if other:
                for ev in jr.append(staging, other):
                    apply(side, ev.seq, ev.version, ev.payload)
                snapshot_state(jr, side)
        snapshot_state(jr, state)
        snapshot_state(jr, side)
    return time.perf_counter() - t0


def measure(path: Path, runs: int) -> list[tuple[str, float, float, int]]:
    with Journal.open(path, password=PASSWORD) as jr:
        head = jr.head()[0]
        last = dt.datetime.fromisoformat(jr.event(head).payload["time"])
        since = (last - dt.timedelta(hours=1)).isoformat(timespec="seconds")
        pages = [
            ("runs (all stages)", "runs"),
            ("runs ?stage=staging", "runs?stage=staging"),
            ("runs ?actor=bob", "runs?actor=bob"),
            ("runs, page 2", None),
            ("events (all)", "events"),
            ("events ?action=updated", "events?action=updated"),
            ("events ?actor=bob&stage=prod", "events?actor=bob&stage=prod"),
            ("events ?resource=db-7", "events?resource=db-7"),
            (f"events ?since={since}", f"events?since={quote(since)}"),
            ("a run's events", None),
            ("stage graph (bench/prod)", "stage?app=bench&stage=prod"),
            ("resource db-7", "resource?app=bench&stage=prod&id=db-7"),
            ("integrity (head only)", "integrity.json"),
        ]
        out = []
        for label, page in pages:
            # a fresh server per page: nothing cached from another page
            with UIServer(jr).start() as srv, httpx.Client(timeout=600) as client:
                if page is None and label.startswith("runs"):
                    first = client.get(srv.url + "runs").text
                    older = first.split('href="runs?before=')[1].split('"')[0]
                    page = f"runs?before={older}"
                elif page is None:
                    first = client.get(srv.url + "runs").text
                    src = first.split('data-src="')[1].split('"')[0].replace("&amp;", "&")
                    page = src
                    srv.model._firsts.clear()
                t0 = time.perf_counter()
                resp = client.get(srv.url + page)
                cold = time.perf_counter() - t0
                if resp.status_code != 200:
                    raise RuntimeError(f"{page}: HTTP {resp.status_code}: {resp.text[:300]}")
                warm = []
                for _ in range(runs):
                    t0 = time.perf_counter()
                    client.get(srv.url + page)
                    warm.append(time.perf_counter() - t0)
                out.append((label, cold, statistics.median(warm), len(resp.content)))
        return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", default="1M", help="total events (default 1M)")
    parser.add_argument("--resources", type=int, default=200, help="resources in the stage")
    parser.add_argument("--update-every", type=int, default=10, help="an update every N runs")
    parser.add_argument(
        "--snapshot-every",
        type=int,
        default=1_000,
        help="events between snapshots (default 1,000; the engine writes one per run)",
    )
    parser.add_argument("--runs", type=int, default=5, help="repeats after the first request")
    parser.add_argument("--dir", type=Path, default=None, help="keep the journal here")
    args = parser.parse_args()
    total = _size(args.events)
    folder = args.dir or Path(tempfile.mkdtemp(prefix="bench-ui-"))
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"ui-{args.events}.db"
    if not path.exists():
        seconds = build(path, total, args.resources, args.update_every, args.snapshot_every)
        print(f"built {path} ({total:,} events) in {seconds:.0f} s", file=sys.stderr)
    with Journal.open(path, password=PASSWORD) as jr:
        head = jr.head()[0]
    print(f"journal ui on {head:,} events, {args.resources} resources in bench/prod")
    print(f"{'page':<44} {'first':>9} {'median':>9} {'bytes':>9}")
    for label, cold, warm, size in measure(path, args.runs):
        print(f"{label:<44} {cold * 1000:>7.0f}ms {warm * 1000:>7.0f}ms {size:>9,}")


if __name__ == "__main__":
    main()
