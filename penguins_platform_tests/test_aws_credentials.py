"""One credential story for every AWS client: boto3's default chain.

The S3 client of the data and the asset values, and the SageMaker target's session, take no
credentials of their own. So a profile that assumes the platform role (what a workstation
outside AWS uses, with the platform user's key as its source) reaches every one of them, as
the task role does on ECS and the service account's role (IRSA) does on Kubernetes.

moto runs with IAM enforced, and the platform user, as in platform-access.yaml, may do nothing
but assume the platform role: a client that skipped the role would be refused.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import boto3
import pytest
from botocore.exceptions import ClientError
from moto.core import DEFAULT_ACCOUNT_ID as ACCOUNT

from penguins_platform.defs.resources import S3Storage, SageMakerEndpoint
from penguins_platform.deploy.sagemaker import RETIRED_ROLE_VARIABLE, SageMakerConfigError
from penguins_platform_tests.servers import free_port

BUCKET = "penguins-data"
ROLE_NAME = "penguins-platform"
ROLE_ARN = f"arn:aws:iam::{ACCOUNT}:role/{ROLE_NAME}"
EXECUTION_ROLE_ARN = f"arn:aws:iam::{ACCOUNT}:role/penguins-sagemaker-execution"


def _policy(*statements: dict) -> str:
    return json.dumps({"Version": "2012-10-17", "Statement": list(statements)})


@pytest.fixture
def platform_user_key(moto_server: str) -> dict[str, str]:
    """The platform user's access key; the user may only assume the platform role, which may
    read the bucket and list SageMaker endpoints."""
    iam = boto3.client("iam", endpoint_url=moto_server)
    user = iam.create_user(UserName="penguins")["User"]
    iam.create_role(
        RoleName=ROLE_NAME,
        AssumeRolePolicyDocument=_policy(
            {"Effect": "Allow", "Principal": {"AWS": user["Arn"]}, "Action": "sts:AssumeRole"}
        ),
    )
    iam.put_role_policy(
        RoleName=ROLE_NAME,
        PolicyName="platform",
        PolicyDocument=_policy(
            {"Effect": "Allow", "Action": "s3:ListBucket", "Resource": f"arn:aws:s3:::{BUCKET}"},
            {"Effect": "Allow", "Action": "sagemaker:ListEndpoints", "Resource": "*"},
        ),
    )
    iam.put_user_policy(
        UserName="penguins",
        PolicyName="assume-platform-role",
        PolicyDocument=_policy(
            {"Effect": "Allow", "Action": "sts:AssumeRole", "Resource": ROLE_ARN}
        ),
    )
    key = iam.create_access_key(UserName="penguins")["AccessKey"]
    boto3.client("s3", endpoint_url=moto_server).create_bucket(Bucket=BUCKET)
    return {"id": key["AccessKeyId"], "secret": key["SecretAccessKey"]}


@pytest.fixture
def iam_enforced(platform_user_key: dict[str, str]) -> Iterator[None]:
    """moto checks every request's signature and the caller's policies from here on."""
    from moto.core import enable_iam_authentication

    with enable_iam_authentication():
        yield


@pytest.fixture
def only_the_platform_users_key(
    moto_server: str, platform_user_key: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The environment of a workstation that holds the user's key and nothing else; every
    client reaches moto through AWS_ENDPOINT_URL, which boto3 reads like any setting."""
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", platform_user_key["id"])
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", platform_user_key["secret"])
    monkeypatch.setenv("AWS_ENDPOINT_URL", moto_server)


@pytest.fixture
def platform_profile(
    moto_server: str,
    platform_user_key: dict[str, str],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The profile the infra README describes: the user's key as the source profile, the
    platform role as role_arn, chosen with AWS_PROFILE; no key in the environment."""
    credentials = tmp_path / "credentials"
    credentials.write_text(
        "[platform-user]\n"
        f"aws_access_key_id = {platform_user_key['id']}\n"
        f"aws_secret_access_key = {platform_user_key['secret']}\n"
    )
    config = tmp_path / "config"
    config.write_text(
        f"[profile platform]\nrole_arn = {ROLE_ARN}\nsource_profile = platform-user\n"
    )
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(credentials))
    monkeypatch.setenv("AWS_CONFIG_FILE", str(config))
    monkeypatch.setenv("AWS_PROFILE", "platform")
    monkeypatch.setenv("AWS_ENDPOINT_URL", moto_server)
    monkeypatch.delenv("AWS_ACCESS_KEY_ID")
    monkeypatch.delenv("AWS_SECRET_ACCESS_KEY")
    # boto3's module-level session keeps the credentials it first found; a Dagster process
    # builds it once, from this environment.
    monkeypatch.setattr(boto3, "DEFAULT_SESSION", None)


def sagemaker_target(moto_server: str):
    """The SageMaker target as the deployment asset builds it, pointed at moto."""
    resource = SageMakerEndpoint(
        execution_role_arn=EXECUTION_ROLE_ARN, artifact_bucket=BUCKET, endpoint_url=moto_server
    )
    return resource.target("penguins")


def test_the_platform_users_key_alone_reaches_no_bucket(
    only_the_platform_users_key: None, iam_enforced: None
) -> None:
    """What the issue saw: a client that does not assume the role is refused."""
    with pytest.raises(ClientError) as refused:
        S3Storage().client().list_objects_v2(Bucket=BUCKET)
    assert refused.value.response["Error"]["Code"] == "AccessDenied"


def test_a_profile_with_the_platform_role_reaches_every_aws_client(
    moto_server: str, platform_profile: None, iam_enforced: None, tmp_path: Path
) -> None:
    """The data and asset-value client, dagster-aws's compute logs and the SageMaker target,
    each as the platform builds it; any of them without the role would be refused."""
    from dagster._core.storage.compute_log_manager import ComputeIOType
    from dagster_aws.s3.compute_log_manager import S3ComputeLogManager

    S3Storage().client().list_objects_v2(Bucket=BUCKET)
    compute_logs = S3ComputeLogManager(bucket=BUCKET, local_dir=str(tmp_path / "logs"))
    assert compute_logs.get_log_keys_for_log_key_prefix(["run"], ComputeIOType.STDOUT) == []
    target = sagemaker_target(moto_server)
    assert target.sagemaker.list_endpoints()["Endpoints"] == []


def test_the_retired_role_variable_is_an_error_that_says_what_replaces_it(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    dead = f"http://127.0.0.1:{free_port()}"  # any AWS call would fail to connect instead
    monkeypatch.setenv(RETIRED_ROLE_VARIABLE, ROLE_ARN)
    with pytest.raises(SageMakerConfigError, match=r"AWS_ROLE is no longer read.*AWS_PROFILE"):
        sagemaker_target(dead)
