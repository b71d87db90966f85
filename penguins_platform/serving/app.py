"""The endpoint's HTTP wiring: routes to `scoring`, with bounded bodies and a guarded swap.

The handlers stay thin. What they add to `scoring` is what only HTTP has: reading a body
without holding more than the limit, answering an oversized one so that ordinary clients see
the 413 (not a reset connection), clients that leave mid-upload, and loading a new version
off the event loop, so requests keep being answered while it loads.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncIterator

from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException
from starlette.requests import ClientDisconnect, Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from penguins_platform.serving import scoring
from penguins_platform.serving.contract import SMOKE_TEST_HEADER
from penguins_platform.serving.scoring import Answer, ClientError, EndpointState

logger = logging.getLogger(__name__)
# An oversized body is read and discarded up to this many times the limit before the 413 is
# sent: a client that is still sending when the answer comes sees "Broken pipe" instead of
# it. Past this bound the server answers at once and closes, so nobody can make it read
# without end.
DRAIN_FACTOR = 4


def _respond(answer: Answer, close: bool = False) -> JSONResponse:
    headers = {"Connection": "close"} if close else None
    return JSONResponse(answer.body, status_code=answer.status, headers=headers)


async def read_body(request: Request, limit: int) -> bytes:
    """The whole body, or a 413 `ClientError` once more than `limit` bytes came or are coming.

    A body over the limit is drained (read and dropped) up to `DRAIN_FACTOR` times the limit,
    so the client has sent everything by the time the 413 comes.
    """
    declared = request.headers.get("content-length")
    if declared is not None and not declared.isdigit():
        raise ClientError(400, "Content-Length is not a number")
    bound = DRAIN_FACTOR * limit
    if declared is not None and int(declared) > bound:
        raise ClientError(413, f"body of {int(declared)} bytes exceeds the {limit}-byte limit")
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > bound:
            break
        if size <= limit:
            chunks.append(chunk)
    if size > limit:
        raise ClientError(413, f"body of {size} bytes exceeds the {limit}-byte limit")
    return b"".join(chunks)


def build_app(state: EndpointState) -> Starlette:
    async def invocations(request: Request) -> Response:
        try:
            body = await read_body(request, state.limits.max_body_bytes)
        except ClientError as error:
            return _respond(error.answer(), close=error.status == 413)
        except ClientDisconnect:
            logger.info("a client disconnected during its upload; nothing was scored")
            return Response(status_code=400)
        capture = SMOKE_TEST_HEADER not in request.headers
        return _respond(
            scoring.invocations(body, request.headers.get("content-type"), state, capture)
        )

    async def ping(request: Request) -> Response:
        return Response(status_code=200)

    async def health(request: Request) -> Response:
        return _respond(scoring.health(state))

    async def version(request: Request) -> Response:
        return _respond(scoring.version(state))

    async def swap_model(request: Request) -> Response:
        if not scoring.authorized(request.headers.get("authorization"), state.admin_token):
            return _respond(scoring.error_answer(401, "missing or wrong admin token"))
        try:
            directory, new_version, name = scoring.swap_request(await request.body())
        except ClientError as error:
            return _respond(error.answer())
        except ClientDisconnect:
            logger.info("an admin client disconnected during its request; nothing swapped")
            return Response(status_code=400)
        async with state.swap_lock:
            previous = state.serving
            try:
                candidate = await run_in_threadpool(
                    scoring.load_serving_model, directory, new_version, name or previous.name
                )
            except Exception as error:
                logger.error("refused version %s from %s: %s", new_version, directory, error)
                return _respond(
                    scoring.error_answer(
                        422,
                        f"version {new_version} failed to load or its smoke test: {error}; "
                        f"version {previous.version} keeps serving",
                        serving_version=previous.version,
                    )
                )
            state.serving = candidate
        logger.info("now serving version %s (was %s)", new_version, previous.version)
        return JSONResponse({"model_version": new_version, "previous_version": previous.version})

    async def http_error(request: Request, error: Exception) -> Response:
        status = error.status_code if isinstance(error, HTTPException) else 500
        status = status if status in scoring.ERROR_CODES else 500
        detail = error.detail if isinstance(error, HTTPException) else "internal error"
        return _respond(
            scoring.error_answer(status, f"{request.method} {request.url.path}: {detail}")
        )

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        yield
        if state.capture is not None:  # flush every captured row before exiting
            state.capture.close()

    return Starlette(
        routes=[
            Route("/invocations", invocations, methods=["POST"]),
            Route("/ping", ping, methods=["GET"]),
            Route("/health", health, methods=["GET"]),
            Route("/version", version, methods=["GET"]),
            Route("/admin/model", swap_model, methods=["POST"]),
        ],
        exception_handlers={HTTPException: http_error},
        lifespan=lifespan,
    )
