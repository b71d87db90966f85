"""Credentials in a tracking URI: split off for use, masked for display, scrubbed from text."""

import pytest

from penguins_platform.tracking import credentials

URI = "http://alice:s3cr%40t-pw@mlflow.example:5000/prefix"


def test_split_takes_the_user_part_off_the_uri():
    found = credentials.split(URI)
    assert found.uri == "http://mlflow.example:5000/prefix"
    assert (found.username, found.password) == ("alice", "s3cr@t-pw")
    assert found.basic_auth_header == "Basic YWxpY2U6czNjckB0LXB3"


@pytest.mark.parametrize(
    "uri", ["http://mlflow.example:5000", "sqlite:////tmp/mlflow.db", "https://host/path?q=a@b"]
)
def test_a_uri_without_credentials_passes_unchanged(uri):
    assert credentials.split(uri).uri == uri
    assert credentials.split(uri).basic_auth_header is None
    assert credentials.mask(uri) == uri


def test_mask_hides_the_whole_user_part():
    assert credentials.mask(URI) == "http://***@mlflow.example:5000/prefix"


def test_scrub_masks_every_form_of_the_secret_in_other_messages():
    message = (
        f"request to {URI}/api failed; retried http://alice:s3cr@t-pw@mlflow.example "
        "with password s3cr@t-pw"
    )
    scrubbed = credentials.scrub(message, URI)
    assert "s3cr" not in scrubbed
    assert "mlflow.example:5000/prefix/api" in scrubbed


def test_a_username_alone_is_sent_and_masked():
    found = credentials.split("https://token@host")
    assert (found.username, found.password) == ("token", None)
    assert credentials.mask("https://token@host") == "https://***@host"
