"""imgtool test project: a Starlette app that misbehaves on demand, for the smoke suite's failing side.

MISBEHAVE (read at run time, so one image serves every case) picks one fault; unset, the app behaves:
  ws-refuses       its WebSocket routes close before accepting: the server refuses the handshake (HTTP 403)
  startup-fails    lifespan startup raises: Starlette answers lifespan.startup.failed
  exit-on-sigterm  SIGTERM ends the process at once (os._exit(0)): every connection dropped, in-flight ones too
  exit-3           the server drains as it should, then lifespan shutdown ends the process with exit code 3
With one worker (WEB_CONCURRENCY=1) uvicorn serves in PID 1 itself, so the app's SIGTERM handler replaces
the server's. The app is wrapped in a plain ASGI middleware and its WebSocket route sits under a Mount, as
route tables in real projects do.
"""

import contextlib
import os
import signal

from starlette.applications import Starlette
from starlette.responses import PlainTextResponse
from starlette.routing import Mount, Route, WebSocketRoute
from starlette.websockets import WebSocket, WebSocketDisconnect

MISBEHAVE = os.environ.get("MISBEHAVE", "")


@contextlib.asynccontextmanager
async def lifespan(app):
    if MISBEHAVE == "startup-fails":
        raise RuntimeError("imgtool-test: lifespan startup failed on purpose")
    if MISBEHAVE == "exit-on-sigterm":
        signal.signal(signal.SIGTERM, lambda *_: os._exit(0))
    yield
    if MISBEHAVE == "exit-3":
        os._exit(3)


async def index(request):
    return PlainTextResponse("misbehaving sample\n")


async def feed(websocket: WebSocket):
    if MISBEHAVE == "ws-refuses":
        await websocket.close()
        return
    await websocket.accept()
    with contextlib.suppress(WebSocketDisconnect):
        while True:
            await websocket.send_text(await websocket.receive_text())


class ServerHeader:
    """A plain ASGI middleware (adds a header), as projects wrap their app."""

    def __init__(self, app):
        self.app = app

    async def __call__(self, scope, receive, send):
        async def tagged(message):
            if message["type"] == "http.response.start":
                message = {**message, "headers": [*message.get("headers", []), (b"x-sample", b"misbehaving")]}
            await send(message)

        await self.app(scope, receive, tagged)


routes = [
    Route("/", index),
    Mount("/live", routes=[WebSocketRoute("/feed", feed)]),
    WebSocketRoute("/rooms/{room:int}", feed),
]
app = ServerHeader(Starlette(routes=routes, lifespan=lifespan))
