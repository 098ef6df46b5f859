"""A small test provider: "memory.Thing" objects kept in a SQLite file (or in memory).

It lets engine tests count calls, measure overlap, inject latency and failures, and survive a
SIGKILL of the deploying process (the file is the "remote" side). Not shipped with journal.
"""

from __future__ import annotations

import json
import os
import sqlite3
import threading
import time
import uuid
from dataclasses import dataclass
from typing import Any

from journal._errors import ProviderError, ValidationError
from journal._program.app import Resource
from journal._provider import Context, Provider, register_provider


class Cloud:
    """The remote side: objects by id, call counters, fault settings."""

    def __init__(self, path: str | None = None) -> None:
        self.path = path or os.environ.get("MEMORY_CLOUD") or ":memory:"
        self._local = threading.local()
        self.lock = threading.Lock()
        self.latency = float(os.environ.get("MEMORY_LATENCY", "0"))
        # sleep after an object is stored, before the call returns (crash-window tests)
        self.after_create = float(os.environ.get("MEMORY_AFTER_CREATE", "0"))
        self.fail_names: set[str] = set(filter(None, os.environ.get("MEMORY_FAIL", "").split(",")))
        self.calls: list[tuple[str, str]] = []
        self.in_flight = 0
        self.max_in_flight = 0
        #: hold every call until this many are in flight at once (then let all through);
        #: a call that waits ``gate_timeout`` seconds in vain fails: concurrency, tested
        #: without depending on how fast a loaded machine launches threads
        self.gate: int | None = None
        self.gate_timeout = 60.0
        self._gate_open = threading.Event()
        self._shared: sqlite3.Connection | None = None
        with self._conn() as c:
            c.execute(
                "CREATE TABLE IF NOT EXISTS objects (id TEXT PRIMARY KEY, name TEXT, data TEXT)"
            )

    def _conn(self) -> sqlite3.Connection:
        if self.path == ":memory:":
            if self._shared is None:
                self._shared = sqlite3.connect(":memory:", check_same_thread=False)
            return self._shared
        conn = getattr(self._local, "conn", None)
        if conn is None:
            conn = sqlite3.connect(self.path, timeout=30, isolation_level=None)
            conn.execute("PRAGMA journal_mode=WAL")
            self._local.conn = conn
        return conn

    def call(self, op: str, name: str) -> None:
        with self.lock:
            self.calls.append((op, name))
            self.in_flight += 1
            self.max_in_flight = max(self.max_in_flight, self.in_flight)
            if self.gate is not None and self.in_flight >= self.gate:
                self._gate_open.set()
        try:
            if self.gate is not None and not self._gate_open.wait(self.gate_timeout):
                raise ProviderError(
                    f"only {self.max_in_flight} calls were ever in flight at once "
                    f"(the gate waits for {self.gate})",
                    operation=op,
                )
            if self.latency:
                time.sleep(self.latency)
            if op in ("create", "update") and name in self.fail_names:
                raise ProviderError(f"injected failure for {name!r}", operation=op)
        finally:
            with self.lock:
                self.in_flight -= 1

    def put(self, obj: dict[str, Any]) -> None:
        with self.lock:
            self._conn().execute(
                "INSERT OR REPLACE INTO objects VALUES (?, ?, ?)",
                (obj["id"], obj["name"], json.dumps(obj)),
            )

    def get(self, oid: str) -> dict[str, Any] | None:
        with self.lock:
            row = self._conn().execute("SELECT data FROM objects WHERE id = ?", (oid,)).fetchone()
        return json.loads(row[0]) if row else None

    def by_name(self, name: str) -> list[dict[str, Any]]:
        with self.lock:
            rows = (
                self._conn().execute("SELECT data FROM objects WHERE name = ?", (name,)).fetchall()
            )
        return [json.loads(r[0]) for r in rows]

    def remove(self, oid: str) -> bool:
        with self.lock:
            cur = self._conn().execute("DELETE FROM objects WHERE id = ?", (oid,))
        return cur.rowcount > 0

    def all(self) -> list[dict[str, Any]]:
        with self.lock:
            rows = self._conn().execute("SELECT data FROM objects ORDER BY name").fetchall()
        return [json.loads(r[0]) for r in rows]

    def count(self, op: str) -> int:
        return sum(1 for o, _ in self.calls if o == op)


