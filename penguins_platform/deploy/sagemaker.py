"""Deploying a registered version to a SageMaker real-time endpoint with boto3.

The MLflow model goes to S3 as model.tar.gz; a SageMaker model and an endpoint config, both
tagged with the version, point at it; the endpoint is created or updated to that config and
waited on until InService. A failure anywhere leaves the previous config serving and deletes
what the attempt made. An update switches the traffic itself, so the smoke test goes through
the endpoint, and rolling back updates it to the previous config again.

Why boto3 and not the `sagemaker` SDK: every operation here is one boto3 call, the SDK's v3
resource classes fail under moto (pydantic errors on empty VPC and data-capture configs), and
its MLflow plugin logs an error on every MLflow call to a non-SageMaker tracking URI.
"""

from __future__ import annotations

import io
import json
import logging
import os
import re
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from pydantic import Field

from penguins_platform.deploy.target import (
    Action,
    DeployError,
    Deployment,
    Fact,
    InvokeError,
    Link,
    Records,
    TargetConfigError,
)
from penguins_platform.settings import Settings, enable_hint, setting, variable
from penguins_platform.tracking.contract import MODEL_NAME_TAG, VERSION_TAG

if TYPE_CHECKING:
    import boto3
    from botocore.client import BaseClient

    from penguins_platform.capture.sagemaker import SageMakerCapture

SMOKE_TEST_ATTRIBUTE = "penguins-smoke-test"
THROTTLING_CODES = {"ThrottlingException", "Throttling", "TooManyRequestsException",
                    "RequestLimitExceeded", "SlowDown"}  # fmt: skip
