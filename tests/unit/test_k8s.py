"""deploy/k8s cannot be applied here (no cluster), so it is parsed, schema-checked with
kubernetes-validate for the core kinds, and cross-checked against the code: every pool has a
ScaledObject on the queue it consumes, with the threshold derived from deploy/capacity.yaml."""

from __future__ import annotations

import math
import re
import shutil
import subprocess
from pathlib import Path

import kubernetes_validate
import pytest
import yaml
from pydantic import ValidationError

from shared.infra.production import unsafe_settings
from shared.infra.settings import Settings
from shared.messaging.topology import (
    DEAD_LETTER_EXCHANGE,
    TASK_EXCHANGE,
    QueueName,
    dead_letter_queue,
)
from workers.pools import POOLS, Pool

DEPLOY = Path(__file__).resolve().parents[2] / "deploy"
BASE = DEPLOY / "k8s" / "base"
K8S_VERSION = "1.32"
CORE_KINDS = {
    "ConfigMap",
    "Deployment",
    "Job",
    "Namespace",
    "PodDisruptionBudget",
    "Service",
    "ServiceAccount",
}


def base_documents() -> list[dict]:
    kustomization = yaml.safe_load((BASE / "kustomization.yaml").read_text())
    documents = []
    for resource in kustomization["resources"]:
        documents += [doc for doc in yaml.safe_load_all((BASE / resource).read_text()) if doc]
    return documents


DOCS = base_documents()


def of_kind(kind: str) -> dict[str, dict]:
    return {doc["metadata"]["name"]: doc for doc in DOCS if doc["kind"] == kind}


DEPLOYMENTS = of_kind("Deployment")
SCHEDULER = "beat"  # the periodic tasks' Deployment: no HTTP, so no probes
SCALED = of_kind("ScaledObject")
API_DEPLOYMENTS = {name for name in DEPLOYMENTS if name.endswith("-api")}
CAPACITY = yaml.safe_load((DEPLOY / "capacity.yaml").read_text())["pools"]


@pytest.mark.parametrize(
    "doc",
    [doc for doc in DOCS if doc["kind"] in CORE_KINDS],
    ids=lambda doc: doc["metadata"]["name"],
)
def test_core_kinds_match_the_kubernetes_schema(doc):
    kubernetes_validate.validate(doc, K8S_VERSION, strict=True)


def test_the_production_overlay_builds_with_kustomize():
    kubectl = shutil.which("kubectl")
    if kubectl is None:
        pytest.skip("kubectl (with kustomize) is not installed")
    built = subprocess.run(
        [kubectl, "kustomize", str(DEPLOY / "k8s" / "overlays" / "production")],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    ).stdout
    documents = list(yaml.safe_load_all(built))
    assert {
        doc["metadata"].get("namespace") for doc in documents if doc["kind"] != "Namespace"
    } == {"doorbuster"}
    assert len(documents) == len(DOCS) + 1  # + the Namespace
    for doc in documents:
        if doc["kind"] in CORE_KINDS:
            kubernetes_validate.validate(doc, K8S_VERSION, strict=True)


def test_a_deployment_per_service_and_per_pool():
    expected = {f"{name}-api" for name in ("orders", "inventory", "notifications")}
    expected |= {f"{pool.value}-pool" for pool in Pool}
    assert set(DEPLOYMENTS) == expected | {SCHEDULER}


@pytest.mark.parametrize("name", sorted(DEPLOYMENTS))
def test_every_deployment_has_resources_and_a_locked_down_container(name):
    pod = DEPLOYMENTS[name]["spec"]["template"]["spec"]
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    assert pod["automountServiceAccountToken"] is False
    for container in pod["containers"]:
        resources = container["resources"]
        assert {"cpu", "memory"} <= set(resources["requests"]) and {"cpu", "memory"} <= set(
            resources["limits"]
        )
        security = container["securityContext"]
        assert security["readOnlyRootFilesystem"] is True
        assert security["runAsNonRoot"] is True and security["allowPrivilegeEscalation"] is False
        assert security["capabilities"]["drop"] == ["ALL"]
        assert {"configMapRef": {"name": "doorbuster-config"}} in container["envFrom"]
        assert {"secretRef": {"name": "doorbuster-secrets"}} in container["envFrom"]
        assert not any("value" in env and "KEY" in env["name"] for env in container.get("env", []))


