"""deploy/kubernetes, checked offline: every manifest against the Kubernetes JSON schemas
(kubernetes-validate, strict: unknown fields are errors), KEDA's objects against the fields KEDA
documents, the kustomizations' references, and the deployment rules the README states."""

from __future__ import annotations

from pathlib import Path

import jsonschema
import kubernetes_validate
import pytest
import yaml
from django.conf import settings

ROOT = Path(__file__).resolve().parents[2]
KUBE = ROOT / "deploy" / "kubernetes"
KUBERNETES_VERSION = "1.30.0"  # the oldest release the manifests promise to work on

# KEDA's CRDs cannot be fetched here (no registry but PyPI, npm and Debian answers): the fields
# below are those of KEDA 2.x's ScaledObject and TriggerAuthentication reference (keda.sh/docs).
_KEDA = {
    "ScaledObject": {
        "type": "object",
        "required": ["scaleTargetRef", "triggers"],
        "additionalProperties": False,
        "properties": {
            "scaleTargetRef": {
                "type": "object",
                "required": ["name"],
                "additionalProperties": False,
                "properties": {
                    k: {"type": "string"} for k in ("name", "apiVersion", "kind", "envSourceContainerName")
                },
            },
            **{
                k: {"type": "integer", "minimum": 0}
                for k in (
                    "minReplicaCount",
                    "maxReplicaCount",
                    "pollingInterval",
                    "cooldownPeriod",
                    "idleReplicaCount",
                )
            },  # fmt: skip
            "triggers": {
                "type": "array",
                "minItems": 1,
                "items": {
                    "type": "object",
                    "required": ["type", "metadata"],
                    "additionalProperties": False,
                    "properties": {
                        "type": {"type": "string"},
                        "name": {"type": "string"},
                        "metadata": {"type": "object", "additionalProperties": {"type": "string"}},
                        "authenticationRef": {
                            "type": "object",
                            "required": ["name"],
                            "properties": {"name": {"type": "string"}, "kind": {"type": "string"}},
                        },
                    },
                },
            },
        },
    },
    "TriggerAuthentication": {
        "type": "object",
        "additionalProperties": False,
        "properties": {
            "secretTargetRef": {
                "type": "array",
                "items": {
                    "type": "object",
                    "required": ["parameter", "name", "key"],
                    "additionalProperties": False,
                    "properties": {k: {"type": "string"} for k in ("parameter", "name", "key")},
                },
            }
        },
    },
}


def _documents() -> list[tuple[Path, dict]]:
    docs = []
    for path in sorted(KUBE.rglob("*.yaml")):
        if path.name == "kustomization.yaml":
            continue
        docs += [(path, doc) for doc in yaml.safe_load_all(path.read_text()) if doc]
    return docs


def _pod_specs():
    for path, doc in _documents():
        if doc["kind"] in ("Deployment", "Job"):
            yield path, doc["metadata"]["name"], doc["spec"]["template"]["spec"]


def test_there_is_something_to_check():
    kinds = {doc["kind"] for _, doc in _documents()}
    assert {"Deployment", "Service", "Ingress", "Job", "PodDisruptionBudget", "NetworkPolicy"} <= kinds
    assert {"ScaledObject", "TriggerAuthentication", "HorizontalPodAutoscaler", "ConfigMap"} <= kinds


@pytest.mark.parametrize(
    ("path", "doc"), _documents(), ids=lambda v: v.name if isinstance(v, Path) else v["kind"]
)
def test_every_manifest_is_valid(path, doc):
    if doc["apiVersion"].startswith("keda.sh/"):
        assert doc["apiVersion"] == "keda.sh/v1alpha1"
        assert set(doc) <= {"apiVersion", "kind", "metadata", "spec"} and doc["metadata"]["name"]
        jsonschema.validate(doc["spec"], _KEDA[doc["kind"]])
    else:
        kubernetes_validate.validate(doc, KUBERNETES_VERSION, strict=True)


def test_a_broken_manifest_is_refused():
    """The check can fail: a misspelt field and a wrong type are errors."""
    _, web = next((p, d) for p, d in _documents() if d["kind"] == "Deployment")
    broken = yaml.safe_load(yaml.safe_dump(web))
    broken["spec"]["replica"] = 2
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(broken, KUBERNETES_VERSION, strict=True)
    scaled = next(d for _, d in _documents() if d["kind"] == "ScaledObject")
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate({**scaled["spec"], "maxReplicaCount": "many"}, _KEDA["ScaledObject"])


