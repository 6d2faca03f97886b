"""Build-time check: the app imports and has its ASGI attribute, so a broken app fails the build.

Prints one `imgtool-import-check:` line naming the error; imgtool turns it into its message.
"""

import importlib
import sys
import traceback


def main(app: str) -> None:
    module_name, _, attribute = app.partition(":")
    try:
        module = importlib.import_module(module_name)
        target = module
        for part in attribute.removesuffix("()").split("."):
            target = getattr(target, part)
    except BaseException as exc:
        traceback.print_exc()
        print(f"imgtool-import-check: {type(exc).__name__}: {exc}", flush=True)
        sys.exit(1)


if __name__ == "__main__":
    main(sys.argv[1])
