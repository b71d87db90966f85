"""The SageMaker deployment target: which endpoint, where, and with what."""

from __future__ import annotations

from typing import Any

import dagster as dg
from pydantic import Field

ENABLE_HINT = (
    "Disabled until configured: set SAGEMAKER_EXECUTION_ROLE_ARN and SAGEMAKER_BUCKET "
    "(optionally AWS_REGION, AWS_ROLE to assume, SAGEMAKER_ENDPOINT, SAGEMAKER_IMAGE_URI, "
    "SAGEMAKER_INSTANCE_TYPE, SAGEMAKER_INSTANCE_COUNT, SAGEMAKER_DATA_CAPTURE_URI)."
)


class SageMakerTarget(dg.ConfigurableResource):
    """A SageMaker real-time endpoint. Disabled while it has no execution role or bucket.

    Credentials come from boto3's usual chain (environment, profile, instance role) and,
    when `assume_role_arn` is set, from an STS session for that role; they never pass
    through Dagster config, logs or metadata.
    """

    endpoint_name: str = Field(default="penguins", description="SageMaker endpoint name.")
    region: str = Field(default="us-east-1", description="AWS region of the endpoint.")
    execution_role_arn: str | None = Field(
        default=None, description="IAM role SageMaker runs the model with."
    )
    assume_role_arn: str | None = Field(
        default=None, description="Role to assume for the deployment calls, if any."
    )
    artifact_bucket: str | None = Field(default=None, description="S3 bucket for model.tar.gz.")
    instance_type: str = Field(default="ml.m4.xlarge", description="Endpoint instance type.")
    instance_count: int = Field(default=1, description="Endpoint instance count.")
    image_uri: str | None = Field(
        default=None,
        description="Serving image; default: this account's ECR mlflow-pyfunc:<mlflow version>.",
    )
    data_capture_uri: str | None = Field(
        default=None, description="s3:// URI for SageMaker data capture (100%, input and output)."
    )
    endpoint_url: str | None = Field(
        default=None, description="AWS API endpoint override, for emulators or private links."
    )
    wait_timeout_seconds: float = Field(default=1800.0, description="Wait for InService this long.")
    poll_interval_seconds: float = Field(default=15.0, description="Status poll interval.")

    @property
    def enabled(self) -> bool:
        return bool(self.execution_role_arn and self.artifact_bucket)

    def settings(self) -> Any:
        """The validated settings; raises SageMakerConfigError before any AWS call."""
        import boto3

        from penguins_platform.cloud.sagemaker import SageMakerSettings

        settings = SageMakerSettings(
            endpoint_name=self.endpoint_name,
            region=self.region,
            execution_role_arn=self.execution_role_arn or "",
            artifact_bucket=self.artifact_bucket or "",
            instance_type=self.instance_type,
            instance_count=self.instance_count,
            assume_role_arn=self.assume_role_arn,
            image_uri=self.image_uri,
            data_capture_uri=self.data_capture_uri,
            endpoint_url=self.endpoint_url,
            wait_timeout_seconds=self.wait_timeout_seconds,
            poll_interval_seconds=self.poll_interval_seconds,
        )
        settings.validate(boto3.session.Session().get_available_regions("sagemaker"))
        return settings

    def session(self, settings: Any) -> Any:
        """A boto3 session in the target region, as the assumed role when one is set."""
        import boto3

        session = boto3.session.Session(region_name=settings.region)
        if not settings.assume_role_arn:
            return session
        sts = session.client("sts", endpoint_url=settings.endpoint_url)
        credentials = sts.assume_role(
            RoleArn=settings.assume_role_arn, RoleSessionName="penguins-platform"
        )["Credentials"]
        return boto3.session.Session(
            aws_access_key_id=credentials["AccessKeyId"],
            aws_secret_access_key=credentials["SecretAccessKey"],
            aws_session_token=credentials["SessionToken"],
            region_name=settings.region,
        )
