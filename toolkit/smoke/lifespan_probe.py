"""Does the app speak the ASGI lifespan protocol? Run inside the image (`python -c <this file> module:attr`).

Stdlib only: the smoke runner passes this file's text to the image's own Python, so it needs nothing
installed and works on any imgtool image. It drives one lifespan cycle (startup, then shutdown) the way a
server does and prints one JSON line:
  {"outcome": "unsupported", "detail": ...}  the app raised before answering (Django: "Django can only handle
                                             ASGI/HTTP connections, not lifespan."); servers treat this as
                                             "no lifespan" (uvicorn --lifespan auto, hypercorn, granian)
  {"outcome": "supported", "detail": ...}    startup and shutdown completed
  {"outcome": "failed", "detail": ...}       the app answered lifespan.startup.failed (or shutdown.failed)
  {"outcome": "error", "detail": ...}        the probe could not tell (the app did not import, it hung)
"""

import asyncio
import importlib
import json
import sys

TIMEOUT = 15.0


def load(ref):
    module_name, _, attribute = ref.partition(":")
    target = importlib.import_module(module_name)
    for part in attribute.removesuffix("()").split("."):
        target = getattr(target, part)
    return target() if attribute.endswith("()") else target


async def cycle(app):
    inbox = asyncio.Queue()
    sent = []
    await inbox.put({"type": "lifespan.startup"})

    async def receive():
        return await inbox.get()

    async def send(message):
        sent.append(message.get("type"))
        if message.get("type") == "lifespan.startup.complete":
            await inbox.put({"type": "lifespan.shutdown"})

    scope = {"type": "lifespan", "asgi": {"version": "3.0", "spec_version": "2.0"}, "state": {}}
    try:
        await asyncio.wait_for(app(scope, receive, send), TIMEOUT)
    except asyncio.TimeoutError:  # noqa: UP041 (not the builtin before Python 3.11, which images may have)
        return "error", f"no lifespan answer within {TIMEOUT:g} s (sent: {sent or 'nothing'})"
    except Exception as exc:
        if not sent:
            return "unsupported", f"{type(exc).__name__}: {' '.join(str(exc).split())[:200]}"
        if any(kind and kind.endswith(".failed") for kind in sent):
            return "failed", f"{', '.join(sent)}: {type(exc).__name__}: {exc}"
        return "error", f"{type(exc).__name__} after {', '.join(sent)}: {exc}"
    if any(kind and kind.endswith(".failed") for kind in sent):
        return "failed", ", ".join(sent)
    if "lifespan.startup.complete" in sent and "lifespan.shutdown.complete" in sent:
        return "supported", "startup and shutdown completed"
    return "error", f"the app returned after {', '.join(sent) or 'sending nothing'}"


def main(ref):
    try:
        app = load(ref)
    except Exception as exc:
        outcome, detail = "error", f"cannot load {ref}: {type(exc).__name__}: {exc}"
    else:
        outcome, detail = asyncio.run(cycle(app))
    print(json.dumps({"outcome": outcome, "detail": detail}), flush=True)


if __name__ == "__main__":
    main(sys.argv[1])
