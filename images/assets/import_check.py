"""Build-time check: the app imports and has its ASGI attribute, so a broken app fails the build.

    import_check.py MODULE:ATTR [--interface asgi|wsgi] [--report FILE]
                                                 import the app (in the image's runtime, the app at the cwd)
    import_check.py --collectstatic SETTINGS     run Django's collectstatic (STATIC_ROOT is set)

Fails the build (exit 1) when the app's code cannot even be loaded: a missing module (ImportError),
a syntax error, or no such `module:attr`. Anything else the app raises while importing (settings read
from environment variables, Django's ImproperlyConfigured, a database URL it checks) is a property of
the environment, not of the image: the build goes on with one warning line naming the exception.
`[tool.imgtool] check-env` reaches this script as the BuildKit secret `check-env` (JSON), so those
imports can run for real without any value reaching a layer or the image's history.

The object must be a callable of the interface the image serves it with (interface_problem): an ASGI app found where
WSGI was planned, or an object that is neither, fails the build with one `InterfaceError` line saying what to set.
A factory (`module:create_app()`) is not called here: what it returns is seen when the server starts.

Prints one line: `imgtool-import-check:` naming a failure, `imgtool-import-check-warning:`, or
`imgtool-import-check-ok:`; imgtool turns the first two into its own messages.

With --report it also records which of the app's functions ran during the import (a trace hook, only for
files under the working directory) and writes them to FILE: `imgtool build` turns every other function's
body into a stub for the next build's check (stage `import-key`, toolkit/importkey.py), so an edit to a body
that does not run at import leaves the check's inputs unchanged and BuildKit reuses its result. A stub marks
itself with a local variable named STUB_MARKER; if one runs (the import took another path), the check cannot
vouch for the real code and says so with one `imgtool-import-stale:` line and exit 3, and imgtool builds
again with the app itself.
"""

import importlib
import inspect
import json
import os
import sys
import traceback

CHECK_ENV = "/run/secrets/check-env"
FATAL = (ImportError, SyntaxError)
# Must equal toolkit.importkey.STUB_MARKER (a unit test keeps them the same).
STUB_MARKER = "_imgtool_stub_"


def load_check_env(path=None):
    """Environment for the check from the secret, if one was mounted; names only are reported."""
    path = path or CHECK_ENV
    try:
        with open(path, encoding="utf-8") as handle:
            values = json.load(handle)
    except (OSError, ValueError):
        return []
    os.environ.update({str(k): str(v) for k, v in values.items()})
    return sorted(values)


def _line(kind, exc):
    """One line: the exception's type and the first line of its message (the traceback is printed above)."""
    lines = str(exc).strip().splitlines()
    message = " ".join(lines[0].split()) if lines else ""
    return f"imgtool-{kind}: {type(exc).__name__}: {message[:200]}"


def _qualname(code):
    return getattr(code, "co_qualname", code.co_name)


def _import(app):
    """(the app object or None, (kind, exception) or None, the app's code objects that ran).

    kind: "import-check" fails the build (the code cannot be loaded, or no such `module:attr`),
    "import-check-warning" does not (the app raised something else while importing)."""
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
    except FATAL as exc:
        return None, ("import-check", exc), ran
    except (Exception, SystemExit) as exc:
        return None, ("import-check-warning", exc), ran
    finally:
        sys.settrace(None)
    target = module
    try:
        for part in attribute.removesuffix("()").split("."):
            target = getattr(target, part)
    except AttributeError as exc:
        return None, ("import-check", exc), ran
    return target, None, ran


_SIGNATURES = {"asgi": "async (scope, receive, send)", "wsgi": "(environ, start_response)"}


