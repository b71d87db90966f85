"""Cloud fixtures: moto in server mode with the SageMaker emulator patches, the Azure ML fake
at the HTTP layer, and a target resource for each."""

import json
from importlib.metadata import version as installed_version
from pathlib import Path

import boto3
import pytest
from azure.ai.ml import MLClient
from azure.ai.ml.constants._endpoint import EndpointInvokeFields

from penguins_platform.defs.resources import AzureMLEndpoint, SageMakerEndpoint
from penguins_platform.ml.inference import InferenceModel
from penguins_platform.rehearsal import sagemaker_emulator
from penguins_platform.rehearsal.sagemaker_emulator import ACCOUNT, SageMakerEmulator
from penguins_platform_tests.deploy.azure_fake import FakeAzureML, FakeCredential

ROLE = f"arn:aws:iam::{ACCOUNT}:role/penguins-sagemaker"
BUCKET = "penguins-models"
SECRET = "do-not-print-this-secret-0123456789"


@pytest.fixture
def emulator(moto_server, monkeypatch):
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", SECRET)
    fake = SageMakerEmulator()
    sagemaker_emulator.install(monkeypatch, fake)
    session = boto3.session.Session(region_name="us-east-1")
    iam = session.client("iam", endpoint_url=moto_server)
    iam.create_role(RoleName="penguins-sagemaker", AssumeRolePolicyDocument="{}")
    session.client("s3", endpoint_url=moto_server).create_bucket(Bucket=BUCKET)
    ecr = session.client("ecr", endpoint_url=moto_server)
    ecr.create_repository(repositoryName="mlflow-pyfunc")
    ecr.put_image(
        repositoryName="mlflow-pyfunc",
        imageManifest=json.dumps(
            {
                "schemaVersion": 2,
                "mediaType": "application/vnd.docker.distribution.manifest.v2+json",
                "layers": [],
            }
        ),
        imageTag=installed_version("mlflow"),
    )
    return fake


def target(moto_server, **overrides) -> SageMakerEndpoint:
    """The SageMaker resource pointed at moto, waiting seconds instead of minutes."""
    values = dict(
        execution_role_arn=ROLE, artifact_bucket=BUCKET, endpoint_url=moto_server,
        wait_timeout_seconds=2.0, poll_interval_seconds=0.05,
    )  # fmt: skip
    return SageMakerEndpoint(**{**values, **overrides})


WORKSPACE = dict(subscription_id="00000000-0000-0000-0000-000000000000",
                 resource_group="mlschool", workspace="main")  # fmt: skip


class FakeRegistrar:
    """Stands in for the datastore upload (no blob emulator here); keeps each version's model."""

    def __init__(self) -> None:
        self.models: dict[str, InferenceModel] = {}
        self.names: list[str] = []

    def register(self, ml_client, name: str, version: str, model_dir: Path) -> str:
        self.models[version] = InferenceModel.load(model_dir / "artifacts" / "inference")
        self.names.append(name)
        return f"azureml:{name}:{version}"


@pytest.fixture(autouse=True)
def _isolate_invoke_headers(monkeypatch):
    """azure-ai-ml's invoke() mutates a module-level header dict; keep tests independent."""
    monkeypatch.setattr(
        EndpointInvokeFields, "DEFAULT_HEADER", {"Content-Type": "application/json"}
    )


@pytest.fixture
def azure_service():
    """The fake Azure ML service, scoring with the model each version registered."""
    fake = FakeAzureML()
    registrar = FakeRegistrar()

    def scorer(deployment_name: str, request: dict):
        version = deployment_name.rsplit("-", 1)[-1]
        answers, _ = registrar.models[version].predict_records(request["inputs"])
        return 200, [
            {"prediction": a["prediction"], "confidence": a["confidence"]} for a in answers
        ]

    fake.scorer = scorer
    return fake, registrar


@pytest.fixture
def azure_target(azure_service):
    """The Azure resource with the real MLClient, its transport swapped for the fake."""
    fake, registrar = azure_service

    class OfflineAzureMLEndpoint(AzureMLEndpoint):
        def ml_client(self):
            return MLClient(
                credential=FakeCredential(),
                subscription_id=self.subscription_id,
                resource_group_name=self.resource_group,
                workspace_name=self.workspace,
                transport=fake,
            )

        def registrar(self):
            return registrar

    return OfflineAzureMLEndpoint(**WORKSPACE)
