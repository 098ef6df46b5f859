"""What to do with one resource: a pure function of its recorded state and its declaration.

No I/O, no journal, no provider call: :func:`decide` compares the state the journal recorded
for a resource with what the program declares now (props already resolved, prepared and
encoded) and answers the action and the field diff. The plan and the run both use it, so a
plan shows exactly what a deploy would do.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from .._codec import diff
from .._projection import ResourceState

#: what a run does with a resource (``adopt`` may turn into ``create`` once nothing is found)
Action = Literal["create", "adopt", "update", "replace", "noop", "delete", "forget"]


@dataclass(frozen=True)
class Wanted:
    """A resource as the program declares it now.

    ``props`` are the encoded props (references resolved); ``updatable`` the top-level
    fields the provider can change in place (a change elsewhere replaces the object)."""

    type: str
    props: Mapping[str, Any]
    adopt: bool = False
    updatable: frozenset[str] = field(default_factory=frozenset)


@dataclass(frozen=True)
class Decision:
    action: Action
    #: ``{path: [old, new]}``, masked, as ``journal._codec.diff`` computes it
    diff: dict[str, Any]


def decide(current: ResourceState | None, desired: Wanted | None) -> Decision:
    """The action for a resource and its field diff.

    - not recorded (or its object is gone): ``create``, or ``adopt`` when asked to;
    - recorded with another type: ``replace``;
    - same props: ``noop``;
    - other props: ``update`` when every changed top-level field is updatable, else
      ``replace`` (a change anywhere inside a field changes that field);
    - no longer declared (``desired`` is None): ``delete``, or ``forget`` when the resource
      is protected from deletion (``delete=False``).
    """
    if desired is None:
        if current is None:
            raise ValueError("decide() needs a recorded state, a declaration, or both")
        return Decision("delete" if current.delete else "forget", diff(current.props, None))
    props = dict(desired.props)
    if current is None or not current.exists:
        return Decision("adopt" if desired.adopt else "create", diff(None, props))
    if current.type == desired.type and current.props == props:
        return Decision("noop", {})  # equal props: an empty diff, without computing it
    change = diff(current.props, props)
    if current.type != desired.type:
        return Decision("replace", change)
    changed = {k for k in set(props) | set(current.props) if props.get(k) != current.props.get(k)}
    return Decision("update" if changed <= desired.updatable else "replace", change)
