"""Concurrency: group commit across threads, several processes appending to one stream,
and the run lock across processes (released when its holder is killed)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Sequence
from pathlib import Path

import pytest

from journal._errors import ConflictError, LockedError, StorageError
from journal._journal import Journal, KdfParams, _GroupCommit, _Pending
from journal._store import AppendRequest, AppendResult, Row

PASSWORD = "concurrency-test password"
STORE_KINDS = ["sqlite"]  # + "postgresql" once that store exists (see test_journal_store.py)


@pytest.fixture(params=STORE_KINDS)
def location(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return str(tmp_path / ".journal" / "journal.db")
    raise AssertionError(request.param)


def _open(location: str) -> Journal:
    return Journal.open(location, password=PASSWORD, kdf=KdfParams.minimum())


# --- threads: group commit -----------------------------------------------------------------


def test_threads_are_group_committed(location: str) -> None:
    threads, per_thread = 16, 25
    with _open(location) as journal:
        barrier = threading.Barrier(threads)
        errors: list[BaseException] = []

        def work(n: int) -> None:
            try:
                barrier.wait()
                for i in range(per_thread):
                    (event,) = journal.append(f"app/t{n % 4}", [{"type": "w", "n": n, "i": i}])
                    assert event.payload == {"type": "w", "n": n, "i": i}
            except BaseException as exc:
                errors.append(exc)

        pool = [threading.Thread(target=work, args=(n,)) for n in range(threads)]
        for thread in pool:
            thread.start()
        for thread in pool:
            thread.join()
        assert errors == []
        total = threads * per_thread
        stats = journal.store.stats
        assert stats.append_requests == total and stats.rows_appended == total
        assert stats.append_transactions < total  # batched: fewer durable flushes than appends
        report = journal.verify()
        assert report.events == total and report.streams == 4
        for n in range(threads):  # each thread's own events are in its order
            mine = [e.payload["i"] for e in journal.read(f"app/t{n % 4}") if e.payload["n"] == n]
            assert mine == list(range(per_thread))


def test_concurrent_expected_version_one_winner(location: str) -> None:
    with _open(location) as journal:
        barrier = threading.Barrier(12)
        outcomes: list[str] = []
        lock = threading.Lock()

        def claim(n: int) -> None:
            barrier.wait()
            try:
                journal.append("app/dev", [{"type": "claim", "n": n}], expected_version=0)
                result = "won"
            except ConflictError:
                result = "conflict"
            with lock:
                outcomes.append(result)

        def bystander(n: int) -> None:
            barrier.wait()
            journal.append("app/other", [{"type": "free", "n": n}])
            with lock:
                outcomes.append("free")

        pool = [threading.Thread(target=claim, args=(n,)) for n in range(8)]
        pool += [threading.Thread(target=bystander, args=(n,)) for n in range(4)]
        for thread in pool:
            thread.start()
        for thread in pool:
            thread.join()
        assert sorted(outcomes) == ["conflict"] * 7 + ["free"] * 4 + ["won"]
        assert journal.stream_version("app/dev") == 1
        assert journal.stream_version("app/other") == 4
        assert journal.verify().events == 5


def test_group_commit_batches_waiting_callers() -> None:
    """Deterministic: while the first commit is in flight, ten callers queue up; the next
    leader commits all ten at once; a failing member of a batch fails alone."""
    gate = threading.Event()
    batches: list[list[str]] = []

    def commit(requests: Sequence[AppendRequest]) -> list[AppendResult]:
        batches.append([r.stream for r in requests])
        if len(batches) == 1:
            gate.wait(5)
        out: list[AppendResult] = []
        for r in requests:
            if r.stream == "bad":
                out.append(ConflictError("bad", 0, 1))
            else:
                out.append([Row(0, r.stream, 0, "k", b"", b"", p) for p in r.plaintexts])
        return out

    group = _GroupCommit(commit)
    results: dict[str, object] = {}

    def submit(name: str) -> None:
        try:
            results[name] = group.submit(AppendRequest(name, None, [name.encode()]))
        except ConflictError as exc:
            results[name] = exc

    first = threading.Thread(target=submit, args=("first",))
    first.start()
    while not batches:
        time.sleep(0.001)
    names = [f"s{i}" for i in range(9)] + ["bad"]
    pool = [threading.Thread(target=submit, args=(name,)) for name in names]
    for thread in pool:
        thread.start()
    deadline = time.monotonic() + 5
    while len(group._queue) < len(names) and time.monotonic() < deadline:
        time.sleep(0.001)
    gate.set()
    for thread in [first, *pool]:
        thread.join()
    assert batches[0] == ["first"]
    assert sorted(batches[1]) == sorted(names) and len(batches) == 2
    assert isinstance(results["bad"], ConflictError)
    for name in ["first", *names[:-1]]:
        rows = results[name]
        assert isinstance(rows, list) and rows[0].data == name.encode()


def test_group_commit_failure_reaches_every_member() -> None:
    def commit(requests: Sequence[AppendRequest]) -> list[AppendResult]:
        raise StorageError("disk on fire")

    group = _GroupCommit(commit)
    with pytest.raises(StorageError, match="disk on fire"):
        group.submit(AppendRequest("s", None, [b"x"]))
    with pytest.raises(StorageError):  # and the next caller can lead again
        group.submit(AppendRequest("s", None, [b"y"]))


def _rows(requests: Sequence[AppendRequest]) -> list[AppendResult]:
    return [[Row(0, r.stream, 0, "k", b"", b"", p) for p in r.plaintexts] for r in requests]


def test_group_commit_wakes_each_waiter_once_with_its_own_result() -> None:
    """Many threads, a slow store: every caller gets its own rows back, the store saw each
    request exactly once, and the lead passes from caller to caller without a shared wake-up."""
    seen: list[bytes] = []
    lock = threading.Lock()

    def commit(requests: Sequence[AppendRequest]) -> list[AppendResult]:
        time.sleep(0.001)
        with lock:
            seen.extend(p for r in requests for p in r.plaintexts)
        return _rows(requests)

    group = _GroupCommit(commit)
    got: dict[bytes, bytes] = {}
    barrier = threading.Barrier(12)

    def work(n: int) -> None:
        barrier.wait()
        for i in range(20):
            name = f"{n}-{i}".encode()
            (row,) = group.submit(AppendRequest("s", None, [name]))
            got[name] = row.data

    pool = [threading.Thread(target=work, args=(n,)) for n in range(12)]
    for thread in pool:
        thread.start()
    for thread in pool:
        thread.join(30)
    assert not any(t.is_alive() for t in pool)
    assert len(seen) == len(set(seen)) == 240
    assert all(name == data for name, data in got.items()) and len(got) == 240
    assert group._queue == [] and not group._leading


@pytest.mark.skipif(not hasattr(signal, "setitimer"), reason="needs setitimer")
def test_group_commit_survives_an_interrupted_waiter() -> None:
    """Ctrl-C in the main thread while it waits for a leader: its request stays queued (a
    leader may be committing it already), it is never handed the lead (nobody would use
    it), and the group goes on serving callers."""
    gate = threading.Event()
    batches: list[list[bytes]] = []

    def commit(requests: Sequence[AppendRequest]) -> list[AppendResult]:
        batches.append([p for r in requests for p in r.plaintexts])
        if len(batches) == 1:
            gate.wait(10)
        return _rows(requests)

    group = _GroupCommit(commit)
    leader = threading.Thread(target=group.submit, args=(AppendRequest("s", None, [b"a"]),))
    leader.start()
    while not batches:
        time.sleep(0.001)

    def interrupt(signum: int, frame: object) -> None:
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGALRM, interrupt)
    try:
        signal.setitimer(signal.ITIMER_REAL, 0.05)
        with pytest.raises(KeyboardInterrupt):
            group.submit(AppendRequest("s", None, [b"main"]))  # waits behind the leader
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)
    gate.set()
    leader.join(10)
    assert not leader.is_alive()
    # the interrupted request stayed queued and goes with the next caller's batch
    assert group.submit(AppendRequest("s", None, [b"after"]))[0].data == b"after"
    assert batches[1:] == [[b"main", b"after"]]
    assert group._queue == [] and not group._leading


def test_group_commit_interrupted_heir_passes_the_lead_on() -> None:
    """A waiting caller handed the lead and interrupted before it could use it passes the
    lead to the next waiting caller (else every later append would wait forever)."""
    group = _GroupCommit(_rows)
    heir, other = (_Pending(AppendRequest("s", None, [x])) for x in (b"h", b"o"))
    group._queue[:] = [heir, other]
    group._leading = True
    heir.lead = True  # the leader handed over, then the heir's thread was interrupted
    group._abandon(heir)
    assert other.lead
    other.wait()  # it was woken (else this blocks: the test times out)
    other.lead = False
    group._queue[:] = [heir]
    group._abandon(heir)  # nobody else waits: nobody leads until the next caller comes
    assert group._leading is False
    assert group.submit(AppendRequest("s", None, [b"next"]))[0].data == b"next"
    assert heir.done and group._queue == []  # the abandoned request went with that batch


# --- processes -----------------------------------------------------------------------------

WRITER = textwrap.dedent(
    """
    import os, sys, time
    from journal._errors import ConflictError
    from journal._journal import Journal, KdfParams
    location, stream, worker, count, start, mode = sys.argv[1:7]
    while time.time() < float(start):
        time.sleep(0.001)
    # several processes may create the journal at once: exactly one creation wins
    password = os.environ["TEST_PASSWORD"]
    with Journal.open(location, password=password, kdf=KdfParams.minimum()) as jr:
        done = conflicts = 0
        while done < int(count):
            version = jr.stream_version(stream) if mode == "expect" else None
            try:
                jr.append(stream, [{"type": "w", "worker": worker, "i": done}],
                          expected_version=version)
                done += 1
            except ConflictError:
                conflicts += 1
        print(conflicts)
    """
)


def _env() -> dict[str, str]:
    env = dict(os.environ)
    env["TEST_PASSWORD"] = PASSWORD
    env.pop("JOURNAL_PASSWORD", None)
    return env


@pytest.mark.parametrize("mode", ["expect", "blind"])
def test_processes_appending_to_one_stream(location: str, mode: str) -> None:
    """Each process appends 25 events; with ``expect`` it passes expected_version and retries
    on ConflictError (re-reading the version), with ``blind`` it just appends, and the journal
    does not exist beforehand: the processes race to create it."""
    workers, count = 3, 25
    start = time.time() + 1.0
    if mode == "expect":
        with _open(location) as journal:
            journal.append("app/dev", [{"type": "init"}])
    procs = [
        subprocess.Popen(
            [
                sys.executable,
                "-c",
                WRITER,
                location,
                "app/dev",
                f"w{n}",
                str(count),
                str(start),
                mode,
            ],
            env=_env(),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for n in range(workers)
    ]
    conflicts = 0
    for proc in procs:
        out, err = proc.communicate(timeout=60)
        assert proc.returncode == 0, err
        conflicts += int(out)
    print(f"{conflicts} conflicts retried")
    with _open(location) as journal:
        events = list(journal.read("app/dev"))
        assert len(events) == (mode == "expect") + workers * count
        assert [e.version for e in events] == list(range(1, len(events) + 1))
        for n in range(workers):
            mine = [e.payload["i"] for e in events if e.payload.get("worker") == f"w{n}"]
            assert mine == list(range(count))
        assert journal.verify().events == len(events)


HOLDER = textwrap.dedent(
    """
    import os, sys, time
    from journal._journal import Journal
    jr = Journal.open(sys.argv[1], password=os.environ["TEST_PASSWORD"], create=False)
    with jr.lock("app/dev", holder={"actor": "child", "command": "deploy"}):
        print("locked", flush=True)
        time.sleep(60)
    """
)


def test_lock_is_released_when_the_holder_is_killed(location: str) -> None:
    with _open(location) as journal:
        proc = subprocess.Popen(
            [sys.executable, "-c", HOLDER, location],
            env=_env(),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        try:
            assert proc.stdout is not None
            assert proc.stdout.readline().strip() == "locked"
            with pytest.raises(LockedError) as err, journal.lock("app/dev", holder={"actor": "me"}):
                pass
            assert err.value.holder["pid"] == proc.pid
            assert err.value.holder["actor"] == "child"
            assert f"pid={proc.pid}" in str(err.value)
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait(timeout=10)
            with journal.lock("app/dev", holder={"actor": "me"}, timeout=5):
                pass
        finally:
            if proc.poll() is None:
                proc.kill()
            proc.wait(timeout=10)
            for stream in (proc.stdout, proc.stderr):
                if stream is not None:
                    stream.close()
