"""Deploying a registered version to an Azure ML managed online endpoint with azure-ai-ml.

Blue-green: the new version gets its own deployment `{endpoint}-{version}`, is smoke-tested
through that deployment while the old one keeps all traffic, and only then receives 100% of
the traffic, after which the old deployment is deleted. A failure anywhere before the switch
leaves the old deployment serving and removes the half-made one.
"""

from __future__ import annotations

import json
import logging
import re
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

VERSION_TAG = "penguins_model_version"


class AzureDeployError(RuntimeError):
    """A deployment failed; the previous deployment keeps all the traffic."""


class ModelRegistrar(Protocol):
    """Registers a local MLflow model folder in the workspace and returns its reference."""

    def register(self, ml_client: Any, name: str, version: str, model_dir: Path) -> str: ...


class WorkspaceModelRegistrar:
    """The real registrar: uploads the folder to the workspace datastore as an MLflow model.

    Kept behind this small interface because the upload goes to blob storage, which has no
    offline emulator here; tests use a fake registrar and run the rest of the real client.
    """

    def register(self, ml_client: Any, name: str, version: str, model_dir: Path) -> str:
        from azure.ai.ml.constants import AssetTypes
        from azure.ai.ml.entities import Model

        model = ml_client.models.create_or_update(
            Model(path=str(model_dir), name=name, version=version, type=AssetTypes.MLFLOW_MODEL)
        )
        return f"azureml:{model.name}:{model.version}"


@dataclass(frozen=True)
class AzureSettings:
    subscription_id: str
    resource_group: str
    workspace: str
    endpoint_name: str = "penguins"
    instance_type: str = "Standard_DS3_v2"
    instance_count: int = 1
    model_name: str = "penguins"


@dataclass(frozen=True)
class AzureDeployment:
    action: str  # "created", "updated" or "unchanged"
    endpoint_name: str
    deployment_name: str
    version: str
    previous_deployment: str | None


def deployment_name(endpoint: str, version: str) -> str:
    """`{endpoint}-{version}` within Azure's rules: 3-32 letters, digits and dashes."""
    name = re.sub(r"[^a-z0-9-]", "-", f"{endpoint}-{version}".lower())
    return name[-32:].lstrip("-0123456789") or f"v-{version}"


class AzureDeployer:
    def __init__(
        self, ml_client: Any, settings: AzureSettings, registrar: ModelRegistrar, log: Any = None
    ) -> None:
        self.client = ml_client
        self.settings = settings
        self.registrar = registrar
        self.log = log or logging.getLogger(__name__)

    def endpoint(self) -> Any:
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

    def served_version(self) -> str | None:
        live = self.live_deployment()
        if live is None:
            return None
        deployment = self.client.online_deployments.get(live, self.settings.endpoint_name)
        return (deployment.tags or {}).get(VERSION_TAG)

    def deploy(self, version: str, model_dir: Path) -> AzureDeployment:
        """A new deployment for `version` beside the live one, which keeps all the traffic."""
        from azure.ai.ml.entities import ManagedOnlineDeployment, ManagedOnlineEndpoint

        endpoint_name = self.settings.endpoint_name
        name = deployment_name(endpoint_name, version)
        if self.endpoint() is None:
            self.log.info(f"creating Azure ML online endpoint {endpoint_name}")
            self.client.online_endpoints.begin_create_or_update(
                ManagedOnlineEndpoint(name=endpoint_name, auth_mode="key")
            ).result()
        live = self.live_deployment()
        if live is not None and self.served_version() == version:
            self.log.info(f"Azure ML endpoint {endpoint_name} already serves version {version}")
            return AzureDeployment("unchanged", endpoint_name, live, version, live)
        try:
            model = self.registrar.register(
                self.client, self.settings.model_name, version, model_dir
            )
            self.client.online_deployments.begin_create_or_update(
                ManagedOnlineDeployment(
                    name=name,
                    endpoint_name=endpoint_name,
                    model=model,
                    instance_type=self.settings.instance_type,
                    instance_count=self.settings.instance_count,
                    tags={VERSION_TAG: version},
                )
            ).result()
        except Exception as error:
            self.discard(name)
            keeps = f"deployment {live} keeps all traffic" if live else "no deployment serves"
            raise AzureDeployError(
                f"deploying version {version} to Azure ML endpoint {endpoint_name} failed: "
                f"{error}; {keeps}"
            ) from error
        return AzureDeployment("updated" if live else "created", endpoint_name, name, version, live)

    def invoker(self, deployment: str) -> Any:
        """Score through one deployment, whatever the endpoint's traffic split says."""
        from penguins_platform.serving.smoke import SmokeTestError

        def invoke(records: list[dict[str, Any]]) -> Any:
            with tempfile.TemporaryDirectory() as tmp:
                request = Path(tmp) / "request.json"
                request.write_text(json.dumps({"inputs": records}))
                try:
                    answer = self.client.online_endpoints.invoke(
                        endpoint_name=self.settings.endpoint_name,
                        request_file=str(request),
                        deployment_name=deployment,
                    )
                except Exception as error:
                    raise SmokeTestError(f"invoking deployment {deployment}: {error}") from error
            try:
                return json.loads(answer)
            except ValueError as error:
                raise SmokeTestError(f"deployment {deployment} answered non-JSON") from error

        return invoke

    def promote(self, deployment: AzureDeployment) -> None:
        """Move 100% of the traffic to the new deployment, then delete the old one."""
        endpoint = self.endpoint()
        endpoint.traffic = {deployment.deployment_name: 100}
        self.client.online_endpoints.begin_create_or_update(endpoint).result()
        previous = deployment.previous_deployment
        if previous and previous != deployment.deployment_name:
            self.client.online_deployments.begin_delete(
                name=previous, endpoint_name=deployment.endpoint_name
            ).result()

    def discard(self, name: str) -> None:
        """Delete a deployment that takes no traffic. Best effort: never hides the real error."""
        try:
            self.client.online_deployments.begin_delete(
                name=name, endpoint_name=self.settings.endpoint_name
            ).result()
        except Exception as error:
            self.log.warning(f"could not delete deployment {name}: {error}")
