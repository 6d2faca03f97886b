"""imgtool's reference Litestar app: every route the smoke suite needs, nothing else.

Routes: /, /health, /info, /ws (echo), /stream, /slow?ms=N, /error (raises). Lifespan startup and shutdown
print a line each, which the smoke suite reads from the container's logs.
"""

import asyncio
import os
import sys
import time
from collections.abc import AsyncIterator

from litestar import Litestar, MediaType, Request, WebSocket, get, websocket
from litestar.response import Stream

STATE = {"ready_at": None, "lifespan": False}


def log(message: str) -> None:
    print(f"reference-app: {message}", file=sys.stdout, flush=True)


def startup() -> None:
    STATE["ready_at"] = time.time()
    STATE["lifespan"] = True
    log(f"lifespan startup complete pid={os.getpid()}")


def shutdown() -> None:
    log(f"lifespan shutdown complete pid={os.getpid()}")


def ensure_ready() -> None:
    # Servers without lifespan (daphne) never call startup(): initialise on first use instead.
    if STATE["ready_at"] is None:
        STATE["ready_at"] = time.time()
        log("no lifespan startup ran; initialised on first request")


@get("/", media_type=MediaType.TEXT)
async def index() -> str:
    return "Hello from imgtool's reference app\n"


@get("/health")
async def health() -> dict:
    ensure_ready()
    return {"status": "ok", "lifespan": STATE["lifespan"]}


@get("/info")
async def info(request: Request) -> dict:
    ensure_ready()
    return {
        "server": os.environ.get("IMGTOOL_SERVER", "unknown"),
        "http_version": request.scope.get("http_version"),
        "scheme": request.scope.get("scheme"),
        "pid": os.getpid(),
        "lifespan": STATE["lifespan"],
    }


@get("/stream")
async def stream() -> Stream:
    async def chunks() -> AsyncIterator[bytes]:
        for n in range(5):
            yield f"chunk {n}\n".encode()
            await asyncio.sleep(0.05)

    return Stream(chunks(), media_type=MediaType.TEXT)


@get("/slow", media_type=MediaType.TEXT)
async def slow(ms: int = 1000) -> str:
    await asyncio.sleep(ms / 1000)
    return f"slept {ms} ms\n"


@get("/error")
async def error() -> None:
    # The error path (exception logging, the 500 response) must work in the lean image too.
    raise RuntimeError("reference-app: /error raised on purpose")


@websocket("/ws")
async def echo(socket: WebSocket) -> None:
    await socket.accept()
    while True:
        message = await socket.receive()
        if message["type"] == "websocket.disconnect":
            return
        if message.get("bytes") is not None:
            await socket.send_bytes(message["bytes"])
        else:
            await socket.send_text(message.get("text") or "")


app = Litestar(
    route_handlers=[index, health, info, stream, slow, error, echo],
    on_startup=[startup],
    on_shutdown=[shutdown],
)
