"""Build-time check: the app imports and has its ASGI attribute, so a broken app fails the build.

    python import_check.py module:attr [--report FILE]

Runs in the image's own runtime environment (distroless or Debian) with the app at the working directory.
Prints one `imgtool-import-check:` line naming the error; imgtool turns it into its message.

It also records which of the app's functions ran during the import (a trace hook, only for files under
the working directory) and writes them to FILE: `imgtool build` turns every other function's body into a
stub for the next build's check (`import-key`), so an edit to a body that does not run at import leaves the
check's inputs unchanged and BuildKit reuses its result. A stub marks itself with a local variable named
STUB_MARKER; if one runs (the import took another path: new dependencies, data files), the check cannot
vouch for the real code and says so with one `imgtool-import-stale:` line and exit 3, and imgtool builds
again with the app itself.
"""

import importlib
import json
import os
import sys
import traceback

STUB_MARKER = "_imgtool_stub_"


def qualname(code) -> str:
    return getattr(code, "co_qualname", code.co_name)


def main(argv: list[str]) -> None:
    app = argv[0]
    report = argv[argv.index("--report") + 1] if "--report" in argv else None
    module_name, _, attribute = app.partition(":")
    root = os.getcwd().rstrip("/") + "/"
    ran = set()

    # A global trace function that returns None sees each Python call once and traces no lines (about half
    # the cost of a profile hook, which also sees every call into C).
    def trace(frame, event, arg):
        if event == "call" and frame.f_code.co_filename.startswith(root):
            ran.add(frame.f_code)

    sys.settrace(trace)
    try:
        module = importlib.import_module(module_name)
        target = module
        for part in attribute.removesuffix("()").split("."):
            target = getattr(target, part)
    except BaseException as exc:
        sys.settrace(None)
        if not any(STUB_MARKER in code.co_varnames for code in ran):
            traceback.print_exc()
            print(f"imgtool-import-check: {type(exc).__name__}: {exc}", flush=True)
            sys.exit(1)
    sys.settrace(None)
    stubs = sorted(qualname(code) for code in ran if STUB_MARKER in code.co_varnames)
    if stubs:
        print(f"imgtool-import-stale: stubbed function(s) ran at import: {', '.join(stubs)}", flush=True)
        sys.exit(3)
    if report:
        # Functions only: class bodies and comprehensions run too, but are never stubbed (CO_NEWLOCALS: 0x2).
        executed = sorted(
            {
                (os.path.relpath(code.co_filename, root), qualname(code))
                for code in ran
                if code.co_name[0] != "<" and code.co_flags & 0x2
            }
        )
        with open(report, "w") as f:
            # Before Python 3.11 code objects have no qualified name: imgtool then keeps every body.
            json.dump({"app": app, "executed": executed, "qualnames": hasattr(main.__code__, "co_qualname")}, f)


if __name__ == "__main__":
    main(sys.argv[1:])
