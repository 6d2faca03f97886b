"""The smoke runner: owns container lifetimes (start, wait healthy, check, stop, remove).

Its containers follow the container contract (toolkit.containers): published on 127.0.0.1 only and
labelled `imgtool.test=<run id>`, so a run removes exactly what it started, also on Ctrl-C and on errors.
"""

from __future__ import annotations

import contextlib
import json
import ssl
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import docker
import docker.errors
import requests.exceptions
import trustme

from toolkit import containers
from toolkit.containers import Role
from toolkit.servers import WSGI_NOT_APPLICABLE, ServerSpec
from toolkit.smoke import checks
from toolkit.smoke.checks import CheckFailure, Target
from toolkit.smoke.model import CHECKS, CheckResult, ServerReport, Status

# Checks that use the reference app's routes (/info, /slow) beyond the health path. lifespan is
# different: on any other app it is probed in the image itself (lifespan_probe.py); ws runs on any
# app that names a WebSocket route (--ws-path, [tool.imgtool] ws-path).
REFERENCE_ONLY = {"graceful": "/slow"}
NO_WS_ROUTE = "needs a WebSocket route: --ws-path or [tool.imgtool] ws-path"
LIFESPAN_PROBE = (Path(__file__).parent / "lifespan_probe.py").read_text()
NO_LIFESPAN = "the app does not support lifespan"
CERT_DIR = "/certs"
DEFAULT_CLEAN_EXIT_CODES = frozenset({0, 143})
LOG_TAIL = 60


@dataclass(frozen=True)
class ImageUnderTest:
    """An image and what is known about it: from imgtool's labels, or from flags."""

    ref: str
    name: str
    port: int
    # None: no health route configured; GET / must answer below 500.
    health_path: str | None
    reference_routes: bool
    # The WebSocket route the ws check opens; None: the app names none.
    ws_path: str | None
    spec: ServerSpec | None
    app: str | None
    claimed: frozenset[str]
    limitations: dict[str, str] = field(default_factory=dict)
    environment: dict[str, str] = field(default_factory=dict)
    # The image's Python (its entrypoint's interpreter), for probes run inside it.
    python: str = "python3"
    # Checks that cannot apply to the image's app, whatever the server (a WSGI app's ws and lifespan), and why.
    not_applicable: dict[str, str] = field(default_factory=dict)


def describe_image(
    client: docker.DockerClient,
    ref: str,
    health_path: str | None = None,
    port: int | None = None,
    protocols: list[str] | None = None,
    environment: dict[str, str] | None = None,
    ws_path: str | None = None,
) -> ImageUnderTest:
    labels = containers.image_labels(client, ref)
    spec = labels.spec
    always = {"health", "nonroot", "readonly"}
    if protocols:
        claimed = frozenset(always | set(protocols))
    elif spec is not None:
        claimed = frozenset(always | spec.claims)
    else:
        claimed = frozenset(always | {"http1"})
    environment = dict(environment or {})
    if health_path:
        # The image's own HEALTHCHECK reads HEALTH_PATH at run time: the flag changes what Docker asks too.
        environment["HEALTH_PATH"] = health_path
    entrypoint = (client.images.get(ref).attrs.get("Config") or {}).get("Entrypoint") or []
    return ImageUnderTest(
        ref=ref,
        name=labels.name,
        port=port or labels.port,
        health_path=health_path or labels.health_path,
        reference_routes=labels.reference_routes,
        ws_path=ws_path or labels.ws_path,
        spec=spec,
        app=labels.app,
        claimed=claimed,
        limitations=dict(spec.limitations) if spec else {},
        environment=environment,
        python=entrypoint[0] if entrypoint and entrypoint[0].endswith(("/python", "/python3")) else "python3",
        not_applicable=dict(WSGI_NOT_APPLICABLE) if labels.interface == "wsgi" else {},
    )


def decide(check: str, claimed: bool, passed: bool, detail: str, limitation: str | None, seconds: float) -> CheckResult:
    """Map what happened onto the report: claims keep the registry honest in both directions."""
    if claimed:
        return CheckResult(check, Status.PASS if passed else Status.FAIL, detail, seconds)
    if passed:
        why = f" (registry says: {limitation})" if limitation else ""
        return CheckResult(check, Status.STALE, f"passed though not claimed{why}: update servers.py", seconds)
    return CheckResult(check, Status.NA, f"{limitation or 'not claimed'}; observed: {detail}", seconds)


