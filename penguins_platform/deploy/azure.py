"""Deploying a registered version to an Azure ML managed online endpoint with azure-ai-ml.

Blue-green: the new version gets its own deployment `{endpoint}-{version}` and is smoke-tested
through that deployment while the old one keeps all the traffic. Only promotion gives it
100% of the traffic and deletes the old deployment. A failure anywhere before that leaves the
old deployment serving and removes the half-made one.
"""

from __future__ import annotations

import json
import logging
import re
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

from penguins_platform.deploy.target import DeployError, Deployment, Fact, InvokeError, Records
from penguins_platform.settings import Settings, enable_hint, setting
from penguins_platform.tracking.contract import MODEL_NAME_TAG, VERSION_TAG

if TYPE_CHECKING:
    from azure.ai.ml import MLClient
    from azure.ai.ml.entities import ManagedOnlineEndpoint


class AzureDeployError(DeployError):
    """A deployment failed; the previous deployment keeps all the traffic."""


class ModelRegistrar(Protocol):
    """Registers a local MLflow model folder in the workspace and returns its reference."""

    def register(self, ml_client: MLClient, name: str, version: str, model_dir: Path) -> str: ...


class WorkspaceModelRegistrar:
    """The real registrar: uploads the folder to the workspace datastore as an MLflow model.

    Kept behind this small interface because the upload goes to blob storage, which has no
    offline emulator here; tests use a fake registrar and run the rest of the real client.
    """

    def register(self, ml_client: MLClient, name: str, version: str, model_dir: Path) -> str:
        from azure.ai.ml.constants import AssetTypes
        from azure.ai.ml.entities import Model

        model = ml_client.models.create_or_update(
            Model(path=str(model_dir), name=name, version=version, type=AssetTypes.MLFLOW_MODEL)
        )
        return f"azureml:{model.name}:{model.version}"


class AzureSettings(Settings):
    """An Azure ML managed online endpoint. Disabled while the workspace is not named."""

    subscription_id: str | None = setting("AZURE_SUBSCRIPTION_ID", None, "Azure subscription id.")
    resource_group: str | None = setting("AZURE_RESOURCE_GROUP", None, "Resource group.")
    workspace: str | None = setting("AZURE_WORKSPACE", None, "Azure ML workspace name.")
    endpoint_name: str = setting("AZURE_ENDPOINT", "penguins", "Online endpoint name.")
    instance_type: str = setting("AZURE_INSTANCE_TYPE", "Standard_DS3_v2", "Deployment VM size.")
    instance_count: int = setting("AZURE_INSTANCE_COUNT", 1, "Deployment instance count.")

    @property
    def enabled(self) -> bool:
        return bool(self.subscription_id and self.resource_group and self.workspace)

    def ml_client(self) -> MLClient:
        """An MLClient authenticated by DefaultAzureCredential; no secret passes through here."""
        from azure.ai.ml import MLClient
        from azure.identity import DefaultAzureCredential

        return MLClient(
            credential=DefaultAzureCredential(),
            subscription_id=self.subscription_id,
            resource_group_name=self.resource_group,
            workspace_name=self.workspace,
        )


ENABLE_HINT = enable_hint(
    AzureSettings,
    required=("subscription_id", "resource_group", "workspace"),
    note="credentials come from DefaultAzureCredential (az login, environment, managed identity)",
)


def deployment_name(endpoint: str, version: str) -> str:
    """`{endpoint}-{version}` within Azure's rules: 3-32 letters, digits and dashes."""
    name = re.sub(r"[^a-z0-9-]", "-", f"{endpoint}-{version}".lower())
    return name[-32:].lstrip("-0123456789") or f"v-{version}"