def interface_of(target):
    """One of "asgi", "wsgi", "neither", or None when it cannot be told (a C-implemented or *args callable)."""
    call = target if inspect.isroutine(target) else type(target).__call__
    if inspect.iscoroutinefunction(target) or inspect.iscoroutinefunction(call):
        return "asgi"
    try:
        parameters = list(inspect.signature(target).parameters.values())
    except (TypeError, ValueError):
        return None
    if any(p.kind == p.VAR_POSITIONAL for p in parameters):
        return None
    positional = [p for p in parameters if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
    # A sync __call__(scope, receive, send) that returns the coroutine (Emmett's App) is ASGI too.
    return {3: "asgi", 2: "wsgi"}.get(len(positional), "neither")


def interface_problem(app, target, interface):
    """The one line saying why `target` cannot be served as `interface`, or None."""
    found = interface_of(target)
    if found is None or found == interface:
        return None
    kind = type(target).__name__
    if found == "neither":
        return (
            f"{app} is neither an ASGI app ({_SIGNATURES['asgi']}) nor a WSGI app ({_SIGNATURES['wsgi']}): it is a "
            f"{kind}; point --app at the app object"
        )
    article = "an" if found == "asgi" else "a"
    return (
        f"{app} is {article} {found.upper()} app ({_SIGNATURES[found]}) and this image serves it as "
        f'{interface.upper()}: set [tool.imgtool] interface = "{found}" (or --interface {found})'
    )


def write_report(path, app, ran):
    root = os.getcwd().rstrip("/") + "/"
    # Functions only: class bodies and comprehensions run too, but are never stubbed (CO_NEWLOCALS: 0x2).
    executed = sorted(
        {
            (os.path.relpath(code.co_filename, root), _qualname(code))
            for code in ran
            if code.co_name[0] != "<" and code.co_flags & 0x2
        }
    )
    with open(path, "w", encoding="utf-8") as handle:
        # Before Python 3.11 code objects have no qualified name: imgtool then keeps every body.
        json.dump({"app": app, "executed": executed, "qualnames": hasattr(_import.__code__, "co_qualname")}, handle)


def check_app(app, check_env=(), report=None, interface="asgi"):
    target, failure, ran = _import(app)
    stubs = sorted(_qualname(code) for code in ran if STUB_MARKER in code.co_varnames)
    if stubs:
        print(f"imgtool-import-stale: stubbed function(s) ran at import: {', '.join(stubs)}", flush=True)
        return 3
    if failure is not None:
        kind, exc = failure
        if not isinstance(exc, AttributeError) or kind != "import-check":
            traceback.print_exception(type(exc), exc, exc.__traceback__)
        print(_line(kind, exc), flush=True)
        if kind == "import-check":
            return 1
        if report:
            write_report(report, app, ran)
        return 0
    if not callable(target):
        print(f"imgtool-import-check: TypeError: {app} is not callable (an ASGI app or a factory)", flush=True)
        return 1
    problem = None if app.endswith("()") else interface_problem(app, target, interface)
    if problem is not None:
        print(f"imgtool-import-check: InterfaceError: {problem}", flush=True)
        return 1
    if report:
        write_report(report, app, ran)
    names = f" with check-env {', '.join(check_env)}" if check_env else ""
    print(f"imgtool-import-check-ok: {app} imported{names}", flush=True)
    return 0


def collectstatic(settings):
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", settings)
    try:
        import django
        from django.core.management import call_command

        django.setup()
        call_command("collectstatic", interactive=False, verbosity=0)
    except BaseException as exc:
        traceback.print_exc()
        print(_line("import-check", RuntimeError(f"collectstatic failed: {type(exc).__name__}: {exc}")), flush=True)
        return 1
    return 0


def main(argv):
    names = load_check_env()
    if argv[:1] == ["--collectstatic"]:
        return collectstatic(argv[1])
    report = argv[argv.index("--report") + 1] if "--report" in argv else None
    interface = argv[argv.index("--interface") + 1] if "--interface" in argv else "asgi"
    return check_app(argv[0], names, report, interface)


if __name__ == "__main__":
    # One ordered stream: BuildKit carries stdout and stderr as two streams and can join a line of one to
    # the next of the other (observed: the one-line verdict ran on into the traceback's "  File ..."), so
    # the app's output, the traceback and the verdict all go down stdout's pipe, line by line.
    os.dup2(sys.stdout.fileno(), sys.stderr.fileno())
    sys.stdout.reconfigure(line_buffering=True)
    sys.exit(main(sys.argv[1:]))
