"""deploy/: the Kubernetes manifests, the systemd units and the Dockerfile's command.

Offline checks: the manifests validate against Kubernetes' own schemas (kubernetes-validate
ships them) and agree with the server's settings; the units pass `systemd-analyze verify`
and ask for what the master does (Type=notify, socket activation); and the Dockerfile's
exact CMD, run as a local process with the environment the Dockerfile sets, serves its
health and readiness probes.
"""
from __future__ import annotations

import json
import os
import posixpath
import re
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from catzilla.cli import _parser
from catzilla.config import Config
from conftest import ROOT, free_port

DEPLOY = ROOT / "deploy"
K8S = DEPLOY / "kubernetes"
SYSTEMD = DEPLOY / "systemd"
DOCKERFILE = DEPLOY / "Dockerfile"
TIMEOUT = 10.0


def settings(argv: list[str], environ: dict[str, str]) -> tuple[str, Config]:
    """(app target, effective Config) of a `catzilla run ...` command line, parsed by
    catzilla's own argument parser, with `environ` as the environment."""
    assert Path(argv[0]).name == "catzilla" and argv[1] == "run", argv
    args = _parser().parse_args(argv[1:])
    overrides = {name: getattr(args, name) for name in Config.__dataclass_fields__}
    return args.app, Config.from_env(environ, **overrides)


# -- Dockerfile ------------------------------------------------------------------------------


def dockerfile() -> dict[str, Any]:
    """The instructions that matter here: ENV, final WORKDIR, USER, EXPOSE, the command, and
    where each COPY put repository paths in the image."""
    text = re.sub(r"\\\n", " ", DOCKERFILE.read_text())
    env: dict[str, str] = {}
    workdir = "/"
    copies: dict[str, str] = {}  # image path -> repository path
    result: dict[str, Any] = {"entrypoint": [], "cmd": [], "user": None, "expose": []}
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        instruction, _, rest = line.partition(" ")
        instruction, rest = instruction.upper(), rest.strip()
        if instruction == "ENV":
            words = shlex.split(rest)
            if words and "=" not in words[0]:  # legacy form: ENV KEY value with spaces
                env[words[0]] = rest.split(None, 1)[1]
            else:
                env.update(word.split("=", 1) for word in words)  # type: ignore[arg-type]
        elif instruction == "WORKDIR":
            workdir = posixpath.normpath(posixpath.join(workdir, rest))
        elif instruction == "COPY":
            *sources, raw_dest = [w for w in shlex.split(rest) if not w.startswith("--")]
            dest = posixpath.normpath(posixpath.join(workdir, raw_dest))
            for source in sources:
                into = len(sources) > 1 or raw_dest.endswith("/")
                copies[posixpath.join(dest, posixpath.basename(source)) if into else dest] = source
        elif instruction in ("CMD", "ENTRYPOINT"):
            argv = json.loads(rest) if rest.startswith("[") else ["/bin/sh", "-c", rest]
            result[instruction.lower()] = argv
        elif instruction == "USER":
            result["user"] = rest
        elif instruction == "EXPOSE":
            result["expose"] += [int(p.split("/")[0]) for p in rest.split()]
    result.update(env=env, workdir=workdir, copies=copies)
    result["argv"] = result["entrypoint"] + result["cmd"]
    return result


def local_path(image_path: str, copies: dict[str, str]) -> Path:
    """The repository directory that a COPY put at `image_path` in the image."""
    for target, source in sorted(copies.items(), key=lambda kv: -len(kv[0])):
        if image_path == target or image_path.startswith(target + "/"):
            return ROOT / source / posixpath.relpath(image_path, target)
    raise AssertionError(f"{image_path} is not a path the Dockerfile copied: {copies}")


