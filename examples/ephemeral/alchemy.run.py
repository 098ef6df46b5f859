# The guide's ephemeral environment: delete=True turns delete protection off, so
# `journal destroy` removes the project and the database too, not only the connection.
#
#   journal deploy examples/ephemeral/alchemy.run.py --local --stage pr-123
#   journal destroy --journal examples/ephemeral/.journal/journal.db --stage pr-123 --yes
import journal
from journal.resources.prisma_postgres import Connection, Database, Project

with journal.app("prisma-postgres-ephemeral") as app:
    project = Project("project", delete=True)

    test_database = Database("test-db", project=project, region="us-east-1", delete=True)

    connection = Connection("connection", database=test_database)

    app.export(database_id=test_database.id, connection_string=connection.connection_string)
