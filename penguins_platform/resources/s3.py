"""S3 access for reading data, through dagster-aws's S3 resource."""

from __future__ import annotations

from typing import Any

import dagster as dg
from pydantic import Field


class S3Storage(dg.ConfigurableResource):
    """An S3 client from `dagster_aws.s3.S3Resource`, built on first use.

    Why a wrapper: importing `dagster_aws` costs more than importing dagster itself (it loads
    its components and test utilities), and Dagster imports the definitions on every run,
    sensor tick and UI reload. This resource defers that import to the step that reads S3.
    Unset fields fall back to boto3's own environment (`AWS_REGION`, `AWS_ENDPOINT_URL`,
    `AWS_PROFILE`, credentials), so credentials never pass through Dagster config.
    """

    region_name: str | None = Field(default=None, description="AWS region; default from boto3.")
    endpoint_url: str | None = Field(
        default=None, description="S3 endpoint, for S3-compatible stores or an emulator."
    )
    profile_name: str | None = Field(default=None, description="Named AWS profile to use.")

    def client(self) -> Any:
        from dagster_aws.s3 import S3Resource

        return S3Resource(
            region_name=self.region_name,
            endpoint_url=self.endpoint_url,
            profile_name=self.profile_name,
        ).get_client()
