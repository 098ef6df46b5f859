"""The provider contract suite: what every provider must do, against a live API.

Subclass :class:`ProviderContract` in a test module (name the subclass ``Test...`` so pytest
collects it; needs pytest) and implement its hooks; every test then runs against the API your
``endpoints()`` points at, with a fresh journal in pytest's ``tmp_path``::

    from journal.provider import Endpoint, Secret
    from journal.testing import ProviderContract

    class TestBucketContract(ProviderContract):
        type_name = "tiny.Bucket"

        @pytest.fixture(autouse=True)
        def _api(self):
            with TinyApi(token="t") as api:
                self.api = api
                yield

        def endpoints(self):
            return {"tiny": Endpoint(self.api.url, {"api_token": Secret("t")})}

        def declare(self, id, name, **options):
            return Bucket(id, name=name, **options)

        def declare_replaced(self, id, name, **options):
            return Bucket(id, name=name, storage="archive", **options)

        def declare_dependent(self, id, target, **options):
            return Function(id, env={"B": target}, **options)

What it checks: create, read by id and find by name (adopt and recovery rely on it);
``adopt=True`` takes over an existing object; ``delete`` raises ``NotFoundError`` for an
object that is gone, and a destroy then counts it as gone; a create whose intent was
recorded without an outcome (a crash) is recovered by the next run without a duplicate; a
change to a replace-only field replaces the object and deletes the old one; a reference
(nested where the props allow) is recorded with its path, orders destroy (dependents
first) and is re-resolved by a rollback made from the journal alone.
"""

from __future__ import annotations

import threading
import uuid
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any, ClassVar

import pytest

from ._engine import RunResult
from ._errors import NotFoundError
from ._events import make_event
from ._journal import Journal
from ._ops import destroy_stage, rollback_stage
from ._program.app import Resource, RunSettings, app, run_settings
from ._projection import ResourceState, load_state, stream_name
from ._provider import Context, Endpoint, Provider, close_shared, get_provider, make_context

__all__ = ["ProviderContract"]

#: the password of the suite's journals (they live in pytest's tmp_path)
PASSWORD = "journal-contract-suite"


