"""A local, Cloudflare-compatible API (accounts, Hyperdrive configs, Worker scripts,
workers.dev subdomains) that runs every uploaded Worker in workerd on 127.0.0.1.

    from journal.resources.cloudflare.local import LocalCloudflareApi

    with LocalCloudflareApi(data_dir=".journal/cloudflare") as api:
        ...  # a Cloudflare client with base URL api.base_url and any API token
"""

from __future__ import annotations

from ._server import LocalCloudflareApi, serve_forever

__all__ = ["LocalCloudflareApi", "serve_forever"]
