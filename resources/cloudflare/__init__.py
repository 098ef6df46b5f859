"""Cloudflare resources for journal (Hyperdrive and Worker, being built), and what they run on
locally: pinned workerd and esbuild from npm, the Worker bundler and the workerd runner.

The building blocks are in private modules until the resources are wired on them:
``_npm`` (installs into the cache), ``_toolchain`` (workerd, esbuild, a project's deps),
``_bundle`` (esbuild), ``_workerd`` (runs a bundle), ``_client`` (the API client); ``local``
is the local API.
"""

from __future__ import annotations

__all__: list[str] = []
