#!/usr/bin/env python3
"""Measure issue 7's six targets and issue 18's size, rebuild and start-up targets in one run, as ratios.

    .venv/bin/python benchmarks/run.py [--duration 10s] [--starts 10] [--output benchmarks/results.json]

What it does (everything on this machine; traffic only to 127.0.0.1 and the containers it starts):
  1. image size: each server's imgtool image in total (distroless runtime), granian also with the Debian
     runtime (runtime = "debian"); what imgtool adds over its runtime (venv + app: the image less the runtime
     root's layers, or less the base) vs what naive.Dockerfile / uv-multistage.Dockerfile add over the base
  2. imgtool: code-only rebuild (one line of app.py changed) vs no-op rebuild
  3. cold build: imgtool vs docker-init.Dockerfile. Cold = --no-cache AND BuildKit's cache mounts
     emptied with `docker builder prune -f --filter type=exec.cachemount` before each cold build.
     NOTE: that prune clears EVERY cache mount of this engine (yours too: uv/pip/apt caches of
     other builds), so the next build of anything re-downloads its packages.
  4. docker run -> first 200 on /health, median of N starts: each imgtool server image vs docker-init
  5. throughput (imgtool bench's runner): each server's image vs the same server, same flags, run on
     the host from a host venv (pinned with taskset to the CPU the containers get); imgtool's uvicorn
     vs pure-Python uvicorn (--loop asyncio --http h11, same image); granian vs uvicorn
  6. worker count under --cpuset-cpus 0, --cpus 1, no limit, and WEB_CONCURRENCY=3

Everything it creates (images tagged imgtool-benchrun-<id>-*, containers labelled
imgtool.test=<id>, the host venv, temp contexts, host server processes) is removed at the end,
also on errors and Ctrl-C. The numbers are ratios from one run on a noisy 2-core machine.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import docker  # noqa: E402
import docker.errors  # noqa: E402

from toolkit import bench  # noqa: E402
from toolkit.config import BUNDLED_APP_CONTEXT  # noqa: E402
from toolkit.containers import remove_test_containers  # noqa: E402
from toolkit.servers import SERVERS  # noqa: E402

BASE = "imgtool/python:3.11-bookworm"
CA = Path("/etc/ssl/certs/ca-certificates.crt")
HERE = Path(__file__).resolve().parent
APP_PACKAGES = ("litestar>=2.12,<3",)
REFERENCE_REQUIREMENTS = "litestar>=2.12,<3\ngranian>=2.5,<3\n"
CHANGED_LINE = ('return "Hello from imgtool\'s reference app\\n"', 'return "Hello from imgtool\'s reference app!\\n"')


def log(message: str) -> None:
    print(f"[run.py] {message}", file=sys.stderr, flush=True)


class Run:
    def __init__(self, run_id: str, scratch: Path):
        self.run_id = run_id
        self.scratch = scratch
        self.client = docker.from_env(timeout=300)
        self.tags: list[str] = []
        self.image_ids: set[str] = set()
        self.host_processes: list[subprocess.Popen] = []

    def tag(self, name: str) -> str:
        tag = f"imgtool-benchrun-{self.run_id}-{name}"
        return tag if ":" in name else f"{tag}:latest"

    # ---- building ----
    def prune_cache_mounts(self) -> None:
        subprocess.run(
            ["docker", "builder", "prune", "-f", "--filter", "type=exec.cachemount"], capture_output=True, check=True
        )

    def buildx(self, dockerfile: Path, context: Path, tag: str, no_cache: bool = False) -> tuple[float, int]:
        command = ["docker", "buildx", "build", "--load", "--progress=plain", "-t", tag, "-f", str(dockerfile)]
        command += ["--build-arg", f"BASE={BASE}"]
        if CA.is_file():
            command += ["--secret", f"id=ca,src={CA}"]
        if no_cache:
            command.append("--no-cache")
        self.tags.append(tag)
        started = time.monotonic()
        result = subprocess.run([*command, str(context)], capture_output=True, text=True)
        seconds = time.monotonic() - started
        if result.returncode != 0:
            raise SystemExit(f"building {dockerfile.name} failed:\n{result.stderr[-2000:]}")
        image = self.client.images.get(tag)
        self.image_ids.add(image.id)
        return seconds, int(image.attrs["Size"])

    def imgtool_build(self, context: Path, server: str, tag: str, no_cache: bool = False) -> tuple[float, int]:
        """`imgtool build`; the time is its buildx run (what `imgtool build` reports)."""
        command = [sys.executable, "-m", "toolkit", "build", "--server", server, "--context", str(context)]
        command += ["--tag", tag, "--base", BASE, "--json"]
        if no_cache:
            command.append("--no-cache")
        self.tags.append(tag)
        result = subprocess.run(command, capture_output=True, text=True, cwd=ROOT)
        if result.returncode != 0:
            raise SystemExit(f"imgtool build {server} failed:\n{result.stderr[-2000:]}")
        entry = json.loads(result.stdout)[0]
        self.image_ids.add(entry["image_id"])
        return float(entry["seconds"]), int(entry["size_bytes"])

    # ---- host servers ----
    def host_venv(self) -> Path:
        venv = self.scratch / "host-venv"
        subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
        packages = list(dict.fromkeys([*APP_PACKAGES, *(p for spec in SERVERS.values() for p in spec.packages)]))
        log(f"host venv: pip install {' '.join(packages)}")
        result = subprocess.run(
            [sys.executable, "-m", "pip", "--python", str(venv / "bin" / "python"), "install", "-q", *packages],
            capture_output=True,
            text=True,
        )
        if result.returncode != 0:
            raise SystemExit(f"host venv install failed:\n{result.stderr[-2000:]}")
        return venv

    @contextlib.contextmanager
    def host_server(self, venv: Path, app_dir: Path, argv: list[str]):
        port = free_port()
        command = [part.replace("$PORT", str(port)).replace("$WORKERS", "1") for part in argv]
        command = ["127.0.0.1" if part == "0.0.0.0" else part for part in command]
        command = [part.replace("0.0.0.0:", "127.0.0.1:") for part in command]
        env = {**os.environ, "PATH": f"{venv / 'bin'}:{os.environ['PATH']}", "PYTHONPATH": str(app_dir)}
        env.update({"PYTHONUNBUFFERED": "1", "PYTHONDONTWRITEBYTECODE": "1"})
        pinned = ["taskset", "-c", bench.SERVER_CPUS, *command]
        process = subprocess.Popen(
            pinned,
            cwd=app_dir,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            start_new_session=True,
        )
        self.host_processes.append(process)
        try:
            base_url = f"http://127.0.0.1:{port}"

            def alive() -> str | None:
                if process.poll() is not None:
                    return f"host server exited {process.returncode}: {process.stderr.read().decode()[-300:]}"
                return None

            bench.wait_for_200(base_url + "/health", alive=alive)
            yield base_url
        finally:
            stop(process)

    def cleanup(self) -> None:
        for process in self.host_processes:
            stop(process)
        with contextlib.suppress(docker.errors.DockerException):
            remove_test_containers(self.client, self.run_id)
        for tag in dict.fromkeys(self.tags):
            with contextlib.suppress(docker.errors.DockerException):
                self.client.images.remove(tag)
        # Images replaced by a rebuild are left dangling: remove them by id, only if nothing else uses them.
        for image_id in self.image_ids:
            with contextlib.suppress(docker.errors.DockerException):
                if not self.client.images.get(image_id).tags:
                    self.client.images.remove(image_id)


def runtime_root_bytes(client, ref: str) -> int:
    """The distroless runtime's own layers (`COPY --from=runtime-python|runtime-libs /rootfs/ /`): its "base"."""
    return sum(
        int(layer["Size"])
        for layer in client.api.history(ref)
        if layer.get("CreatedBy", "").startswith("COPY /rootfs/ /")
    )


