"""What Prisma Postgres declares once for its resource types: its credential (the service
token), its API's URL and its local emulator (the Prisma-compatible API in ``local/``)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Final

from journal.provider import (
    Credential,
    Endpoint,
    LocalOptions,
    Secret,
    Service,
    UsageError,
    register_service,
)

__all__ = ["API_URL_ENV", "DEFAULT_API_URL", "LOCAL_TOKEN", "SERVICE", "TOKEN_ENV"]

# here, not in ``_client``: finding the installed services imports this module only, and
# must not import the client (and httpx) for it
DEFAULT_API_URL: Final = "https://api.prisma.io"
TOKEN_ENV: Final = "PRISMA_SERVICE_TOKEN"
API_URL_ENV: Final = "PRISMA_API_URL"

#: the bearer token sent to the local API when no service token is configured (it accepts any)
LOCAL_TOKEN: Final = "journal-local-token"


@contextmanager
def local_api(options: LocalOptions) -> Iterator[Endpoint]:
    """Start the local Prisma-compatible API for the block (its PostgreSQL: the server at
    ``options.postgres_url``, else an embedded one in ``options.postgres_data``, kept
    running afterwards unless ``options.stop_postgres``)."""
    from .local import Faults, LocalPrismaApi

    try:
        faults = Faults(
            latency_s=options.latency_s,
            rate_429=options.rate_429,
            rate_5xx=options.rate_5xx,
            rate_lost=options.rate_lost,
            seed=options.seed,
        )
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    api = LocalPrismaApi(
        postgres_url=options.postgres_url,
        data_dir=None if options.postgres_url else options.postgres_data,
        host=options.host,
        port=options.port,
        faults=faults,
    )
    api.start()
    try:
        yield Endpoint(api.url, {"service_token": Secret(LOCAL_TOKEN)})
    finally:
        api.stop(stop_postgres=options.stop_postgres)


SERVICE: Final = register_service(
    Service(
        name="prisma-postgres",
        title="Prisma Management API",
        credentials=(
            Credential(
                "service_token",
                env=TOKEN_ENV,
                help="the Prisma service token (Prisma Console: workspace settings)",
            ),
        ),
        api_url_env=API_URL_ENV,
        default_api_url=DEFAULT_API_URL,
        local=local_api,
        local_logger="journal.resources.prisma_postgres.local",
    )
)
