"""deploy/k8s, offline: every overlay renders, every object validates (built-in kinds against the
Kubernetes schemas, custom resources against the operators' CRD schemas in deploy/crds), and what
the code needs is there: a Deployment per service with probes, resources and a non-root security
context, a ScaledObject on every queue a service consumes, credentials from the operators' secrets,
dashboards in ConfigMaps the Grafana sidecar picks up."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import zipfile

import pytest

from deploy import generate
from deploy.inventory import GATEWAY, processes, service_names
from tests.deploy.manifests import (
    DEPLOY,
    OVERLAYS,
    ROOT,
    by_name,
    dashboards,
    is_builtin,
    of_kind,
    render,
    validate_builtin,
    validate_custom,
)

TARGETS = ("base", *OVERLAYS)


@pytest.fixture(scope="module")
def inventory():
    return {p.name: p for p in processes()}


def test_the_generated_manifests_match_the_code():
    stale = generate.stale(generate.render())
    assert not stale, ("deploy/k8s is behind the code; run `python -m deploy.generate`: "
                       + ", ".join(str(p.relative_to(ROOT)) for p in stale))


@pytest.mark.parametrize("target", TARGETS)
def test_every_object_validates_against_its_schema(target):
    problems = []
    for obj in render(target):
        errors = validate_builtin(obj) if is_builtin(obj) else validate_custom(obj)
        problems += [f"{obj['kind']}/{obj['metadata']['name']}: {e}" for e in errors]
    assert not problems, "\n".join(problems)


def test_the_validators_reject_what_the_api_server_would():
    deployment = json.loads(json.dumps(of_kind(render("prod"), "Deployment")[0]))
    deployment["spec"]["template"]["spec"]["containers"][0]["livenessProbe"]["httpGet"][
        "pathh"] = "/healthz"
    assert any("pathh" in e for e in validate_builtin(deployment))
    scaled = json.loads(json.dumps(of_kind(render("prod"), "ScaledObject")[0]))
    scaled["spec"]["minReplicas"] = 2          # KEDA calls it minReplicaCount
    assert any("minReplicas" in e for e in validate_custom(scaled))
    cluster = json.loads(json.dumps(of_kind(render("prod"), "Cluster")[0]))
    cluster["spec"]["affinity"]["podAntiAffinityType"] = "always"
    assert any("always" in e for e in validate_custom(cluster))
    rabbit = json.loads(json.dumps(of_kind(render("prod"), "RabbitmqCluster")[0]))
    rabbit["spec"]["persistence"]["storage"] = "lots"
    assert validate_custom(rabbit)


@pytest.mark.parametrize("target", OVERLAYS)
def test_every_deployment_has_probes_resources_and_runs_as_non_root(target):
    for deployment in of_kind(render(target), "Deployment"):
        name = deployment["metadata"]["name"]
        pod = deployment["spec"]["template"]["spec"]
        assert pod["securityContext"]["runAsNonRoot"] is True, name
        assert pod["securityContext"]["runAsUser"] != 0, name
        for container in pod["containers"] + pod.get("initContainers", []):
            security = container["securityContext"]
            assert security["runAsNonRoot"] is True, name
            assert security["allowPrivilegeEscalation"] is False, name
            assert security["readOnlyRootFilesystem"] is True, name
            assert security["capabilities"]["drop"] == ["ALL"], name
            resources = container["resources"]
            assert {"cpu", "memory"} <= set(resources["requests"]), name
            assert "memory" in resources["limits"], name
        (main,) = pod["containers"]
        assert main["startupProbe"]["httpGet"]["path"] == "/healthz", name
        assert main["livenessProbe"]["httpGet"]["path"] == "/healthz", name
        assert main["readinessProbe"]["httpGet"]["path"] == "/readyz", name
        ports = {p["name"]: p["containerPort"] for p in main["ports"]}
        env = {e["name"]: e for e in main["env"]}
        config = by_name(render(target), "ConfigMap")["crm-config"]["data"]
        assert config["CRM_HTTP_ADDRESS"].endswith(f":{ports['http']}"), name
        assert config["CRM_HTTP_ADDRESS"].startswith("0.0.0.0:"), name
        assert "CRM_AMQP_URI" in env, name


def test_every_service_in_the_code_has_a_deployment_running_it(inventory):
    names = service_names()
    assert {"clients", "deals", "directory", "reports"} <= set(names)
    for target in OVERLAYS:
        deployments = by_name(render(target), "Deployment")
        for process in inventory.values():
            deployment = deployments.get(process.k8s)
            assert deployment, f"{target}: no Deployment for {process.name}"
            (main,) = deployment["spec"]["template"]["spec"]["containers"]
            assert main["args"][:2] == ["nameko", "run"], process.name
            assert main["args"][-1] == process.target, process.name
            init = deployment["spec"]["template"]["spec"].get("initContainers", [])
            if process.has_database:
                assert [c["args"] for c in init] == [
                    ["python", "-m", "crm_platform.migrate", process.name]], process.name
            else:
                assert not init, process.name


def test_every_queue_a_service_consumes_scales_it_through_keda(inventory):
    consuming = [p for p in inventory.values() if p.event_queues]
    assert {"clients", "deals"} <= {p.name for p in consuming}
    for target in OVERLAYS:
        objects = render(target)
        scaled = {o["spec"]["scaleTargetRef"]["name"]: o for o in of_kind(objects, "ScaledObject")}
        auth = by_name(objects, "TriggerAuthentication")
        for process in inventory.values():
            if process.name == GATEWAY:
                continue
            assert process.k8s in scaled, f"{target}: no ScaledObject for {process.name}"
            triggers = scaled[process.k8s]["spec"]["triggers"]
            queues = {t["metadata"]["queueName"] for t in triggers if t["type"] == "rabbitmq"}
            assert queues == set(process.queues), process.name
            for trigger in triggers:
                if trigger["type"] == "rabbitmq":
                    assert trigger["metadata"]["mode"] == "QueueLength"
                    assert trigger["authenticationRef"]["name"] in auth


def test_the_gateway_has_a_service_an_ingress_an_hpa_and_no_keda():
    for target in OVERLAYS:
        objects = render(target)
        service = by_name(objects, "Service")["gateway"]
        assert service["spec"]["selector"]["app.kubernetes.io/name"] == "gateway"
        ingress = by_name(objects, "Ingress")["gateway"]
        backend = ingress["spec"]["rules"][0]["http"]["paths"][0]["backend"]["service"]
        assert backend["name"] == "gateway"
        hpa = by_name(objects, "HorizontalPodAutoscaler")["gateway"]
        assert hpa["spec"]["scaleTargetRef"]["name"] == "gateway"
        assert hpa["spec"]["metrics"][0]["resource"]["name"] == "cpu"
        assert "gateway" not in {o["spec"]["scaleTargetRef"]["name"]
                                 for o in of_kind(objects, "ScaledObject")}
    assert by_name(render("prod"), "Ingress")["gateway"]["spec"]["tls"][0]["secretName"]


def test_every_workload_has_a_disruption_budget():
    for target in OVERLAYS:
        objects = render(target)
        budgets = [b["spec"]["selector"]["matchLabels"] for b in of_kind(objects,
                                                                       "PodDisruptionBudget")]
        for deployment in of_kind(objects, "Deployment"):
            labels = deployment["spec"]["template"]["metadata"]["labels"]
            assert any(b.items() <= labels.items() for b in budgets), \
                deployment["metadata"]["name"]
        assert {"app.kubernetes.io/name": "crm-rabbitmq"} in budgets


def test_credentials_come_from_the_secrets_the_operators_create(inventory):
    objects = render("prod")
    (rabbit,) = of_kind(objects, "RabbitmqCluster")
    clusters = by_name(objects, "Cluster")
    for deployment in of_kind(objects, "Deployment"):
        name = deployment["metadata"]["name"]
        process = next(p for p in inventory.values() if p.k8s == name)
        env = {e["name"]: e for e in deployment["spec"]["template"]["spec"]["containers"][0]["env"]}
        secret_refs = {e["valueFrom"]["secretKeyRef"]["name"] for e in env.values()
                       if "valueFrom" in e}
        assert f"{rabbit['metadata']['name']}-default-user" in secret_refs, name
        if process.has_database:
            cluster = clusters[f"crm-{process.k8s}-db"]
            assert f"{cluster['metadata']['name']}-app" in secret_refs, name
            assert cluster["spec"]["bootstrap"]["initdb"]["database"] == f"crm_{process.name}"
            assert f"@{cluster['metadata']['name']}-rw:5432/crm_{process.name}" in \
                env["CRM_DB_URL"]["value"]
        literal = [e["name"] for e in env.values()
                   if re.search(r"://[^:/@$]+:[^@$]+@", str(e.get("value", "")))]
        assert not literal, f"{name}: credentials written into {literal}"
    for auth in of_kind(objects, "TriggerAuthentication"):
        assert {r["name"] for r in auth["spec"]["secretTargetRef"]} == {
            f"{rabbit['metadata']['name']}-default-user"}


def test_secrets_the_services_read_come_from_the_app_secret_and_dev_values_are_refused(
        inventory):
    # The services declare them (crm_platform.secrets.RequiredSecrets); nothing is forgotten.
    assert inventory["deals"].secrets == ["FORM_TOKEN_SECRET"]
    assert inventory["clients"].secrets == ["CAMPAIGN_UNSUBSCRIBE_SECRET"]
    assert inventory[GATEWAY].secrets == ["JWT_SECRET"]
    for target in OVERLAYS:
        objects = render(target)
        config = {k: v for m in of_kind(objects, "ConfigMap")
                  if m["metadata"]["name"].startswith("crm-config") for k, v in m["data"].items()}
        assert config["CRM_REFUSE_DEV_SECRETS"] == "true", target
        for deployment in of_kind(objects, "Deployment"):
            name = deployment["metadata"]["name"]
            process = next(p for p in inventory.values() if p.k8s == name)
            for container in (deployment["spec"]["template"]["spec"]["containers"][0],
                              *deployment["spec"]["template"]["spec"].get("initContainers", [])):
                env = {e["name"]: e for e in container.get("env", [])}
                for secret in process.secrets:
                    ref = env[f"CRM_{secret}"]["valueFrom"]["secretKeyRef"]
                    # (the dev overlay's generated Secret carries kustomize's name hash)
                    assert ref["name"].startswith("crm-app-secrets"), name
                    assert ref["key"] == f"CRM_{secret}", name
                    assert "optional" not in ref, name
    # The dev overlay's throw-away secret has every key a pod needs.
    dev = [s for s in of_kind(render("dev"), "Secret")
           if s["metadata"]["name"].startswith("crm-app-secrets")]
    keys = {k for secret in dev for k in secret["data"]}
    assert {f"CRM_{n}" for p in inventory.values() for n in p.secrets} <= keys


def test_production_spreads_the_broker_and_databases_over_nodes_and_backs_up():
    objects = render("prod")
    (rabbit,) = of_kind(objects, "RabbitmqCluster")
    assert rabbit["spec"]["replicas"] == 3
    assert rabbit["spec"]["persistence"]["storage"]
    anti = rabbit["spec"]["affinity"]["podAntiAffinity"]
    assert anti["requiredDuringSchedulingIgnoredDuringExecution"][0]["topologyKey"] == \
        "kubernetes.io/hostname"
    backups = {b["spec"]["cluster"]["name"] for b in of_kind(objects, "ScheduledBackup")}
    for name, cluster in by_name(objects, "Cluster").items():
        assert cluster["spec"]["instances"] == 3, name
        assert cluster["spec"]["affinity"]["podAntiAffinityType"] == "required", name
        assert cluster["spec"]["backup"]["barmanObjectStore"]["destinationPath"], name
        assert name in backups, name
    for scaled in of_kind(objects, "ScaledObject"):
        assert scaled["spec"]["minReplicaCount"] >= 2
    dev = render("dev")
    assert of_kind(dev, "RabbitmqCluster")[0]["spec"]["replicas"] == 1
    assert {c["spec"]["instances"] for c in of_kind(dev, "Cluster")} == {1}


def test_services_and_rabbitmq_are_scraped():
    monitors = by_name(render("prod"), "PodMonitor")
    services = monitors["crm-services"]
    assert services["spec"]["podMetricsEndpoints"][0] == {"port": "http", "path": "/metrics",
                                                          "interval": "30s"}
    for deployment in of_kind(render("prod"), "Deployment"):
        labels = deployment["spec"]["template"]["metadata"]["labels"]
        assert services["spec"]["selector"]["matchLabels"].items() <= labels.items()
        (rule,) = services["spec"]["selector"]["matchExpressions"]
        assert labels[rule["key"]] in rule["values"]
    rabbit = monitors["crm-rabbitmq"]["spec"]["podMetricsEndpoints"]
    assert {"/metrics", "/metrics/detailed"} == {e["path"] for e in rabbit}


def test_dashboards_ship_in_configmaps_for_the_grafana_sidecar():
    boards = dashboards()
    assert set(boards) == {"red", "backbone", "business"}
    configmaps = of_kind(render("prod"), "ConfigMap")
    shipped = {}
    for configmap in configmaps:
        if configmap["metadata"].get("labels", {}).get("grafana_dashboard") == "1":
            for key, text in configmap["data"].items():
                shipped[key] = json.loads(text)
    assert {f"{name}.json" for name in boards} == set(shipped)
    uids = [board["uid"] for board in shipped.values()]
    assert len(set(uids)) == len(uids)
    for board in shipped.values():
        assert board["panels"] and all(p["targets"] for p in board["panels"])


def test_the_image_installs_the_project_as_a_wheel_with_every_migration(tmp_path):
    dockerfile = (ROOT / "Dockerfile").read_text()
    stages = [line for line in dockerfile.splitlines() if line.startswith("FROM ")]
    assert len(stages) == 2 and "AS builder" in stages[0]
    assert "latest" not in dockerfile and ":3.11." in dockerfile
    assert "\nUSER 10001" in dockerfile
    assert "config.yaml" in dockerfile
    assert ".venv" in (ROOT / ".dockerignore").read_text()
    result = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q",
         "--wheel-dir", str(tmp_path), str(ROOT)], capture_output=True, text=True, timeout=120,
        cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    (wheel,) = tmp_path.glob("roofcrm-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    for service in service_names():
        folder = ROOT / "services" / service / "migrations"
        for path in [folder / "env.py", folder / "script.py.mako",
                     *sorted((folder / "versions").glob("*.py"))]:
            assert str(path.relative_to(ROOT)) in names, path
    assert "gateway/service.py" in names and "crm_platform/migrate.py" in names


def test_the_deploy_readme_walks_through_an_install():
    guide = (DEPLOY / "README.md").read_text()
    for step in ("kubectl apply -k deploy/k8s/overlays/prod", "crm-app-secrets",
                 "crm-backup-s3", "cloudnative-pg", "cluster-operator", "keda",
                 "kube-prometheus-stack", "ScheduledBackup", "definitions", "kubectl scale",
                 "python -m deploy.generate"):
        assert step in guide, step


def test_a_service_that_keeps_files_shares_one_volume_between_its_replicas():
    objects = render("prod")
    claims = by_name(objects, "PersistentVolumeClaim")
    config = (ROOT / "config.yaml").read_text()
    assert generate.SHARED_FOLDERS
    for service, (setting, path, _size) in generate.SHARED_FOLDERS.items():
        assert f"${{{setting}:" in config, setting          # the process really reads it
        pod = by_name(objects, "Deployment")[service.replace("_", "-")]["spec"]["template"]["spec"]
        (main,) = pod["containers"]
        assert {"name": setting, "value": path} in main["env"]
        mount = next(m for m in main["volumeMounts"] if m["mountPath"] == path)
        volume = next(v for v in pod["volumes"] if v["name"] == mount["name"])
        claim = claims[volume["persistentVolumeClaim"]["claimName"]]
        assert claim["spec"]["accessModes"] == ["ReadWriteMany"]
