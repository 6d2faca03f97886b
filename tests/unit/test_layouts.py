"""Dependency layouts, engine-free: requirements files by any name and their -r/-c chains, a requirements.in
with no compiled file, and `[tool.imgtool] extras` / `groups` for every source (PEP 735, uv.lock, Poetry, PDM,
Pipfile.lock, requirements files, build-backend metadata). Files in; the dependency source, the rendered
install step and one-line errors out."""

import json
import tomllib
from pathlib import Path

import pytest

from tests.conftest import run_cli
from toolkit import lockfiles, reqfiles
from toolkit.config import describe_config, load_config
from toolkit.detect import DependencyKind
from toolkit.errors import UsageError
from toolkit.plan import BaseImage, make_plan
from toolkit.render import render_dockerfile
from toolkit.servers import SERVERS

OFFLINE = BaseImage("imgtool/python:3.11-bookworm", None, bootstrapped=True)
ASSETS = Path("/cache/imgtool/assets/0123456789abcdef")
APP = "async def app(scope, receive, send):\n    pass\n"
H = "sha256:" + "a" * 64


def write(root: Path, files: dict[str, str]) -> Path:
    for name, text in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    (root / "main.py").write_text(APP)
    return root


def project(tool: str = "", body: str = 'dependencies = ["starlette"]\n', name: str = "demo") -> str:
    return f'[project]\nname = "{name}"\nversion = "1"\n{body}' + (f"\n[tool.imgtool]\n{tool}\n" if tool else "")


def render(config) -> str:
    return render_dockerfile(make_plan(config, SERVERS["granian"], OFFLINE, ASSETS))


def install_step(text: str) -> str:
    """The dependency install RUN of the deps stage (up to the builder)."""
    return text[text.index("# ---- deps:") : text.index("# ---- builder:")]


# ---- requirements files: names and chains ----


def test_a_production_file_chains_to_base_and_a_constraints_file(tmp_path):
    write(
        tmp_path,
        {
            "requirements/production.txt": "-r base.txt\n--constraint=../constraints/pins.txt\ngunicorn\n",
            "requirements/base.txt": "# shared\n-c ../constraints/pins.txt  # pinned\nstarlette\n",
            "constraints/pins.txt": "starlette==0.47.0\n",
            "requirements/local.txt": "-r base.txt\npytest\n",
        },
    )
    config = load_config(tmp_path)
    deps = config.deps
    assert deps.requirements == "requirements/production.txt"
    # The chain, paths relative to the file that names them (pip's rule), each once; local.txt stays out.
    assert deps.files == ("requirements/production.txt", "requirements/base.txt", "constraints/pins.txt")
    assert deps.summary == (
        "requirements/production.txt (uv pip install -r; it includes requirements/base.txt, constraints/pins.txt)"
    )
    text = render(config)
    for file in deps.files:
        assert f"COPY {file} /tmp/{file}" in text
    assert "--requirement /tmp/requirements/production.txt" in install_step(text)
    assert "local.txt" not in text


@pytest.mark.parametrize(
    "line",
    [
        "-r base.txt",
        "-rbase.txt",
        "--requirement base.txt",
        "--requirement=base.txt",
        "-c base.txt",
        "--constraint base.txt",
    ],
)
def test_every_spelling_of_an_include_is_followed(tmp_path, line):
    write(tmp_path, {"reqs/main.txt": f"{line}\n", "reqs/base.txt": "starlette\n"})
    assert reqfiles.chain(tmp_path, "reqs/main.txt") == ("reqs/main.txt", "reqs/base.txt")


def test_continuations_comments_urls_and_cycles(tmp_path):
    write(
        tmp_path,
        {
            "a.txt": "# -r commented.txt\nstarlette \\\n  >=0.40  # a comment\n"
            "-r https://example.invalid/r.txt\n-r b.txt\n",
            "b.txt": "-r a.txt\nhttpx\n",
        },
    )
    assert reqfiles.chain(tmp_path, "a.txt") == ("a.txt", "b.txt")


