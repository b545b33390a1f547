"""deploy/kubernetes and the Dockerfile: valid, consistent with each other and with the example.

The manifests are validated against the Kubernetes API schemas that the
``kubernetes-validate`` package ships (strict: unknown fields are errors),
with the network cut off, so nothing is fetched. The other tests check what
the schemas cannot: that the pieces agree (names, labels, ports, replica
count) and that the probes ask the example what the manifests say they do.
"""

from __future__ import annotations

import asyncio
import io
import re
import shlex
import socket
import subprocess
from collections.abc import AsyncIterator, Iterator
from pathlib import Path, PurePosixPath
from typing import Any

import kubernetes_validate
import pytest
import yaml
from grpc import aio
from grpc_health.v1 import health_pb2, health_pb2_grpc

from examples.storage.__main__ import LIVENESS, replica
from examples.storage.replica import Store
from examples.storage.workload import Console
from gorums_mw import System, with_nodes
from gorums_mw._health import _followers
from gorums_mw.testing import free_ports
from tests.reliability.replica_proc import parse_nodes

ROOT = Path(__file__).resolve().parents[2]
MANIFESTS = ROOT / "deploy" / "kubernetes"
Resource = dict[str, Any]

# The grpc probe is GA (on by default) since 1.27; check that and the newest schemas.
VERSIONS = ("1.27", kubernetes_validate.latest_version())
SERVING = health_pb2.HealthCheckResponse.SERVING
NOT_SERVING = health_pb2.HealthCheckResponse.NOT_SERVING


def load_resources() -> list[tuple[str, Resource]]:
    """Every document of every manifest, with its file name."""
    found = []
    for path in sorted(MANIFESTS.glob("*.yaml")):
        for document in yaml.safe_load_all(path.read_text()):
            if document:
                found.append((path.name, document))
    return found


@pytest.fixture(scope="module")
def resources() -> dict[str, Resource]:
    """The manifests' resources by kind (exactly one of each kind)."""
    by_kind: dict[str, Resource] = {}
    for _, resource in load_resources():
        assert resource["kind"] not in by_kind, f"two {resource['kind']}s"
        by_kind[resource["kind"]] = resource
    assert set(by_kind) == {"Service", "StatefulSet", "PodDisruptionBudget"}
    return by_kind


