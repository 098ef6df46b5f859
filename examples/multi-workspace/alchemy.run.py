# The guide's multi-workspace example: service tokens are workspace-scoped, so each project
# names the token of the workspace it belongs in. Put them in .env next to this file (read
# before the program runs; variables already set in the environment win) or export them:
#
#   PRISMA_SERVICE_TOKEN_WORKSPACE_A=...
#   PRISMA_SERVICE_TOKEN_WORKSPACE_B=...
#
#   journal deploy examples/multi-workspace/alchemy.run.py --local
import journal
from journal.resources.prisma_postgres import Project, WorkspaceRef

with journal.app("prisma-workspaces") as app:
    # a missing variable stops the program with an error naming it; nothing is sent
    token_a = journal.env("PRISMA_SERVICE_TOKEN_WORKSPACE_A", secret=True)
    token_b = journal.env("PRISMA_SERVICE_TOKEN_WORKSPACE_B", secret=True)

    workspace_a_project = Project("workspace-a-project", service_token=token_a)
    workspace_b_project = Project("workspace-b-project", service_token=token_b)

    # resolve a workspace by name or id (a lookup, not a managed resource)
    workspace_a = WorkspaceRef(workspace_a_project.workspace_id or "", service_token=token_a)

    app.export(
        workspace_a=workspace_a.name,
        workspace_a_project=workspace_a_project.id,
        workspace_b_project=workspace_b_project.id,
    )
