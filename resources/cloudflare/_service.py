"""What Cloudflare declares once for its resource types: its credentials (an API token, or
the global API key with its e-mail; the account id), its API's URL and its local emulator
(the Cloudflare-compatible API in ``local/``, which runs every uploaded Worker in workerd)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Final

from journal.provider import Credential, Endpoint, LocalOptions, Secret, Service, register_service

__all__ = [
    "ACCOUNT_ENV",
    "API_URL_ENV",
    "DEFAULT_API_URL",
    "EMAIL_ENV",
    "KEY_ENV",
    "LOCAL_TOKEN",
    "SERVICE",
    "TOKEN_ENV",
]

# here, not in ``_client``: finding the installed services imports this module only, and
# must not import the client (and httpx) for it
DEFAULT_API_URL: Final = "https://api.cloudflare.com/client/v4"
API_URL_ENV: Final = "CLOUDFLARE_API_URL"
TOKEN_ENV: Final = "CLOUDFLARE_API_TOKEN"
KEY_ENV: Final = "CLOUDFLARE_API_KEY"
EMAIL_ENV: Final = "CLOUDFLARE_EMAIL"
ACCOUNT_ENV: Final = "CLOUDFLARE_ACCOUNT_ID"

#: the API token sent to the local API when none is configured (it accepts any)
LOCAL_TOKEN: Final = "journal-local-cloudflare-token"


@contextmanager
def local_api(options: LocalOptions) -> Iterator[Endpoint]:
    """Start the local Cloudflare API for the block, its state in ``journal_dir/cloudflare``;
    its Workers stop with it (the state keeps them for the next start). On a fixed port
    (``journal local serve --port N``) it listens on the next one, N+1."""
    from .local import LocalCloudflareApi

    api = LocalCloudflareApi(
        data_dir=options.journal_dir / "cloudflare",
        host=options.host,
        port=options.port + 1 if options.port else 0,
    )
    api.start()
    try:
        yield Endpoint(api.base_url, {"api_token": Secret(LOCAL_TOKEN)})
    finally:
        api.stop()


SERVICE: Final = register_service(
    Service(
        name="cloudflare",
        title="Cloudflare API",
        credentials=(
            Credential(
                "api_token",
                env=TOKEN_ENV,
                help="a Cloudflare API token (Account Settings: Read, Hyperdrive: Edit, "
                "Workers Scripts: Edit)",
            ),
            Credential("api_key", env=KEY_ENV, help="the legacy global API key (with the e-mail)"),
            Credential("email", env=EMAIL_ENV, help="the account's e-mail (with the API key)"),
            Credential(
                "account_id",
                env=ACCOUNT_ENV,
                help="the account to use (else the only one the credentials see)",
            ),
        ),
        api_url_env=API_URL_ENV,
        default_api_url=DEFAULT_API_URL,
        local=local_api,
        local_logger="journal.resources.cloudflare.local",
    )
)
