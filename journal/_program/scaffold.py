"""Project templates for ``journal init``.

    written = scaffold(Path("my-app"), "minimal")

A project is ``alchemy.run.py`` (the program), ``.gitignore`` (the journal and the embedded
PostgreSQL data live under ``.journal/``; ``.env`` holds tokens) and ``README.md`` (how to run
it). Nothing that exists is ever overwritten: if any of the files is there, nothing is written
and the error names them.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from .._errors import UsageError

__all__ = ["TEMPLATES", "Template", "app_name_for", "scaffold"]


@dataclass(frozen=True)
class Template:
    name: str
    summary: str
    program: str
    #: more files of the project (path -> text), written as they are
    files: tuple[tuple[str, str], ...] = ()


_MINIMAL = '''\
"""{app}: a Prisma Postgres project, database and connection.

Run it with `journal deploy` (or `journal dev` to work against the local API).
"""

import journal
from journal.resources.prisma_postgres import Connection, Database, Project

with journal.app("{app}") as app:
    project = Project("project")
    database = Database("database", project=project, region="us-east-1")
    connection = Connection("connection", database=database, name="app-connection")

    app.export(
        project_id=project.id,
        database_id=database.id,
        host=connection.host,
        user=connection.user,
        connection_string=connection.connection_string,  # a Secret: masked when shown
        prisma_connection_string=connection.prisma_connection_string,
    )
# Leaving the block normally finalizes: resources no longer declared are deleted.
# Leaving it with an exception deletes nothing.
'''

_MULTI_WORKSPACE = '''\
"""{app}: projects in two Prisma workspaces.

Service tokens are workspace-scoped, so each resource gets its own token. Set
PRISMA_SERVICE_TOKEN_WORKSPACE_A and PRISMA_SERVICE_TOKEN_WORKSPACE_B in .env next to this
file (read before the program runs; the environment wins over it), then run `journal deploy`.
"""

import journal
from journal.resources.prisma_postgres import Database, Project

with journal.app("{app}") as app:
    # journal.env: a clear error naming the variable if it is missing; secret=True keeps the
    # token encrypted in the journal and masked when shown
    token_a = journal.env("PRISMA_SERVICE_TOKEN_WORKSPACE_A", secret=True)
    token_b = journal.env("PRISMA_SERVICE_TOKEN_WORKSPACE_B", secret=True)

    workspace_a = Project("workspace-a-project", service_token=token_a)
    workspace_b = Project("workspace-b-project", service_token=token_b)
    Database("database-a", project=workspace_a, region="us-east-1", service_token=token_a)

    app.export(workspace_a_project=workspace_a.id, workspace_b_project=workspace_b.id)
'''

_EPHEMERAL = '''\
"""{app}: a throw-away environment per stage (preview deployments, CI).

Delete protection is off, so `journal destroy` removes everything:

    journal deploy --stage pr-123
    journal destroy --stage pr-123 --yes
"""

import journal
from journal.resources.prisma_postgres import Connection, Database, Project

with journal.app("{app}") as app:
    project = Project("project", delete=True)
    database = Database("test-db", project=project, region="us-east-1", delete=True)
    connection = Connection("connection", database=database)

    app.export(
        stage=app.stage,
        database_id=database.id,
        connection_string=connection.connection_string,
    )
'''

_HYPERDRIVE_WORKER = '''\
"""{app}: the guide's complete example: a Prisma Postgres database behind Cloudflare
Hyperdrive, queried by a Worker (src/worker.ts) bound to it as HYPERDRIVE.

    journal deploy --local        # PostgreSQL, both APIs and the Worker (workerd), all local
    journal local serve           # serves the deployed Worker again; then:
    curl "$(journal outputs url --raw)"

workerd, esbuild and the Worker's `pg` come from npm (Node.js and npm are needed), installed
once into journal's cache.
"""

import journal
from journal.resources.cloudflare import Hyperdrive, Worker
from journal.resources.prisma_postgres import Connection, Database, Project

with journal.app("{app}") as app:
    project = Project("project")

    database = Database("database", project=project, region="us-east-1")

    connection = Connection("connection", database=database, name="connection")

    db = Hyperdrive("prisma-postgres", origin=connection.connection_string)

    worker = Worker(
        "worker",
        entrypoint="src/worker.ts",
        bindings={{"HYPERDRIVE": db}},
        compatibility_flags=["nodejs_compat"],
    )

    app.export(url=worker.url)
'''

_WORKER_TS = """\
import { Client } from "pg";

interface Env {
  HYPERDRIVE: { connectionString: string };
}