@pytest.mark.parametrize(
    ("files", "message"),
    [
        (
            {"requirements.txt": "-r missing.txt\n"},
            r"requirements file missing.txt \(included by requirements.txt:1\) does",
        ),
        (
            {"requirements.txt": "starlette\n-c ../../outside.txt\n"},
            r"outside.txt \(included by requirements.txt:2\) is outside the build",
        ),
    ],
)
def test_a_broken_chain_is_one_line_naming_the_line(tmp_path, files, message):
    write(tmp_path, files)
    with pytest.raises(UsageError, match=message):
        load_config(tmp_path)


def test_tool_imgtool_requirements_names_files_of_any_name(tmp_path):
    write(
        tmp_path,
        {
            "pyproject.toml": project('requirements = ["requirements/app", "deps/extra.pip"]'),
            "requirements/app": "-r common\nstarlette\n",
            "requirements/common": "anyio\n",
            "deps/extra.pip": "httpx\n",
            # Named files win over every detected source.
            "uv.lock": "version = 1\n",
            "requirements.txt": "flask\n",
        },
    )
    config = load_config(tmp_path)
    assert config.deps.kind == DependencyKind.REQUIREMENTS
    assert config.deps.requirement_files == ("requirements/app", "deps/extra.pip")
    assert config.deps.files == ("requirements/app", "requirements/common", "deps/extra.pip")
    step = install_step(render(config))
    assert "--requirement /tmp/requirements/app --requirement /tmp/deps/extra.pip" in step
    assert "uv.lock" not in step and "requirements.txt" not in step
    assert ("requirements", ["requirements/app", "deps/extra.pip"], "pyproject") in describe_config(
        config, ("granian",), "default"
    )


@pytest.mark.parametrize(
    ("setting", "message"),
    [
        ('requirements = ["requirements"]', r"entry 'requirements' is a directory: name the file in it"),
        ('requirements = ["../elsewhere.txt"]', r"must be a path inside the project"),
        ('requirements = ["/etc/passwd"]', r"must be a path inside the project"),
        ('requirements = ["nope.txt"]', r"requirements file nope.txt does not exist"),
        ("requirements = []", r"requirements = \[\] is not a list of files"),
        ("requirements = 3", r"requirements = 3 is not a list of files"),
    ],
)
def test_bad_requirements_settings_are_one_line(tmp_path, setting, message):
    write(tmp_path, {"pyproject.toml": project(setting), "requirements/base.txt": "starlette\n"})
    with pytest.raises(UsageError, match=message):
        load_config(tmp_path)


@pytest.mark.parametrize(
    ("source", "compiled"),
    [("requirements.in", "requirements.txt"), ("requirements/production.in", "requirements/production.txt")],
)
def test_a_requirements_in_without_its_compiled_file_is_one_line_naming_the_fix(tmp_path, source, compiled):
    write(tmp_path, {source: "starlette\n"})
    with pytest.raises(UsageError) as raised:
        load_config(tmp_path)
    assert str(raised.value) == (
        f"{source} has no compiled {compiled} beside it: run `uv pip compile {source} -o {compiled}` "
        f"(or `pip-compile {source}`), commit {compiled}, then build again"
    )
    (tmp_path / compiled).write_text("starlette==0.47.0\n")
    assert load_config(tmp_path).deps.requirements == compiled


def test_the_requirements_in_error_exits_2_with_one_line_and_no_engine(tmp_path):
    write(tmp_path, {"requirements.in": "starlette\n"})
    result = run_cli("config", cwd=tmp_path, env={"DOCKER_HOST": "unix:///nonexistent.sock"})
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        "imgtool: error: requirements.in has no compiled requirements.txt beside it: run `uv pip compile "
        "requirements.in -o requirements.txt` (or `pip-compile requirements.in`), commit requirements.txt, then "
        "build again"
    ]