def test_the_kustomizations_reference_what_exists():
    for kustomization in KUBE.rglob("kustomization.yaml"):
        spec = yaml.safe_load(kustomization.read_text())
        for resource in spec.get("resources", []):
            assert (kustomization.parent / resource).exists(), (kustomization, resource)
        for generator in spec.get("secretGenerator", []):
            for env in generator.get("envs", []):
                assert (kustomization.parent / f"{env}.example").exists()  # the real one is never committed
    listed = yaml.safe_load((KUBE / "base" / "kustomization.yaml").read_text())["resources"]
    assert sorted(listed) == sorted(
        p.name for p in (KUBE / "base").glob("*.yaml") if p.name != "kustomization.yaml"
    )


def test_only_workers_see_the_docker_socket_and_everything_runs_as_non_root():
    for _path, name, pod in _pod_specs():
        sockets = [v for v in pod.get("volumes", []) if "docker.sock" in str(v.get("hostPath", {}))]
        assert bool(sockets) == (
            name in ("lambdasite-worker", "lambdasite-worker-eu", "lambdasite-build-worker")
        ), name
        assert pod["securityContext"]["runAsNonRoot"] is True and pod["securityContext"]["runAsUser"] != 0
        for container in pod["containers"]:
            assert container["securityContext"]["allowPrivilegeEscalation"] is False
            assert container["resources"]["requests"] and container["resources"]["limits"], (
                name,
                container["name"],
            )
            for source in container.get("envFrom", []):
                assert set(source) <= {"configMapRef", "secretRef"}
    assert not [d for _, d in _documents() if d["kind"] == "Secret"]  # secrets come from the environment


def test_only_web_is_reachable_and_is_probed_on_healthz_and_readyz():
    services = [d for _, d in _documents() if d["kind"] == "Service"]
    assert [s["metadata"]["name"] for s in services] == ["lambdasite-web"]
    policies = {d["metadata"]["name"]: d["spec"] for _, d in _documents() if d["kind"] == "NetworkPolicy"}
    deny = policies["lambdasite-deny-ingress"]
    assert (
        deny["podSelector"]["matchLabels"] == {"app.kubernetes.io/part-of": "lambdasite"}
        and "ingress" not in deny
    )
    base = yaml.safe_load((KUBE / "base" / "kustomization.yaml").read_text())
    assert base["labels"][0]["includeTemplates"] is True  # the pods carry the label the policy selects
    allow = policies["lambdasite-web-ingress"]
    assert allow["podSelector"]["matchLabels"] == {"app.kubernetes.io/name": "lambdasite-web"}
    web = next(pod for _, name, pod in _pod_specs() if name == "lambdasite-web")["containers"][0]
    assert web["livenessProbe"]["httpGet"]["path"] == "/healthz"
    assert web["readinessProbe"]["httpGet"]["path"] == "/readyz"


def test_web_is_ready_on_its_own_and_builds_have_their_own_workers():
    """/readyz checks only PostgreSQL and Redis (a Redis flush or no worker never takes web pods out
    of the Service); job workers never build, a build worker Deployment does."""
    from lambdasite.views import READINESS_CHECKS

    assert set(READINESS_CHECKS) == {"database", "redis"}
    pods = {name: pod for _, name, pod in _pod_specs()}
    assert pods["lambdasite-worker"]["containers"][0]["command"] == ["python", "manage.py", "worker"]
    builder = pods["lambdasite-build-worker"]
    assert builder["containers"][0]["command"] == ["python", "manage.py", "worker", "--builds"]
    assert builder["nodeSelector"] == pods["lambdasite-worker"]["nodeSelector"]  # next to the cells
    # builders have network none: their proxy's socket is in an emptyDir the node's engine sees by path
    env = {e["name"]: e.get("value") for e in builder["containers"][0]["env"]}
    assert env["BUILD_PROXY_DIR"] == "/build-proxy"
    assert env["BUILD_PROXY_HOST_DIR"].endswith("/volumes/kubernetes.io~empty-dir/build-proxy")
    assert {"name": "build-proxy", "emptyDir": {}} in builder["volumes"]
    # cells have network none: a worker's egress doors are in an emptyDir the engine sees by path too
    worker = pods["lambdasite-worker"]
    env = {e["name"]: e.get("value") for e in worker["containers"][0]["env"]}
    assert (
        env["EGRESS_DIR"] == "/egress"
        and {"name": "egress", "mountPath": "/egress"} in (worker["containers"][0]["volumeMounts"])
    )
    assert env["EGRESS_HOST_DIR"] == "/var/lib/kubelet/pods/$(POD_UID)/volumes/kubernetes.io~empty-dir/egress"
    assert {"name": "egress", "emptyDir": {}} in worker["volumes"]
    for name, pod in pods.items():
        for container in pod["containers"]:
            assert "readinessProbe" not in container or name == "lambdasite-web", name
    config = next(d for _, d in _documents() if d["kind"] == "ConfigMap")
    assert "READYZ_CHECK_DOCKER" not in config["data"]


