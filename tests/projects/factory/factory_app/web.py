"""imgtool sample: an application factory; servers must call create_app() to get the ASGI app."""

from starlette.applications import Starlette
from starlette.responses import PlainTextResponse
from starlette.routing import Route


def create_app() -> Starlette:
    async def index(request):
        return PlainTextResponse("factory sample")

    async def health(request):
        return PlainTextResponse("ok")

    return Starlette(routes=[Route("/", index), Route("/health", health)])