def stop(process: subprocess.Popen) -> None:
    if process.poll() is not None:
        return
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGTERM)
    try:
        process.wait(timeout=10)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        process.wait()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def ratio(a: float, b: float) -> float:
    return a / b if b else float("inf")


def versions_in_image(client, run_id: str, ref: str, names: list[str]) -> dict[str, str]:
    script = (
        "import importlib.metadata as m, json, sys\n"
        "out = {}\n"
        "for n in sys.argv[1:]:\n"
        "    try: out[n] = m.version(n)\n"
        "    except m.PackageNotFoundError: pass\n"
        "print(json.dumps(out))"
    )
    from toolkit.containers import TEST_LABEL

    output = client.containers.run(
        ref,
        entrypoint=["python3", "-c", script, *names],
        remove=True,
        user="10001",
        labels={TEST_LABEL: run_id},
    )
    return json.loads(output.decode().strip().splitlines()[-1])


def versions_on_host(venv: Path, names: list[str]) -> dict[str, str]:
    script = (
        "import importlib.metadata as m, json, sys\nout = {}\nfor n in sys.argv[1:]:\n"
        "    try: out[n] = m.version(n)\n    except m.PackageNotFoundError: pass\nprint(json.dumps(out))"
    )
    output = subprocess.run([str(venv / "bin" / "python"), "-c", script, *names], capture_output=True, text=True)
    return json.loads(output.stdout)


