"""What a failed build says, and when the import check may use the import-time skeleton (pure logic)."""

from pathlib import Path

import pytest

from toolkit import buildx
from toolkit.config import load_config
from toolkit.errors import BuildFailed, UsageError
from toolkit.plan import BaseImage, BuildOptions, make_plan
from toolkit.servers import SERVERS

OFFLINE = BaseImage("imgtool/python:3.11-bookworm", None, bootstrapped=True)


def plan(**overrides):
    config = load_config(demo=True, **overrides)
    return make_plan(config, SERVERS["granian"], OFFLINE, Path("/cache/imgtool/assets/0123456789abcdef"))


def failed(*lines):
    return buildx._Built(1, "", None, 1.0, list(lines))


def test_a_library_no_package_has_is_one_usage_error_naming_it():
    line = "#12 0.9 imgtool-runtime: libfoo.so.1 (needed by x/_y.so) is in no Debian package found here: ..."
    with pytest.raises(UsageError, match=r"the distroless runtime for .* cannot be assembled: libfoo\.so\.1"):
        buildx._raise_for_build(plan(), failed("#12 [runtime-libs 1/1] RUN ...", line, "ERROR: exit code 1"))


def test_an_unimportable_app_is_still_the_apps_error_and_anything_else_a_build_failure():
    with pytest.raises(UsageError, match="cannot be imported in the image"):
        buildx._raise_for_build(plan(), failed("imgtool-import-check: ModuleNotFoundError: No module named 'x'"))
    with pytest.raises(BuildFailed):
        buildx._raise_for_build(plan(), failed("ERROR: something else"))


def test_the_skeleton_is_used_only_for_plain_local_builds():
    local = plan()
    assert buildx._skeleton_applies(local, BuildOptions())
    for options in (
        BuildOptions(push=True),
        BuildOptions(builder="remote"),
        BuildOptions(no_cache=True),
        BuildOptions(output=("--output", "type=oci,dest=x.tar")),
    ):
        assert not buildx._skeleton_applies(local, options), options


def test_the_tag_prefix_goes_before_every_default_tag(monkeypatch):
    monkeypatch.setenv("IMGTOOL_TAG_PREFIX", "wt18b-")
    assert plan().tag == "wt18b-imgtool-reference-app:granian"