CLOUD = Cloud()


def reset_cloud(path: str | None = None) -> Cloud:
    global CLOUD
    CLOUD = Cloud(path)
    return CLOUD


@dataclass(frozen=True)
class ThingProps:
    name: str | None = None
    size: int = 1
    tag: str | None = None
    parent: str | None = None


@dataclass(frozen=True)
class ThingOutputs:
    id: str
    name: str
    size: int
    tag: str | None
    parent: str | None


@register_provider
class ThingProvider(Provider[ThingProps, ThingOutputs]):
    type_name = "memory.Thing"
    props_type = ThingProps
    outputs_type = ThingOutputs
    updatable = frozenset({"tag"})

    def validate(self, props: ThingProps, *, resource: str) -> None:
        if not isinstance(props.size, int) or props.size < 1:
            raise ValidationError("must be a whole number >= 1", resource=resource, field="size")

    def prepare(self, props: ThingProps, ctx: Context) -> ThingProps:
        if props.name is None:
            return ThingProps(ctx.default_name, props.size, props.tag, props.parent)
        return props

    @staticmethod
    def _out(obj: dict[str, Any]) -> ThingOutputs:
        return ThingOutputs(obj["id"], obj["name"], obj["size"], obj["tag"], obj["parent"])

    def create(self, props: ThingProps, ctx: Context) -> ThingOutputs:
        assert props.name is not None
        CLOUD.call("create", props.name)
        if props.parent is not None and CLOUD.get(props.parent) is None:
            raise ProviderError(f"parent {props.parent} does not exist", operation="create")
        obj = {
            "id": "th_" + uuid.uuid4().hex[:12],
            "name": props.name,
            "size": props.size,
            "tag": props.tag,
            "parent": props.parent,
        }
        CLOUD.put(obj)
        if CLOUD.after_create:
            time.sleep(CLOUD.after_create)
        return self._out(obj)

    def update(
        self, props: ThingProps, old_props: ThingProps, outputs: ThingOutputs, ctx: Context
    ) -> ThingOutputs:
        CLOUD.call("update", outputs.name)
        obj = CLOUD.get(outputs.id)
        if obj is None:
            raise ProviderError(f"{outputs.id} vanished", operation="update")
        obj["tag"] = props.tag
        CLOUD.put(obj)
        return self._out(obj)

    def delete(self, props: ThingProps, outputs: ThingOutputs, ctx: Context) -> None:
        CLOUD.call("delete", outputs.name)
        CLOUD.remove(outputs.id)

    def read(
        self, props: ThingProps, outputs: ThingOutputs | None, ctx: Context
    ) -> ThingOutputs | None:
        CLOUD.call("read", props.name or "")
        if outputs is not None:
            obj = CLOUD.get(outputs.id)
            return self._out(obj) if obj else None
        found = CLOUD.by_name(props.name or ctx.default_name)
        return self._out(found[0]) if found else None

    def find(
        self, props: ThingProps, ctx: Context, *, exclude: frozenset[str] = frozenset()
    ) -> ThingOutputs | None:
        CLOUD.call("read", props.name or "")
        for obj in CLOUD.by_name(props.name or ctx.default_name):
            if obj["id"] not in exclude:
                return self._out(obj)
        return None


class Thing(Resource[ThingOutputs]):
    type_name = "memory.Thing"

    def __init__(
        self,
        id: str,
        *,
        name: str | None = None,
        size: int = 1,
        tag: str | None = None,
        parent: Thing | str | None = None,
        delete: bool | None = None,
        adopt: bool = False,
    ) -> None:
        super().__init__(
            id,
            {"name": name, "size": size, "tag": tag, "parent": parent},
            delete=delete,
            adopt=adopt,
        )

    @property
    def id(self) -> str:
        return self.outputs.id

    @property
    def name(self) -> str:
        return self.outputs.name
