"""Build-time check: the app imports and has its ASGI attribute, so a broken app fails the build.

    import_check.py MODULE:ATTR                 import the app
    import_check.py --collectstatic SETTINGS    run Django's collectstatic (STATIC_ROOT is set)

Fails the build (exit 1) when the app's code cannot even be loaded: a missing module (ImportError),
a syntax error, or no such `module:attr`. Anything else the app raises while importing (settings read
from environment variables, Django's ImproperlyConfigured, a database URL it checks) is a property of
the environment, not of the image: the build goes on with one warning line naming the exception.
`[tool.imgtool] check-env` reaches this script as the BuildKit secret `check-env` (JSON), so those
imports can run for real without any value reaching a layer or the image's history.

Prints one line: `imgtool-import-check:` naming a failure, `imgtool-import-check-warning:`, or
`imgtool-import-check-ok:`; imgtool turns the first two into its own messages.
"""

import importlib
import json
import os
import sys
import traceback

CHECK_ENV = "/run/secrets/check-env"
FATAL = (ImportError, SyntaxError)


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


def check_app(app, check_env=()):
    module_name, _, attribute = app.partition(":")
    try:
        module = importlib.import_module(module_name)
    except FATAL as exc:
        traceback.print_exc()
        print(_line("import-check", exc), flush=True)
        return 1
    except (Exception, SystemExit) as exc:
        traceback.print_exc()
        print(_line("import-check-warning", exc), flush=True)
        return 0
    target = module
    try:
        for part in attribute.removesuffix("()").split("."):
            target = getattr(target, part)
    except AttributeError as exc:
        print(_line("import-check", exc), flush=True)
        return 1
    if not callable(target):
        print(f"imgtool-import-check: TypeError: {app} is not callable (an ASGI app or a factory)", flush=True)
        return 1
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
    return check_app(argv[0], names)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