@pytest.mark.parametrize("name", sorted(set(DEPLOYMENTS) - {SCHEDULER}))
def test_every_http_serving_deployment_is_probed(name):
    for container in DEPLOYMENTS[name]["spec"]["template"]["spec"]["containers"]:
        assert container["livenessProbe"]["httpGet"]["path"] == "/healthz"
        # The APIs take traffic while the broker is away (the outbox): their Services route on
        # /readyz/traffic (shared/web/probes.py); a pool is ready when it can consume.
        expected = "/readyz/traffic" if name in API_DEPLOYMENTS else "/readyz"
        assert container["readinessProbe"]["httpGet"]["path"] == expected
        assert container["startupProbe"]["httpGet"]["path"] == "/healthz"


@pytest.mark.parametrize("name", sorted(DEPLOYMENTS))
def test_every_deployment_has_a_disruption_budget(name):
    labels = DEPLOYMENTS[name]["spec"]["template"]["metadata"]["labels"]
    budgets = [
        pdb
        for pdb in of_kind("PodDisruptionBudget").values()
        if pdb["spec"]["selector"]["matchLabels"].items() <= labels.items()
    ]
    assert len(budgets) == 1, name


def test_secrets_come_from_a_secret_whose_keys_are_documented():
    documented = {
        line.split("=", 1)[0]
        for line in (DEPLOY / "k8s" / "secrets.example.env").read_text().splitlines()
        if line and not line.startswith("#")
    }
    assert {
        "RABBITMQ_MANAGEMENT_URL",
        "DATABASE_URL",
        "STRIPE_API_KEY",
        "STRIPE_WEBHOOK_SECRET",
        "SMTP_USERNAME",
        "SMTP_PASSWORD",
    } <= documented
    # Each process has its own broker user (test_each_process_has_its_own_broker_user).
    assert "RABBITMQ_URL" not in documented
    assert {"SENTRY_DSN", "ADMIN_API_KEYS", "STOREFRONT_API_KEYS"} <= documented
    for auth in of_kind("TriggerAuthentication").values():
        for ref in auth["spec"]["secretTargetRef"]:
            assert ref["name"] == "doorbuster-secrets" and ref["key"] in documented
    config = of_kind("ConfigMap")["doorbuster-config"]["data"]
    assert not documented & set(config), "a secret in the ConfigMap"


@pytest.mark.parametrize("pool", list(Pool), ids=str)
def test_every_pool_runs_its_command_and_scales_on_its_own_queue(pool):
    name = f"{pool.value}-pool"
    container = DEPLOYMENTS[name]["spec"]["template"]["spec"]["containers"][0]
    assert container["command"][:4] == ["python", "-m", "workers", pool.value]
    assert "replicas" not in DEPLOYMENTS[name]["spec"], "KEDA owns the replica count"
    scaled = SCALED[name]["spec"]
    assert scaled["scaleTargetRef"]["name"] == name
    [trigger] = scaled["triggers"]
    assert trigger["type"] == "rabbitmq"
    assert trigger["metadata"]["queueName"] == POOLS[pool].queue.value
    assert trigger["metadata"]["mode"] == "QueueLength"
    assert trigger["authenticationRef"]["name"] in of_kind("TriggerAuthentication")


@pytest.mark.parametrize("pool", list(Pool), ids=str)
def test_thresholds_follow_from_the_measured_service_time(pool):
    measured = CAPACITY[pool.value]
    assert measured["concurrency"] == POOLS[pool].concurrency
    throughput = measured["concurrency"] / measured["service_time_s"]  # tasks/s per pod
    expected = math.ceil(measured["concurrency"] + throughput * measured["target_wait_s"])
    [trigger] = SCALED[f"{pool.value}-pool"]["spec"]["triggers"]
    assert int(trigger["metadata"]["value"]) == expected
    readme = (DEPLOY / "README.md").read_text()
    assert re.search(rf"\|\s*{pool.value}\s*\|.*\|\s*{expected}\s*\|", readme), "README table"


