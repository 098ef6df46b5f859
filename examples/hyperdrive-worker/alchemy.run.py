"""The guide's complete example: a Prisma Postgres database behind Cloudflare Hyperdrive,
queried by a Worker (src/worker.ts) bound to it as HYPERDRIVE.

    journal deploy --local        # everything local: PostgreSQL, the APIs, the Worker in workerd
    curl "$(journal outputs url --raw)"
"""

import journal
from journal.resources.cloudflare import Hyperdrive, Worker
from journal.resources.prisma_postgres import Connection, Database, Project

with journal.app("prisma-postgres-example") as app:
    project = Project("project")

    database = Database("database", project=project, region="us-east-1")

    connection = Connection("connection", database=database, name="connection")

    db = Hyperdrive("prisma-postgres", origin=connection.connection_string)

    worker = Worker(
        "worker",
        entrypoint="src/worker.ts",
        bindings={"HYPERDRIVE": db},
        compatibility_flags=["nodejs_compat"],
    )

    app.export(url=worker.url)
