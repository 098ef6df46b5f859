"""A provider written against ``journal.provider`` alone (the README's example, imported from
``examples/provider/``), nested references in props, and the contract suite for it.

The Tiny API (``examples/provider/tiny_api.py``) is a real HTTP server on loopback."""

from __future__ import annotations

import re
import sys
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest

import journal
from journal._engine import RunResult
from journal._journal import Journal
from journal._ops import destroy_stage, rollback_stage
from journal._program.app import RunSettings, run_settings
from journal._projection import load_state
from journal.provider import Endpoint, Ref, Resource, Secret
from journal.testing import ProviderContract

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "examples" / "provider"))

from tiny_api import TinyApi  # noqa: E402
from tiny_provider import Bucket, Function  # noqa: E402

TOKEN = "tiny-test-token"
APP = "shop"


@pytest.fixture
def api(monkeypatch: pytest.MonkeyPatch) -> Iterator[TinyApi]:
    monkeypatch.delenv("TINY_API_TOKEN", raising=False)
    monkeypatch.delenv("TINY_API_URL", raising=False)
    with TinyApi(token=TOKEN) as server:
        yield server


def endpoints(api: TinyApi) -> dict[str, Endpoint]:
    return {"tiny": Endpoint(api.url, {"api_token": Secret(TOKEN)})}


class Project:
    """A journal and the runs of one stage against the Tiny API."""

    def __init__(self, path: Path, api: TinyApi) -> None:
        self.journal = Journal.open(path)
        self.api = api

    def run(self, build: Any, command: str = "deploy") -> RunResult:
        settings = RunSettings(
            journal=self.journal, stage="dev", command=command, endpoints=endpoints(self.api)
        )
        with run_settings(settings), journal.app(APP):
            build()
        return settings.results[-1]

    def state(self) -> Any:
        return load_state(self.journal, f"{APP}/dev")

    def events(self, after: int = 0) -> list[tuple[str, str]]:
        return [
            (ev.payload["type"], ev.payload.get("resource", ""))
            for ev in self.journal.read(f"{APP}/dev", after_seq=after)
        ]


@pytest.fixture
def project(api: TinyApi, journal_path: Path) -> Iterator[Project]:
    p = Project(journal_path, api)
    try:
        yield p
    finally:
        p.journal.close()


def shop(second: str = "archive") -> None:
    photos = Bucket("photos")
    archive = Bucket("archive", storage="archive")
    chosen = {"photos": photos, "archive": archive}[second]
    Function(
        "resize",
        env={"BINDINGS": {"PHOTOS": photos, "SECOND": chosen}, "IDS": [photos.ref("name")]},
    )


def test_a_handle_nested_in_a_dict_is_a_dependency_not_an_encoding_error(
    project: Project,
) -> None:
    # the guide's Worker("worker", bindings={"HYPERDRIVE": db}) failed in _codec.encode with
    # "TypeError: cannot store a value of type ..." and recorded no dependency
    def build() -> None:
        db = Bucket("db")
        Function("worker", env={"HYPERDRIVE": db})

    result = project.run(build)
    assert result.status == "succeeded", result.failures
    worker = project.state().resources["worker"]
    db = project.state().resources["db"]
    assert worker.deps == ["db"]
    assert worker.refs == {"env.HYPERDRIVE": "db"}
    assert worker.props["env"] == {"HYPERDRIVE": db.outputs["id"]}
    remote = project.api.objects["functions"][worker.outputs["id"]]
    assert remote["env"] == {"HYPERDRIVE": db.outputs["id"]}


def test_dict_of_handles_deploys_in_order_re_deploys_as_a_noop_plans_a_nested_diff_and_destroys_and_rolls_back_from_the_journal(  # noqa: E501
    project: Project,
) -> None:
    first = project.run(shop)
    assert first.status == "succeeded", first.failures
    created = [r for t, r in project.events() if t == "resource.created"]
    assert created.index("resize") > max(created.index("photos"), created.index("archive"))
    resize = project.state().resources["resize"]
    assert resize.deps == ["archive", "photos"]
    assert resize.refs == {
        "env.BINDINGS.PHOTOS": "photos",
        "env.BINDINGS.SECOND": "archive",
        "env.IDS.0": {"resource": "photos", "output": "name"},
    }
    ids = {r: project.state().resources[r].outputs["id"] for r in ("photos", "archive")}
    assert resize.props["env"]["IDS"] == [project.state().resources["photos"].outputs["name"]]
    deployed = project.journal.head()[0]

    again = project.run(shop)
    assert {c.action for c in again.changes} == {"noop"}
    assert project.journal.head()[0] == deployed + 2  # run.started, run.finished: no call

    plan = project.run(lambda: shop(second="photos"), command="plan")
    change = {c.resource: c for c in plan.changes}["resize"]
    assert change.action == "update"
    assert change.diff == {"env.BINDINGS.SECOND": [ids["archive"], ids["photos"]]}

    gone = destroy_stage(project.journal, APP, "dev", endpoints=endpoints(project.api))
    assert gone.status == "succeeded", gone.failures
    deleted = [r for t, r in project.events(after=deployed) if t == "resource.deleted"]
    assert deleted.index("resize") < min(deleted.index("photos"), deleted.index("archive"))
    assert project.api.objects == {"buckets": {}, "functions": {}}

    back = rollback_stage(project.journal, APP, "dev", deployed, endpoints=endpoints(project.api))
    assert back.status == "succeeded", back.failures
    state = project.state()
    new_ids = {r: state.resources[r].outputs["id"] for r in ("photos", "archive")}
    assert new_ids != ids
    remote = project.api.objects["functions"][state.resources["resize"].outputs["id"]]
    assert remote["env"]["BINDINGS"] == {"PHOTOS": new_ids["photos"], "SECOND": new_ids["archive"]}
    assert state.resources["resize"].refs == resize.refs


