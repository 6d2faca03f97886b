"""Which Python a build uses (toolkit/pythons.py) and the offline bases (toolkit/base.py), engine-free: tool
version files in, a requirement and a pick out; the bootstrap's choice, command and clean-up with debootstrap
replaced by a stand-in."""

import subprocess
from pathlib import Path

import pytest

from tests.conftest import run_cli
from toolkit import base, pythons
from toolkit.errors import EnvironmentProblem, UsageError
from toolkit.pythons import PythonRequirement, choose, offline_python, pick_python, python_requirement


def write(root: Path, files: dict[str, str]) -> Path:
    for name, text in files.items():
        (root / name).write_text(text)
    return root


# ---- what the project asks for ----


@pytest.mark.parametrize(
    ("files", "where", "exact"),
    [
        ({".tool-versions": "nodejs 22.1.0\npython 3.13.1 3.11.9\n"}, ".tool-versions", "3.13"),
        ({".tool-versions": "python   3.14.0  # the newest\n"}, ".tool-versions", "3.14"),
        ({"mise.toml": '[tools]\npython = "3.13"\n'}, "mise.toml", "3.13"),
        ({"mise.toml": '[tools]\npython = ["3.14", "3.11"]\n'}, "mise.toml", "3.14"),
        ({"mise.toml": '[tools]\npython = { version = "3.15.0" }\n'}, "mise.toml", "3.15"),
        ({".mise.toml": '[tools]\npython = "cpython-3.13"\n'}, ".mise.toml", "3.13"),
        ({"runtime.txt": "python-3.13.2\n"}, "runtime.txt", "3.13"),
        # The first pin found wins: .python-version over .tool-versions over mise over runtime.txt.
        ({".python-version": "3.14\n", ".tool-versions": "python 3.13.1\n"}, ".python-version", "3.14"),
        ({".tool-versions": "python 3.13.1\n", "runtime.txt": "python-3.11.9\n"}, ".tool-versions", "3.13"),
        # An exact pin outranks requires-python.
        (
            {"runtime.txt": "python-3.14.1\n", "pyproject.toml": '[project]\nrequires-python = ">=3.11"\n'},
            "runtime",
            "3.14",
        ),
    ],
)
def test_tool_version_files_pin_the_python(tmp_path, files, where, exact):
    requirement = python_requirement(write(tmp_path, files))
    assert where in requirement.where and requirement.exact == exact
    assert pick_python(requirement, "3.11") == exact


@pytest.mark.parametrize(
    "files",
    [
        {".tool-versions": "python system\n"},
        {".tool-versions": "nodejs 22.1.0\n"},
        {"mise.toml": '[tools]\npython = "latest"\n'},
        {"mise.toml": '[tools]\nnode = "22"\n'},
    ],
)
def test_a_pin_that_names_no_version_says_nothing(tmp_path, files):
    assert python_requirement(write(tmp_path, files)) is None


@pytest.mark.parametrize(
    ("files", "message"),
    [
        (
            {".tool-versions": "python pypy3.10-7.3.12\n"},
            r".tool-versions .* names Python 'pypy3.10-7.3.12', not a CPython",
        ),
        ({".tool-versions": "python\n"}, r"has a python line with no version: add one"),
        ({"mise.toml": '[tools]\npython = "3"\n'}, r"\[tools\] python in mise.toml names Python '3', not a CPython"),
        ({"mise.toml": "[tools\npython = 3\n"}, r"mise.toml is not valid TOML"),
        ({"runtime.txt": "ruby-3.3.0\n"}, r"runtime.txt says 'ruby-3.3.0': write python-X.Y"),
    ],
)
def test_a_broken_pin_is_one_line_naming_the_file(tmp_path, files, message):
    with pytest.raises(UsageError, match=message):
        python_requirement(write(tmp_path, files))


@pytest.mark.parametrize(
    ("specifier", "picked"),
    [
        (">=3.11", "3.11"),  # the default when allowed
        (">=3.12", "3.13"),  # 3.12 has no offline base: the nearest that has one
        (">=3.12,<3.13", "3.12"),  # only 3.12 allowed: that one (a published image may still have it)
        (">=3.14", "3.14"),
        (">3.14", "3.15"),
        ("<3.11", "3.10"),
    ],
)
def test_the_pick_prefers_a_version_with_an_offline_base(specifier, picked):
    assert pick_python(PythonRequirement("requires-python", specifier=specifier), "3.11") == picked


