"""Build-time check: the app imports and has its ASGI attribute, so a broken app fails the build.

    import_check.py MODULE:ATTR [--interface asgi|wsgi] [--report FILE]
                                                 import the app (in the image's runtime, the app at the cwd)
    import_check.py --collectstatic SETTINGS     run Django's collectstatic (STATIC_ROOT is set)

The rule (README "The build-time import check"): an exception while importing fails the build (exit 1), with
its last frames in the one-line verdict, unless it says a *setting is missing*, which only the run-time
environment can fix; then the build goes on with one warning line. A setting is missing when:
  - the exception is an `ImproperlyConfigured` (Django's, django-environ's, or any class of that name), or
  - it was raised inside a configuration reader, and no frame of the project's own code lies between that
    reader and the raise: `os.environ[...]` (the KeyError comes out of `os._Environ.__getitem__` itself, so a
    KeyError from a dict lookup in the project's code, or in a library, is a bug), `starlette.config`,
    pydantic-settings (its ValidationError; pydantic's own for a plain model is a bug), pydantic v1's
    `BaseSettings`, python-decouple, environs, django-environ, dynaconf;
  - or it was raised from or while handling such an exception (`except KeyError: raise RuntimeError("set X")`),
    unless it is a type only a bug raises (NameError, AttributeError, TypeError, ...).
An ImportError, a SyntaxError, or anything raised from or while handling an ImportError (Django's
"Error loading psycopg2 or psycopg module" is an ImproperlyConfigured raised that way) is never a setting:
that module is missing from the image. No such `module:attr`, or an attribute that is not callable, fails too.
`[tool.imgtool] check-env` reaches this script as the BuildKit secret `check-env` (JSON), so those imports can
run for real without any value reaching a layer or the image's history.

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
# Types only broken code raises: never a missing setting, even when raised while handling one.
BUG_TYPES = (NameError, AttributeError, TypeError, ImportError, SyntaxError, AssertionError, RecursionError,
             ZeroDivisionError, IndexError, NotImplementedError)  # fmt: skip
# Modules that read configuration: an exception leaving one of them (with no project code below it) is a
# missing or invalid setting. Matched on the frame's module name, so it holds wherever the venv lives.
CONFIG_MODULES = ("starlette.config", "pydantic_settings", "pydantic.env_settings", "pydantic.v1.env_settings",
                  "decouple", "environs", "environ", "dynaconf")  # fmt: skip
CONFIG_CLASS = "ImproperlyConfigured"
# How many of the innermost frames the verdict line names.
FRAMES = 3
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


# ---- broken code or a missing setting ----


def project_roots():
    """Where the project's own code lives: the working directory (the app) and PYTHONPATH (an installed
    src-layout project); never the venv or the standard library."""
    roots = [os.getcwd(), *os.environ.get("PYTHONPATH", "").split(os.pathsep)]
    return tuple(dict.fromkeys(root.rstrip("/") + "/" for root in roots if root and root != "/"))


def _frames(exc):
    """The traceback's frames, outermost first (import machinery and this script left out)."""
    found = []
    tb = exc.__traceback__
    while tb is not None:
        module = tb.tb_frame.f_globals.get("__name__") or ""
        if module.split(".")[0] != "importlib" and tb.tb_frame.f_code.co_filename != __file__:
            found.append((tb.tb_frame, tb.tb_lineno))
        tb = tb.tb_next
    return found


def _reads_config(frame):
    if frame.f_code is os._Environ.__getitem__.__code__:
        return "os.environ[...]"
    module = frame.f_globals.get("__name__") or ""
    reader = next((name for name in CONFIG_MODULES if module == name or module.startswith(name + ".")), None)
    return reader


def _is_project(frame, roots):
    return frame.f_code.co_filename.startswith(roots) and "-packages/" not in frame.f_code.co_filename


