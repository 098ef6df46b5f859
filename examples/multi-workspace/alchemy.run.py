# The guide's multi-workspace example: service tokens are workspace-scoped, so each project
# names the token of the workspace it belongs in.
#
#   export PRISMA_SERVICE_TOKEN_WORKSPACE_A=... PRISMA_SERVICE_TOKEN_WORKSPACE_B=...
#   journal deploy examples/multi-workspace/alchemy.run.py --local
import os

import journal
from journal.resources.prisma_postgres import Project, WorkspaceRef

with journal.app("prisma-workspaces") as app:
    token_a = os.environ["PRISMA_SERVICE_TOKEN_WORKSPACE_A"]
    token_b = os.environ["PRISMA_SERVICE_TOKEN_WORKSPACE_B"]

    workspace_a_project = Project("workspace-a-project", service_token=token_a)
    workspace_b_project = Project("workspace-b-project", service_token=token_b)

    # resolve a workspace by name or id (a lookup, not a managed resource)
    workspace_a = WorkspaceRef(workspace_a_project.workspace_id or "", service_token=token_a)

    app.export(
        workspace_a=workspace_a.name,
        workspace_a_project=workspace_a_project.id,
        workspace_b_project=workspace_b_project.id,
    )