@pytest.mark.parametrize("pool", list(Pool), ids=str)
def test_the_scaler_counts_unacked_and_scale_in_waits_for_running_tasks(pool):
    """A payments pod busy with 16 charges is not idle: QueueLength over the management API
    (`protocol: http`) counts ready + unacked (over AMQP it sees only ready). A pod removed
    by a scale-in gets SIGTERM, finishes its running tasks (Celery's warm shutdown) within the
    grace period; one cut short is redelivered (acks_late, reject on worker lost)."""
    [trigger] = SCALED[f"{pool.value}-pool"]["spec"]["triggers"]
    assert trigger["metadata"]["protocol"] == "http"
    assert trigger["metadata"]["mode"] == "QueueLength"
    grace = DEPLOYMENTS[f"{pool.value}-pool"]["spec"]["template"]["spec"][
        "terminationGracePeriodSeconds"
    ]
    assert grace > CAPACITY[pool.value]["longest_task_s"] > CAPACITY[pool.value]["service_time_s"]
    from workers.app import make_celery

    conf = make_celery(pool).conf
    assert conf.task_acks_late and conf.task_reject_on_worker_lost


def test_payments_scales_first_and_fastest():
    def spec(pool: Pool) -> dict:
        return SCALED[f"{pool.value}-pool"]["spec"]

    payments = spec(Pool.PAYMENTS)
    up = payments["advanced"]["horizontalPodAutoscalerConfig"]["behavior"]["scaleUp"]
    assert up["stabilizationWindowSeconds"] == 0
    assert payments["minReplicaCount"] >= 2
    for other in (Pool.ORDERS, Pool.NOTIFICATIONS, Pool.BULK):
        assert payments["pollingInterval"] <= spec(other)["pollingInterval"]
        assert CAPACITY["payments"]["target_wait_s"] <= CAPACITY[other.value]["target_wait_s"]


def test_rabbitmq_and_postgres_come_from_their_operators():
    [rabbit] = of_kind("RabbitmqCluster").values()
    assert rabbit["apiVersion"] == "rabbitmq.com/v1beta1" and rabbit["spec"]["replicas"] == 3
    major, minor = (
        int(part) for part in re.match(r"rabbitmq:(\d+)\.(\d+)", rabbit["spec"]["image"]).groups()
    )
    assert (major, minor) >= (4, 3)
    assert of_kind("ConfigMap")["doorbuster-config"]["data"]["QUEUE_TYPE"] == "quorum"
    [postgres] = of_kind("Cluster").values()
    assert postgres["apiVersion"] == "postgresql.cnpg.io/v1" and postgres["spec"]["instances"] == 3
    databases = {postgres["spec"]["bootstrap"]["initdb"]["database"]}
    databases |= {db["spec"]["name"] for db in of_kind("Database").values()}
    assert databases == {f"doorbuster_{s}" for s in ("orders", "inventory", "notifications")}


def test_postgres_admits_every_pod_at_full_scale():
    """Each API and pool pod opens up to DB_POOL_SIZE + DB_MAX_OVERFLOW connections through
    SQLAlchemy and DB_POOL_SIZE more on its prepared-statement pool (shared/infra/db.py)."""
    config = of_kind("ConfigMap")["doorbuster-config"]["data"]
    per_pod = 2 * int(config["DB_POOL_SIZE"]) + int(config["DB_MAX_OVERFLOW"])
    pool_pods = sum(scaled["spec"]["maxReplicaCount"] for scaled in SCALED.values())
    api_pods = sum(
        doc["spec"]["replicas"]
        for name, doc in DEPLOYMENTS.items()
        if name in {f"{service}-api" for service in ("orders", "inventory", "notifications")}
    )
    assert api_pods == 7, sorted(DEPLOYMENTS)
    [postgres] = of_kind("Cluster").values()
    reserved_for_superusers = 3  # PostgreSQL's superuser_reserved_connections
    assert (pool_pods + api_pods) * per_pod + reserved_for_superusers <= int(
        postgres["spec"]["postgresql"]["parameters"]["max_connections"]
    )


