"""The engine and buildx floors: pure version logic, no Docker."""

import pytest

from toolkit import engine
from toolkit.errors import EnvironmentProblem


class FakeClient:
    def __init__(self, version: str):
        self._version = version

    def version(self) -> dict:
        return {"Version": version} if (version := self._version) else {}


@pytest.mark.parametrize("version", ["25.0.0", "28.5.2+dfsg4", "29.0.1", "v27.1"])
def test_modern_engines_pass(version):
    assert engine.require_modern_engine(FakeClient(version)) == version


@pytest.mark.parametrize("version", ["20.10.24+dfsg1", "24.0.7", "1.13", ""])
def test_old_engines_are_refused_in_one_line_naming_the_upgrade(version):
    with pytest.raises(EnvironmentProblem) as caught:
        engine.require_modern_engine(FakeClient(version))
    message = str(caught.value)
    assert "\n" not in message and "25.0 or newer" in message and "upgrade Docker" in message


@pytest.mark.parametrize(
    ("version", "problem"),
    [("0.29.1+ds1", None), ("0.17.0", None), ("0.13.1", "too old"), ("0.10", "too old"), (None, "not installed")],
)
def test_buildx_floor(version, problem):
    said = engine.buildx_problem(version)
    if problem is None:
        assert said is None
    else:
        assert problem in said and "\n" not in said
