"""Scale benchmark: deploy / no-op / plan / destroy of N databases (a script, not a test).

    python bench/bench_scale.py                        # N = 10, 100, 1000; about 2 minutes
    python bench/bench_scale.py --sizes 1000 --runs 9  # only the headline size, more runs
    python bench/bench_scale.py --sweep 8,16,32,64,128,256   # also try engine concurrencies
    python bench/bench_scale.py --profile              # where the time goes (cProfile, splits)
    python bench/bench_scale.py --compare bench/results/baseline.json

The program declares its resources in a plain Python loop (see ``SCALE_PROGRAM``): for
N <= ``--deps-upto`` (100) one ``Project``, N ``Database`` and a ``Connection`` each; above it
N independent databases in a project made beforehand. Everything has ``delete=True``, so
destroy really deletes. The Prisma-compatible local API runs in its own process in
metadata-only mode (objects in memory, no PostgreSQL work) with zero latency, then with
``--latency-ms`` (50) per call.

Measured, medians of ``--runs`` fresh journals (no-op and plan ``--noop-repeats`` times each):

* in process: ``journal._program.runner.run_program`` (what ``journal deploy`` runs) and
  ``journal._ops.destroy_stage``; every run opens the journal like the CLI does. The journal's
  key derivation (Argon2id, default profile) is paid once per process: it is shown apart.
* end to end: the ``journal`` console script (``deploy``, ``deploy``, ``plan``,
  ``destroy --yes``), one fresh process each, for ``--cli-sizes`` (1000).
* diagnostics at the largest N: the same loop with a provider that calls nothing (engine and
  journal alone), and the same HTTP calls made directly with the project's client on a pool
  (the API's own floor); CPU seconds of this process and of the API server.
"""

from __future__ import annotations

import argparse
import contextlib
import cProfile
import functools
import gc
import io
import os
import pstats
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import Metric, environment, finish, parse_args, print_header, print_table

from journal._crypto import clear_kek_cache
from journal._engine import DEFAULT_CONCURRENCY, RunResult
from journal._errors import JournalError
from journal._journal import Journal, KdfParams
from journal._ops import destroy_stage
from journal._program.app import RunSettings
from journal._program.runner import run_program

PASSWORD = "benchmark password"
STAGE = "bench"
APP = "bench-scale"
TOKEN = "bench-token"

# --- what the other tools take (issue 7; 2-core machines, the same zero-latency API) ---------

#: Alchemy 0.94 (Node 20) and Terraform 1.11 at N = 1,000, seconds
OTHERS: dict[str, dict[str, float]] = {
    "first_deploy": {"alchemy": 2.0, "terraform": 7.8},
    "noop_deploy": {"alchemy": 0.31, "terraform": 0.84},
    "destroy": {"alchemy": 1.9, "terraform": 15.9},
}
#: ours: at most half of the best of them
TARGETS: dict[str, float] = {k: min(v.values()) / 2 for k, v in OTHERS.items()}
#: "destroy with 50 ms latency in a small multiple of 50 ms": what we call small
SMALL_MULTIPLE = 10

SCALE_PROGRAM = '''\
"""bench_scale's program: N databases declared in a plain Python loop."""
import os

import journal
from journal.resources.prisma_postgres import Connection, Database, Project

N = int(os.environ["BENCH_N"])
PROJECT_ID = os.environ.get("BENCH_PROJECT_ID", "")

with journal.app("bench-scale") as app:
    if PROJECT_ID:  # independent databases in a project made beforehand
        for i in range(N):
            Database(f"db-{i}", project=PROJECT_ID, delete=True)
    else:  # one project, N databases and a connection each
        project = Project("project", delete=True)
        for i in range(N):
            database = Database(f"db-{i}", project=project, delete=True)
            Connection(f"conn-{i}", database=database)
'''

NULL_PROVIDER = '''\
"""A provider that calls nothing: what the engine and the journal cost on their own."""
import uuid
from dataclasses import dataclass

import journal


@dataclass(frozen=True)
class NullProps:
    parent: str | None = None
    name: str | None = None


@dataclass(frozen=True)
class NullOutputs:
    id: str
    name: str


@journal.register_provider
class NullProvider(journal.Provider[NullProps, NullOutputs]):
    type_name = "bench.Null"
    props_type = NullProps
    outputs_type = NullOutputs
    updatable = frozenset({"name"})
    default_delete = True

    def validate(self, props, *, resource):
        pass

    def prepare(self, props, ctx):
        return props

    def create(self, props, ctx):
        return NullOutputs(uuid.uuid4().hex, props.name or ctx.default_name)

    def update(self, props, old_props, outputs, ctx):
        return NullOutputs(outputs.id, props.name or ctx.default_name)

    def delete(self, props, outputs, ctx):
        return None

    def read(self, props, outputs, ctx):
        return outputs


class Null(journal.Resource[NullOutputs]):
    type_name = "bench.Null"

    def __init__(self, id, *, parent=None, name=None, delete=True):
        super().__init__(id, {"parent": parent, "name": name}, delete=delete)
'''

