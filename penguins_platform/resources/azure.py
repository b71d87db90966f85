"""The Azure ML deployment target: which workspace and endpoint."""

from __future__ import annotations

from typing import Any

import dagster as dg
from pydantic import Field

ENABLE_HINT = (
    "Disabled until configured: set AZURE_SUBSCRIPTION_ID, AZURE_RESOURCE_GROUP and "
    "AZURE_WORKSPACE (optionally AZURE_ENDPOINT, AZURE_INSTANCE_TYPE, AZURE_INSTANCE_COUNT); "
    "credentials come from DefaultAzureCredential (az login, environment, managed identity)."
)


class AzureTarget(dg.ConfigurableResource):
    """An Azure ML managed online endpoint. Disabled while the workspace is not named."""

    subscription_id: str | None = Field(default=None, description="Azure subscription id.")
    resource_group: str | None = Field(default=None, description="Resource group.")
    workspace: str | None = Field(default=None, description="Azure ML workspace name.")
    endpoint_name: str = Field(default="penguins", description="Online endpoint name.")
    instance_type: str = Field(default="Standard_DS3_v2", description="Deployment VM size.")
    instance_count: int = Field(default=1, description="Deployment instance count.")

    @property
    def enabled(self) -> bool:
        return bool(self.subscription_id and self.resource_group and self.workspace)

    def settings(self) -> Any:
        from penguins_platform.cloud.azure import AzureSettings

        return AzureSettings(
            subscription_id=self.subscription_id or "",
            resource_group=self.resource_group or "",
            workspace=self.workspace or "",
            endpoint_name=self.endpoint_name,
            instance_type=self.instance_type,
            instance_count=self.instance_count,
        )

    def ml_client(self) -> Any:
        """An MLClient authenticated by DefaultAzureCredential; no secret passes through here."""
        from azure.ai.ml import MLClient
        from azure.identity import DefaultAzureCredential

        return MLClient(
            credential=DefaultAzureCredential(),
            subscription_id=self.subscription_id,
            resource_group_name=self.resource_group,
            workspace_name=self.workspace,
        )

    def registrar(self) -> Any:
        from penguins_platform.cloud.azure import WorkspaceModelRegistrar

        return WorkspaceModelRegistrar()
