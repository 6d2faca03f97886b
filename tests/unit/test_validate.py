"""The value checks: what passes, what is refused, and the message."""

from __future__ import annotations

import pytest

from toolkit import validate
from toolkit.validate import Invalid


@pytest.mark.parametrize("value", ["3.11", "3.12", "3.9", "3.13"])
def test_python_versions_that_pass(value):
    assert validate.python_version(value) == value


@pytest.mark.parametrize("value", ["", "3", "3.x", "2.7.1", "3.12.1", "python3.12", " 3.12"])
def test_python_versions_refused_in_one_line_naming_the_fix(value):
    with pytest.raises(Invalid) as caught:
        validate.python_version(value)
    assert "\n" not in str(caught.value) and "e.g. 3.12" in str(caught.value)
