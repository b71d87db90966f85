"""SageMaker fixtures: moto in server mode with the emulator patches, and a target for it."""

import json
from importlib.metadata import version as installed_version

import boto3
import pytest

from penguins_platform.resources.sagemaker import SageMakerTarget
from penguins_platform_tests.cloud import sagemaker_emulator
from penguins_platform_tests.cloud.sagemaker_emulator import ACCOUNT, SageMakerEmulator

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


def target(moto_server, **overrides) -> SageMakerTarget:
    values = dict(
        execution_role_arn=ROLE, artifact_bucket=BUCKET, endpoint_url=moto_server,
        wait_timeout_seconds=2.0, poll_interval_seconds=0.05,
    )  # fmt: skip
    return SageMakerTarget(**{**values, **overrides})
