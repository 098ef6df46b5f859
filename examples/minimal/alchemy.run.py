# The guide's minimal example, in Python: a project, a database and a connection.
#
#   journal deploy examples/minimal/alchemy.run.py --local     # local Prisma Postgres
#   journal deploy examples/minimal/alchemy.run.py             # the real API (PRISMA_SERVICE_TOKEN)
import journal
from journal.resources.prisma_postgres import Connection, Database, Project

with journal.app("prisma-postgres-example") as app:
    project = Project("project")

    database = Database("database", project=project, region="us-east-1")

    connection = Connection("connection", database=database, name="app-connection")

    app.export(
        project_id=project.id,
        database_id=database.id,
        host=connection.host,
        user=connection.user,
        connection_string=connection.connection_string,
        prisma_connection_string=connection.prisma_connection_string,
    )
# leaving the block finalizes: resources no longer declared are deleted (orphans)
