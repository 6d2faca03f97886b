"""Unit tests see imgtool's defaults: a session's IMGTOOL_TAG_PREFIX (set for the integration tests sharing an
engine) must not reach the tags they compare with."""

import pytest

from toolkit.plan import TAG_PREFIX_ENV


@pytest.fixture(autouse=True)
def _no_tag_prefix(monkeypatch):
    monkeypatch.delenv(TAG_PREFIX_ENV, raising=False)
