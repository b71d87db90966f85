"""`python -m penguins_platform.serving`: run the endpoint server in the foreground.

The service launcher (`service.py`) starts this in its own session; the admin token comes
through the environment, never the command line, where `ps` would show it.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys

import uvicorn

from penguins_platform import defaults
from penguins_platform.serving.app import build_app
from penguins_platform.serving.capture import CaptureStore
from penguins_platform.serving.scoring import EndpointLimits, EndpointState, load_serving_model
from penguins_platform.serving.service import TOKEN_VARIABLE


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="penguins_platform.serving", description=__doc__)
    parser.add_argument("--model-dir", required=True, help="an exported inference model folder")
    parser.add_argument("--version", required=True, help="the registered version it holds")
    parser.add_argument("--model-name", default=defaults.MODEL_NAME, help="its registered model")
    parser.add_argument("--host", default=defaults.ENDPOINT_HOST)
    parser.add_argument("--port", type=int, default=defaults.ENDPOINT_PORT)
    parser.add_argument("--capture", default=None, help="sqlite:///path; omit to turn capture off")
    parser.add_argument("--max-rows", type=int, default=defaults.MAX_ROWS)
    parser.add_argument("--max-body-bytes", type=int, default=defaults.MAX_BODY_BYTES)
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    token = os.environ.get(TOKEN_VARIABLE)
    if not token:
        print(f"{TOKEN_VARIABLE} must hold the admin token", file=sys.stderr)
        return 2
    try:
        serving = load_serving_model(args.model_dir, args.version, args.model_name)
    except (OSError, ValueError, KeyError) as error:
        print(
            f"cannot serve version {args.version} from {args.model_dir}: {error}", file=sys.stderr
        )
        return 1
    state = EndpointState(
        serving=serving,
        limits=EndpointLimits(max_rows=args.max_rows, max_body_bytes=args.max_body_bytes),
        admin_token=token,
        capture=CaptureStore(args.capture) if args.capture else None,
    )
    logging.getLogger(__name__).info(
        "serving version %s on http://%s:%d (capture: %s)",
        args.version, args.host, args.port, args.capture or "off",
    )  # fmt: skip
    uvicorn.run(
        build_app(state),
        host=args.host,
        port=args.port,
        log_level="warning",
        access_log=False,
        timeout_graceful_shutdown=10,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