def test_dockerfile_cmd_serves_its_probes() -> None:
    image = dockerfile()
    argv = image["argv"]
    assert argv[:2] == ["catzilla", "run"], argv
    env = {k: v for k, v in os.environ.items()
           if not k.startswith("CATZILLA_") and k not in ("WEB_CONCURRENCY", "PYTHONPATH")}
    env.update(image["env"])
    # Port 8000 may be taken on a shared test machine: the same setting, another port.
    port = free_port()
    env["CATZILLA_PORT"] = str(port)
    health, ready = env["CATZILLA_HEALTH_PATH"], env["CATZILLA_READY_PATH"]
    cwd = local_path(image["workdir"], image["copies"])
    assert cwd.is_dir(), cwd
    resolved = shutil.which(argv[0], path=env.get("PATH")) or str(Path(sys.executable).parent / argv[0])
    log = tempfile.NamedTemporaryFile(prefix="catzilla-docker-", suffix=".log", delete=False)
    proc = subprocess.Popen([resolved, *argv[1:]], cwd=cwd, env=env, stdout=log,
                            stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 30
        status = None
        while time.monotonic() < deadline and proc.poll() is None:
            try:
                r = httpx.get(f"http://127.0.0.1:{port}{health}", timeout=2)
                status = r.status_code
                if status == 200:
                    break
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        logs = Path(log.name).read_text()
        assert status == 200, f"no 200 from {health}:\n{logs}"
        assert r.json() == {"status": "alive"}
        r = httpx.get(f"http://127.0.0.1:{port}{ready}", timeout=TIMEOUT)
        assert (r.status_code, r.json()) == (200, {"status": "ready"})
        # CATZILLA_HOST=0.0.0.0: a pod is reached on its own address, not only loopback.
        assert f"listening on http://0.0.0.0:{port}" in logs
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(20) == 0
        logs = Path(log.name).read_text()
        if image["env"].get("CATZILLA_LOG_FORMAT") == "json":
            for line in filter(str.strip, logs.splitlines()):
                assert isinstance(json.loads(line), dict), line
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        log.close()
        os.unlink(log.name)


def test_dockerfile_app_and_port_are_consistent() -> None:
    image = dockerfile()
    target, config = settings(image["argv"], image["env"])
    module = target.split(":")[0]
    app_dir = local_path(image["workdir"], image["copies"])
    assert (app_dir / (module.replace(".", "/") + ".py")).is_file(), f"{module} not in {app_dir}"
    assert config.port in image["expose"]
    assert config.host == "0.0.0.0"
    assert config.health_path and config.ready_path
    assert image["user"] and not image["user"].startswith("0"), "the image runs as root"


# -- Kubernetes -----------------------------------------------------------------------------


def manifests() -> dict[str, dict[str, Any]]:
    docs = {}
    for path in sorted(K8S.glob("*.yaml")):
        for doc in yaml.safe_load_all(path.read_text()):
            if doc:
                docs[doc["kind"]] = doc
    return docs


@pytest.mark.parametrize("path", sorted(p.name for p in K8S.glob("*.yaml")))
def test_kubernetes_manifests_validate_against_the_schemas(path: str) -> None:
    import kubernetes_validate  # the `test` extra; bundled schemas, no cluster, no network

    docs = [d for d in yaml.safe_load_all((K8S / path).read_text()) if d]
    assert docs
    version = kubernetes_validate.latest_version()
    for doc in docs:
        kubernetes_validate.validate(doc, version, strict=True)  # raises on any error


def test_kubernetes_validation_catches_mistakes() -> None:
    """The validator is not a no-op: a misspelt field and a wrong type are refused."""
    import kubernetes_validate

    version = kubernetes_validate.latest_version()
    deployment = manifests()["Deployment"]
    container = deployment["spec"]["template"]["spec"]["containers"][0]
    container["livenessProbe"]["httpGet"]["pth"] = container["livenessProbe"]["httpGet"].pop("path")
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(deployment, version, strict=True)
    deployment = manifests()["Deployment"]
    deployment["spec"]["template"]["spec"]["terminationGracePeriodSeconds"] = "forty"
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(deployment, version, strict=True)


def container_settings(container: dict[str, Any]) -> tuple[str, Config, dict[str, Any]]:
    env_list = container.get("env", [])
    plain = {e["name"]: str(e["value"]) for e in env_list if "value" in e}
    image = dockerfile()
    if "command" in container:  # replaces the image's ENTRYPOINT and CMD
        argv = [*container["command"], *container.get("args", [])]
    elif "args" in container:  # replaces the image's CMD
        argv = [*image["entrypoint"], *container["args"]]
    else:
        argv = image["argv"]
    target, config = settings(argv, {**image["env"], **plain})
    return target, config, {e["name"]: e for e in env_list}


def test_deployment_agrees_with_the_server_settings() -> None:
    docs = manifests()
    deployment = docs["Deployment"]
    pod = deployment["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    target, config, env = container_settings(container)

    # The app is the one the image holds (no workingDir: the image's WORKDIR applies).
    image = dockerfile()
    workdir = container.get("workingDir", image["workdir"])
    module = target.split(":")[0]
    assert (local_path(workdir, image["copies"]) / f"{module}.py").is_file()

    # Probes hit the paths the server answers, on the port it listens on.
    ports = {p["name"]: p["containerPort"] for p in container["ports"]}
    assert config.health_path and config.ready_path
    assert container["livenessProbe"]["httpGet"]["path"] == config.health_path
    assert container["readinessProbe"]["httpGet"]["path"] == config.ready_path
    if "startupProbe" in container:
        assert container["startupProbe"]["httpGet"]["path"] == config.health_path
    for probe in ("livenessProbe", "readinessProbe", "startupProbe"):
        if probe in container:
            port = container[probe]["httpGet"]["port"]
            assert ports.get(port, port) == config.port, probe
    assert config.host not in ("127.0.0.1", "localhost", "::1"), "a pod must listen beyond loopback"

    # Kubernetes waits longer than the server's graceful stop plus the preStop pause.
    pre_stop = container["lifecycle"]["preStop"]
    assert pre_stop, "no preStop hook"
    pause = 0.0
    command = pre_stop.get("exec", {}).get("command", [])
    if command[:1] == ["sleep"]:
        pause = float(command[1])
    elif "sleep" in pre_stop:
        pause = float(pre_stop["sleep"]["seconds"])
    assert pause > 0, pre_stop
    grace = pod["terminationGracePeriodSeconds"]
    assert grace > config.graceful_timeout + pause, (grace, config.graceful_timeout, pause)

    # Requests (the HPA's utilisation is relative to them) and the worker count.
    requests = container["resources"]["requests"]
    assert requests.get("cpu") and requests.get("memory")
    assert container["resources"].get("limits", {}).get("cpu")
    concurrency = env["WEB_CONCURRENCY"]
    if "valueFrom" in concurrency:
        ref = concurrency["valueFrom"]["resourceFieldRef"]
        assert ref["resource"] == "limits.cpu"
        assert str(ref.get("divisor", "1")) == "1"
    else:
        assert int(concurrency["value"]) >= 1

    # The image's non-root user, and labels that tie the pieces together.
    security = pod.get("securityContext", {})
    assert security.get("runAsNonRoot") is True
    if image["user"]:
        assert str(security.get("runAsUser")) == image["user"].split(":")[0]
    labels = deployment["spec"]["template"]["metadata"]["labels"]
    assert deployment["spec"]["selector"]["matchLabels"].items() <= labels.items()

    service = docs["Service"]
    assert service["spec"]["selector"].items() <= labels.items()
    for port in service["spec"]["ports"]:
        target_port = port["targetPort"]
        assert target_port in ports or target_port == config.port, target_port

    hpa = docs["HorizontalPodAutoscaler"]
    ref = hpa["spec"]["scaleTargetRef"]
    assert (ref["kind"], ref["name"]) == ("Deployment", deployment["metadata"]["name"])
    assert hpa["spec"]["minReplicas"] <= hpa["spec"]["maxReplicas"]


# -- systemd -----------------------------------------------------------------------------------


def unit(path: Path) -> dict[str, dict[str, list[str]]]:
    """A unit file: section -> key -> values (keys may repeat), continuations joined."""
    sections: dict[str, dict[str, list[str]]] = {}
    current = None
    text = re.sub(r"\\\n", " ", path.read_text())
    for number, line in enumerate(text.splitlines(), 1):
        line = line.strip()
        if not line or line[0] in "#;":
            continue
        if line.startswith("[") and line.endswith("]"):
            current = sections.setdefault(line[1:-1], {})
            continue
        assert current is not None and "=" in line, f"{path.name}:{number}: {line!r}"
        key, _, value = line.partition("=")
        current.setdefault(key.strip(), []).append(value.strip())
    return sections


def test_systemd_units_ask_for_what_the_master_does() -> None:
    service = unit(SYSTEMD / "catzilla.service")
    socket_unit = unit(SYSTEMD / "catzilla.socket")
    svc = service["Service"]
    assert svc["Type"] == ["notify"]
    assert svc.get("NotifyAccess", ["main"])[-1] in ("main", "all")
    environ = {}
    for value in svc.get("Environment", []):
        environ.update(word.split("=", 1) for word in shlex.split(value))  # type: ignore[arg-type]
    int(environ.get("WEB_CONCURRENCY", "1"))
    (exec_start,) = svc["ExecStart"]
    argv = shlex.split(exec_start)
    assert Path(argv[0]).is_absolute(), "systemd wants an absolute ExecStart path"
    target, config = settings(argv, environ)
    assert re.fullmatch(r"[\w.]+:[\w.]+", target)
    assert float(svc["TimeoutStopSec"][-1]) > config.graceful_timeout
    assert "-HUP" in svc["ExecReload"][-1] and "$MAINPID" in svc["ExecReload"][-1]
    # The socket is the service's: same name, required and ordered before it.
    assert "catzilla.socket" in service["Unit"]["Requires"][-1].split()
    assert "catzilla.socket" in " ".join(service["Unit"].get("After", [])).split()
    sock = socket_unit["Socket"]
    assert sock["ListenStream"], "no listening address"
    assert sock.get("Accept", ["no"])[-1].lower() in ("no", "false"), \
        "Accept=yes would start one server per connection"
    assert "Service" not in sock or sock["Service"] == ["catzilla.service"]


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="systemd-analyze not installed")
def test_systemd_analyze_verify(tmp_path: Path) -> None:
    # verify insists the ExecStart binary exists: point it at this machine's catzilla.
    catzilla = shutil.which("catzilla") or str(Path(sys.executable).parent / "catzilla")
    for name in ("catzilla.service", "catzilla.socket"):
        text = (SYSTEMD / name).read_text()
        text = re.sub(r"^(ExecStart=)\S*/catzilla ", rf"\g<1>{catzilla} ", text, flags=re.M)
        (tmp_path / name).write_text(text)
    proc = subprocess.run(["systemd-analyze", "verify", "--man=no",
                           str(tmp_path / "catzilla.service"), str(tmp_path / "catzilla.socket")],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr.strip() == "", proc.stderr  # unknown keys and bad values only warn