def test_outputs_read_from_a_handle_are_references(project: Project) -> None:
    def build() -> None:
        photos = Bucket("photos")
        Function("fn", env={"ID": photos.id, "PAIR": (photos.outputs.name, "x")})

    assert project.run(build).status == "succeeded"
    fn = project.state().resources["fn"]
    assert fn.refs == {
        "env.ID": {"resource": "photos", "output": "id"},
        "env.PAIR.0": {"resource": "photos", "output": "name"},
    }
    assert fn.deps == ["photos"]


def test_a_reference_to_an_unknown_output_is_refused_before_any_call(project: Project) -> None:
    def build() -> None:
        Bucket("photos").ref("nope")

    with pytest.raises(journal.ValidationError, match="has no output 'nope'"):
        project.run(build)
    assert project.api.requests == []


def test_history_shows_the_nested_field_diff(project: Project) -> None:
    from journal._history import history

    project.run(shop)
    project.run(lambda: shop(second="photos"))
    records = [r for r in history(project.journal) if r.resource == "resize"]
    updated = [r for r in records if r.action == "updated"]
    assert sorted(updated[-1].changes) == [
        "outputs.env.BINDINGS.SECOND",
        "props.env.BINDINGS.SECOND",
    ]


def test_rollback_of_a_journal_with_top_level_references_only(project: Project) -> None:
    """Journals written before nested references record ``refs: {field: resource}``."""
    from journal._ops import _desired_from_state

    project.run(lambda: Function("fn", env={}) and None)
    res = project.state().resources["fn"]
    res.props = {**res.props, "name": "x"}
    res.refs = {"name": "other"}
    desired = _desired_from_state(res)
    assert desired.props["name"] == Ref("other")
    assert desired.deps == ["other"]


class TestTinyContract(ProviderContract):
    type_name = "tiny.Bucket"

    @pytest.fixture(autouse=True)
    def _tiny(self, api: TinyApi) -> None:
        self.api = api

    def endpoints(self) -> Mapping[str, Endpoint]:
        return endpoints(self.api)

    def declare(self, id: str, name: str, **options: Any) -> Resource[Any]:
        return Bucket(id, name=name, **options)

    def declare_replaced(self, id: str, name: str, **options: Any) -> Resource[Any]:
        return Bucket(id, name=name, storage="archive", **options)

    def declare_dependent(self, id: str, target: Resource[Any], **options: Any) -> Resource[Any]:
        return Function(id, env={"LIST": [{"B": target}]}, **options)


# --- the SDK is the only thing providers import ----------------------------------------------


def test_providers_import_nothing_private() -> None:
    hits = []
    for path in sorted((REPO / "resources").rglob("*.py")):
        for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            if re.search(r"\bjournal\._", line):
                hits.append(f"{path.relative_to(REPO)}:{n}: {line.strip()}")
    assert hits == [], "providers must import only journal.provider:\n" + "\n".join(hits)


def test_the_readme_guide_is_the_example_provider() -> None:
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    code = (REPO / "examples" / "provider" / "tiny_provider.py").read_text(encoding="utf-8")
    assert f"```python\n{code}```" in readme, (
        "README's 'Writing a provider' must show examples/provider/tiny_provider.py verbatim"
    )


def test_the_public_sdk_surface() -> None:
    import journal.provider as sdk

    for name in ("Provider", "Context", "Resource", "Ref", "Secret", "Service", "Credential"):
        assert name in sdk.__all__
    assert sdk.Resource is journal.Resource


def test_a_type_without_a_service_scans_the_entry_points_once(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The context of a resource whose provider declares no service looked for that service's
    entry point on every call: a scan of every installed package's metadata (milliseconds) per
    resource. Installed packages do not change under a running process: once is enough."""
    from journal import _provider

    scans: list[str] = []
    real = _provider.entry_points

    def counting(**kwargs: Any) -> Any:
        scans.append(kwargs["group"])
        return real(**kwargs)

    monkeypatch.setattr(_provider, "entry_points", counting)
    monkeypatch.setattr(_provider, "_SCANNED", set(), raising=False)
    for rid in ("a", "b", "c"):
        ctx = _provider.make_context("noservice.Thing", app=APP, stage="dev", resource=rid)
        assert ctx.resource == rid
    assert scans == ["journal.providers"]
    for _ in range(2):  # an unknown type is still refused, every time
        with pytest.raises(journal.UsageError, match="no provider for resource type"):
            _provider.get_provider("noservice.Thing")
    assert len(scans) == 1
