"""``journal ui``: the journal as local web pages (runs, resources, integrity)."""

from __future__ import annotations

import click

from journal._errors import MissingPasswordError
from journal._settings import password_from_env

from ._commands_common import State, journal_option, pass_state


def _password(state: State) -> str:
    """JOURNAL_PASSWORD (or ALCHEMY_PASSWORD), else asked once on a terminal."""
    password = password_from_env()
    if password:
        return password
    if not state.out.interactive:
        raise MissingPasswordError()
    return str(click.prompt("journal password", hide_input=True, err=True))


@click.command()
@journal_option
@click.option(
    "--port",
    type=click.IntRange(0, 65535),
    default=0,
    help="Port on 127.0.0.1 to listen on [default: any free port].",
)
@click.option("--open", "open_browser", is_flag=True, default=False, help="Open a browser.")
@click.option(
    "--show-secrets", is_flag=True, default=False, help="Show secrets in clear on the pages."
)
@pass_state
def ui(state: State, port: int, open_browser: bool, show_secrets: bool) -> None:
    """Browse the journal in a web page: runs, resources, integrity.

    Serves on 127.0.0.1 only, until Ctrl-C, and prints the URL to open. The URL carries a
    random token: requests without it are refused, so other local users cannot read the
    page. The password is taken from JOURNAL_PASSWORD (or ALCHEMY_PASSWORD), or asked once;
    it never reaches the browser. The page only reads: it changes nothing in the journal
    and shows what `journal rollback SEQ` would do without doing it. Secrets are masked
    unless --show-secrets."""
    from journal._journal import Journal
    from journal._ui import UIServer

    password = _password(state)
    with Journal.open(state.location(), password=password, create=False) as jr:
        server = UIServer(jr, port=port, show_secrets=show_secrets)
        out = state.out
        out.echo(f"journal ui for {jr.location}")
        out.echo(f"  {server.url}")
        if show_secrets:
            out.warn("secrets are shown in clear on these pages (--show-secrets)")
        out.echo("  Ctrl-C to stop")
        if open_browser:
            import webbrowser  # here: ~15 ms every other command need not pay

            webbrowser.open(server.url)
        try:
            server.serve_forever()
        except KeyboardInterrupt:
            pass
        finally:
            server.shutdown()
    out.echo("stopped")


COMMANDS = [ui]