_ROLE_ARN = re.compile(r"^arn:aws[a-z-]*:iam::\d{12}:role/[\w+=,.@/-]+$")
_BUCKET = re.compile(r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$")
# Once a role that only the SageMaker calls assumed, while S3 and the compute logs went
# without it. Kept by name so that a setting which would now do nothing fails loudly.
RETIRED_ROLE_VARIABLE = "AWS_ROLE"


class SageMakerConfigError(TargetConfigError):
    """The SageMaker target is configured wrongly; found before any AWS call."""


class SageMakerDeployError(DeployError):
    """A deployment failed. The previous endpoint config keeps serving."""


class SageMakerTimeoutError(SageMakerDeployError):
    """The endpoint did not reach InService in time."""


class SageMakerSettings(Settings):
    """A SageMaker real-time endpoint. Disabled while it has no execution role or bucket.

    Credentials come from boto3's default chain, as for every other AWS client of the
    platform (S3 data and asset values, compute logs): the task role on ECS, the service
    account's role on Kubernetes (IRSA), a profile on a workstation. They never pass through
    these settings, logs or metadata.
    """

    execution_role_arn: str | None = setting(
        "SAGEMAKER_EXECUTION_ROLE_ARN", None, "IAM role SageMaker runs the model with."
    )
    artifact_bucket: str | None = setting(
        "SAGEMAKER_BUCKET", None, "S3 bucket for the model.tar.gz of each version."
    )
    region: str = setting("AWS_REGION", "us-east-1", "AWS region of the endpoint.")
    endpoint_name: str = setting("SAGEMAKER_ENDPOINT", "penguins", "SageMaker endpoint name.")
    instance_type: str = setting(
        "SAGEMAKER_INSTANCE_TYPE", "ml.m4.xlarge", "Endpoint instance type."
    )
    instance_count: int = setting("SAGEMAKER_INSTANCE_COUNT", 1, "Endpoint instance count.")
    image_uri: str | None = setting(
        "SAGEMAKER_IMAGE_URI",
        None,
        "Serving image; default: this account's ECR `mlflow-pyfunc:<mlflow version>`, pushed "
        "with `mlflow sagemaker build-and-push-container`.",
    )
    data_capture_uri: str | None = setting(
        "SAGEMAKER_DATA_CAPTURE_URI",
        None,
        "s3:// URI for SageMaker data capture (100%, input and output); unset: off.",
    )
    endpoint_url: str | None = Field(
        default=None, description="AWS API endpoint override, for emulators or private links."
    )
    api_attempts: int = Field(
        default=6, ge=1, description="Attempts of each AWS call, with backoff, on throttling."
    )
    wait_timeout_seconds: float = Field(default=1800.0, description="Wait for InService this long.")
    poll_interval_seconds: float = Field(default=15.0, description="Status poll interval.")

    @property
    def enabled(self) -> bool:
        return bool(self.execution_role_arn and self.artifact_bucket)

    def validate_settings(self, known_regions: list[str]) -> None:
        """Every configuration mistake that shows without calling AWS."""
        if self.region not in known_regions:
            raise SageMakerConfigError(
                f"region {self.region!r} has no SageMaker; use one of "
                f"{', '.join(sorted(known_regions)[:6])}, …"
            )
        if not _ROLE_ARN.match(self.execution_role_arn or ""):
            raise SageMakerConfigError(
                f"execution role {self.execution_role_arn!r} is not an IAM role ARN "
                f"(arn:aws:iam::<account>:role/<name>); set {_variable('execution_role_arn')}"
            )
        if os.environ.get(RETIRED_ROLE_VARIABLE):
            raise SageMakerConfigError(
                f"{RETIRED_ROLE_VARIABLE} is no longer read: it reached the SageMaker calls "
                f"alone. Unset it, and to work as a role put role_arn and source_profile in a "
                "profile of ~/.aws/config and set AWS_PROFILE to it, which every AWS client "
                "honours (on ECS and Kubernetes, the task's or service account's role needs "
                "neither)."
            )
        if not _BUCKET.match(self.artifact_bucket or ""):
            raise SageMakerConfigError(
                f"artifact bucket {self.artifact_bucket!r} is not an S3 bucket name; "
                f"set {_variable('artifact_bucket')}"
            )
        if self.instance_count < 1:
            raise SageMakerConfigError(f"instance count {self.instance_count} must be at least 1")
        if self.data_capture_uri and not self.data_capture_uri.startswith("s3://"):
            raise SageMakerConfigError(
                f"data capture URI {self.data_capture_uri!r} must be an s3:// URI"
            )

    def session(self) -> boto3.session.Session:
        """A boto3 session in the target region, with the default credential chain."""
        import boto3

        return boto3.session.Session(region_name=self.region)


def _variable(field: str) -> str:
    return variable(SageMakerSettings, field)


ENABLE_HINT = enable_hint(SageMakerSettings, required=("execution_role_arn", "artifact_bucket"))


def is_throttling(error: BaseException) -> bool:
    response = getattr(error, "response", None) or {}
    return response.get("Error", {}).get("Code") in THROTTLING_CODES


def aws_error_text(error: BaseException) -> str:
    response = getattr(error, "response", None) or {}
    detail = response.get("Error", {})
    if detail:
        return f"{detail.get('Code')}: {detail.get('Message')}"
    return str(error)


def _model_archive(model_dir: Path) -> bytes:
    """The MLflow model folder as SageMaker's model.tar.gz."""
    import tarfile

    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as archive:
        for path in sorted(model_dir.rglob("*")):
            if path.is_file() and "__pycache__" not in path.parts:
                archive.add(path, arcname=str(path.relative_to(model_dir)))
    return buffer.getvalue()


class SageMakerTarget:
    """Create or update one endpoint, wait for it, invoke it, and undo a failed attempt."""

    def __init__(
        self,
        session: boto3.session.Session,
        settings: SageMakerSettings,
        model_name: str,
        log: logging.Logger | None = None,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        from botocore.config import Config

        self.settings = settings
        self.model_name = model_name
        self.log = log or logging.getLogger(__name__)
        self.sleep = sleep
        config = Config(retries={"max_attempts": settings.api_attempts, "mode": "standard"})

        def client(service: str) -> BaseClient:
            return session.client(service, config=config, endpoint_url=settings.endpoint_url)

        self.sagemaker = client("sagemaker")
        self.runtime = client("sagemaker-runtime")
        self.s3 = client("s3")
        self.iam = client("iam")
        self.ecr = client("ecr")

    @classmethod
    def connect(
        cls,
        settings: SageMakerSettings,
        model_name: str,
        log: logging.Logger | None = None,
        sleep: Callable[[float], None] = time.sleep,
    ) -> SageMakerTarget:
        """Check the settings without calling AWS, then open a session."""
        import boto3

        settings.validate_settings(boto3.session.Session().get_available_regions("sagemaker"))
        return cls(settings.session(), settings, model_name, log, sleep)

    @property
    def label(self) -> str:
        return f"SageMaker endpoint {self.settings.endpoint_name}"

    @property
    def console_url(self) -> str:
        region = self.settings.region
        return (
            f"https://{region}.console.aws.amazon.com/sagemaker/home?region={region}"
            f"#/endpoints/{self.settings.endpoint_name}"
        )

    def describe(self) -> dict[str, object] | None:
        from botocore.exceptions import ClientError

        try:
            return self.sagemaker.describe_endpoint(EndpointName=self.settings.endpoint_name)
        except ClientError as error:
            if "Could not find endpoint" in aws_error_text(error):
                return None
            raise

    def served_version(self, deployment: Deployment | None = None) -> str | None:
        """The version tag of the endpoint, if it exists and is in service. An update switches
        the traffic itself, so a deployment serves what the endpoint serves."""
        endpoint = self.describe()
        if endpoint is None or endpoint.get("EndpointStatus") != "InService":
            return None
        tags = self.sagemaker.list_tags(ResourceArn=endpoint["EndpointArn"]).get("Tags", [])
        return next((t["Value"] for t in tags if t["Key"] == VERSION_TAG), None)

    def image_uri(self) -> str:
        """The configured image, or the MLflow pyfunc image pushed to this account's ECR."""
        if self.settings.image_uri:
            return self.settings.image_uri
        from importlib.metadata import version

        from botocore.exceptions import ClientError

        tag = version("mlflow")
        try:
            repository = self.ecr.describe_repositories(repositoryNames=["mlflow-pyfunc"])
            uri = repository["repositories"][0]["repositoryUri"]
            self.ecr.describe_images(repositoryName="mlflow-pyfunc", imageIds=[{"imageTag": tag}])
        except ClientError as error:
            raise SageMakerDeployError(
                f"no mlflow-pyfunc:{tag} image in ECR ({aws_error_text(error)}); push it with "
                "`mlflow sagemaker build-and-push-container`, or set "
                f"{_variable('image_uri')}"
            ) from error
        return f"{uri}:{tag}"

    def check_prerequisites(self) -> None:
        from botocore.exceptions import ClientError

        role_name = (self.settings.execution_role_arn or "").rsplit("/", 1)[-1]
        try:
            self.iam.get_role(RoleName=role_name)
        except ClientError as error:
            raise SageMakerDeployError(
                f"execution role {self.settings.execution_role_arn} is not usable: "
                f"{aws_error_text(error)}"
            ) from error
        try:
            self.s3.head_bucket(Bucket=self.settings.artifact_bucket)
        except ClientError as error:
            raise SageMakerDeployError(
                f"artifact bucket {self.settings.artifact_bucket} is not usable: "
                f"{aws_error_text(error)}"
            ) from error

    def upload(self, version: str, model_dir: Path) -> str:
        key = f"{self.settings.endpoint_name}/models/{version}/model.tar.gz"
        self.s3.put_object(
            Bucket=self.settings.artifact_bucket, Key=key, Body=_model_archive(model_dir)
        )
        return f"s3://{self.settings.artifact_bucket}/{key}"

    def deploy(self, version: str, model_dir: Path) -> Deployment:
        """Create the endpoint, or update it to a new config; skip if it serves `version`."""
        from botocore.exceptions import BotoCoreError, ClientError

        name = self.settings.endpoint_name
        try:
            current = self.describe()
            if current is not None and self.served_version() == version:
                self.log.info(f"SageMaker endpoint {name} already serves version {version}")
                config = str(current["EndpointConfigName"])
                return Deployment(version, "unchanged", name=config, previous=config)
            self.check_prerequisites()
            image = self.image_uri()
            model_data = self.upload(version, model_dir)
        except (ClientError, BotoCoreError) as error:
            raise SageMakerDeployError(
                f"preparing version {version} for SageMaker endpoint {name} failed: "
                f"{aws_error_text(error)}; nothing was changed",
                transient=is_throttling(error),
            ) from error
        stamp = time.strftime("%Y%m%d%H%M%S", time.gmtime())
        model_name = config_name = f"{name}-v{version}-{stamp}"
        tags = [
            {"Key": VERSION_TAG, "Value": version},
            {"Key": MODEL_NAME_TAG, "Value": self.model_name},
        ]
        previous = str(current["EndpointConfigName"]) if current else None
        made: list[str] = []
        try:
            self.sagemaker.create_model(
                ModelName=model_name,
                ExecutionRoleArn=self.settings.execution_role_arn,
                PrimaryContainer={
                    "Image": image,
                    "ModelDataUrl": model_data,
                    "Environment": {"MLFLOW_DEPLOYMENT_FLAVOR_NAME": "python_function"},
                },
                Tags=tags,
            )
            made.append("model")
            self.sagemaker.create_endpoint_config(
                **self._endpoint_config(config_name, model_name, tags)
            )
            made.append("config")
            if current:
                self.sagemaker.update_endpoint(EndpointName=name, EndpointConfigName=config_name)
            else:
                self.sagemaker.create_endpoint(
                    EndpointName=name, EndpointConfigName=config_name, Tags=tags
                )
                made.append("endpoint")
            arn = self.wait_in_service()["EndpointArn"]
            self.sagemaker.add_tags(ResourceArn=arn, Tags=tags)
        except Exception as error:
            self._clean_up(made, model_name, config_name)
            keeps = f"config {previous} keeps serving" if previous else "no endpoint was left"
            kind = SageMakerTimeoutError if isinstance(error, SageMakerTimeoutError) else None
            raise (kind or SageMakerDeployError)(
                f"deploying version {version} to SageMaker endpoint {name} failed: "
                f"{aws_error_text(error)}; {keeps}",
                transient=is_throttling(error),
            ) from error
        action: Action = "updated" if current else "created"
        self.log.info(f"SageMaker endpoint {name} {action} with {config_name}")
        return Deployment(version, action, name=config_name, previous=previous)

    def _endpoint_config(
        self, config_name: str, model_name: str, tags: list[dict[str, str]]
    ) -> dict[str, object]:
        config: dict[str, object] = {
            "EndpointConfigName": config_name,
            "ProductionVariants": [
                {
                    "VariantName": "primary",
                    "ModelName": model_name,
                    "InitialInstanceCount": self.settings.instance_count,
                    "InstanceType": self.settings.instance_type,
                    "InitialVariantWeight": 1.0,
                }
            ],
            "Tags": tags,
        }
        if self.settings.data_capture_uri:
            config["DataCaptureConfig"] = {
                "EnableCapture": True,
                "InitialSamplingPercentage": 100,
                "DestinationS3Uri": self.settings.data_capture_uri,
                "CaptureOptions": [{"CaptureMode": "Input"}, {"CaptureMode": "Output"}],
                "CaptureContentTypeHeader": {"JsonContentTypes": ["application/json"]},
            }
        return config

    def wait_in_service(self) -> dict[str, object]:
        """The endpoint's description once it is InService. Callers read the ARN from it: a
        second describe could find the endpoint gone."""
        deadline = time.monotonic() + self.settings.wait_timeout_seconds
        while True:
            endpoint = self.describe() or {}
            status = endpoint.get("EndpointStatus")
            if status == "InService":
                return endpoint
            if status in ("Failed", "OutOfService"):
                raise SageMakerDeployError(
                    f"endpoint is {status}: {endpoint.get('FailureReason', 'no reason given')}"
                )
            if time.monotonic() >= deadline:
                raise SageMakerTimeoutError(
                    f"endpoint {self.settings.endpoint_name} did not reach InService within "
                    f"{self.settings.wait_timeout_seconds:g}s (still {status})"
                )
            self.sleep(self.settings.poll_interval_seconds)

    def _clean_up(self, made: list[str], model_name: str, config_name: str) -> None:
        """Remove what a failed attempt created, so no orphan lingers. Best effort, logged."""
        steps = {
            "endpoint": lambda: self.sagemaker.delete_endpoint(
                EndpointName=self.settings.endpoint_name
            ),
            "config": lambda: self.sagemaker.delete_endpoint_config(EndpointConfigName=config_name),
            "model": lambda: self.sagemaker.delete_model(ModelName=model_name),
        }
        for kind in reversed(made):
            try:
                steps[kind]()
            except Exception as error:  # cleanup must not hide the original failure
                self.log.warning(f"could not delete the failed attempt's {kind}: {error}")

    def promote(self, deployment: Deployment) -> None:
        """Nothing to do: the update moved the traffic once the endpoint was InService."""

    def roll_back(self, deployment: Deployment) -> None:
        """Point the endpoint back at the config it served before `deployment`, or delete an
        endpoint that `deployment` created."""
        made = deployment.name or ""  # the model and the config share the attempt's name
        if deployment.action == "created":
            self._clean_up(["model", "config", "endpoint"], made, made)
            return
        if deployment.action != "updated" or not deployment.previous:
            return
        self.sagemaker.update_endpoint(
            EndpointName=self.settings.endpoint_name, EndpointConfigName=deployment.previous
        )
        arn = self.wait_in_service()["EndpointArn"]
        previous = self.sagemaker.describe_endpoint_config(EndpointConfigName=deployment.previous)
        tags = self.sagemaker.list_tags(ResourceArn=previous["EndpointConfigArn"]).get("Tags", [])
        self.sagemaker.add_tags(ResourceArn=arn, Tags=tags)
        self._clean_up(["model", "config"], made, made)

    def invoke(
        self, records: Records, deployment: Deployment | None = None, *, smoke_test: bool = False
    ) -> object:
        """Score through sagemaker-runtime: the endpoint serves whatever was last deployed.
        Smoke-test requests carry a custom attribute saying so."""
        from botocore.exceptions import BotoCoreError, ClientError

        extra = {"CustomAttributes": SMOKE_TEST_ATTRIBUTE} if smoke_test else {}
        try:
            reply = self.runtime.invoke_endpoint(
                EndpointName=self.settings.endpoint_name,
                ContentType="application/json",
                Accept="application/json",
                Body=json.dumps({"inputs": records}),
                **extra,
            )
            return json.loads(reply["Body"].read())
        except (ClientError, BotoCoreError) as error:
            raise InvokeError(f"invoking {self.settings.endpoint_name}: {error}") from error
        except ValueError as error:
            raise InvokeError(f"{self.settings.endpoint_name} answered non-JSON") from error

    def capture_source(self) -> SageMakerCapture | None:
        """The endpoint's data capture in S3, when it is configured. SageMaker's capture
        records no model version, so rows are credited to the version serving now."""
        if not self.settings.data_capture_uri:
            return None
        from botocore.exceptions import BotoCoreError, ClientError

        from penguins_platform.capture.sagemaker import SageMakerCapture

        try:
            version = self.served_version()
        except (ClientError, BotoCoreError) as error:
            # The capture is still worth reading; only its version is unknown.
            self.log.warning(
                f"could not ask {self.label} which version it serves ({error}); its captured "
                "rows are credited to version 'unknown'"
            )
            version = None
        return SageMakerCapture(
            self.s3, self.settings.data_capture_uri, self.settings.endpoint_name, version
        )

    def facts(self, deployment: Deployment) -> dict[str, Fact]:
        return {
            "endpoint": self.settings.endpoint_name,
            "region": self.settings.region,
            "endpoint_config": deployment.name or "",
            "previous_config": deployment.previous or "",
            "console": Link(self.console_url),
        }
