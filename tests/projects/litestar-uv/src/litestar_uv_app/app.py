from litestar import Litestar, WebSocket, get, websocket


@get("/")
async def index() -> str:
    return "litestar-uv sample"


@get("/health")
async def health() -> dict[str, str]:
    return {"status": "ok"}


@websocket("/ws")
async def echo(socket: WebSocket) -> None:
    await socket.accept()
    message = await socket.receive_text()
    await socket.send_text(message)
    await socket.close()


app = Litestar(route_handlers=[index, health, echo])
