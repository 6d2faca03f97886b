"""Builds elsewhere, the pure parts: buildx flags, cache specs, option checks, the CLI's endpoint; no Docker."""

import json

import pytest

from toolkit import buildx, engine
from toolkit.errors import UsageError
from toolkit.plan import BuildOptions, buildx_argv, cache_spec, check_build_options


def test_default_options_load_into_the_engine():
    assert BuildOptions().flags("granian") == ("--load",)


def test_every_option_becomes_its_buildx_flag():
    options = BuildOptions(
        builder="remote",
        push=True,
        cache_to=("localhost:5000/cache:{server}",),
        cache_from=("localhost:5000/cache:{server}", "type=local,src=/tmp/cache"),
        network="host",
        no_cache=True,
    )
    assert options.flags("uvicorn") == (
        "--builder", "remote",
        "--push",
        "--cache-from", "type=registry,ref=localhost:5000/cache:uvicorn",
        "--cache-from", "type=local,src=/tmp/cache",
        "--cache-to", "type=registry,ref=localhost:5000/cache:uvicorn,mode=max",
        "--network", "host",
        "--no-cache",
    )  # fmt: skip


def test_push_replaces_load_and_the_flags_come_before_tag_and_context(tmp_path):
    argv = buildx_argv("localhost:5000/app:granian", tmp_path, tmp_path / "assets", "-", None,
                       BuildOptions(push=True).flags("granian"))  # fmt: skip
    assert "--push" in argv and "--load" not in argv
    assert argv.index("--push") < argv.index("--tag") and argv[-1] == str(tmp_path)


@pytest.mark.parametrize(
    ("spec", "export", "expected"),
    [
        ("localhost:5000/c:{server}", True, "type=registry,ref=localhost:5000/c:granian,mode=max"),
        ("localhost:5000/c:{server}", False, "type=registry,ref=localhost:5000/c:granian"),
        # An explicit spec is the user's: only {server} changes, mode stays as written.
        ("type=registry,ref=r/c:{server},mode=min", True, "type=registry,ref=r/c:granian,mode=min"),
        ("type=gha,scope={server}", True, "type=gha,scope=granian"),
    ],
)
def test_cache_specs(spec, export, expected):
    assert cache_spec(spec, "granian", export) == expected


def test_push_needs_a_registry_in_the_tag():
    with pytest.raises(UsageError, match="--push needs a tag naming a registry"):
        check_build_options(BuildOptions(push=True), ["imgtool-reference-app:granian"], several=False)
    for tag in ("localhost:5000/app:granian", "ghcr.io/me/app:granian", "localhost/app:x", "127.0.0.1:5000/a:b"):
        check_build_options(BuildOptions(push=True), [tag], several=False)


def test_several_servers_cannot_share_one_cache():
    check_build_options(BuildOptions(cache_to=("r/c:x",)), ["a:b"], several=False)
    with pytest.raises(UsageError, match=r"put \{server\} in it"):
        check_build_options(BuildOptions(cache_to=("r/c:x",)), ["a:b", "a:c"], several=True)
    with pytest.raises(UsageError, match="--cache-from"):
        check_build_options(BuildOptions(cache_from=("r/c:x",)), ["a:b", "a:c"], several=True)
    check_build_options(BuildOptions(cache_to=("r/c:{server}",)), ["a:b", "a:c"], several=True)


def test_network_values():
    for network in ("default", "host", "none", None):
        check_build_options(BuildOptions(network=network), [], several=False)
    with pytest.raises(UsageError, match="default, host or none"):
        check_build_options(BuildOptions(network="bridge"), [], several=False)


def test_the_endpoint_is_what_docker_context_inspect_says(tmp_path):
    tls = tmp_path / "tls"
    (tls / "docker").mkdir(parents=True)
    for name in ("ca.pem", "cert.pem", "key.pem"):
        (tls / "docker" / name).write_text("x")
    data = {
        "Name": "remote",
        "Endpoints": {"docker": {"Host": "tcp://10.0.0.5:2376", "SkipTLSVerify": False}},
        "Storage": {"TLSPath": str(tls)},
    }
    endpoint = engine.endpoint_from_inspect(data)
    assert endpoint == engine.Endpoint("remote", "tcp://10.0.0.5:2376", str(tls / "docker"), False)
    kwargs = engine.client_kwargs(endpoint)
    assert kwargs["base_url"] == "tcp://10.0.0.5:2376"
    assert kwargs["tls"].cert == (str(tls / "docker" / "cert.pem"), str(tls / "docker" / "key.pem"))
    assert kwargs["tls"].ca_cert == str(tls / "docker" / "ca.pem") and kwargs["tls"].verify is True


def test_a_plain_socket_and_an_ssh_context():
    local = engine.endpoint_from_inspect(
        {"Name": "default", "Endpoints": {"docker": {"Host": "unix:///var/run/docker.sock"}}, "Storage": {}}
    )
    assert engine.client_kwargs(local) == {"base_url": "unix:///var/run/docker.sock"}
    ssh = engine.endpoint_from_inspect({"Name": "box", "Endpoints": {"docker": {"Host": "ssh://me@box"}}})
    assert engine.client_kwargs(ssh) == {"base_url": "ssh://me@box", "use_ssh_client": True}
    assert engine.endpoint_from_inspect({"Name": "k8s", "Endpoints": {}}) is None


BUILDX_INSPECT = """Name:   wt16-c
Driver: docker

Nodes:
Name:             wt16-c
Endpoint:         wt16-c
Status:           running
BuildKit version: v0.0.0+unknown
Platforms:        linux/amd64, linux/amd64/v2, linux/amd64/v3
Labels:
 org.mobyproject.buildkit.worker.executor:             containerd
"""


def test_a_builder_as_buildx_inspect_describes_it():
    builder = engine.parse_builder("wt16-c", BUILDX_INSPECT)
    assert builder == engine.Builder("wt16-c", "docker", "wt16-c", ("linux/amd64", "linux/amd64/v2", "linux/amd64/v3"))
    assert engine.parse_builder("x", "Driver: docker-container\nPlatforms: linux/arm64*, linux/amd64\n").platforms == (
        "linux/arm64",
        "linux/amd64",
    )
    assert engine.parse_builder("x", "Name: x\n").platforms == ()


def test_a_docker_driver_builder_of_another_context_builds_from_that_context():
    builder = engine.parse_builder("wt16-c", BUILDX_INSPECT)
    assert builder.docker_context("default") == "wt16-c"
    # Its own context already, or no context known: no --context (DOCKER_HOST keeps deciding).
    assert builder.docker_context("wt16-c") is None
    container = engine.Builder("ci", "docker-container", "unix:///var/run/docker.sock", ("linux/amd64",))
    assert container.docker_context("default") is None


def test_the_printed_command_selects_the_context_first(tmp_path):
    argv = buildx_argv("a:b", tmp_path, tmp_path, "-", None, (), docker_context="remote")
    assert argv[:4] == ["docker", "--context", "remote", "buildx"]


def test_the_pushed_digest_comes_from_buildx_metadata():
    digest = "sha256:" + "a" * 64
    assert buildx.pushed_digest(json.dumps({"containerimage.digest": digest, "image.name": "r/a:b"})) == digest
    assert buildx.pushed_digest(json.dumps({"buildx.build.ref": "x"})) is None
    assert buildx.pushed_digest("not json") is None