@pytest.fixture
def no_network(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Any connection or name lookup fails the test."""

    def refuse(*args: object, **kwargs: object) -> Any:
        raise AssertionError(f"network use during validation: {args!r}")

    for name in ("connect", "connect_ex"):
        monkeypatch.setattr(socket.socket, name, refuse)
    for name in ("create_connection", "getaddrinfo", "gethostbyname"):
        monkeypatch.setattr(socket, name, refuse)
    yield


@pytest.mark.parametrize("version", VERSIONS)
@pytest.mark.usefixtures("no_network")
def test_manifests_validate_offline_against_the_schemas(version: str) -> None:
    loaded = load_resources()
    assert len(loaded) == 3
    for filename, resource in loaded:
        try:
            kubernetes_validate.validate(resource, version, strict=True)
        except kubernetes_validate.ValidationError as exc:
            where = ".".join(str(part) for part in exc.path)
            pytest.fail(f"{filename}: {resource['kind']} invalid for {version} at {where}: {exc}")


def test_validation_rejects_a_mistake() -> None:
    """The validator is not vacuous: a misspelled field fails in strict mode."""
    (_, service), *_ = [item for item in load_resources() if item[1]["kind"] == "Service"]
    broken = {**service, "spec": {**service["spec"], "publishNotReadyAdresses": True}}
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(broken, VERSIONS[-1], strict=True)


# --- the pieces agree --------------------------------------------------------------------


def pod_spec(resources: dict[str, Resource]) -> Resource:
    spec: Resource = resources["StatefulSet"]["spec"]["template"]["spec"]
    return spec


def container(resources: dict[str, Resource]) -> Resource:
    (only,) = pod_spec(resources)["containers"]
    return dict(only)


def container_port(resources: dict[str, Resource]) -> int:
    (port,) = container(resources)["ports"]
    return int(port["containerPort"])


def script(resources: dict[str, Resource]) -> str:
    """The container's shell script (``sh -ec SCRIPT``)."""
    c = container(resources)
    assert c["command"] == ["/bin/sh", "-ec"]
    (text,) = c["args"]
    return str(text)


def flag(resources: dict[str, Resource], name: str) -> str:
    words = shlex.split(script(resources))
    return words[words.index(name) + 1]


def test_service_is_headless_and_publishes_not_ready_addresses(
    resources: dict[str, Resource],
) -> None:
    service = resources["Service"]
    assert service["spec"]["clusterIP"] == "None"
    assert service["spec"]["publishNotReadyAddresses"] is True
    (port,) = service["spec"]["ports"]
    assert port["port"] == container_port(resources)
    assert port["targetPort"] in ("grpc", container_port(resources))


def test_statefulset_is_governed_by_the_service_and_starts_pods_together(
    resources: dict[str, Resource],
) -> None:
    sts = resources["StatefulSet"]["spec"]
    assert sts["serviceName"] == resources["Service"]["metadata"]["name"]
    # OrderedReady would wait for a lone store-0 to be Ready: it never is (no quorum).
    assert sts["podManagementPolicy"] == "Parallel"


def test_selectors_match_the_pods(resources: dict[str, Resource]) -> None:
    labels = resources["StatefulSet"]["spec"]["template"]["metadata"]["labels"]
    selectors = {
        "StatefulSet": resources["StatefulSet"]["spec"]["selector"]["matchLabels"],
        "PodDisruptionBudget": resources["PodDisruptionBudget"]["spec"]["selector"]["matchLabels"],
        "Service": resources["Service"]["spec"]["selector"],
    }
    for kind, selector in selectors.items():
        assert selector, kind
        assert selector.items() <= labels.items(), f"{kind} selector {selector} vs {labels}"
    assert "matchExpressions" not in resources["PodDisruptionBudget"]["spec"]["selector"]


def test_disruption_budget_keeps_a_quorum(resources: dict[str, Resource]) -> None:
    replicas = resources["StatefulSet"]["spec"]["replicas"]
    quorum = replicas // 2 + 1
    budget = resources["PodDisruptionBudget"]["spec"]
    if "minAvailable" in budget:
        assert budget["minAvailable"] == quorum
    else:
        assert budget["maxUnavailable"] == replicas - quorum


def test_probes_ask_the_health_service_on_the_replica_port(
    resources: dict[str, Resource],
) -> None:
    c = container(resources)
    port = container_port(resources)
    readiness, liveness = c["readinessProbe"], c["livenessProbe"]
    for probe in (readiness, liveness):
        assert set(probe) & {"grpc", "httpGet", "tcpSocket", "exec"} == {"grpc"}
        assert probe["grpc"]["port"] == port
    # Ready: the whole server's status (""), which follows the quorum.
    assert readiness["grpc"].get("service", "") == ""
    # Alive: a status that stays SERVING when the quorum is lost.
    assert liveness["grpc"]["service"] == LIVENESS


def test_nodes_are_the_pods_stable_names(resources: dict[str, Resource]) -> None:
    sts = resources["StatefulSet"]
    service_name = resources["Service"]["metadata"]["name"]
    port = container_port(resources)
    nodes = parse_nodes(flag(resources, "--nodes"))
    replicas = sts["spec"]["replicas"]
    assert replicas == len(nodes) == 3
    assert sorted(nodes) == list(range(1, replicas + 1))
    for node_id, address in nodes.items():
        # Names in the Service's domain (never IPs): pod store-N is node N+1.
        assert address == f"{sts['metadata']['name']}-{node_id - 1}.{service_name}:{port}"
    assert flag(resources, "--listen") == f"0.0.0.0:{port}"


def test_each_replica_keeps_its_register_on_its_own_volume(
    resources: dict[str, Resource],
) -> None:
    data = PurePosixPath(flag(resources, "--data"))
    (mount,) = container(resources)["volumeMounts"]
    assert data.is_relative_to(mount["mountPath"])
    (claim,) = resources["StatefulSet"]["spec"]["volumeClaimTemplates"]
    assert claim["metadata"]["name"] == mount["name"]
    assert claim["spec"]["accessModes"] == ["ReadWriteOnce"]
    # The replica does not run as root: the volume must be writable by its group.
    security = pod_spec(resources)["securityContext"]
    assert security["fsGroup"] == security["runAsGroup"]


@pytest.mark.parametrize(("pod", "node_id"), [("store-0", 1), ("store-1", 2), ("store-2", 3)])
def test_node_id_is_the_pod_ordinal_plus_one(
    resources: dict[str, Resource], tmp_path: Path, pod: str, node_id: int
) -> None:
    # Run the container's script with a stand-in python that prints its arguments.
    fake = tmp_path / "python"
    fake.write_text('#!/bin/sh\nprintf "%s\\n" "$@"\n')
    fake.chmod(0o755)
    (env,) = container(resources)["env"]
    assert env["valueFrom"]["fieldRef"]["fieldPath"] == "metadata.name"
    result = subprocess.run(
        ["/bin/sh", "-ec", script(resources)],
        env={"PATH": f"{tmp_path}:/usr/bin:/bin", env["name"]: pod},
        capture_output=True,
        text=True,
        timeout=10,
        check=True,
    )
    argv = result.stdout.splitlines()
    assert argv[:2] == ["-m", "examples.storage"]
    assert argv[argv.index("--id") + 1] == str(node_id)


# --- the image ---------------------------------------------------------------------------


def test_dockerfile_builds_the_example_from_the_repository(resources: dict[str, Resource]) -> None:
    dockerfile = (ROOT / "Dockerfile").read_text()
    instructions = [
        line for line in dockerfile.replace("\\\n", " ").splitlines() if line and line[0] != "#"
    ]
    assert instructions[0] == "FROM python:3.11-slim"
    allowed = {
        line.removeprefix("!").rstrip("/")
        for line in (ROOT / ".dockerignore").read_text().splitlines()
        if line.startswith("!")
    }
    copies = [line.split()[1:-1] for line in instructions if line.startswith("COPY ")]
    assert copies
    for sources in copies:
        for source in sources:
            name = source.rstrip("/")
            assert (ROOT / name).exists(), source
            assert name in allowed, f"{source} is excluded by .dockerignore"
    assert re.search(r"^RUN pip install /src\b", dockerfile, re.MULTILINE)
    assert 'ENTRYPOINT ["python", "-m", "examples.storage"]' in instructions
    assert f"EXPOSE {container_port(resources)}" in instructions
    image = container(resources)["image"]
    assert image.startswith("gorums-mw-storage:")


# --- the probes mean what the manifests say ------------------------------------------------


@pytest.fixture
async def lone_replica() -> AsyncIterator[tuple[System, str, dict[int, str]]]:
    """Replica 1 of 3 of the storage example, started alone (no quorum)."""
    nodes = {i: f"127.0.0.1:{port}" for i, port in enumerate(free_ports(3), start=1)}
    console = Console(stdout=io.StringIO(), stderr=io.StringIO())
    system = (await replica(1, with_nodes(nodes), Store(), console)).system
    await system.start()
    try:
        yield system, nodes[1], nodes
    finally:
        await system.stop(None)
        await asyncio.wait_for(asyncio.gather(*_followers), 5)


@pytest.mark.timeout(30)
async def test_liveness_stays_serving_while_readiness_follows_the_quorum(
    lone_replica: tuple[System, str, dict[int, str]],
) -> None:
    _, address, nodes = lone_replica
    async with aio.insecure_channel(address) as channel:
        health = health_pb2_grpc.HealthStub(channel)

        async def status(service: str) -> int:
            reply = await health.Check(health_pb2.HealthCheckRequest(service=service), timeout=5)
            return int(reply.status)

        assert await status("") == NOT_SERVING  # 1 of 3: not ready
        assert await status(LIVENESS) == SERVING  # but alive

        watch = health.Watch(health_pb2.HealthCheckRequest(service=""), timeout=20)
        assert (await asyncio.wait_for(watch.read(), 10)).status == NOT_SERVING
        console = Console(stdout=io.StringIO(), stderr=io.StringIO())
        peer = (await replica(2, with_nodes(nodes), Store(), console)).system
        await peer.start()
        try:
            assert (await asyncio.wait_for(watch.read(), 10)).status == SERVING  # 2 of 3
            assert await status(LIVENESS) == SERVING
        finally:
            watch.cancel()
            await peer.stop(None)


def test_the_schemas_ship_inside_the_package() -> None:
    schemas = Path(kubernetes_validate.__file__).parent / "kubernetes-json-schema"
    for version in VERSIONS:
        assert list(schemas.glob(f"v{version}*-local-strict/statefulset-apps-v1.json")), version