NULL_PROGRAM = '''\
"""bench_scale's program with the null provider: the same shape, no API."""
import os

import journal
from bench_null_provider import Null

N = int(os.environ["BENCH_N"])
PROJECT_ID = os.environ.get("BENCH_PROJECT_ID", "")

with journal.app("bench-scale") as app:
    if PROJECT_ID:
        for i in range(N):
            Null(f"db-{i}", parent=PROJECT_ID)
    else:
        project = Null("project")
        for i in range(N):
            database = Null(f"db-{i}", parent=project)
            Null(f"conn-{i}", parent=database)
'''


# --- helpers the other bench scripts share -----------------------------------------------------


@functools.cache
def compile_journal() -> None:
    """Byte-compile the journal package where it is installed, as ``pip install`` does: with
    PYTHONDONTWRITEBYTECODE set (or an editable install never imported yet) every fresh
    process would otherwise compile the sources again, a cost no installed copy pays."""
    import compileall
    import importlib.util

    for name in ("journal", "journal.cli", "journal.resources"):
        spec = importlib.util.find_spec(name)
        for folder in (spec.submodule_search_locations or []) if spec else []:
            compileall.compile_dir(folder, quiet=1)


def journal_command() -> list[str]:
    """The ``journal`` console script of this interpreter's environment (its package
    byte-compiled first, see ``compile_journal``)."""
    compile_journal()
    beside = Path(sys.executable).with_name("journal")
    if beside.exists():
        return [str(beside)]
    found = shutil.which("journal")
    if found is None:
        raise SystemExit("the `journal` console script is not installed: run ./scripts/test")
    return [found]


def kdf_profile() -> str:
    """The key-derivation profile new journals get here (JOURNAL_KDF, default interactive)."""
    params = KdfParams.from_env()
    for name in ("minimum", "interactive", "moderate"):
        if getattr(KdfParams, name)() == params:
            return f"{name} (opslimit {params.opslimit}, memlimit {params.memlimit >> 20} MiB)"
    return f"opslimit {params.opslimit}, memlimit {params.memlimit >> 20} MiB"


def key_derivation_s(location: str | Path, runs: int = 3) -> tuple[float, float]:
    """(cold, warm) medians of opening an existing journal: cold derives the key (Argon2id),
    warm finds it in the per-process cache. The difference is the one-time derivation."""
    cold, warm = [], []
    for _ in range(max(1, runs)):
        clear_kek_cache()
        t0 = time.perf_counter()
        Journal.open(location, password=PASSWORD, create=False).close()
        cold.append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        Journal.open(location, password=PASSWORD, create=False).close()
        warm.append(time.perf_counter() - t0)
    return statistics.median(cold), statistics.median(warm)


def process_cpu_s(pid: int) -> float | None:
    """User + system CPU seconds of a process (Linux /proc; None elsewhere)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rpartition(")")[2].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def load_average() -> str:
    try:
        one, five, fifteen = os.getloadavg()
    except OSError:
        return "?"
    return f"{one:.2f} {five:.2f} {fifteen:.2f}"


_SERVER = """
import sys
from journal.resources.prisma_postgres.local import Faults, serve_forever

def ready(api):
    print(api.url, flush=True)