# ---- extras and groups: [project] dependencies and PEP 735, read by imgtool ----

PEP_621 = (
    'dependencies = ["starlette"]\n'
    "[project.optional-dependencies]\n"
    'postgres = ["psycopg[binary]>=3"]\n'
    'all = ["demo[postgres,redis]"]\n'
    'redis = ["redis>=5"]\n'
    "[dependency-groups]\n"
    'prod = ["sentry-sdk", {include-group = "observability"}]\n'
    'observability = ["opentelemetry-api"]\n'
    'test = ["pytest"]\n'
)


def test_pyproject_extras_and_pep_735_groups_are_installed_inline(tmp_path):
    write(tmp_path, {"pyproject.toml": project('extras = ["all"]\ngroups = ["prod"]', PEP_621)})
    config = load_config(tmp_path)
    # The self-reference `demo[postgres,redis]` expands to those extras; include-group is followed.
    assert config.dependencies == ("starlette", "psycopg[binary]>=3", "redis>=5", "sentry-sdk", "opentelemetry-api")
    step = install_step(render(config))
    assert "starlette 'psycopg[binary]>=3' 'redis>=5' sentry-sdk opentelemetry-api 'granian>=2.5,<3'" in step
    assert "pytest" not in step and "--group" not in step


@pytest.mark.parametrize(
    ("tool", "message"),
    [
        ('extras = ["postgress"]', r"pyproject.toml declares no extra 'postgress' \(extras: all, postgres, redis\)"),
        (
            'groups = ["docs"]',
            r"declares no group 'docs' \(groups: observability, prod, test\): fix \[tool.imgtool\] groups",
        ),
        ('extras = "postgres"', r"extras = 'postgres' is not a list of names"),
        ('groups = ["bad name"]', r"groups = \['bad name'\] is not a list of names"),
    ],
)
def test_a_name_the_project_lacks_is_one_line_listing_those_it_has(tmp_path, tool, message):
    write(tmp_path, {"pyproject.toml": project(tool, PEP_621)})
    with pytest.raises(UsageError, match=message):
        load_config(tmp_path)


def test_an_include_group_cycle_is_one_line(tmp_path):
    body = (
        'dependencies = ["starlette"]\n[dependency-groups]\na = [{include-group = "b"}]\nb = [{include-group = "a"}]\n'
    )
    write(tmp_path, {"pyproject.toml": project('groups = ["a"]', body)})
    with pytest.raises(UsageError, match=r"\[dependency-groups\] a -> b -> a includes itself"):
        load_config(tmp_path)


def test_requirements_files_take_groups_inline_but_have_no_extras(tmp_path):
    write(tmp_path, {"pyproject.toml": project('groups = ["prod"]', PEP_621), "requirements.txt": "starlette\n"})
    config = load_config(tmp_path)
    assert config.deps.kind == DependencyKind.REQUIREMENTS
    step = install_step(render(config))
    assert "sentry-sdk opentelemetry-api 'granian>=2.5,<3'" in step and "--requirement /tmp/requirements.txt" in step
    (tmp_path / "pyproject.toml").write_text(project('extras = ["postgres"]', PEP_621))
    with pytest.raises(UsageError, match=r"extras name a project's optional dependencies, and requirements.txt are"):
        load_config(tmp_path)


def test_extras_with_no_dependency_source_is_one_line(tmp_path):
    write(tmp_path, {"pyproject.toml": '[project]\nname = "demo"\nversion = "1"\n\n[tool.imgtool]\nextras = ["x"]\n'})
    with pytest.raises(UsageError, match=r"imgtool found no dependency source"):
        load_config(tmp_path)


# ---- uv.lock: uv's own flags ----