export default {
  async fetch(_request: Request, env: Env): Promise<Response> {
    const client = new Client({
      connectionString: env.HYPERDRIVE.connectionString,
    });

    try {
      await client.connect();
      const result = await client.query("SELECT * FROM pg_tables");

      return Response.json({
        success: true,
        result: result.rows,
      });
    } catch (error: any) {
      return new Response(`Database error: ${error.message}`, { status: 500 });
    }
  },
};
"""

_PACKAGE_JSON = """\
{
  "name": "hyperdrive-worker",
  "private": true,
  "type": "module",
  "dependencies": {
    "pg": "8.23.1"
  }
}
"""

TEMPLATES: Final = {
    t.name: t
    for t in (
        Template("minimal", "a project, a database and a connection (the guide)", _MINIMAL),
        Template(
            "multi-workspace",
            "projects in two workspaces with per-resource service tokens",
            _MULTI_WORKSPACE,
        ),
        Template(
            "ephemeral",
            "a per-stage environment without delete protection",
            _EPHEMERAL,
        ),
        Template(
            "hyperdrive-worker",
            "a database behind Cloudflare Hyperdrive, queried by a Worker (the guide's "
            "complete example)",
            _HYPERDRIVE_WORKER,
            files=(("src/worker.ts", _WORKER_TS), ("package.json", _PACKAGE_JSON)),
        ),
    )
}

_GITIGNORE = """\
# journal: the encrypted journal and the embedded PostgreSQL data of the local API
.journal/
# tokens and passwords
.env
__pycache__/
node_modules/
"""

_README = """\
# {app}

Infrastructure for {app}, as a plain Python program (`alchemy.run.py`, template
`{template}`: {summary}) run by journal.

```bash
export JOURNAL_PASSWORD="choose-a-strong-password"   # encrypts the journal
export PRISMA_SERVICE_TOKEN="prsc_your_token_here"   # or: journal configure --provider
                                                     #     prisma-postgres

journal dev               # the local Prisma-compatible API (stage dev-$USER), re-runs on save
journal plan              # what a deploy would change (your stage: $USER)
journal deploy            # reconcile the real infrastructure (or --local, the first time)
journal outputs           # the program's exports (secrets masked)
journal history           # who changed what, when
journal destroy           # tear the stage down
```

The journal lives in `.journal/journal.db` (encrypted); keep it, or point `JOURNAL_URL` at a
shared one. Stages (`--stage`, default your user name; `journal dev` uses `dev-<user>`) are
isolated from each other, and each stays where its first deploy went (the local API or the
real one): later commands on it need no `--local`. `journal local status` shows the embedded
PostgreSQL the local API left running; `journal local stop` stops it.

Variables the program reads with `journal.env("NAME")` can live in `.env` next to it (loaded
before the program runs; the environment wins; `--env-file PATH` picks another file). `.env`
is ignored by git. For scripts: `journal outputs NAME --raw`, `journal outputs --format env
--show-secrets > app/.env`, `journal plan --detailed-exitcode`, `journal deploy --json`.

The program is plain typed Python: check it with mypy, in the environment where journal is
installed (a plain install, or the editable one `scripts/demo` makes):

```bash
pip install mypy
mypy --strict alchemy.run.py
```
"""

_SLUG = re.compile(r"[^A-Za-z0-9_.-]+")


def app_name_for(directory: Path) -> str:
    """An app name from a folder name (``My App`` -> ``my-app``)."""
    name = _SLUG.sub("-", directory.resolve().name.lower()).strip("-._")[:63]
    return name if name and name[0].isalnum() else "my-app"


def scaffold(directory: Path, template: str = "minimal", *, app: str | None = None) -> list[Path]:
    """Write a new project into ``directory`` (created if missing); return the files written.

    Raises UsageError, writing nothing, for an unknown template or if a file exists."""
    from .app import check_name

    chosen = TEMPLATES.get(template)
    if chosen is None:
        raise UsageError(
            f"unknown template {template!r}: choose one of {', '.join(sorted(TEMPLATES))}"
        )
    name = check_name("app name", app if app is not None else app_name_for(directory))
    files = {
        "alchemy.run.py": chosen.program.format(app=name),
        ".gitignore": _GITIGNORE,
        "README.md": _README.format(app=name, template=chosen.name, summary=chosen.summary),
        **dict(chosen.files),
    }
    if directory.exists() and not directory.is_dir():
        raise UsageError(f"{directory} exists and is not a folder")
    existing = [f for f in files if (directory / f).exists()]
    if existing:
        raise UsageError(
            f"not overwriting {', '.join(existing)} in {directory}: "
            "remove them or choose another folder; nothing was written"
        )
    directory.mkdir(parents=True, exist_ok=True)
    written = []
    for fname, text in files.items():
        path = directory / fname
        path.parent.mkdir(parents=True, exist_ok=True)
        with path.open("x", encoding="utf-8") as fh:  # "x": never overwrite
            fh.write(text)
        written.append(path)
    return written