# ---- the offline bases ----


def test_every_offline_base_is_a_debian_suite_with_its_own_cpython():
    assert [(o.python, o.suite) for o in pythons.OFFLINE_PYTHONS] == [
        ("3.11", "bookworm"),
        ("3.13", "trixie"),
        ("3.14", "forky"),
        ("3.15", "forky"),
    ]
    assert offline_python("3.13").image == "imgtool/python:3.13-trixie"
    assert offline_python("3.14").packages == ("python3-minimal", "python3-venv", "ca-certificates")
    # forky's python3 is 3.14: 3.15 comes as its versioned packages, without the python3 package.
    assert offline_python("3.15").packages == ("python3.15-minimal", "python3.15-venv", "ca-certificates")
    assert offline_python("3.12") is None
    assert base.BOOTSTRAP_IMAGE == "imgtool/python:3.11-bookworm"


@pytest.mark.parametrize(
    ("python", "suite", "chosen"),
    [
        (None, None, ("3.11", "bookworm", True)),
        ("3.13", None, ("3.13", "trixie", True)),
        ("3.15", None, ("3.15", "forky", False)),
        (None, "sid", ("3.14", "sid", True)),
        ("3.15", "sid", ("3.15", "sid", False)),
        ("3.13", "forky", ("3.13", "forky", False)),
    ],
)
def test_bootstrap_picks_the_suite_by_python_or_the_python_by_suite(python, suite, chosen):
    found = choose(python, suite)
    assert (found.python, found.suite, found.default) == chosen
    assert found.image == f"imgtool/python:{chosen[0]}-{chosen[1]}"


@pytest.mark.parametrize(
    ("python", "suite", "message"),
    [
        (
            "3.12",
            None,
            r"no Debian suite reachable here ships Python 3.12: offline bases are 3.11 \(bookworm\), "
            r"3.13 \(trixie\), 3.14 \(forky\), 3.15 \(forky\)",
        ),
        (None, "duke", r"does not know Debian duke's Python: name it with --python"),
        ("3.13", "Trixie!", r"is not a Debian suite name"),
    ],
)
def test_bootstrap_refuses_what_no_suite_has_in_one_line(python, suite, message):
    with pytest.raises(UsageError, match=message):
        choose(python, suite)


def test_bootstrap_refusals_exit_2_before_any_engine_or_debootstrap():
    for args in (["--python", "3.12"], ["--suite", "Bad!"], ["--python", "3.1x"]):
        result = run_cli("base", "bootstrap", *args, env={"DOCKER_HOST": "unix:///nonexistent.sock"})
        assert result.returncode == 2, result.stderr
        lines = result.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("imgtool: error:") and "Traceback" not in result.stderr


class Client:
    """Only what bootstrap asks an engine before debootstrap runs: whether the tag exists."""

    class images:
        @staticmethod
        def get(name):
            import docker.errors

            raise docker.errors.ImageNotFound(name)


@pytest.mark.parametrize(("python", "script"), [("3.13", []), ("3.14", ["/usr/share/debootstrap/scripts/sid"])])
def test_a_suite_newer_than_debootstrap_uses_the_sid_script_and_a_failure_leaves_nothing(
    tmp_path, monkeypatch, python, script
):
    scripts = tmp_path / "scripts"
    scripts.mkdir()
    (scripts / "trixie").write_text("")
    monkeypatch.setattr(base, "DEBOOTSTRAP_SCRIPTS", scripts)
    monkeypatch.setattr(base.shutil, "which", lambda name: "/usr/sbin/debootstrap")
    monkeypatch.setattr(base.tempfile, "tempdir", str(tmp_path))
    seen = []

    def debootstrap(argv):
        seen.append(argv)
        Path(argv[-2 - len(script)], "usr").mkdir()  # it had started filling the rootfs
        return subprocess.CompletedProcess(argv, 1, "", "E: Couldn't find these debs: python3-venv\n")

    monkeypatch.setattr(base, "_run_own_group", debootstrap)
    with pytest.raises(EnvironmentProblem, match=r"debootstrap of Debian \w+ with Python 3.1\d failed \(E: Couldn't"):
        base.bootstrap(Client(), python, mirror="http://mirror.invalid/debian")
    (argv,) = seen
    suite = offline_python(python).suite
    assert argv[:4] == [
        "debootstrap",
        "--variant=minbase",
        "--include=python3-minimal,python3-venv,ca-certificates",
        suite,
    ]
    assert argv[-1 - len(script) :] == ["http://mirror.invalid/debian", *[str(scripts / "sid") for _ in script]]
    assert not list(tmp_path.glob("imgtool-rootfs-*"))  # the half-made rootfs is gone