def test_uv_lock_syncs_the_extras_and_groups_and_no_default_group(tmp_path):
    body = PEP_621 + '[tool.uv]\ndev-dependencies = ["ruff"]\n'
    write(
        tmp_path,
        {
            "pyproject.toml": project('extras = ["postgres"]\ngroups = ["prod", "dev"]', body),
            "uv.lock": "version = 1\n",
        },
    )
    config = load_config(tmp_path)
    step = install_step(render(config))
    assert "--frozen --no-default-groups" in step
    assert "--extra postgres --group prod --group dev --inexact" in step
    assert config.deps.summary.endswith("; with extras postgres and groups prod, dev")
    (tmp_path / "pyproject.toml").write_text(project('groups = ["lint"]', body))
    with pytest.raises(UsageError, match=r"declares no group 'lint' \(groups: dev, observability, prod, test\)"):
        load_config(tmp_path)


# ---- foreign locks: the lock's own selection ----

POETRY_PROJECT = """
[tool.poetry]
name = "demo"
[tool.poetry.dependencies]
python = "^3.11"
starlette = "*"
psycopg = {version = "^3", optional = true}
[tool.poetry.extras]
postgres = ["psycopg"]
[tool.poetry.group.prod.dependencies]
sentry-sdk = "^2"
[tool.poetry.group.test.dependencies]
pytest = "*"
[tool.imgtool]
"""


def poetry_entry(name: str, version: str, groups=None, optional=False, deps: str = "") -> str:
    text = f'[[package]]\nname = "{name}"\nversion = "{version}"\noptional = {str(optional).lower()}\n'
    if groups is not None:
        text += f"groups = {json.dumps(groups)}\n"
    text += f'files = [{{file = "{name}-{version}.tar.gz", hash = "{H}"}}]\n'
    return text + (f"[package.dependencies]\n{deps}\n" if deps else "")


POETRY_1_LOCK = (
    "\n".join(
        [
            poetry_entry("starlette", "0.47.0", deps='anyio = ">=3"'),
            poetry_entry("anyio", "4.9.0"),
            poetry_entry("psycopg", "3.2.9", optional=True),
            poetry_entry("sentry-sdk", "2.30.0", deps='urllib3 = ">=1"'),
            poetry_entry("urllib3", "2.5.0"),
            poetry_entry("pytest", "8.4.0"),
        ]
    )
    + '\n[metadata]\nlock-version = "2.0"\n'
)

POETRY_2_LOCK = (
    "\n".join(
        [
            poetry_entry("starlette", "0.47.0", ["main"], deps='anyio = ">=3"'),
            poetry_entry("anyio", "4.9.0", ["main"]),
            poetry_entry("psycopg", "3.2.9", ["main"], optional=True),
            poetry_entry("sentry-sdk", "2.30.0", ["prod"], deps='urllib3 = ">=1"'),
            poetry_entry("urllib3", "2.5.0", ["prod"]),
            poetry_entry("pytest", "8.4.0", ["test"]),
        ]
    )
    + '\n[metadata]\nlock-version = "2.1"\n'
)


def names(export: lockfiles.Export) -> set[str]:
    return {pin.name for pin in export.pins}


@pytest.mark.parametrize("lock", [POETRY_1_LOCK, POETRY_2_LOCK], ids=["poetry-1-walk", "poetry-2-groups"])
def test_poetry_groups_and_extras_come_from_the_lock(lock):
    pyproject = tomllib.loads(POETRY_PROJECT)
    assert names(lockfiles.export("poetry.lock", lock, pyproject)) == {"starlette", "anyio"}
    grouped = lockfiles.export("poetry.lock", lock, pyproject, groups=("prod",))
    assert names(grouped) == {"starlette", "anyio", "sentry-sdk", "urllib3"}
    assert "groups prod" in grouped.source
    both = lockfiles.export("poetry.lock", lock, pyproject, extras=("postgres",), groups=("prod",))
    assert names(both) == {"starlette", "anyio", "psycopg", "sentry-sdk", "urllib3"}
    with pytest.raises(lockfiles.LockError, match=r"declares no group 'docs' \(groups: prod, test\)"):
        lockfiles.export("poetry.lock", lock, pyproject, groups=("docs",))
    with pytest.raises(lockfiles.LockError, match=r"declares no extra 'redis' \(extras: postgres\)"):
        lockfiles.export("poetry.lock", lock, pyproject, extras=("redis",))