def test_api_services_target_the_probed_port():
    for name, service in of_kind("Service").items():
        container = DEPLOYMENTS[name]["spec"]["template"]["spec"]["containers"][0]
        port_names = {port["name"] for port in container["ports"]}
        assert {port["targetPort"] for port in service["spec"]["ports"]} <= port_names


def documented_secrets() -> dict[str, str]:
    lines = (DEPLOY / "k8s" / "secrets.example.env").read_text().splitlines()
    return dict(line.split("=", 1) for line in lines if line and not line.startswith("#"))


def pod_environment(container: dict) -> dict[str, str]:
    """What the container sees: ConfigMap, the documented Secret, then its own `env`
    (secret references as placeholders, `$(VAR)` expanded as the kubelet does)."""
    environment = {**of_kind("ConfigMap")["doorbuster-config"]["data"], **documented_secrets()}
    for entry in container.get("env", []):
        if "valueFrom" in entry:
            ref = entry["valueFrom"]["secretKeyRef"]
            environment[entry["name"]] = f"{ref['name']}-{ref['key']}"
        else:
            value = re.sub(r"\$\((\w+)\)", lambda m: environment[m.group(1)], entry["value"])
            environment[entry["name"]] = value
    return environment


def containers() -> dict[str, dict]:
    found = {
        name: doc["spec"]["template"]["spec"]["containers"][0] for name, doc in DEPLOYMENTS.items()
    }
    for name, job in of_kind("Job").items():
        found[name] = job["spec"]["template"]["spec"]["containers"][0]
    return found


@pytest.mark.parametrize("name", sorted(containers()))
def test_every_process_passes_the_production_refusal(name):
    """What each pod sees starts in production: no development value is left in the
    manifests (the ConfigMap does set production)."""
    environment = pod_environment(containers()[name])
    assert environment["DOORBUSTER_ENV"] == "production"
    settings = Settings(**{key.lower(): value for key, value in environment.items()})
    assert unsafe_settings(settings) == []


def test_the_refusal_still_applies_to_a_cluster_left_with_development_values():
    config = of_kind("ConfigMap")["doorbuster-config"]["data"]
    with pytest.raises(ValidationError, match="STRIPE_WEBHOOK_SECRET"):
        Settings(**{name.lower(): value for name, value in config.items()})


def broker_user_of(container: dict) -> str:
    [secret] = {
        entry["valueFrom"]["secretKeyRef"]["name"]
        for entry in container["env"]
        if entry["name"] in ("RABBITMQ_USERNAME", "RABBITMQ_PASSWORD")
    }
    [user] = [
        u
        for u in of_kind("User").values()
        if u["spec"]["importCredentialsSecret"]["name"] == secret
    ]
    return user["metadata"]["name"]


def permissions_of(user: str) -> dict[str, re.Pattern[str]]:
    [permission] = [
        p for p in of_kind("Permission").values() if p["spec"]["userReference"]["name"] == user
    ]
    assert permission["spec"]["vhost"] == "doorbuster"
    # RabbitMQ matches these regexes unanchored: each must anchor itself.
    return {verb: re.compile(rx) for verb, rx in permission["spec"]["permissions"].items()}


TOPOLOGY = [TASK_EXCHANGE, DEAD_LETTER_EXCHANGE, *QueueName, *map(dead_letter_queue, QueueName)]


def test_each_process_has_its_own_broker_user():
    users = {name: broker_user_of(container) for name, container in containers().items()}
    assert len(set(users.values())) == len(users), users
    assert set(users.values()) == set(of_kind("User")) == set(of_kind("Permission"))