def test_keda_watches_the_queue_the_workers_take_jobs_from():
    """One ScaledObject per worker Deployment, each on the RQ list of the pool its workers serve
    (``jobs.pools.queue_name``): the base's on the default pool's, the eu pool's on ``jobs.eu``."""
    from jobs.pools import DEFAULT_POOL, queue_name

    workers = {name: pod for _, name, pod in _pod_specs() if name.startswith("lambdasite-worker")}
    assert set(workers) == {"lambdasite-worker", "lambdasite-worker-eu"}
    scaled = {
        d["spec"]["scaleTargetRef"]["name"]: d["spec"] for _, d in _documents() if d["kind"] == "ScaledObject"
    }
    assert set(scaled) == set(workers)
    for name, pod in workers.items():
        command = pod["containers"][0]["command"]
        pool = command[command.index("--pools") + 1] if "--pools" in command else DEFAULT_POOL
        assert scaled[name]["triggers"][0]["metadata"]["listName"] == f"rq:queue:{queue_name(pool)}", name
        # a pool's queue is empty while no worker serves it (dispatch waits for a live one): never 0
        assert scaled[name]["minReplicaCount"] >= 1, name
    assert (
        scaled["lambdasite-worker"]["triggers"][0]["metadata"]["listName"] == f"rq:queue:{settings.RQ_QUEUE}"
    )


def test_a_pools_workers_are_the_base_workers_but_for_name_pool_nodes_and_replicas():
    """pools/eu/worker.yaml copies base/worker.yaml (kustomize cannot reach a file outside its root):
    anything else that differs is drift, e.g. a security setting changed in one only."""
    base = {d["kind"]: d for d in yaml.safe_load_all((KUBE / "base" / "worker.yaml").read_text())}
    eu = {d["kind"]: d for d in yaml.safe_load_all((KUBE / "pools" / "eu" / "worker.yaml").read_text())}
    assert set(eu) == set(base) == {"Deployment", "PodDisruptionBudget"}
    pod = eu["Deployment"]["spec"]["template"]["spec"]
    assert pod["containers"][0]["command"] == ["python", "manage.py", "worker", "--pools", "eu"]
    assert pod["nodeSelector"] == {**base["Deployment"]["spec"]["template"]["spec"]["nodeSelector"],
                                   "topology.kubernetes.io/region": "eu-west-1"}  # fmt: skip
    renamed = yaml.safe_load(
        yaml.safe_dump(base)
        .replace("lambdasite-worker\n", "lambdasite-worker-eu\n")
        .replace("lambdasite-worker}", "lambdasite-worker-eu}")
    )
    for doc in (renamed, eu):
        spec = doc["Deployment"]["spec"]
        spec.pop("replicas")
        spec["template"]["spec"]["containers"][0].pop("command")
        spec["template"]["spec"].pop("nodeSelector")
    assert eu == renamed
    pools_kustomization = yaml.safe_load((KUBE / "pools" / "eu" / "kustomization.yaml").read_text())
    assert (
        pools_kustomization["labels"]
        == yaml.safe_load((KUBE / "base" / "kustomization.yaml").read_text())["labels"]
    )