def test_poetry_legacy_dev_dependencies_and_pep_735_groups():
    pyproject = {
        "tool": {"poetry": {"dependencies": {"starlette": "*"}, "dev-dependencies": {"pytest": "*"}}},
        "dependency-groups": {"prod": ["sentry-sdk>=2"]},
    }
    assert names(lockfiles.export("poetry.lock", POETRY_1_LOCK, pyproject, groups=("dev", "prod"))) == {
        "starlette", "anyio", "pytest", "sentry-sdk", "urllib3"
    }  # fmt: skip


def pdm_entry(name: str, version: str, groups=None, deps=()) -> str:
    text = f'[[package]]\nname = "{name}"\nversion = "{version}"\n'
    if groups is not None:
        text += f"groups = {json.dumps(groups)}\n"
    if deps:
        text += f"dependencies = {json.dumps(list(deps))}\n"
    return text + f'files = [{{file = "{name}-{version}.tar.gz", hash = "{H}"}}]\n'


PDM_PROJECT = {
    "project": {"name": "demo", "dependencies": ["starlette"], "optional-dependencies": {"postgres": ["psycopg>=3"]}},
    "tool": {"pdm": {"dev-dependencies": {"test": ["pytest"]}}},
    "dependency-groups": {"prod": ["sentry-sdk"]},
}
PDM_WALK = "\n".join(
    [
        '[metadata]\ngroups = ["default", "postgres", "prod", "test"]\n'
        'strategy = ["cross_platform"]\nlock_version = "4.4"\n',
        pdm_entry("starlette", "0.47.0", deps=["anyio>=3"]),
        pdm_entry("anyio", "4.9.0"),
        pdm_entry("psycopg", "3.2.9"),
        pdm_entry("sentry-sdk", "2.30.0"),
        pdm_entry("pytest", "8.4.0"),
    ]
)
PDM_GROUPS = "\n".join(
    [
        '[metadata]\ngroups = ["default", "postgres", "prod", "test"]\n'
        'strategy = ["inherit_metadata"]\nlock_version = "4.5.0"\n',
        pdm_entry("starlette", "0.47.0", ["default"], ["anyio>=3"]),
        pdm_entry("anyio", "4.9.0", ["default"]),
        pdm_entry("psycopg", "3.2.9", ["postgres"]),
        pdm_entry("sentry-sdk", "2.30.0", ["prod"]),
        pdm_entry("pytest", "8.4.0", ["test"]),
    ]
)


@pytest.mark.parametrize("lock", [PDM_WALK, PDM_GROUPS], ids=["pdm-walk", "pdm-groups"])
def test_pdm_groups_and_extras_come_from_the_lock(lock):
    assert names(lockfiles.export("pdm.lock", lock, PDM_PROJECT)) == {"starlette", "anyio"}
    chosen = lockfiles.export("pdm.lock", lock, PDM_PROJECT, extras=("postgres",), groups=("test", "prod"))
    assert names(chosen) == {"starlette", "anyio", "psycopg", "pytest", "sentry-sdk"}
    with pytest.raises(lockfiles.LockError, match=r"declares no group 'lint' \(groups: prod, test\)"):
        lockfiles.export("pdm.lock", lock, PDM_PROJECT, groups=("lint",))


def test_a_pdm_lock_made_without_a_group_names_the_relock():
    lock = PDM_WALK.replace('groups = ["default", "postgres", "prod", "test"]', 'groups = ["default"]')
    with pytest.raises(lockfiles.LockError, match=r"pdm.lock was locked without 'prod': run `pdm lock -G prod`"):
        lockfiles.export("pdm.lock", lock, PDM_PROJECT, groups=("prod",))


