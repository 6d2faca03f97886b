"""imgtool sample: an app whose wheels need C libraries, built with no flags.

pyodbc's wheel links the system's unixODBC (libodbc.so.2, Debian's libodbc2), which the distroless runtime
must bring from Debian; Pillow's wheel vendors its own (pillow.libs), which must be left to it.
"""

import io

import pyodbc
from PIL import Image
from starlette.applications import Starlette
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Route


async def index(request):
    # SQLDrivers() runs in libodbc: no driver is configured, so the list is empty, but the library answered.
    return PlainTextResponse(f"native-libs sample: odbc drivers {pyodbc.drivers()}")


async def health(request):
    return JSONResponse({"status": "ok"})


async def image(request):
    kind = request.path_params["kind"]
    picture = Image.new("RGB", (8, 8), (200, 30, 30))
    buffer = io.BytesIO()
    picture.save(buffer, format=kind.upper())
    return Response(buffer.getvalue(), media_type=f"image/{kind}")


app = Starlette(routes=[Route("/", index), Route("/health", health), Route("/image.{kind:str}", image)])