class ProviderContract:
    """The contract tests. Hooks: :meth:`endpoints`, :meth:`declare`, and optionally
    :meth:`declare_replaced` and :meth:`declare_dependent` (return None to skip theirs)."""

    #: the type name of the resource under test (``"tiny.Bucket"``)
    type_name: ClassVar[str]
    app_name: ClassVar[str] = "contract"

    # --- hooks ---------------------------------------------------------------------------

    def endpoints(self) -> Mapping[str, Endpoint]:
        """Where the provider's API is (a live API, e.g. an emulator on loopback) and the
        credentials it takes, by service name."""
        raise NotImplementedError

    def declare(self, id: str, name: str, **options: Any) -> Resource[Any]:
        """Declare the resource under test with the remote name ``name``; pass ``options``
        (``delete=``, ``adopt=``) to the handle."""
        raise NotImplementedError

    def declare_replaced(self, id: str, name: str, **options: Any) -> Resource[Any] | None:
        """The same resource with a change its provider can only make by replacing it."""
        return None

    def declare_dependent(
        self, id: str, target: Resource[Any], **options: Any
    ) -> Resource[Any] | None:
        """A resource whose props hold a reference to ``target`` (nested in a dict or a list
        where its props allow)."""
        return None

    # --- machinery -----------------------------------------------------------------------

    @pytest.fixture(autouse=True)
    def _contract_journal(self, tmp_path: Path) -> Iterator[None]:
        self._journal = Journal.open(tmp_path / "contract.db", password=PASSWORD)
        self._tag = uuid.uuid4().hex[:8]
        self._cache: dict[str, Any] = {}
        self._cache_lock = threading.Lock()
        try:
            yield
        finally:
            close_shared(self._cache)
            self._journal.close()

    @property
    def provider(self) -> Provider[Any, Any]:
        return get_provider(self.type_name)

    def name(self, what: str) -> str:
        """A remote name unique to this test."""
        return f"contract-{what}-{self._tag}"

    def stage(self, n: int = 1) -> str:
        return f"s{n}-{self._tag}"

    def context(self, resource: str, stage: str | None = None) -> Context:
        return make_context(
            self.type_name,
            app=self.app_name,
            stage=stage or self.stage(),
            resource=resource,
            endpoints=self.endpoints(),
            cache=self._cache,
            cache_lock=self._cache_lock,
        )

    def deploy(self, build: Callable[[], object], stage: str | None = None) -> RunResult:
        """Run ``build`` (which declares resources) as a program, and return the run."""
        settings = RunSettings(
            journal=self._journal,
            stage=stage or self.stage(),
            endpoints=dict(self.endpoints()),
            command="deploy",
        )
        with run_settings(settings), app(self.app_name):
            build()
        return settings.results[-1]

    def destroy(self, stage: str | None = None) -> RunResult:
        return destroy_stage(
            self._journal, self.app_name, stage or self.stage(), endpoints=self.endpoints()
        )

    def recorded(self, rid: str, stage: str | None = None) -> ResourceState:
        state = load_state(self._journal, stream_name(self.app_name, stage or self.stage()))
        return state.resources[rid]

    def remote(self, rid: str, stage: str | None = None) -> tuple[Any, Any]:
        """The recorded props and outputs of ``rid``, as the provider's types."""
        res = self.recorded(rid, stage)
        provider = get_provider(res.type)
        return provider.load_props(res.props), provider.load_outputs(res.outputs or {})

    def ref_of(self, outputs: Any) -> str:
        return str(getattr(outputs, self.provider.ref_field))

    def actions(self, result: RunResult) -> dict[str, str]:
        return {c.resource: c.action for c in result.changes}

    # --- the contract ------------------------------------------------------------------

    def test_create_read_find_and_destroy(self) -> None:
        result = self.deploy(lambda: self.declare("a", self.name("a"), delete=True))
        assert result.status == "succeeded", result.failures
        assert self.actions(result) == {"a": "create"}, result.changes
        props, outputs = self.remote("a")
        ctx = self.context("a")
        read = self.provider.read(props, outputs, ctx)
        assert read is not None and self.ref_of(read) == self.ref_of(outputs)
        found = self.provider.find(props, ctx)
        assert found is not None and self.ref_of(found) == self.ref_of(outputs)
        assert self.provider.find(props, ctx, exclude=frozenset({self.ref_of(outputs)})) is None
        again = self.deploy(lambda: self.declare("a", self.name("a"), delete=True))
        assert self.actions(again) == {"a": "noop"}, again.changes
        gone = self.destroy()
        assert gone.status == "succeeded", gone.failures
        assert self.provider.read(props, outputs, ctx) is None

    def test_adopt_takes_over_an_existing_object(self) -> None:
        name = self.name("adopt")
        self.deploy(lambda: self.declare("a", name, delete=False))
        _props, original = self.remote("a")
        other = self.stage(2)
        result = self.deploy(lambda: self.declare("a", name, adopt=True, delete=True), other)
        assert result.status == "succeeded", result.failures
        assert self.actions(result) == {"a": "adopt"}, result.changes
        _props, adopted = self.remote("a", other)
        assert self.ref_of(adopted) == self.ref_of(original)
        assert self.destroy(other).status == "succeeded"
        assert self.destroy().status == "succeeded"  # protected: only forgotten

    def test_delete_of_a_missing_object_raises_not_found_and_destroy_tolerates_it(self) -> None:
        self.deploy(lambda: self.declare("a", self.name("gone"), delete=True))
        props, outputs = self.remote("a")
        ctx = self.context("a")
        self.provider.delete(props, outputs, ctx)
        with pytest.raises(NotFoundError):
            self.provider.delete(props, outputs, ctx)
        result = self.destroy()
        assert result.status == "succeeded", result.failures
        state = load_state(self._journal, stream_name(self.app_name, self.stage()))
        assert "a" not in state.resources or not state.resources["a"].exists

    def test_a_pending_create_is_recovered_without_a_duplicate(self) -> None:
        name = self.name("pending")
        first = self.stage(1)
        self.deploy(lambda: self.declare("a", name, delete=False), first)
        made = self.recorded("a", first)
        # a crashed run in another stage: its intent is recorded, the object exists, no outcome
        second = self.stage(2)
        intent = make_event(
            "resource.create.requested",
            resource="a",
            resource_type=made.type,
            props=made.props,
            deps=[],
            refs={},
            delete=True,
            options={"adopt": False},
            run="crashed",
            time="2026-01-01T00:00:00.000+00:00",
        )
        self._journal.append(stream_name(self.app_name, second), [intent])
        result = self.deploy(lambda: self.declare("a", name, delete=True), second)
        assert result.status == "succeeded", result.failures
        assert self.actions(result).get("a") in ("recover", "noop"), result.changes
        _props, recovered = self.remote("a", second)
        assert self.ref_of(recovered) == self.ref_of(self.remote("a", first)[1])
        props, _ = self.remote("a", second)
        ctx = self.context("a", second)
        found = self.provider.find(props, ctx, exclude=frozenset({self.ref_of(recovered)}))
        assert found is None, "the recovery made a second object"
        assert self.destroy(second).status == "succeeded"
        assert self.destroy(first).status == "succeeded"

    def test_a_replace_only_change_replaces_and_deletes_the_old_object(self) -> None:
        name = self.name("replace")
        self.deploy(lambda: self.declare("a", name, delete=True))
        old_props, old = self.remote("a")
        replaced: list[Resource[Any] | None] = []
        result = self.deploy(lambda: replaced.append(self.declare_replaced("a", name, delete=True)))
        if replaced == [None]:
            pytest.skip("the provider declares no replace-only change")
        assert result.status == "succeeded", result.failures
        changes = sorted((c.resource, c.action) for c in result.changes)
        assert changes == [("a", "delete"), ("a", "replace")], changes
        _props, new = self.remote("a")
        assert self.ref_of(new) != self.ref_of(old)
        assert self.provider.read(old_props, old, self.context("a")) is None
        assert self.destroy().status == "succeeded"

    def test_references_are_recorded_ordered_and_re_resolved_from_the_journal(self) -> None:
        def build() -> None:
            target = self.declare("target", self.name("target"), delete=True)
            made.append(self.declare_dependent("dependent", target, delete=True))

        made: list[Resource[Any] | None] = []
        result = self.deploy(build)
        if made == [None]:
            pytest.skip("the provider declares no resource that takes a reference")
        assert result.status == "succeeded", result.failures
        dependent = self.recorded("dependent")
        assert dependent.deps == ["target"]
        assert dependent.refs, "the reference was not recorded with its path"
        after_deploy = self._journal.head()[0]
        noop = self.deploy(build)
        assert set(self.actions(noop).values()) == {"noop"}, noop.changes
        # destroy from the journal alone: the dependent goes first
        result = self.destroy()
        assert result.status == "succeeded", result.failures
        order = [
            ev.payload["resource"]
            for ev in self._journal.read(stream_name(self.app_name, self.stage()))
            if ev.seq > after_deploy and ev.payload.get("type") == "resource.deleted"
        ]
        assert order == ["dependent", "target"], order
        # roll back to the deployed state, again without the program
        back = rollback_stage(
            self._journal,
            self.app_name,
            self.stage(),
            after_deploy,
            endpoints=self.endpoints(),
        )
        assert back.status == "succeeded", back.failures
        assert self.actions(back) == {"target": "create", "dependent": "create"}, back.changes
        target_now = self.ref_of(self.remote("target")[1])
        again = self.recorded("dependent")
        assert again.refs == dependent.refs, (again.refs, dependent.refs)
        for path in again.refs:
            assert _at(again.props, path) == target_now, (path, again.props)
        assert self.destroy().status == "succeeded"


def _at(props: Mapping[str, Any], path: str) -> Any:
    from ._refs import split_path

    node: Any = props
    for part in split_path(path):
        node = node[int(part)] if isinstance(node, list) else node[part]
    return node