@pytest.mark.parametrize("name", sorted(set(DEPLOYMENTS) - {SCHEDULER}))
def test_a_process_declares_and_publishes_its_topology_and_reads_only_its_own_queue(name):
    allowed = permissions_of(broker_user_of(containers()[name]))
    for resource in TOPOLOGY:  # declare_topology: declare (configure) and bind (write, read)
        assert allowed["configure"].search(resource) and allowed["write"].search(resource)
    for exchange in (TASK_EXCHANGE, DEAD_LETTER_EXCHANGE):
        assert allowed["read"].search(exchange)
    kind, _, _ = name.rpartition("-")
    pool = next((p for p in Pool if name == f"{p.value}-pool"), None)
    consumed = {POOLS[pool].queue.value} if pool else set()
    readable = {
        q for q in (*QueueName, *map(dead_letter_queue, QueueName)) if allowed["read"].search(q)
    }
    assert readable == consumed, (kind, readable)
    for verb in ("configure", "write", "read"):
        assert not allowed[verb].search("some.other.queue"), verb
        assert not allowed[verb].search(f"x{QueueName.PAYMENTS}"), verb
    if pool:  # its own remote-control queue (Flower, the ops CLI), no other pool's
        assert allowed["read"].search(f"{pool.value}@{name}-7d9f.celery.pidbox")
        other = next(p for p in Pool if p != pool)
        assert not allowed["read"].search(f"{other.value}@{other.value}-pool-1.celery.pidbox")


def test_the_migrations_get_a_broker_user_without_permissions():
    allowed = permissions_of(broker_user_of(containers()["doorbuster-migrate"]))
    for verb in ("configure", "write", "read"):
        assert not any(allowed[verb].search(resource) for resource in TOPOLOGY)


DELAYED_DELIVERY = [*(f"celery_delayed_{level}" for level in range(28)), "celery_delayed_delivery"]


@pytest.mark.parametrize("name", sorted(DEPLOYMENTS))
def test_only_the_pools_use_celerys_delayed_delivery_topology(name):
    """Countdown retries on quorum queues go through celery_delayed_*: a pool declares, binds
    and publishes there; an API never retries a task and gets none of it."""
    allowed = permissions_of(broker_user_of(containers()[name]))
    is_pool = any(name == f"{p.value}-pool" for p in Pool)
    for resource in DELAYED_DELIVERY:
        for verb in ("configure", "write", "read"):
            assert bool(allowed[verb].search(resource)) == is_pool, (name, verb, resource)
    assert not allowed["configure"].search("celery_delayed_28")


def test_the_periodic_tasks_run_exactly_once_at_a_time():
    """One scheduler: a single replica no autoscaler owns, replaced by stopping it first
    (`Recreate`; a RollingUpdate runs old and new together), and no other process runs beat."""
    beat = DEPLOYMENTS[SCHEDULER]["spec"]
    assert beat["replicas"] == 1
    assert beat["strategy"] == {"type": "Recreate"}
    assert not [s for s in SCALED.values() if s["spec"]["scaleTargetRef"]["name"] == SCHEDULER]
    assert not of_kind("HorizontalPodAutoscaler")
    schedulers = [
        name
        for name, container in containers().items()
        if container["command"][:4] == ["python", "-m", "workers", "beat"]
    ]
    assert schedulers == [SCHEDULER]
    container = beat["template"]["spec"]["containers"][0]
    schedule = container["command"][container["command"].index("--schedule") + 1]
    mounts = [m["mountPath"] for m in container["volumeMounts"]]
    assert any(schedule.startswith(f"{mount}/") for mount in mounts), "read-only root"


def test_the_scheduler_may_only_publish_to_the_task_exchange():
    allowed = permissions_of(broker_user_of(containers()[SCHEDULER]))
    assert allowed["write"].search(TASK_EXCHANGE)
    resources = [*TOPOLOGY, *DELAYED_DELIVERY, "celery.pidbox", "celeryev", "some.other.queue"]
    for verb in ("configure", "write", "read"):
        granted = [r for r in resources if allowed[verb].search(r) and r != TASK_EXCHANGE]
        assert granted == [], verb
    assert not allowed["configure"].search(TASK_EXCHANGE)
    assert not allowed["read"].search(TASK_EXCHANGE)
