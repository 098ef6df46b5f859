"""Cloudflare resources for journal: ``Hyperdrive`` and ``Worker``, and what they run on
locally (pinned workerd and esbuild from npm, the Worker bundler, the local API).

    from journal.resources.cloudflare import Hyperdrive, Worker

Credentials: ``CLOUDFLARE_API_TOKEN`` (or ``CLOUDFLARE_API_KEY`` with ``CLOUDFLARE_EMAIL``),
``CLOUDFLARE_ACCOUNT_ID`` (else the only account the credentials see), or ``journal
configure``; the API's URL is ``CLOUDFLARE_API_URL`` (the local API under ``--local``).
The building blocks are private modules: ``_npm`` (installs into the cache), ``_toolchain``
(workerd, esbuild, a project's deps), ``_bundle`` (esbuild), ``_workerd`` (runs a bundle),
``_client`` (the API client); ``local`` is the local API.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from . import _service  # noqa: F401 - registers the service: credentials, API URL, local API

if TYPE_CHECKING:
    from ._client import CloudflareClient
    from ._resources import (
        Hyperdrive,
        HyperdriveOutputs,
        Worker,
        WorkerOutputs,
        parse_origin,
    )

__all__ = [
    "CloudflareClient",
    "Hyperdrive",
    "HyperdriveOutputs",
    "Worker",
    "WorkerOutputs",
    "parse_origin",
]


def __getattr__(name: str) -> Any:
    """The resource types and the client, imported on first use: finding the installed
    services (the CLI does it on every run) registers only ``_service``."""
    if name == "CloudflareClient":
        from . import _client

        return _client.CloudflareClient
    if name in __all__:
        from . import _resources

        return getattr(_resources, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