def config_reader(exc, roots=None):
    """The configuration reader `exc` came out of (no project frame below it), or None."""
    roots = project_roots() if roots is None else roots
    frames = _frames(exc)
    for index in range(len(frames) - 1, -1, -1):
        frame = frames[index][0]
        if _is_project(frame, roots):
            return None  # the project's code raised it (or a library below it did): no reader is innermost
        reader = _reads_config(frame)
        if reader:
            return reader
    return None


def _chain(exc):
    seen = []
    while exc is not None and exc not in seen:
        seen.append(exc)
        exc = exc.__cause__ or exc.__context__
    return seen


def missing_setting(exc, roots=None):
    """Why `exc` is a missing setting ("read by starlette.config", "ImproperlyConfigured"; the rule in this module's
    docstring), or None: then the code is broken."""
    chain = _chain(exc)
    if any(isinstance(link, (ImportError, SyntaxError)) for link in chain):
        return None
    for position, link in enumerate(chain):
        if position and isinstance(chain[position - 1], BUG_TYPES):
            return None  # a bug while handling a setting error is still a bug
        if any(cls.__name__ == CONFIG_CLASS for cls in type(link).__mro__):
            return CONFIG_CLASS
        reader = config_reader(link, roots)
        if reader:
            return f"read by {reader}"
    return None


def _where(frame, lineno, roots):
    path = frame.f_code.co_filename
    for root in roots:
        if path.startswith(root):
            path = path[len(root) :]
            break
    else:
        for marker in ("-packages/", "/lib/python3"):
            if marker in path:
                path = path.split(marker, 1)[1]
                path = path.split("/", 1)[1] if marker == "/lib/python3" and "/" in path else path
                break
    return f"{path}:{lineno} in {frame.f_code.co_name}"


def last_frames(exc, roots=None, count=FRAMES):
    """`main.py:5 in <module> > httpx/_client.py:640 in __init__`: the innermost frames, shortest paths."""
    roots = project_roots() if roots is None else roots
    return " > ".join(_where(frame, lineno, roots) for frame, lineno in _frames(exc)[-count:])


def _verdict(kind, exc):
    """The one line: the exception, then where it came from (the reader for a warning, the frames for a failure)."""
    line = _line(kind, exc)
    if kind == "import-check-warning":
        return f"{line} (a missing setting: {missing_setting(exc)})"
    frames = last_frames(exc)
    return f"{line} (at {frames})" if frames else line


def _qualname(code):
    return getattr(code, "co_qualname", code.co_name)


def _import(app):
    """(the app object or None, (kind, exception) or None, the app's code objects that ran).

    kind: "import-check" fails the build (broken code, a missing module, or no such `module:attr`),
    "import-check-warning" does not (a setting the build does not have: `missing_setting`)."""
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
    except (Exception, SystemExit) as exc:
        return None, ("import-check-warning" if missing_setting(exc) else "import-check", exc), ran
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


def write_report(path, app, ran, warning=None):
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
        # The warning is kept too: a rebuild that reuses this check's result (BuildKit's cache) prints nothing.
        report = {"app": app, "executed": executed, "qualnames": hasattr(_import.__code__, "co_qualname")}
        json.dump({**report, "warning": warning}, handle)


def check_app(app, check_env=(), report=None, interface="asgi"):
    target, failure, ran = _import(app)
    stubs = sorted(_qualname(code) for code in ran if STUB_MARKER in code.co_varnames)
    if stubs:
        print(f"imgtool-import-stale: stubbed function(s) ran at import: {', '.join(stubs)}", flush=True)
        return 3
    if failure is not None:
        kind, exc = failure
        attribute_lookup = isinstance(exc, AttributeError) and exc.__traceback__ and not _frames(exc)
        if not attribute_lookup:
            traceback.print_exception(type(exc), exc, exc.__traceback__)
        verdict = _verdict(kind, exc)
        print(verdict, flush=True)
        if kind == "import-check":
            return 1
        if report:
            write_report(report, app, ran, verdict.split(": ", 1)[1])
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