def count_workers(runner: bench.Bench, subject: bench.Subject, **options) -> int:
    """Start, wait for the first 200, then read /proc until the worker count holds still."""
    with runner.start_healthy(subject, **options) as (container, _, _):
        return runner.settled_workers(container)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--duration", default="10s", help="load time per throughput measurement (default 10s)")
    parser.add_argument("--starts", type=int, default=10, help="starts per image for time-to-first-200 (default 10)")
    parser.add_argument("--output", type=Path, default=HERE / "results.json", help="JSON results file")
    args = parser.parse_args()
    seconds = bench.parse_duration(args.duration)
    generators = bench.pick_generators("auto")
    run_id = f"benchrun-{secrets.token_hex(3)}"
    began = time.monotonic()
    results: dict = {"run_id": run_id, "base": BASE, "generators": generators, "duration_seconds": seconds}
    rows: list[tuple[str, str, str, str, str]] = []  # target, measured, ratio, goal, met

    def row(target: str, measured: str, value: float, goal: str, met: bool) -> None:
        rows.append((target, measured, f"{value:.2f}", goal, "yes" if met else "**no**"))

    signal.signal(signal.SIGTERM, lambda *_: (_ for _ in ()).throw(KeyboardInterrupt()))
    with tempfile.TemporaryDirectory(prefix="imgtool-benchrun-") as scratch_dir:
        scratch = Path(scratch_dir)
        run = Run(run_id, scratch)
        try:
            if not any(BASE in tag for image in run.client.images.list() for tag in image.tags):
                raise SystemExit(f"base {BASE} missing: run `imgtool base bootstrap`")
            base_size = int(run.client.images.get(BASE).attrs["Size"])
            app_ctx = scratch / "app"
            shutil.copytree(BUNDLED_APP_CONTEXT, app_ctx, ignore=shutil.ignore_patterns("__pycache__"))
            ref_ctx = scratch / "reference-app"
            shutil.copytree(app_ctx, ref_ctx)
            (ref_ctx / "requirements.txt").write_text(REFERENCE_REQUIREMENTS)

            # ---- 3 + 1: cold builds, then sizes ----
            log("cold build: imgtool (granian)  [prunes BuildKit cache mounts]")
            run.prune_cache_mounts()
            imgtool_tag = run.tag("imgtool:granian")
            cold_imgtool, size_imgtool = run.imgtool_build(app_ctx, "granian", imgtool_tag, no_cache=True)
            log("cold build: docker-init style  [prunes BuildKit cache mounts]")
            run.prune_cache_mounts()
            init_tag = run.tag("docker-init")
            cold_init, size_init = run.buildx(HERE / "docker-init.Dockerfile", ref_ctx, init_tag, no_cache=True)
            log("builds: naive, uv-multistage")
            _, size_naive = run.buildx(HERE / "naive.Dockerfile", ref_ctx, run.tag("naive"))
            _, size_uv = run.buildx(HERE / "uv-multistage.Dockerfile", ref_ctx, run.tag("uv-multistage"))
            log('build: imgtool granian with the Debian runtime ([tool.imgtool] runtime = "debian")')
            debian_ctx = scratch / "app-debian"
            shutil.copytree(app_ctx, debian_ctx)
            pyproject = debian_ctx / "pyproject.toml"
            pyproject.write_text(
                pyproject.read_text().replace("[tool.imgtool]\n", '[tool.imgtool]\nruntime = "debian"\n')
            )
            debian_tag = run.tag("imgtool-debian:granian")
            _, size_debian = run.imgtool_build(debian_ctx, "granian", debian_tag)
            runtime_root = runtime_root_bytes(run.client, imgtool_tag)
            added = {
                "imgtool": size_imgtool - runtime_root,
                "imgtool-debian": size_debian - base_size,
                "naive": size_naive - base_size,
                "uv-multistage": size_uv - base_size,
                "docker-init": size_init - base_size,
            }
            results["sizes"] = {
                "base": base_size,
                "runtime_root": runtime_root,
                "total": {"imgtool": size_imgtool, "imgtool-debian": size_debian, "naive": size_naive},
                "added_over_base": added,
            }
            mb = {k: v / 1e6 for k, v in added.items()}
            row(
                "1. image size, granian + bundled app (distroless)",
                f"{size_imgtool / 1e6:.0f} MB (Debian runtime {size_debian / 1e6:.0f} MB; the base alone "
                f"{base_size / 1e6:.0f} MB; naive {size_naive / 1e6:.0f} MB)",
                ratio(size_imgtool, size_debian),
                "≤ 110 MB",
                size_imgtool <= 110e6,
            )
            r1 = ratio(added["imgtool"], added["naive"])
            row(
                "1. size added over the runtime: imgtool / naive",
                f"{mb['imgtool']:.0f} MB over its {runtime_root / 1e6:.0f} MB runtime root vs {mb['naive']:.0f} MB "
                f"over the base (uv multi-stage {mb['uv-multistage']:.0f} MB, docker-init {mb['docker-init']:.0f} MB, "
                f"imgtool, Debian runtime {mb['imgtool-debian']:.0f} MB)",
                r1,
                "≤ 0.5 and < uv multi-stage",
                r1 <= 0.5 and added["imgtool"] < added["uv-multistage"],
            )
            r3 = ratio(cold_imgtool, cold_init)
            results["cold_build_seconds"] = {"imgtool": cold_imgtool, "docker-init": cold_init}
            row(
                "3. cold build: imgtool / docker-init",
                f"{cold_imgtool:.1f} s vs {cold_init:.1f} s",
                r3,
                "≤ 0.7",
                r3 <= 0.7,
            )

            # ---- 2: no-op vs code-only rebuild ----
            log("rebuilds: no-op, then one line of app.py changed")
            run.imgtool_build(app_ctx, "granian", imgtool_tag)  # settle: the cold build's cache is now warm
            noop, _ = run.imgtool_build(app_ctx, "granian", imgtool_tag)
            app_py = app_ctx / "app.py"
            # A change no earlier run made: BuildKit's cache is keyed by content, and a repeated
            # edit would be a cache hit, not a rebuild.
            changed = (CHANGED_LINE[0], CHANGED_LINE[1].replace("!", f"! {run_id}"))
            app_py.write_text(app_py.read_text().replace(*changed))
            code_only, _ = run.imgtool_build(app_ctx, "granian", imgtool_tag)
            app_py.write_text(app_py.read_text().replace(changed[1], changed[0]))
            run.imgtool_build(app_ctx, "granian", imgtool_tag)  # back to the unchanged app for the rest
            results["rebuild_seconds"] = {"no_op": noop, "code_only": code_only}
            r2 = ratio(code_only, noop)
            row("2. code-only / no-op rebuild (imgtool)", f"{code_only:.2f} s vs {noop:.2f} s", r2, "≤ 2", r2 <= 2)

            # ---- the other servers' imgtool images (warm cache) ----
            server_tags = {"granian": imgtool_tag}
            server_sizes = {"granian": size_imgtool}
            for name in SERVERS:
                if name != "granian":
                    log(f"build: imgtool {name}")
                    server_tags[name] = run.tag(f"imgtool:{name}")
                    _, server_sizes[name] = run.imgtool_build(app_ctx, name, server_tags[name])
            results["sizes"]["per_server"] = server_sizes
            rows.append(
                (
                    "1. image size per server (distroless)",
                    ", ".join(f"{name} {size / 1e6:.0f} MB" for name, size in server_sizes.items()),
                    "-",
                    f"< the base ({base_size / 1e6:.0f} MB)",
                    "yes" if max(server_sizes.values()) < base_size else "**no**",
                )
            )

            with bench.Bench(run.client, run_id) as runner:
                # ---- 4: docker run -> first 200, interleaved starts ----
                log(f"time to first 200: {args.starts} starts of each of {len(server_tags) + 1} images")
                subjects = {name: bench.Subject(name=name, ref=tag) for name, tag in server_tags.items()}
                subjects["docker-init"] = bench.Subject(name="docker-init", ref=init_tag)
                starts: dict[str, list[float]] = {name: [] for name in subjects}
                for _ in range(args.starts):
                    for name, subject in subjects.items():
                        starts[name].append(runner.time_to_healthy(subject))
                medians = {name: bench.median(values) for name, values in starts.items()}
                results["first_200_seconds"] = {"median": medians, "all": starts}
                for name in server_tags:
                    r4 = ratio(medians[name], medians["docker-init"])
                    row(
                        f"4. run → first 200: {name} / docker-init",
                        f"{medians[name]:.2f} s vs {medians['docker-init']:.2f} s (median of {args.starts})",
                        r4,
                        "≤ 0.9",
                        r4 <= 0.9,
                    )

                # ---- 5: throughput, container vs host, interleaved per server ----
                log("host venv for the host-side servers")
                venv = run.host_venv()
                names = ["litestar", "uvicorn", "uvloop", "httptools", "hypercorn", "daphne", "twisted", "granian"]
                names += ["gunicorn", "uvicorn-worker"]
                results["versions"] = {"host": versions_on_host(venv, names)}
                results["versions"]["images"] = {
                    name: versions_in_image(run.client, run_id, tag, names) for name, tag in server_tags.items()
                }
                throughput: dict[str, dict] = {}
                for name, tag in server_tags.items():
                    log(f"throughput: {name} in its image, then on the host ({seconds:g} s each)")
                    measured = runner.measure(bench.Subject(name=name, ref=tag), generators, seconds, 32, "/")
                    if measured.error:
                        raise SystemExit(f"bench of {name} failed: {measured.error}")
                    argv = SERVERS[name].argv("app:app")
                    with run.host_server(venv, app_ctx, argv) as base_url:
                        host, _ = bench.measure_url(base_url, "/", False, generators, seconds, 32)
                    throughput[name] = {"image": measured.http1.as_dict(), "host": host.as_dict()}
                    r5 = ratio(measured.http1.requests_per_second, host.requests_per_second)
                    row(
                        f"5. req/s {name}: image / host",
                        f"{measured.http1.requests_per_second:,.0f} vs {host.requests_per_second:,.0f}",
                        r5,
                        "≥ 0.9",
                        r5 >= 0.9,
                    )
                log(f"throughput: uvicorn pure Python (--loop asyncio --http h11, {seconds:g} s)")
                uvicorn_argv = [*SERVERS["uvicorn"].argv("app:app")]
                uvicorn_argv[uvicorn_argv.index("--loop") + 1] = "asyncio"
                uvicorn_argv[uvicorn_argv.index("--http") + 1] = "h11"
                pure = runner.measure(
                    bench.Subject(name="uvicorn-h11", ref=server_tags["uvicorn"], command=tuple(uvicorn_argv)),
                    generators,
                    seconds,
                    32,
                    "/",
                )
                if pure.error:
                    raise SystemExit(f"bench of pure-Python uvicorn failed: {pure.error}")
                throughput["uvicorn-h11"] = {"image": pure.http1.as_dict()}
                results["throughput"] = throughput
                fast = throughput["uvicorn"]["image"]["requests_per_second"]
                slow = pure.http1.requests_per_second
                r5b = ratio(fast, slow)
                row("5. req/s uvicorn / uvicorn h11+asyncio", f"{fast:,.0f} vs {slow:,.0f}", r5b, "≥ 1.8", r5b >= 1.8)
                gran = throughput["granian"]["image"]["requests_per_second"]
                r5c = ratio(gran, fast)
                row("5. req/s granian / uvicorn (images)", f"{gran:,.0f} vs {fast:,.0f}", r5c, "≥ 1.0", r5c >= 1.0)

                # ---- 6: worker count ----
                log("worker counts: --cpuset-cpus 0, --cpus 1, no limit, WEB_CONCURRENCY=3")
                workers: dict[str, dict[str, int]] = {}
                host_cpus = len(os.sched_getaffinity(0))
                for name in ("granian", "uvicorn"):
                    subject = bench.Subject(name=name, ref=server_tags[name])
                    env3 = bench.Subject(name=name, ref=server_tags[name], environment={"WEB_CONCURRENCY": "3"})
                    workers[name] = {
                        "cpuset_cpus_0": count_workers(runner, subject),
                        "cpus_1": count_workers(runner, subject, cpuset_cpus=None, nano_cpus=1_000_000_000),
                        "no_limit": count_workers(runner, subject, cpuset_cpus=None),
                        "web_concurrency_3": count_workers(runner, env3, cpuset_cpus=None),
                    }
                    w = workers[name]
                    ok = w["cpuset_cpus_0"] == 1 and w["cpus_1"] == 1 and w["web_concurrency_3"] == 3
                    ok = ok and w["no_limit"] == host_cpus
                    rows.append(
                        (
                            f"6. workers {name}: cpuset 0 / --cpus 1 / none / WEB_CONCURRENCY=3",
                            f"{w['cpuset_cpus_0']} / {w['cpus_1']} / {w['no_limit']} / {w['web_concurrency_3']} "
                            f"(host has {host_cpus} CPUs)",
                            "-",
                            f"1 / 1 / {host_cpus} / 3",
                            "yes" if ok else "**no**",
                        )
                    )
                results["workers"] = workers
        except KeyboardInterrupt:
            log("interrupted: cleaning up")
            return 130
        finally:
            run.cleanup()

    results["rows"] = [dict(zip(("target", "measured", "ratio", "goal", "met"), r, strict=True)) for r in rows]
    results["wall_seconds"] = time.monotonic() - began
    args.output.write_text(json.dumps(results, indent=2) + "\n")
    print(f"One run of benchmarks/run.py ({run_id}); loads: {generators}; server on CPU 0, load on CPU 1.\n")
    print("| target | measured | ratio | goal | met |")
    print("|---|---|---|---|---|")
    for r in rows:
        print("| " + " | ".join(r) + " |")
    print(f"\nJSON: {args.output}; wall time {results['wall_seconds']:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