def plan_checks(image: ImageUnderTest, selected: set[str]) -> dict[str, str | None]:
    """Each check → None to run it, or the reason it is skipped."""
    decisions: dict[str, str | None] = {}
    for check in CHECKS:
        if check in image.not_applicable:
            decisions[check] = image.not_applicable[check]
        elif check not in selected and check != "health":
            decisions[check] = "not selected"
        elif check in REFERENCE_ONLY and not image.reference_routes:
            decisions[check] = f"needs the reference app's {REFERENCE_ONLY[check]} route"
        elif check == "ws" and image.ws_path is None:
            decisions[check] = NO_WS_ROUTE
        elif check == "h2-tls" and (image.spec is None or image.app is None):
            decisions[check] = "needs an imgtool-built image (TLS flags come from the server registry)"
        elif check == "lifespan" and not image.reference_routes and image.app is None:
            decisions[check] = "needs the reference app's /info route, or an imgtool-built image to probe the app"
        else:
            decisions[check] = None
    return decisions


class Runner(containers.Run):
    def __init__(self, client: docker.DockerClient, run_id: str, timeout: float = 20.0, stop_timeout: float = 10.0):
        super().__init__(client, run_id)
        self.timeout = timeout
        self.stop_timeout = stop_timeout

    @contextlib.contextmanager
    def container(self, image: ImageUnderTest, role: Role, **options) -> Iterator[containers.Container]:
        """A started container that is always removed, with its logs kept in `self.logs`."""
        options["environment"] = {**image.environment, **options.get("environment", {})}
        # Same test command as the image's HEALTHCHECK, polled faster than the image's default.
        options["healthcheck"] = {"interval": 250_000_000}
        with self.start(image.ref, role, image.port, image.name, **options) as container:
            try:
                yield container
            finally:
                with contextlib.suppress(docker.errors.APIError, requests.exceptions.RequestException):
                    self.logs.append(f"--- {role} container logs ---\n" + _logs(container))

    def target(self, container, image: ImageUnderTest, tls: ssl.SSLContext | None = None) -> Target:
        try:
            port = containers.host_port(container, image.port)
        except containers.NotPublished as exc:
            raise CheckFailure(str(exc)) from None
        return Target(
            port=port,
            health_path=image.health_path,
            reference_routes=image.reference_routes,
            ws_path=image.ws_path,
            tls_context=tls,
        )

    def wait_healthy(self, container, target: Target) -> tuple[bool, str]:
        started = time.monotonic()
        health = "none"
        while time.monotonic() - started < self.timeout:
            container.reload()
            state = container.attrs["State"]
            if state["Status"] in ("exited", "dead"):
                return False, f"container exited with code {state['ExitCode']} before becoming healthy"
            health_state = state.get("Health")
            if health_state is None:
                return False, "the image has no HEALTHCHECK"
            health = health_state.get("Status", "none")
            if health == "healthy" and checks.probe_health(target):
                elapsed = time.monotonic() - started
                return True, f"healthy after {elapsed:.1f}s, GET {target.probe_path}: {target.health_rule}"
            if health == "unhealthy":
                last = (health_state.get("Log") or [{}])[-1].get("Output", "").strip()
                return False, f"Docker health status unhealthy: {last[:200]}"
            time.sleep(0.1)
        probe = target.health_rule if checks.probe_health(target) else f"not {target.health_rule}"
        last = ((container.attrs["State"].get("Health") or {}).get("Log") or [{}])[-1].get("Output", "").strip()
        said = f", its last check said: {last[:160]}" if last else ""
        return (
            False,
            f"not healthy within {self.timeout:.0f}s (Docker health: {health}{said}; GET {target.probe_path}: {probe})",
        )

    def run(
        self, image: ImageUnderTest, selected: set[str], progress: Callable[[str], None] = lambda _: None
    ) -> ServerReport:
        started = time.monotonic()
        self.logs: list[str] = []
        report = ServerReport(server=image.name, image=image.ref)
        plan = plan_checks(image, selected)
        outcomes: dict[str, tuple[bool, str, float]] = {}

        def attempt(check: str, action: Callable[[], str]) -> bool:
            progress(check)
            began = time.monotonic()
            try:
                detail, passed = action(), True
            except CheckFailure as exc:
                detail, passed = str(exc), False
            outcomes[check] = (passed, detail, time.monotonic() - began)
            return passed

        self._main_container(image, plan, attempt)
        if plan["h2-tls"] is None and outcomes.get("health", (False,))[0]:
            self._tls_container(image, attempt)
        if plan["readonly"] is None and outcomes.get("health", (False,))[0]:
            self._readonly_container(image, attempt)
        # Decided by the app, not by the server: reported as is, whatever the server claims.
        settled: dict[str, CheckResult] = {}
        if plan["lifespan"] is None and not image.reference_routes and outcomes.get("health", (False,))[0]:
            progress("lifespan")
            settled["lifespan"] = self._probe_lifespan(image)

        healthy = outcomes.get("health", (False,))[0]
        for check in CHECKS:
            skip_reason = plan[check]
            if check in image.not_applicable:
                report.results.append(CheckResult(check, Status.NA, image.not_applicable[check]))
            elif check in settled:
                report.results.append(settled[check])
            elif check in outcomes:
                passed, detail, seconds = outcomes[check]
                report.results.append(
                    decide(check, check in image.claimed, passed, detail, image.limitations.get(check), seconds)
                )
            elif skip_reason is not None:
                report.results.append(CheckResult(check, Status.SKIP, skip_reason))
            elif not healthy and check in image.claimed:
                report.results.append(CheckResult(check, Status.FAIL, "not run: the container never became healthy"))
            else:
                report.results.append(CheckResult(check, Status.SKIP, "not run: the container never became healthy"))
        report.seconds = time.monotonic() - started
        if report.failed:
            report.logs = "\n".join(self.logs)
        return report

    def _main_container(self, image: ImageUnderTest, plan: dict[str, str | None], attempt) -> None:
        with self.container(image, Role.MAIN) as container:
            try:
                target = self.target(container, image)
            except CheckFailure as exc:
                failure = exc
                attempt("health", lambda: _raise(failure))
                return

            def health() -> str:
                ok, detail = self.wait_healthy(container, target)
                if not ok:
                    raise CheckFailure(detail)
                return detail

            if not attempt("health", health):
                return
            startup_error = None
            reference_lifespan = plan["lifespan"] is None and image.reference_routes
            if reference_lifespan:
                try:
                    checks.lifespan_startup(target)
                except CheckFailure as exc:
                    startup_error = str(exc)
            if plan["nonroot"] is None:
                attempt("nonroot", lambda: checks.nonroot(container))
            for check in ("http1", "h2c", "ws"):
                if plan[check] is None:
                    attempt(check, lambda check=check: getattr(checks, check)(target))
            if plan["graceful"] is None:
                attempt("graceful", lambda: self._graceful(container, target, image))
            else:
                with contextlib.suppress(requests.exceptions.RequestException):
                    container.stop(timeout=int(self.stop_timeout))
            if reference_lifespan:
                attempt("lifespan", lambda: checks.lifespan_ran(container, startup_error))

    def _probe_lifespan(self, image: ImageUnderTest) -> CheckResult:
        """Drive one lifespan cycle against the app in a short container of the image (lifespan_probe.py).

        An app that refuses lifespan (Django, Channels) is `n/a`, whatever the server claims: the main
        container's health already showed that the server served it without. An app that speaks lifespan
        is `skip` here: seeing that the server ran it needs the reference app's /info route.
        """
        began = time.monotonic()
        assert image.app is not None
        container = self.client.containers.run(
            image.ref,
            entrypoint=[image.python, "-c", LIFESPAN_PROBE, image.app],
            command=[],
            detach=True,
            name=f"imgtool-test-{self.run_id}-{image.name.replace('/', '-').replace(':', '-')}-lifespan",
            labels=containers.run_labels(self.run_id, containers.Role.LIFESPAN),
            environment=image.environment,
            network_disabled=True,
        )
        try:
            try:
                container.wait(timeout=60)
            except requests.exceptions.RequestException:
                return CheckResult("lifespan", Status.SKIP, "the lifespan probe did not finish within 60 s")
            output = container.logs(stdout=True, stderr=False).decode(errors="replace").strip().splitlines()
        finally:
            with contextlib.suppress(docker.errors.NotFound):
                container.remove(force=True, v=True)
        seconds = time.monotonic() - began
        try:
            found = json.loads(output[-1])
            outcome, detail = found["outcome"], found["detail"]
        except (IndexError, ValueError, KeyError, TypeError):
            why = f"the lifespan probe printed no verdict: {output[-3:]}"
            return CheckResult("lifespan", Status.SKIP, why, seconds)
        if outcome == "unsupported":
            return CheckResult(
                "lifespan",
                Status.NA,
                f"{NO_LIFESPAN} (it raised {detail} on the lifespan scope); the server served it without",
                seconds,
                short=NO_LIFESPAN,
            )
        if outcome == "supported":
            why = "the app runs lifespan startup and shutdown; that the server ran them needs the reference app's /info"
            return CheckResult("lifespan", Status.SKIP, why, seconds)
        return CheckResult("lifespan", Status.SKIP, f"lifespan probe: {outcome}: {detail}", seconds)

    def _graceful(self, container, target: Target, image: ImageUnderTest) -> str:
        inflight = checks.InFlight(target)
        inflight.start()
        # Let the request reach the app before the signal (the route sleeps for 2 s).
        time.sleep(0.5)
        container.kill(signal="SIGTERM")
        time.sleep(0.2)
        late = checks.new_connection_after_signal(target)
        inflight.join(timeout=inflight.milliseconds / 1000 + 5)
        try:
            exit_code = container.wait(timeout=self.stop_timeout)["StatusCode"]
        except requests.exceptions.RequestException:
            container.kill()
            raise CheckFailure(f"still running {self.stop_timeout:.0f}s after SIGTERM") from None
        problems = [problem for problem in (inflight.verdict(),) if problem]
        clean = image.spec.clean_exit_codes if image.spec else DEFAULT_CLEAN_EXIT_CODES
        if exit_code not in clean:
            problems.append(f"exit code {exit_code} after SIGTERM (clean: {sorted(clean)})")
        if problems:
            raise CheckFailure("; ".join(problems))
        return f"in-flight 2 s request completed 200; new connection {late}; exit {exit_code}"

    def _tls_container(self, image: ImageUnderTest, attempt) -> None:
        assert image.spec is not None and image.app is not None
        authority = trustme.CA()
        with tempfile.TemporaryDirectory(prefix="imgtool-tls-") as certs:
            checks.write_certificate(authority, Path(certs))
            command = image.spec.tls_argv(image.app, f"{CERT_DIR}/cert.pem", f"{CERT_DIR}/key.pem")
            context = ssl.create_default_context()
            authority.configure_trust(context)
            with self.container(
                image,
                Role.TLS,
                command=command,
                environment={"HEALTH_SCHEME": "https"},
                volumes={certs: {"bind": CERT_DIR, "mode": "ro"}},
            ) as container:

                def h2_tls() -> str:
                    target = self.target(container, image, tls=context)
                    ok, detail = self.wait_healthy(container, target)
                    if not ok:
                        raise CheckFailure(f"TLS container: {detail}")
                    return checks.h2_tls(target)

                attempt("h2-tls", h2_tls)

    def _readonly_container(self, image: ImageUnderTest, attempt) -> None:
        hardened = {
            "read_only": True,
            "tmpfs": {"/tmp": "rw,size=64m"},
            "cap_drop": ["ALL"],
            "security_opt": ["no-new-privileges"],
        }
        with self.container(image, Role.READONLY, **hardened) as container:

            def readonly() -> str:
                target = self.target(container, image)
                ok, detail = self.wait_healthy(container, target)
                if not ok:
                    raise CheckFailure(f"with --read-only --cap-drop ALL: {detail}")
                checks.http1(target)
                return "healthy and HTTP/1.1 with a read-only root, tmpfs /tmp, no capabilities, no-new-privileges"

            attempt("readonly", readonly)


def _raise(exc: Exception) -> str:
    raise exc


def _logs(container) -> str:
    return container.logs(tail=LOG_TAIL).decode(errors="replace")
