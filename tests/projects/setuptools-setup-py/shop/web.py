"""imgtool sample: a Starlette app whose dependencies are setup.py's install_requires."""

from starlette.applications import Starlette
from starlette.responses import JSONResponse, PlainTextResponse
from starlette.routing import Route, WebSocketRoute
from starlette.websockets import WebSocket

from shop import __version__


async def index(request):
    return PlainTextResponse(f"setup.py sample {__version__}")


async def health(request):
    return JSONResponse({"status": "ok"})


async def echo(websocket: WebSocket):
    await websocket.accept()
    await websocket.send_text(await websocket.receive_text())
    await websocket.close()


app = Starlette(routes=[Route("/", index), Route("/health", health), WebSocketRoute("/ws", echo)])
