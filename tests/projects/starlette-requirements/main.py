"""imgtool sample: a Starlette app whose dependencies are in requirements.txt."""

from starlette.applications import Starlette
from starlette.responses import JSONResponse, PlainTextResponse
from starlette.routing import Route, WebSocketRoute
from starlette.websockets import WebSocket


async def index(request):
    return PlainTextResponse("starlette sample")


async def health(request):
    return JSONResponse({"status": "ok"})


async def echo(websocket: WebSocket):
    await websocket.accept()
    await websocket.send_text(await websocket.receive_text())
    await websocket.close()


app = Starlette(routes=[Route("/", index), Route("/health", health), WebSocketRoute("/ws", echo)])
