"""imgtool sample: dependencies only setuptools knows (install_requires), the version read from the
package and the long description from README.md, as many setup.py files do."""

import re
from pathlib import Path

from setuptools import find_packages, setup

version = re.search(r'__version__ = "([^"]+)"', Path("shop/__init__.py").read_text()).group(1)

setup(
    name="shop",
    version=version,
    long_description=Path("README.md").read_text(),
    packages=find_packages(),
    install_requires=["starlette>=0.40"],
)
