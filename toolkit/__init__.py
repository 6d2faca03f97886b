"""imgtool: build, smoke-test and compose Docker images of Python ASGI apps."""

from importlib.resources import files
from pathlib import Path

__version__ = "0.1.0"
# The name on the package index (`imgtool` there is MCUboot's signing tool); the command stays `imgtool`.
DISTRIBUTION = "imgtool-asgi"


def _images_dir() -> Path:
    """The templates and assets: package data at `toolkit/images`, found one way in every install.

    In the wheel it is a real directory (the build copies the top-level images/ in); in a checkout and an
    editable install it is the symlink toolkit/images -> ../images. Missing means a broken install: fail.
    """
    images = files(__name__) / "images"
    if not isinstance(images, Path) or not images.is_dir():
        raise ImportError(f"imgtool's templates are missing ({images} is not a directory): reinstall {DISTRIBUTION}")
    return images.resolve()


IMAGES_DIR = _images_dir()