PIPFILE_LOCK = json.dumps(
    {
        "_meta": {"sources": []},
        "default": {"starlette": {"version": "==0.47.0", "hashes": [H]}},
        "develop": {"pytest": {"version": "==8.4.0", "hashes": [H]}, "starlette": {"version": "==0.47.0"}},
        "docs": {"sphinx": {"version": "==8.0.0", "hashes": [H]}},
    }
)


def test_pipfile_lock_groups_are_its_sections():
    chosen = lockfiles.export("Pipfile.lock", PIPFILE_LOCK, {}, groups=("dev", "docs"))
    assert names(chosen) == {"starlette", "pytest", "sphinx"} and len(chosen.pins) == 3
    assert chosen.source == 'Pipfile.lock ("default" and "develop" and "docs" sections)'
    with pytest.raises(lockfiles.LockError, match=r"has no section 'lint' \(sections: default, develop, docs\)"):
        lockfiles.export("Pipfile.lock", PIPFILE_LOCK, {}, groups=("lint",))
    with pytest.raises(lockfiles.LockError, match=r"Pipfile.lock has no extras"):
        lockfiles.export("Pipfile.lock", PIPFILE_LOCK, {}, extras=("x",))


def test_a_foreign_lock_passes_extras_and_groups_to_the_exporter_in_the_build(tmp_path):
    write(
        tmp_path,
        {"pyproject.toml": POETRY_PROJECT + 'extras = ["postgres"]\ngroups = ["prod"]\n', "poetry.lock": POETRY_2_LOCK},
    )
    config = load_config(tmp_path)
    assert dict(config.deps.pinned) == {
        "anyio": "4.9.0", "psycopg": "3.2.9", "sentry-sdk": "2.30.0", "starlette": "0.47.0", "urllib3": "2.5.0"
    }  # fmt: skip
    step = install_step(render(config))
    assert "/tmp/poetry.lock /tmp/pyproject.toml /tmp/requirements.lock.txt --extra postgres --group prod \\" in step


def test_the_exporter_in_the_build_takes_the_same_flags(tmp_path):
    (tmp_path / "poetry.lock").write_text(POETRY_2_LOCK)
    (tmp_path / "pyproject.toml").write_text(POETRY_PROJECT)
    out = tmp_path / "out.txt"
    argv = [str(tmp_path / "poetry.lock"), str(tmp_path / "pyproject.toml"), str(out)]
    assert lockfiles.main([*argv, "--group", "prod", "--exclude", "urllib3"]) == 0
    text = out.read_text()
    assert "sentry-sdk==2.30.0" in text and "urllib3" not in text and "pytest" not in text


# ---- Poetry without a lock, and metadata a build backend computes: uv's --extra ----


def test_poetry_without_a_lock_takes_extras_through_uv_and_refuses_its_groups(tmp_path):
    body = POETRY_PROJECT.replace("[tool.imgtool]\n", "") + '[build-system]\nrequires = ["poetry-core"]\n'
    write(tmp_path, {"pyproject.toml": body + '[tool.imgtool]\nextras = ["postgres"]\n'})
    step = install_step(render(load_config(tmp_path)))
    assert "--requirement /tmp/pyproject.toml --extra postgres" in step
    (tmp_path / "pyproject.toml").write_text(body + '[tool.imgtool]\ngroups = ["prod"]\n')
    with pytest.raises(UsageError, match=r"Poetry's group 'prod' is not part of the project's metadata.*poetry lock"):
        load_config(tmp_path)


def test_setup_py_extras_go_to_uv(tmp_path):
    write(
        tmp_path,
        {
            "setup.py": "from setuptools import setup\n"
            "setup(install_requires=['starlette'], extras_require={'pg': ['psycopg']})\n",
            "pyproject.toml": '[tool.imgtool]\nextras = ["pg"]\n',
        },
    )
    step = install_step(render(load_config(tmp_path)))
    assert "--requirement /tmp/project/setup.py --extra pg" in step