class AzureTarget:
    """Blue-green deployments on one online endpoint; see `DeploymentTarget`."""

    def __init__(
        self,
        ml_client: MLClient,
        settings: AzureSettings,
        registrar: ModelRegistrar,
        model_name: str,
        log: logging.Logger | None = None,
    ) -> None:
        self.client = ml_client
        self.settings = settings
        self.registrar = registrar
        self.model_name = model_name
        self.log = log or logging.getLogger(__name__)

    @property
    def label(self) -> str:
        return f"Azure ML endpoint {self.settings.endpoint_name}"

    def endpoint(self) -> ManagedOnlineEndpoint | None:
        from azure.core.exceptions import ResourceNotFoundError

        try:
            return self.client.online_endpoints.get(self.settings.endpoint_name)
        except ResourceNotFoundError:
            return None

    def live_deployment(self) -> str | None:
        """The deployment that takes all the traffic, if any."""
        endpoint = self.endpoint()
        traffic = (endpoint.traffic or {}) if endpoint is not None else {}
        return next((name for name, share in traffic.items() if share == 100), None)

    def served_version(self, deployment: Deployment | None = None) -> str | None:
        """The version tag of `deployment`, traffic or not, or of the live deployment."""
        name = deployment.name if deployment is not None else self.live_deployment()
        if name is None:
            return None
        found = self.client.online_deployments.get(name, self.settings.endpoint_name)
        return (found.tags or {}).get(VERSION_TAG)

    def deploy(self, version: str, model_dir: Path) -> Deployment:
        """A new deployment for `version` beside the live one, which keeps all the traffic."""
        from azure.ai.ml.entities import ManagedOnlineDeployment, ManagedOnlineEndpoint

        endpoint_name = self.settings.endpoint_name
        name = deployment_name(endpoint_name, version)
        live = None
        attempted = False
        try:
            if self.endpoint() is None:
                self.log.info(f"creating Azure ML online endpoint {endpoint_name}")
                self.client.online_endpoints.begin_create_or_update(
                    ManagedOnlineEndpoint(name=endpoint_name, auth_mode="key")
                ).result()
            live = self.live_deployment()
            if live is not None and self.served_version() == version:
                self.log.info(f"Azure ML endpoint {endpoint_name} already serves version {version}")
                return Deployment(version, "unchanged", name=live, previous=live)
            attempted = True
            model = self.registrar.register(self.client, self.model_name, version, model_dir)
            self.client.online_deployments.begin_create_or_update(
                ManagedOnlineDeployment(
                    name=name,
                    endpoint_name=endpoint_name,
                    model=model,
                    instance_type=self.settings.instance_type,
                    instance_count=self.settings.instance_count,
                    tags={VERSION_TAG: version, MODEL_NAME_TAG: self.model_name},
                )
            ).result()
        except Exception as error:
            if attempted:
                self._discard(name)
            keeps = f"deployment {live} keeps all traffic" if live else "no deployment serves"
            raise AzureDeployError(
                f"deploying version {version} to Azure ML endpoint {endpoint_name} failed: "
                f"{error}; {keeps}"
            ) from error
        return Deployment(version, "updated" if live else "created", name=name, previous=live)

    def invoke(
        self, records: Records, deployment: Deployment | None = None, *, smoke_test: bool = False
    ) -> object:
        """Score through `deployment`, whatever the traffic split says, or the live one."""
        target = deployment.name if deployment is not None else self.live_deployment()
        with tempfile.TemporaryDirectory() as tmp:
            request = Path(tmp) / "request.json"
            request.write_text(json.dumps({"inputs": records}))
            try:
                answer = self.client.online_endpoints.invoke(
                    endpoint_name=self.settings.endpoint_name,
                    request_file=str(request),
                    deployment_name=target,
                )
            except Exception as error:
                raise InvokeError(f"invoking deployment {target}: {error}") from error
        try:
            return json.loads(answer)
        except ValueError as error:
            raise InvokeError(f"deployment {target} answered non-JSON") from error

    def promote(self, deployment: Deployment) -> None:
        """Move 100% of the traffic to the new deployment, then delete the old one."""
        if deployment.action == "unchanged" or deployment.name is None:
            return
        endpoint = self.endpoint()
        if endpoint is None:
            raise AzureDeployError(
                f"Azure ML endpoint {self.settings.endpoint_name} was deleted before "
                f"{deployment.name} could take its traffic; deploy version "
                f"{deployment.version} again to recreate it"
            )
        endpoint.traffic = {deployment.name: 100}
        self.client.online_endpoints.begin_create_or_update(endpoint).result()
        self.log.info(f"{deployment.name} now takes 100% of the traffic")
        if deployment.previous and deployment.previous != deployment.name:
            self.client.online_deployments.begin_delete(
                name=deployment.previous, endpoint_name=self.settings.endpoint_name
            ).result()

    def roll_back(self, deployment: Deployment) -> None:
        """Delete the new deployment, which never took traffic; the old one keeps it all."""
        if deployment.action != "unchanged" and deployment.name is not None:
            self._discard(deployment.name)

    def _discard(self, name: str) -> None:
        """Delete a deployment that takes no traffic. Best effort: never hides the real error."""
        try:
            self.client.online_deployments.begin_delete(
                name=name, endpoint_name=self.settings.endpoint_name
            ).result()
        except Exception as error:
            self.log.warning(f"could not delete deployment {name}: {error}")

    def capture_source(self) -> None:
        """Azure ML's data collector is not read yet: monitoring skips this target."""
        return None

    def facts(self, deployment: Deployment) -> dict[str, Fact]:
        return {
            "endpoint": self.settings.endpoint_name,
            "workspace": f"{self.settings.resource_group}/{self.settings.workspace}",
            "deployment": deployment.name or "",
            "previous_deployment": deployment.previous or "",
        }