serve_forever(metadata_only=True, faults=Faults(latency_s=float(sys.argv[1])), on_ready=ready)
"""


@dataclass
class ApiServer:
    url: str
    process: subprocess.Popen[str]

    def cpu_s(self) -> float:
        return process_cpu_s(self.process.pid) or 0.0


@contextlib.contextmanager
def metadata_api(latency_s: float = 0.0) -> Iterator[ApiServer]:
    """The local Prisma-compatible API in metadata-only mode, in a process of its own, with
    ``latency_s`` per call; PRISMA_API_URL and PRISMA_SERVICE_TOKEN point at it meanwhile.
    Always stopped on the way out."""
    with tempfile.TemporaryFile(mode="w+") as log:
        proc = subprocess.Popen(
            [sys.executable, "-c", _SERVER, repr(latency_s)],
            stdout=subprocess.PIPE,
            stderr=log,
            text=True,
        )
        saved = {k: os.environ.get(k) for k in ("PRISMA_API_URL", "PRISMA_SERVICE_TOKEN")}
        try:
            line = _readline(proc, timeout=30.0)
            if not line.startswith("http"):
                log.seek(0)
                raise RuntimeError(f"the local API did not start: {line!r} {log.read()[-2000:]}")
            os.environ["PRISMA_API_URL"] = line
            os.environ["PRISMA_SERVICE_TOKEN"] = TOKEN
            yield ApiServer(line, proc)
        finally:
            for key, value in saved.items():
                if value is None:
                    os.environ.pop(key, None)
                else:
                    os.environ[key] = value
            stop_process(proc)


def _readline(proc: subprocess.Popen[str], timeout: float) -> str:
    box: list[str] = []
    assert proc.stdout is not None
    stdout = proc.stdout
    reader = threading.Thread(target=lambda: box.append(stdout.readline()), daemon=True)
    reader.start()
    reader.join(timeout)
    return box[0].strip() if box else ""


def stop_process(proc: subprocess.Popen[Any], sig_first: int | None = None) -> None:
    """Stop a child we started: ``sig_first`` if given (SIGINT lets `journal dev` finish
    cleanly; a shell's background job may ignore it), then SIGTERM, then SIGKILL."""
    steps: list[Callable[[], None]] = []
    if sig_first is not None:
        steps.append(lambda: proc.send_signal(sig_first))
    steps += [proc.terminate, proc.kill]
    for step in steps:
        if proc.poll() is not None:
            break
        step()
        try:
            proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            continue
    for stream in (proc.stdout, proc.stderr, proc.stdin):
        if stream is not None:
            with contextlib.suppress(OSError):
                stream.close()


def make_project(api: ApiServer, name: str) -> str:
    """A project made directly through the API (the home of the independent databases)."""
    from journal.resources.prisma_postgres._client import PrismaClient

    with PrismaClient(token=TOKEN, base_url=api.url) as client:
        return client.create_project(name=name, region=None, create_database=False).id


def write_program(folder: Path, text: str = SCALE_PROGRAM, name: str = "alchemy.run.py") -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    path.write_text(text)
    return path


def spread(values: Sequence[float]) -> str:
    """min / median / max, for the tables of noisy measurements."""
    if not values:
        return "-"
    return f"{min(values):.3f} / {statistics.median(values):.3f} / {max(values):.3f}"


# --- running ---------------------------------------------------------------------------------


@dataclass
class Sample:
    wall: float
    cpu: float
    api_cpu: float


@dataclass
class Case:
    samples: list[Sample] = field(default_factory=list)

    def add(self, sample: Sample) -> None:
        self.samples.append(sample)

    @property
    def wall(self) -> list[float]:
        return [s.wall for s in self.samples]

    def median(self, what: str = "wall") -> float:
        """NaN when every run failed (shown as "nan"; no metric is written for it)."""
        if not self.samples:
            return float("nan")
        return statistics.median(getattr(s, what) for s in self.samples)


def measure(fn: Callable[[], Any], api: ApiServer | None) -> tuple[Sample, Any]:
    gc.collect()
    api0 = api.cpu_s() if api is not None else 0.0
    cpu0 = time.process_time()
    t0 = time.perf_counter()
    out = fn()
    wall = time.perf_counter() - t0
    cpu = time.process_time() - cpu0
    api_cpu = (api.cpu_s() - api0) if api is not None else 0.0
    return Sample(wall, cpu, api_cpu), out


def resource_count(n: int, deps_upto: int) -> int:
    return 2 * n + 1 if n <= deps_upto else n


def _env_for(n: int, project_id: str | None) -> dict[str, str]:
    return {"BENCH_N": str(n), "BENCH_PROJECT_ID": project_id or ""}


@contextlib.contextmanager
def environ(values: dict[str, str]) -> Iterator[None]:
    saved = {k: os.environ.get(k) for k in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def deploy(program: Path, location: Path, command: str, concurrency: int | None) -> RunResult:
    settings = RunSettings(
        command=command,
        stage=STAGE,
        location=str(location),
        password=PASSWORD,
        concurrency=concurrency,
    )
    result = run_program(program, settings).results[-1]
    if result.status == "failed":
        raise RuntimeError(f"{command} failed: {result.failures[:3]}")
    return result


def destroy(location: Path, concurrency: int | None) -> RunResult:
    with Journal.open(location, password=PASSWORD, create=False) as jr:
        result = destroy_stage(jr, APP, STAGE, concurrency=concurrency)
    if result.status == "failed":
        raise RuntimeError(f"destroy failed: {result.failures[:3]}")
    return result


def _expect(result: RunResult, action: str, count: int) -> None:
    if result.counts != {action: count}:
        raise RuntimeError(f"{result.command}: expected {count} {action}, got {result.counts}")


@dataclass
class Lifecycle:
    first: Case = field(default_factory=Case)
    noop: Case = field(default_factory=Case)
    plan: Case = field(default_factory=Case)
    destroy: Case = field(default_factory=Case)
    #: runs that failed ("phase: last line of the error"): reported, not fatal
    failures: list[str] = field(default_factory=list)


#: every failed run seen, for the summary: (where, what)
FAILURES: list[tuple[str, str]] = []


def _failed(where: str, phase: str, exc: BaseException) -> str:
    lines = [ln.strip() for ln in str(exc).splitlines() if ln.strip()]
    text = f"{phase}: {lines[-1] if lines else type(exc).__name__}"
    FAILURES.append((where, text))
    print(f"warning: {where}: a run failed: {text}", file=sys.stderr, flush=True)
    return text


def lifecycle_in_process(
    folder: Path,
    program: Path,
    api: ApiServer | None,
    resources: int,
    out: Lifecycle,
    *,
    concurrency: int | None,
    noop_repeats: int,
    plan: bool = True,
) -> None:
    """One fresh journal: first deploy, no-op deploys, plans, destroy. A run that fails is
    recorded in ``out.failures`` (and the rest of this lifecycle skipped), not raised."""
    phase = ["first deploy"]
    try:
        _lifecycle(folder, program, api, resources, out, concurrency, noop_repeats, plan, phase)
    except (JournalError, RuntimeError) as exc:
        where = f"N={resources} resources, concurrency {concurrency or 'default'}"
        out.failures.append(_failed(where, phase[0], exc))


def _lifecycle(
    folder: Path,
    program: Path,
    api: ApiServer | None,
    resources: int,
    out: Lifecycle,
    concurrency: int | None,
    noop_repeats: int,
    plan: bool,
    phase: list[str],
) -> None:
    location = folder / ".journal" / "journal.db"
    shutil.rmtree(location.parent, ignore_errors=True)
    location.parent.mkdir(parents=True)
    # created beforehand: the one-time key derivation is measured apart
    Journal.open(location, password=PASSWORD).close()
    sample, result = measure(lambda: deploy(program, location, "deploy", concurrency), api)
    _expect(result, "create", resources)
    out.first.add(sample)
    phase[0] = "no-op deploy"
    for _ in range(noop_repeats):
        sample, result = measure(lambda: deploy(program, location, "deploy", concurrency), api)
        _expect(result, "noop", resources)
        out.noop.add(sample)
    phase[0] = "plan"
    for _ in range(noop_repeats if plan else 0):
        sample, result = measure(lambda: deploy(program, location, "plan", concurrency), api)
        _expect(result, "noop", resources)
        out.plan.add(sample)
    phase[0] = "destroy"
    sample, result = measure(lambda: destroy(location, concurrency), api)
    _expect(result, "delete", resources)
    out.destroy.add(sample)
    shutil.rmtree(location.parent, ignore_errors=True)


_SUCCEEDED = re.compile(r"succeeded in ([0-9.]+)s")


def cli(args: Sequence[str], cwd: Path, env: dict[str, str]) -> tuple[float, str]:
    t0 = time.perf_counter()
    proc = subprocess.run(
        [*journal_command(), *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
    )
    wall = time.perf_counter() - t0
    if proc.returncode != 0:
        raise RuntimeError(f"journal {' '.join(args)} exited {proc.returncode}: {proc.stderr}")
    return wall, proc.stdout


def reported_s(stdout: str) -> float | None:
    found = _SUCCEEDED.findall(stdout)
    return float(found[-1]) if found else None


CLI_CASES = ("first deploy", "no-op deploy", "plan", "destroy")


@dataclass
class CliCase:
    wall: list[float] = field(default_factory=list)
    reported: list[float] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)

    def add(self, wall: float, stdout: str) -> None:
        self.wall.append(wall)
        inner = reported_s(stdout)
        if inner is not None:
            self.reported.append(inner)


def lifecycle_cli(folder: Path, n: int, project_id: str | None, cases: dict[str, CliCase]) -> None:
    """`journal deploy`, `deploy`, `plan`, `destroy --yes`; a failure is recorded, not raised."""
    shutil.rmtree(folder / ".journal", ignore_errors=True)
    env = {**os.environ, "JOURNAL_PASSWORD": PASSWORD, "NO_COLOR": "1", "JOURNAL_STAGE": STAGE}
    env.update(_env_for(n, project_id))
    steps = {
        "first deploy": ["deploy", str(folder)],
        "no-op deploy": ["deploy", str(folder)],
        "plan": ["plan", str(folder)],
        "destroy": ["destroy", "--yes"],
    }
    for key, argv in steps.items():
        try:
            wall, stdout = cli(argv, folder, env)
        except RuntimeError as exc:
            cases[key].failures.append(_failed(f"CLI, N={n}", key, exc))
            break
        cases[key].add(wall, stdout)
    shutil.rmtree(folder / ".journal", ignore_errors=True)


def http_only(api: ApiServer, n: int, project_id: str, concurrency: int) -> tuple[Sample, Sample]:
    """n creates then n deletes with the project's client on a pool: the API's own floor."""
    from journal.resources.prisma_postgres._client import PrismaClient

    with PrismaClient(token=TOKEN, base_url=api.url) as client:
        client.list_postgres_regions()

        def create(i: int) -> str:
            return client.create_database(
                project_id=project_id, name=f"raw-{i}", region="us-east-1", is_default=False
            ).id

        with ThreadPoolExecutor(concurrency) as pool:
            made, ids = measure(lambda: list(pool.map(create, range(n))), api)
            gone, _ = measure(lambda: list(pool.map(client.delete_database, ids)), api)
    return made, gone


# --- profiling ---------------------------------------------------------------------------------

#: where threads wait rather than work: left out of the profile listing
_WAITS = ("acquire", "'get' of '_queue", "'poll' of", "'select' of", "wait", "sleep", "'recv")


def profile_all_threads(fn: Callable[[], Any], top: int = 30) -> str:
    """cProfile over the calling thread and every thread started meanwhile."""
    profiles: list[cProfile.Profile] = []
    lock = threading.Lock()

    def start(*_: Any) -> None:
        prof = cProfile.Profile()
        with lock:
            profiles.append(prof)
        prof.enable()

    main = cProfile.Profile()
    threading.setprofile(start)
    main.enable()
    try:
        fn()
    finally:
        main.disable()
        threading.setprofile(None)  # type: ignore[arg-type]
    stream = io.StringIO()
    stats = pstats.Stats(main, stream=stream)
    for prof in profiles:
        with contextlib.suppress(TypeError):  # a thread that never ran Python
            stats.add(prof)
    stats.sort_stats("tottime").print_stats(top * 3)
    lines = stream.getvalue().splitlines()
    keep = [ln for ln in lines if not any(w in ln for w in _WAITS)]
    return "\n".join(keep[: top + 12])


def phase_splits(fn: Callable[[], Any]) -> list[list[object]]:
    """Main-thread time in the engine's phases during ``fn`` (a no-op deploy, say)."""
    from journal import _engine, _journal, _runner

    main = threading.main_thread()
    spent: dict[str, float] = {}
    calls: dict[str, int] = {}
    patched: list[tuple[Any, str, Any]] = []

    def wrap(owner: Any, name: str, label: str) -> None:
        original = getattr(owner, name)
        raw = vars(owner)[name]  # what to put back (a classmethod stays one)

        def timed_call(*args: Any, **kwargs: Any) -> Any:
            t0 = time.perf_counter()
            try:
                return original(*args, **kwargs)
            finally:
                if threading.current_thread() is main:
                    spent[label] = spent.get(label, 0.0) + time.perf_counter() - t0
                    calls[label] = calls.get(label, 0) + 1

        patched.append((owner, name, raw))
        setattr(owner, name, timed_call)

    wrap(_runner, "program_hash", "_runner.program_hash")
    wrap(_runner, "_drop_local_modules", "_runner._drop_local_modules")
    wrap(_runner, "local_modules", "_runner.local_modules")
    wrap(_journal.Journal, "open", "Journal.open")
    wrap(_engine.Run, "begin", "Run.begin (lock, load state, run.started)")
    wrap(_engine._run, "load_state", "  _projection.load_state")
    wrap(_engine.Run, "declare", "Run.declare (validate, queue)")
    wrap(_engine.Run, "flush", "Run.flush (schedule on the pool)")
    wrap(_engine.Run, "_wait_declared", "Run._wait_declared")
    wrap(_engine.Run, "_finish", "Run._finish (run.finished, snapshot)")
    wrap(_engine._run, "snapshot_state", "  _projection.snapshot_state")
    wrap(_engine.Run, "_close", "Run._close (pool shutdown)")
    wrap(_journal.Journal, "append", "Journal.append (main thread)")
    wrap(threading.Thread, "start", "threading.Thread.start (pool threads)")
    wrap(_journal.Journal, "close", "Journal.close")
    t0 = time.perf_counter()
    try:
        fn()
    finally:
        total = time.perf_counter() - t0
        for owner, name, raw in reversed(patched):
            setattr(owner, name, raw)
    rows: list[list[object]] = [["(whole run)", total * 1000, 1]]
    for label, seconds in sorted(spent.items(), key=lambda kv: -kv[1]):
        rows.append([label, seconds * 1000, calls[label]])
    return rows


# --- main --------------------------------------------------------------------------------------


def _ints(text: str) -> list[int]:
    return [int(x.strip().replace("_", "").replace(",", "")) for x in text.split(",") if x.strip()]


def _extra(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--sizes", type=_ints, default=[10, 100, 1000], help="N (default 10,100,1000)"
    )
    parser.add_argument(
        "--cli-sizes", type=_ints, default=[1000], help="N run end to end via the CLI"
    )
    parser.add_argument(
        "--latency-sizes", type=_ints, default=[1000], help="N with injected latency"
    )
    parser.add_argument("--latency-ms", type=float, default=50.0, help="per call (default 50)")
    parser.add_argument("--latency-runs", type=int, default=3)
    parser.add_argument("--noop-repeats", type=int, default=3, help="no-op deploys/plans per run")
    parser.add_argument("--deps-upto", type=int, default=100, help="project+connections up to N")
    parser.add_argument("--concurrency", type=int, default=None, help="engine concurrency")
    parser.add_argument("--sweep", type=_ints, default=[], help="concurrencies to compare")
    parser.add_argument("--sweep-runs", type=int, default=3)
    parser.add_argument("--no-diagnose", action="store_true", help="skip the split diagnostics")
    parser.add_argument("--profile", action="store_true", help="print cProfile + phase splits")
    parser.add_argument("--dir", type=Path, default=None, help="where the journals go")


def _m(name: str, value: float, unit: str = "s") -> Metric:
    return Metric(f"scale.{name}", value, unit, higher_is_better=False)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(__doc__.splitlines()[0], name="bench_scale", extra=_extra, argv=argv)
    env = environment()
    print_header("bench_scale", env)
    started_load = load_average()
    concurrency = args.concurrency or int(
        os.environ.get("JOURNAL_CONCURRENCY", DEFAULT_CONCURRENCY)
    )
    print(
        f"# local API: metadata-only, own process; engine concurrency {concurrency}; "
        f"KDF {kdf_profile()}; load average {started_load}"
    )
    print(f"# {args.runs} runs (fresh journal each), medians; no-op/plan x{args.noop_repeats}\n")
    root = Path(tempfile.mkdtemp(prefix="bench-scale-", dir=args.dir))
    metrics: list[Metric] = []
    tables: dict[str, tuple[list[str], list[list[object]]]] = {}
    try:
        with metadata_api(0.0) as api:
            # warm-up: imports and the first connections are not what we measure
            warm = root / "warm"
            program = write_program(warm)
            with environ(_env_for(1, None)):
                lifecycle_in_process(
                    warm, program, api, 3, Lifecycle(), concurrency=args.concurrency, noop_repeats=1
                )
            cold, warm_open = key_derivation_s(_fresh_journal(root / "kdf"))
            tables["key derivation"] = (
                ["profile", "open, key derived (s)", "open, key cached (s)", "derivation (s)"],
                [[kdf_profile(), cold, warm_open, cold - warm_open]],
            )
            metrics.append(_m("key_derivation_s", cold - warm_open))

            # in process, zero latency
            # (and end to end through the CLI, interleaved rep by rep for N in --cli-sizes)
            results: dict[int, Lifecycle] = {}
            projects: dict[int, str | None] = {}
            via_cli: dict[int, dict[str, CliCase]] = {
                n: {k: CliCase() for k in CLI_CASES} for n in args.cli_sizes
            }
            for n in args.sizes:
                projects[n] = make_project(api, f"bench-{n}") if n > args.deps_upto else None
                folder = root / f"n{n}"
                program = write_program(folder)
                results[n] = Lifecycle()
                with environ(_env_for(n, projects[n])):
                    for _ in range(max(1, args.runs)):
                        lifecycle_in_process(
                            folder,
                            program,
                            api,
                            resource_count(n, args.deps_upto),
                            results[n],
                            concurrency=args.concurrency,
                            noop_repeats=args.noop_repeats,
                        )
                        if n in via_cli:
                            write_program(root / f"cli-n{n}")
                            lifecycle_cli(root / f"cli-n{n}", n, projects[n], via_cli[n])
            headers = ["N", "resources", "first deploy s", "no-op deploy s", "plan s", "destroy s"]
            rows: list[list[object]] = []
            detail: list[list[object]] = []
            for n, life in results.items():
                count = resource_count(n, args.deps_upto)
                cases = {
                    "first_deploy": life.first,
                    "noop_deploy": life.noop,
                    "plan": life.plan,
                    "destroy": life.destroy,
                }
                rows.append([n, count, *(c.median() for c in cases.values())])
                for key, case in cases.items():
                    metrics.append(_m(f"n{n}.{key}_s", case.median()))
                    metrics.append(_m(f"n{n}.{key}_min_s", min(case.wall, default=float("nan"))))
                    detail.append(
                        [
                            n,
                            key,
                            len(case.samples),
                            spread(case.wall),
                            case.median("cpu"),
                            case.median("api_cpu"),
                        ]
                    )
            print("## in process (run_program / destroy_stage), zero latency, medians")
            print_table(headers, rows)
            tables["in process"] = (headers, rows)
            d_headers = [
                "N",
                "case",
                "samples",
                "wall s min / median / max",
                "CPU s (bench process)",
                "CPU s (API server)",
            ]
            print_table(d_headers, detail)
            tables["in process, spread and CPU"] = (d_headers, detail)
            _print_targets(results, args.sizes)

            # end to end through the CLI
            if args.cli_sizes:
                c_rows: list[list[object]] = []
                for n, cli_cases in via_cli.items():
                    if n not in projects:  # not measured in process: on its own
                        projects[n] = (
                            make_project(api, f"bench-cli-{n}") if n > args.deps_upto else None
                        )
                        write_program(root / f"cli-n{n}")
                        for _ in range(max(1, args.runs)):
                            lifecycle_cli(root / f"cli-n{n}", n, projects[n], cli_cases)
                    for key, case in cli_cases.items():
                        med = statistics.median(case.wall) if case.wall else float("nan")
                        inner = statistics.median(case.reported) if case.reported else None
                        c_rows.append(
                            [
                                n,
                                key,
                                med,
                                inner if inner is not None else "-",
                                (med - inner) if inner is not None else "-",
                                spread(case.wall),
                            ]
                        )
                        slug = key.replace(" ", "_").replace("-", "")
                        metrics.append(_m(f"cli.n{n}.{slug}_s", med))
                c_headers = [
                    "N",
                    "command",
                    "wall s",
                    "run s (as reported)",
                    "start-up + exit s",
                    "wall min / median / max",
                ]
                print("## end to end: `journal deploy|plan|destroy --yes`, fresh process each")
                print_table(c_headers, c_rows)
                tables["cli end to end"] = (c_headers, c_rows)

            # where the time goes at the largest N
            if not args.no_diagnose:
                n = max(args.sizes)
                tables["diagnostics"] = _diagnose(
                    root, api, n, projects.get(n), results[n], args, concurrency, metrics
                )

            if args.sweep and args.sizes:
                n = max(args.sizes)
                tables["concurrency sweep"] = _sweep(root, api, args, n, projects.get(n), metrics)

            if args.profile:
                _profile(root, api, max(args.sizes), projects.get(max(args.sizes)), args)

        # injected latency
        if args.latency_sizes:
            _latency(root, args, concurrency, metrics, tables)
        ended_load = load_average()
        if FAILURES:
            print(f"## {len(FAILURES)} run(s) failed (their samples are missing above)")
            print_table(["where", "what"], [list(f) for f in FAILURES])
            tables["failures"] = (["where", "what"], [list(f) for f in FAILURES])
        metrics.append(Metric("scale.failed_runs", len(FAILURES), "runs", higher_is_better=False))
        metrics = [m for m in metrics if m.value == m.value]  # no NaN: nothing to compare
        print(f"# load average at the end: {ended_load}")
        tables["conditions"] = (
            ["load average (1, 5, 15 min) at the start", "at the end"],
            [[started_load, ended_load]],
        )
        return finish(args, env, metrics, tables=tables)
    finally:
        shutil.rmtree(root, ignore_errors=True)


def _latency(
    root: Path,
    args: argparse.Namespace,
    concurrency: int,
    metrics: list[Metric],
    tables: dict[str, tuple[list[str], list[list[object]]]],
) -> None:
    rows: list[list[object]] = []
    lat_s = args.latency_ms / 1000.0
    with metadata_api(lat_s) as api:
        for n in args.latency_sizes:
            count = resource_count(n, args.deps_upto)
            project_id = make_project(api, f"bench-lat-{n}") if n > args.deps_upto else None
            folder = root / f"lat-n{n}"
            program = write_program(folder)
            life = Lifecycle()
            with environ(_env_for(n, project_id)):
                for _ in range(max(1, args.latency_runs)):
                    lifecycle_in_process(
                        folder,
                        program,
                        api,
                        count,
                        life,
                        concurrency=args.concurrency,
                        noop_repeats=1,
                        plan=False,
                    )
            for key, case in (
                ("first_deploy", life.first),
                ("noop_deploy", life.noop),
                ("destroy", life.destroy),
            ):
                med = case.median()
                waves = -(-count // concurrency)
                rows.append([n, key, med, med / lat_s, waves, count * lat_s, spread(case.wall)])
                metrics.append(_m(f"lat{args.latency_ms:g}ms.n{n}.{key}_s", med))
        headers = [
            "N",
            "case",
            "median s",
            f"x {args.latency_ms:g} ms",
            f"ceil(resources / {concurrency})",
            "sequential s",
            "min / median / max",
        ]
        print(f"## in process, {args.latency_ms:g} ms per API call")
        print_table(headers, rows)
        tables[f"latency {args.latency_ms:g} ms"] = (headers, rows)
        if args.sweep:
            n = max(args.latency_sizes)
            project_id = make_project(api, f"bench-sweep-{n}") if n > args.deps_upto else None
            tables[f"concurrency sweep, {args.latency_ms:g} ms"] = _sweep(
                root, api, args, n, project_id, metrics, args.latency_ms
            )


def _fresh_journal(folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    location = folder / "journal.db"
    Journal.open(location, password=PASSWORD).close()
    return location


def _print_targets(results: dict[int, Lifecycle], sizes: Sequence[int]) -> None:
    if not sizes:  # --sizes "": only the latency runs or the sweeps
        return
    n = 1000 if 1000 in results else max(sizes)
    life = results[n]
    rows = []
    for key, case in (
        ("first_deploy", life.first),
        ("noop_deploy", life.noop),
        ("destroy", life.destroy),
    ):
        med = case.median()
        target = TARGETS[key]
        others = OTHERS[key]
        rows.append(
            [
                key,
                med,
                target,
                med / target,
                others["alchemy"],
                others["terraform"],
                "met" if med <= target else "missed",
            ]
        )
    print(f"## targets at N = {n:,} (in process)")
    print_table(
        ["figure", "measured s", "target s", "x target", "Alchemy s", "Terraform s", "verdict"],
        rows,
    )


def _diagnose(
    root: Path,
    api: ApiServer,
    n: int,
    project_id: str | None,
    full: Lifecycle,
    args: argparse.Namespace,
    concurrency: int,
    metrics: list[Metric],
) -> tuple[list[str], list[list[object]]]:
    count = resource_count(n, args.deps_upto)
    folder = root / f"null-n{n}"
    write_program(folder, NULL_PROVIDER, "bench_null_provider.py")
    program = write_program(folder, NULL_PROGRAM)
    null = Lifecycle()
    with environ(_env_for(n, project_id)):
        for _ in range(max(1, args.runs)):
            lifecycle_in_process(
                folder,
                program,
                None,
                count,
                null,
                concurrency=args.concurrency,
                noop_repeats=args.noop_repeats,
                plan=False,
            )
    made: list[Sample] = []
    gone: list[Sample] = []
    raw_project = project_id or make_project(api, f"bench-raw-{n}")
    for _ in range(max(1, min(args.runs, 3))):
        try:
            create, delete = http_only(api, n, raw_project, concurrency)
        except JournalError as exc:
            _failed(f"HTTP only, N={n}", "creates/deletes", exc)
            continue
        made.append(create)
        gone.append(delete)

    def med(samples: list[Sample], what: str) -> float:
        if not samples:
            return float("nan")
        return statistics.median(getattr(s, what) for s in samples)

    rows: list[list[object]] = [
        [
            "first deploy, full",
            full.first.median(),
            full.first.median("cpu"),
            full.first.median("api_cpu"),
        ],
        [
            "first deploy, engine + journal only (null provider)",
            null.first.median(),
            null.first.median("cpu"),
            0.0,
        ],
        [f"{n} creates, HTTP only (client pool of {concurrency})", med(made, "wall"),
         med(made, "cpu"), med(made, "api_cpu")],
        ["no-op deploy, full", full.noop.median(), full.noop.median("cpu"), 0.0],
        ["no-op deploy, null provider", null.noop.median(), null.noop.median("cpu"), 0.0],
        ["destroy, full", full.destroy.median(), full.destroy.median("cpu"),
         full.destroy.median("api_cpu")],
        ["destroy, engine + journal only (null provider)", null.destroy.median(),
         null.destroy.median("cpu"), 0.0],
        [f"{n} deletes, HTTP only (client pool of {concurrency})", med(gone, "wall"),
         med(gone, "cpu"), med(gone, "api_cpu")],
    ]  # fmt: skip
    metrics += [
        _m(f"diag.n{n}.null_first_deploy_s", null.first.median()),
        _m(f"diag.n{n}.null_noop_deploy_s", null.noop.median()),
        _m(f"diag.n{n}.null_destroy_s", null.destroy.median()),
        _m(f"diag.n{n}.http_creates_s", med(made, "wall")),
        _m(f"diag.n{n}.http_deletes_s", med(gone, "wall")),
    ]
    headers = ["N = " + f"{n:,}", "wall s", "CPU s (bench process)", "CPU s (API server)"]
    print(f"## where the time goes at N = {n:,} (medians; 2 cores, one GIL per process)")
    print_table(headers, rows)
    return headers, rows


def _sweep(
    root: Path,
    api: ApiServer,
    args: argparse.Namespace,
    n: int,
    project_id: str | None,
    metrics: list[Metric],
    latency_ms: float = 0.0,
) -> tuple[list[str], list[list[object]]]:
    count = resource_count(n, args.deps_upto)
    folder = root / f"sweep-n{n}-{latency_ms:g}ms"
    program = write_program(folder)
    lives = {c: Lifecycle() for c in args.sweep}
    with environ(_env_for(n, project_id)):
        for _ in range(max(1, args.sweep_runs)):
            for c in args.sweep:  # interleaved, so drifts hit every value alike
                lifecycle_in_process(
                    folder, program, api, count, lives[c], concurrency=c, noop_repeats=1, plan=False
                )
    failed = {c: life.failures for c, life in lives.items()}
    rows: list[list[object]] = []
    tag = f"lat{latency_ms:g}ms." if latency_ms else ""
    for c, life in lives.items():

        def med(case: Case) -> float | str:
            return case.median() if case.samples else "-"

        note = f"{len(failed[c])} run(s) failed: {failed[c][0]}" if failed[c] else ""
        rows.append([c, med(life.first), med(life.noop), med(life.destroy), note])
        if not failed[c]:  # a value with failures makes no baseline
            metrics.append(_m(f"sweep.{tag}n{n}.c{c}.first_deploy_s", life.first.median()))
            metrics.append(_m(f"sweep.{tag}n{n}.c{c}.destroy_s", life.destroy.median()))
    headers = ["concurrency", "first deploy s", "no-op deploy s", "destroy s", "failures"]
    where = f"{latency_ms:g} ms per call" if latency_ms else "zero latency"
    print(f"## engine concurrency at N = {n:,}, {where} ({args.sweep_runs} runs, medians)")
    print_table(headers, rows)
    return headers, rows


def _profile(
    root: Path, api: ApiServer, n: int, project_id: str | None, args: argparse.Namespace
) -> None:
    folder = root / f"profile-n{n}"
    program = write_program(folder)
    location = _fresh_journal(folder / ".journal")
    with environ(_env_for(n, project_id)):
        print(f"## cProfile, every thread: first deploy, N = {n:,} (waits left out)")
        print(profile_all_threads(lambda: deploy(program, location, "deploy", args.concurrency)))
        deploy(program, location, "deploy", args.concurrency)  # warm
        print(f"## main-thread phases of a no-op deploy, N = {n:,} (3 runs)")
        for _ in range(3):
            rows = phase_splits(lambda: deploy(program, location, "deploy", args.concurrency))
            print_table(["phase", "ms", "calls"], rows)
        print(f"## cProfile, every thread: no-op deploy, N = {n:,}")
        print(profile_all_threads(lambda: deploy(program, location, "deploy", args.concurrency)))
        print(f"## cProfile, every thread: destroy, N = {n:,}")
        print(profile_all_threads(lambda: destroy(location, args.concurrency)))


if __name__ == "__main__":
    raise SystemExit(main())
