"""A scripted API for client unit tests on ``httpx.MockTransport``.

``Scripted`` answers from ``handler`` or, in order, from ``script`` (an exception in the script is
raised, as a transport failure); it records the requests (bodies read) and the client's sleeps.
``http(*answers)`` appends answers and gives an ``httpx.Client`` on it; ``close()`` closes them.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import httpx

__all__ = ["Handler", "Scripted"]

Handler = Callable[[httpx.Request], httpx.Response]


@dataclass
class Scripted:
    handler: Handler | None = None
    script: list[httpx.Response | Exception] = field(default_factory=list)
    requests: list[httpx.Request] = field(default_factory=list)
    sleeps: list[float] = field(default_factory=list)
    clients: list[httpx.Client] = field(default_factory=list)

    def __call__(self, request: httpx.Request) -> httpx.Response:
        request.read()
        self.requests.append(request)
        if self.handler is not None:
            return self.handler(request)
        answer = self.script.pop(0)
        if isinstance(answer, Exception):
            raise answer
        return answer

    def http(self, *answers: httpx.Response | Exception) -> httpx.Client:
        self.script.extend(answers)
        client = httpx.Client(transport=httpx.MockTransport(self))
        self.clients.append(client)
        return client

    def close(self) -> None:
        for client in self.clients:
            client.close()
