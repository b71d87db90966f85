"""The endpoint's framework-free core: a body and a content type in, a status and JSON out."""

import json

import pytest

from penguins_platform.ml.inference import InferenceModel
from penguins_platform.ml.schema import SAMPLE_PENGUIN
from penguins_platform.serving import scoring
from penguins_platform.serving.capture import CaptureStore


@pytest.fixture
def state(model_dir) -> scoring.EndpointState:
    serving = scoring.load_serving_model(str(model_dir), "7", "penguins-test")
    limits = scoring.EndpointLimits(max_rows=3, max_body_bytes=1000)
    return scoring.EndpointState(serving=serving, limits=limits, admin_token="secret-token")


def _body(records: object) -> bytes:
    return json.dumps({"inputs": records}).encode()


def test_a_good_request_gets_one_prediction_per_record(state):
    answer = scoring.invocations(_body([SAMPLE_PENGUIN, {}]), "application/json", state)
    assert answer.status == 200
    assert answer.body["predictions"][0]["prediction"] == "Gentoo"
    assert len(answer.body["predictions"]) == 2
    assert answer.body["model_version"] == "7"


def test_the_content_type_may_carry_a_charset(state):
    answer = scoring.invocations(_body([{}]), "application/json; charset=utf-8", state)
    assert answer.status == 200


@pytest.mark.parametrize(
    "body,content_type,status,code",
    [
        (_body([{}]), "text/csv", 415, "UNSUPPORTED_MEDIA_TYPE"),
        (_body([{}]), None, 415, "UNSUPPORTED_MEDIA_TYPE"),
        (b"{not json", "application/json", 400, "BAD_REQUEST"),
        (_body([{}] * 4), "application/json", 413, "REQUEST_TOO_LARGE"),
        (b" " * 1001, "application/json", 413, "REQUEST_TOO_LARGE"),
        (_body([{"body_mass_g": "heavy"}]), "application/json", 400, "BAD_REQUEST"),
    ],
    ids=["csv", "no content type", "not json", "too many rows", "too many bytes", "text"],
)
def test_refusals_carry_the_status_and_a_code_that_names_it(
    state, body, content_type, status, code
):
    answer = scoring.invocations(body, content_type, state)
    assert (answer.status, answer.body["error_code"]) == (status, code)
    assert answer.body["message"]


def test_every_error_status_has_a_code_of_its_own():
    codes = scoring.ERROR_CODES
    assert len(set(codes.values())) == len(codes)
    assert codes[401] == "UNAUTHORIZED" and codes[422] == "MODEL_REJECTED"


def test_a_capture_store_that_fails_never_fails_the_prediction(state, tmp_path):
    class BrokenStore(CaptureStore):
        def submit(self, rows):
            raise OSError("disk full")

    state.capture = BrokenStore(f"sqlite:///{tmp_path / 'capture.db'}")
    try:
        answer = scoring.invocations(_body([SAMPLE_PENGUIN]), "application/json", state)
    finally:
        state.capture.close()
    assert answer.status == 200
    assert state.capture_errors == 1
    assert scoring.health(state).body["capture"]["queue_errors"] == 1


def test_health_and_version_name_the_model(state):
    assert scoring.health(state).body["model_name"] == "penguins-test"
    assert scoring.version(state).body["model_version"] == "7"


def test_the_admin_token_must_match_exactly():
    assert scoring.authorized("Bearer secret-token", "secret-token")
    assert not scoring.authorized("Bearer secret-toke", "secret-token")
    assert not scoring.authorized(None, "secret-token")


def test_a_swap_request_needs_a_folder_and_a_version():
    body = json.dumps({"model_dir": "/m", "version": 3}).encode()
    assert scoring.swap_request(body) == ("/m", "3", None)
    with pytest.raises(scoring.ClientError, match="model_dir"):
        scoring.swap_request(b'{"version": "3"}')
    with pytest.raises(scoring.ClientError):
        scoring.swap_request(b"[]")


def test_a_model_that_gives_no_valid_probabilities_is_not_loaded(model_dir, tmp_path):
    import numpy as np

    broken = InferenceModel.load(model_dir)
    broken.weights = [(np.full_like(k, np.nan), b) for k, b in broken.weights]
    broken.save(tmp_path / "broken")
    with pytest.raises(ValueError, match="no valid probabilities"):
        scoring.load_serving_model(str(tmp_path / "broken"), "9", "penguins")
