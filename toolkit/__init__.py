"""imgtool: build, smoke-test and compose Docker images of Python ASGI apps."""

from pathlib import Path

__version__ = "0.1.0"

# images/ sits beside the package in the source tree (the layout the project keeps);
# imgtool is installed from a checkout (`pip install -e .`), so this path is stable.
IMAGES_DIR = Path(__file__).resolve().parent.parent / "images"