def test_a_rootfs_whose_python3_is_another_version_is_refused_and_a_versioned_one_gets_its_link(tmp_path):
    root = tmp_path / "rootfs"
    (root / "usr/bin").mkdir(parents=True)
    (root / "usr/bin/python3.14").write_text("")
    (root / "usr/bin/python3").symlink_to("python3.14")
    with pytest.raises(EnvironmentProblem, match=r"Debian forky installed no python3.13"):
        base._finish_rootfs(root, pythons.OfflinePython("3.13", "forky"))
    (root / "usr/bin/python3.13").write_text("")
    with pytest.raises(EnvironmentProblem, match=r"Debian forky's python3 is python3.14, not python3.13"):
        base._finish_rootfs(root, pythons.OfflinePython("3.13", "forky"))
    (root / "usr/bin/python3.15").write_text("")
    base._finish_rootfs(root, pythons.OfflinePython("3.15", "forky", default=False))
    assert (root / "usr/local/bin/python3").readlink() == Path("/usr/bin/python3.15")


# ---- resolving a base where no registry answers ----


class Images:
    def __init__(self, present):
        self.present = present

    def get(self, name):
        labels = {"imgtool": "base"}
        return type(
            "Image", (), {"attrs": {"Config": {"Env": [], "Labels": labels}, "RepoDigests": []}, "labels": labels}
        )()

    def pull(self, repository, tag=None):
        import docker.errors

        raise docker.errors.APIError("no registry")


class Engine:
    def __init__(self, present=()):
        self.images = Images(set(present))


@pytest.fixture
def offline(monkeypatch):
    monkeypatch.setattr(base, "image_exists", lambda client, name: name in client.images.present)


def test_the_offline_base_of_the_picked_python_is_used_when_nothing_pulls(offline):
    notes = []
    found = base.resolve_base(Engine(["imgtool/python:3.14-forky"]), None, "3.14", notes.append)
    assert found.name == "imgtool/python:3.14-forky"
    assert notes == [
        "python:3.14-slim cannot be pulled (no registry reachable); building on the offline base "
        "imgtool/python:3.14-forky"
    ]


def test_a_project_allowing_only_pythons_with_no_offline_base_is_one_line_naming_those_there_are(offline):
    requirement = PythonRequirement("requires-python in pyproject.toml", specifier="==3.12.*")
    with pytest.raises(EnvironmentProblem) as raised:
        base.resolve_base(Engine(pythons.OFFLINE_VERSIONS), None, "3.12", print, requirement)
    assert str(raised.value) == (
        "the project needs Python ==3.12.* (requires-python in pyproject.toml), python:3.12-slim cannot be pulled "
        "(no registry) and no Debian suite reachable here ships Python 3.12: offline bases are Python 3.11 (bookworm), "
        "3.13 (trixie), 3.14 (forky), 3.15 (forky); change requires-python in pyproject.toml, or pull a Python 3.12 "
        "image where a registry answers"
    )
    # The project allows 3.13, but --python asked for 3.12: the flag is what to change.
    allows = PythonRequirement("requires-python in pyproject.toml", specifier=">=3.11")
    with pytest.raises(
        EnvironmentProblem, match=r"Python 3.12 was asked for, .* set --python \(or \[tool.imgtool\] python\)"
    ):
        base.resolve_base(Engine(), None, "3.12", print, allows)
