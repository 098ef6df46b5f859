"""Fault injection for the local Management API: what can go wrong between a client and the API.

A :class:`Faults` value says how often each kind of failure happens; :class:`FaultInjector`
rolls the dice for every ``/v1`` request (one roll per request, thread-safe, reproducible with a
``seed``). The kinds, in the order they are checked:

- ``latency_s``: every request waits this long before it is handled (not a roll);
- ``rate_429``: answer ``429`` with ``Retry-After: retry_after_s``; nothing is done;
- ``rate_5xx``: answer ``500``, ``502`` or ``503``; nothing is done;
- ``rate_lost``: the request IS performed, then the connection is closed without an answer;
- ``rate_timeout``: the server sleeps ``timeout_s`` before it handles the request and answers
  (a client with a shorter timeout gives up; the request is still performed afterwards).
"""

from __future__ import annotations

import enum
import math
import random
import threading
from dataclasses import dataclass

__all__ = ["Fault", "FaultInjector", "Faults"]


@dataclass(frozen=True)
class Faults:
    """How often the local API misbehaves; rates are probabilities in ``[0, 1]`` per request."""

    latency_s: float = 0.0
    rate_429: float = 0.0
    rate_5xx: float = 0.0
    rate_lost: float = 0.0
    rate_timeout: float = 0.0
    seed: int | None = None
    retry_after_s: float = 0.0
    timeout_s: float = 10.0

    def __post_init__(self) -> None:
        for name in ("latency_s", "retry_after_s", "timeout_s"):
            value = getattr(self, name)
            if not math.isfinite(value) or value < 0:
                raise ValueError(f"Faults.{name} must be a finite number >= 0, got {value!r}")
        rates = (self.rate_429, self.rate_5xx, self.rate_lost, self.rate_timeout)
        names = ("rate_429", "rate_5xx", "rate_lost", "rate_timeout")
        for name, rate in zip(names, rates, strict=True):
            if not 0.0 <= rate <= 1.0:
                raise ValueError(f"Faults.{name} must be between 0 and 1, got {rate!r}")
        if sum(rates) > 1.0 + 1e-9:
            raise ValueError("the fault rates add up to more than 1")

    @property
    def active(self) -> bool:
        """True when any fault (or latency) can happen."""
        return self.latency_s > 0 or any(
            (self.rate_429, self.rate_5xx, self.rate_lost, self.rate_timeout)
        )

    def retry_after_header(self) -> str:
        """The ``Retry-After`` value: whole seconds when integral, else the decimal number."""
        seconds = self.retry_after_s
        return str(int(seconds)) if seconds == int(seconds) else f"{seconds:g}"


class Fault(enum.Enum):
    """What the injector decided for one request."""

    NONE = "none"
    RATE_LIMITED = "429"
    SERVER_ERROR = "5xx"
    LOST = "lost"
    TIMEOUT = "timeout"


class FaultInjector:
    """Rolls the dice for each request under a lock; the faults can be replaced at runtime."""

    def __init__(self, faults: Faults | None = None) -> None:
        self._lock = threading.Lock()
        self._faults = faults or Faults()
        self._rng = random.Random(self._faults.seed)

    @property
    def faults(self) -> Faults:
        with self._lock:
            return self._faults

    def set(self, faults: Faults) -> None:
        """Replace the faults (and reseed the generator with ``faults.seed``)."""
        with self._lock:
            self._faults = faults
            self._rng = random.Random(faults.seed)

    def roll(self) -> tuple[Faults, Fault, int]:
        """Decide one request's fate: the faults in force, the fault, and a 5xx status."""
        with self._lock:
            faults = self._faults
            if not faults.active:
                return faults, Fault.NONE, 0
            u = self._rng.random()
            status = self._rng.choice((500, 502, 503))
        edge = 0.0
        for rate, fault in (
            (faults.rate_429, Fault.RATE_LIMITED),
            (faults.rate_5xx, Fault.SERVER_ERROR),
            (faults.rate_lost, Fault.LOST),
            (faults.rate_timeout, Fault.TIMEOUT),
        ):
            edge += rate
            if u < edge:
                return faults, fault, status
        return faults, Fault.NONE, status
