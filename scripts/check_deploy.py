"""The deployment files' checks (scripts/check-deploy runs this in its virtualenv).

Without a container engine or a cluster, CI checks what can be checked statically:

- compose/compose.yaml against the Compose Specification schema (deploy/schemas);
- the Dockerfiles with hadolint, and that every apt package they install exists in bookworm;
- deploy/kubernetes with kubernetes-validate (strict) for the built-in kinds, the KEDA
  ScaledObject against KEDA's published CRD schema when one is at hand, and the facts the
  manifests must agree on (grace period above worker.shutdown_grace, probes on the metrics
  port, the spool on a writable volume, the scale target and its connection variable);
- deploy/grafana's dashboard: JSON, PostgreSQL targets with SQL (the Swift suite
  DashboardQueryTests runs every query against a migrated database).

Exits 1 naming every problem found; prints one line per check passed.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import jsonschema
import kubernetes_validate
import yaml

ROOT = Path(__file__).resolve().parent.parent
KUBERNETES_VERSION = "1.31.0"
DOCKERFILES = [ROOT / "Dockerfile", ROOT / "compose" / "sftp" / "Dockerfile"]
COMPOSE = ROOT / "compose" / "compose.yaml"
KUBERNETES = ROOT / "deploy" / "kubernetes"
DASHBOARD = ROOT / "deploy" / "grafana" / "lethe-dashboard.json"
COMPOSE_SCHEMA = ROOT / "deploy" / "schemas" / "compose-spec.json"
KEDA_SCHEMA_NAME = "keda-scaledobject.json"

problems: list[str] = []
passed = 0


def ok(what: str) -> None:
    global passed
    passed += 1
    print(f"ok   {what}")


def ok_if_clean(since: int, what: str) -> None:
    """`ok(what)` unless a problem was found since `since` (a length of `problems`)."""
    if len(problems) == since:
        ok(what)


def fail(what: str) -> None:
    problems.append(what)
    print(f"FAIL {what}")


def relative(path: Path) -> str:
    return str(path.relative_to(ROOT))


def schema_errors(schema: dict, document: object) -> list[str]:
    # Draft 7 for both: the Compose schema declares it (under a URL jsonschema does not know),
    # and Kubernetes' OpenAPI v3 subset reads the same under it.
    validator = jsonschema.Draft7Validator(schema)
    return [
        f"{'/'.join(str(p) for p in error.absolute_path) or '(top)'}: {error.message}"
        for error in sorted(validator.iter_errors(document), key=lambda e: list(map(str, e.absolute_path)))
    ]


def duration_seconds(text: str) -> float:
    """A Lethe duration (`500ms`, `30s`, `1h30m`) in seconds."""
    units = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}
    parts = re.findall(r"(\d+(?:\.\d+)?)(ms|s|m|h|d|w)", str(text))
    if not parts or "".join(n + u for n, u in parts) != str(text):
        raise ValueError(f"not a duration: {text!r}")
    return sum(float(n) * units[u] for n, u in parts)


# ---------------------------------------------------------------------------
# Compose


def check_compose() -> None:
    schema = json.loads(COMPOSE_SCHEMA.read_text())
    shared = ROOT.parent / "shared" / "data" / "compose-spec.json"
    if shared.is_file() and json.loads(shared.read_text()) != schema:
        print(f"note {relative(COMPOSE_SCHEMA)} differs from {shared}: refresh the vendored copy")
    document = yaml.safe_load(COMPOSE.read_text())
    errors = schema_errors(schema, document)
    if errors:
        for error in errors:
            fail(f"{relative(COMPOSE)}: {error}")
    else:
        ok(f"{relative(COMPOSE)} matches the Compose Specification schema")

    base = COMPOSE.parent
    since = len(problems)
    for section in ("configs", "secrets"):
        for name, entry in (document.get(section) or {}).items():
            path = (base / entry["file"]).resolve() if "file" in entry else None
            if path is None or path.exists() or name == "lethe_master_key":
                continue  # the master key is the operator's (compose/README.md makes it)
            fail(f"{relative(COMPOSE)}: {section}.{name} names {entry['file']}, which does not exist")
    for name, service in document["services"].items():
        build = service.get("build")
        if build is not None:
            context = base / (build if isinstance(build, str) else build.get("context", "."))
            dockerfile = context / ("Dockerfile" if isinstance(build, str) else build.get("dockerfile", "Dockerfile"))
            if not dockerfile.is_file():
                fail(f"{relative(COMPOSE)}: service {name} builds {dockerfile}, which does not exist")
        for volume in service.get("volumes", []):
            source = volume.split(":")[0] if isinstance(volume, str) else volume.get("source", "")
            if source.startswith(".") and not (base / source).exists():
                fail(f"{relative(COMPOSE)}: service {name} mounts {source}, which does not exist")
    workers = document["services"].get("worker", {})
    if "ports" in workers or "container_name" in workers:
        fail(f"{relative(COMPOSE)}: service worker has host ports or a container name: --scale worker=N would clash")
    ok_if_clean(since, f"{relative(COMPOSE)}: files, build contexts and the scalable worker service")
    since = len(problems)

    # The compose example's registry is the example application's.
    ours = yaml.safe_load((base / "lethe.yml").read_text())
    example = yaml.safe_load((ROOT / "examples" / "contact-centre" / "lethe.yml").read_text())
    for key in ("entity_types", "blob_stores"):
        if ours.get(key) != example.get(key):
            fail(f"compose/lethe.yml: {key} differs from examples/contact-centre/lethe.yml's")
    ok_if_clean(since, "compose/lethe.yml carries the example application's registry")


# ---------------------------------------------------------------------------
# Dockerfiles


def dockerfile_instructions(path: Path) -> list[str]:
    """The file's instructions with continuation lines joined and comments dropped."""
    instructions, current = [], ""
    for line in path.read_text().splitlines():
        stripped = line.strip()
        if stripped.startswith("#"):
            continue
        if stripped.endswith("\\"):
            current += stripped[:-1] + " "
            continue
        current += stripped
        if current:
            instructions.append(current)
        current = ""
    return instructions


def apt_packages(path: Path) -> list[str]:
    packages = []
    for instruction in dockerfile_instructions(path):
        if not instruction.upper().startswith("RUN "):
            continue
        for command in re.split(r"&&|;|\|\|", instruction[4:]):
            words = shlex.split(command)
            words = [w for w in words if not re.fullmatch(r"[A-Z_]+=\S*", w)]  # VAR=value prefixes
            if len(words) >= 2 and words[0] in ("apt-get", "apt") and "install" in words:
                after = words[words.index("install") + 1 :]
                packages += [w.split("=")[0] for w in after if not w.startswith("-")]
    return packages


def apt_missing(packages: list[str]) -> list[str]:
    """The packages that apt-cache has no candidate version for (one call: each takes seconds)."""
    result = subprocess.run(["apt-cache", "policy", *packages], capture_output=True, text=True)
    candidates = dict(re.findall(r"^(\S+):\n(?:\s+Installed:.*\n)?\s+Candidate:\s*(\S+)", result.stdout, re.M))
    return [p for p in packages if candidates.get(p, "(none)") == "(none)"]


def check_dockerfiles(hadolint: str) -> None:
    for path in DOCKERFILES:
        result = subprocess.run([hadolint, "--no-color", str(path)], capture_output=True, text=True)
        if result.returncode != 0:
            for line in (result.stdout + result.stderr).strip().splitlines():
                fail(f"hadolint {line}")
        else:
            ok(f"hadolint {relative(path)}")

    # The top-level Dockerfile's COPY sources exist and the .dockerignore allow-list lets them in.
    before = len(problems)
    allowed = [
        line[1:].strip("/") for line in (ROOT / ".dockerignore").read_text().splitlines() if line.startswith("!")
    ]
    for instruction in dockerfile_instructions(ROOT / "Dockerfile"):
        words = instruction.split()
        if words[0].upper() != "COPY" or any(w.startswith("--from") for w in words):
            continue
        for source in [w for w in words[1:-1] if not w.startswith("--")]:
            source = source.rstrip("/")
            if not (ROOT / source).exists():
                fail(f"Dockerfile copies {source}, which does not exist")
            elif not any(source == a or source.startswith(a + "/") for a in allowed):
                fail(f"Dockerfile copies {source}, which .dockerignore keeps out of the build context")
    ok_if_clean(before, "Dockerfile's COPY sources exist and are in the build context (.dockerignore)")

    # The build stage copies everything `swift build` reads: the manifest, the directories of
    # its targets and plugins, and migrations/ (the EmbedMigrations plugin's input).
    before = len(problems)
    copied = {
        w.rstrip("/")
        for instruction in dockerfile_instructions(ROOT / "Dockerfile")
        if instruction.split()[0].upper() == "COPY" and "--from" not in instruction
        for w in instruction.split()[1:-1]
        if not w.startswith("--")
    }
    needed = ["Package.swift"] + [d for d in ("Sources", "Tests", "Plugins", "migrations") if (ROOT / d).is_dir()]
    for source in needed:
        if source not in copied:
            fail(f"Dockerfile's build stage does not copy {source}, which `swift build` needs")
    ok_if_clean(before, "Dockerfile copies everything the package build reads")

    release = dict(
        line.split("=", 1) for line in Path("/etc/os-release").read_text().splitlines() if "=" in line
    ) if Path("/etc/os-release").is_file() else {}
    if release.get("VERSION_CODENAME", "").strip('"') != "bookworm" or not shutil.which("apt-cache"):
        print("note the apt package check needs Debian 12 (bookworm) apt lists: skipped on this host")
        return
    wanted = {package: path for path in DOCKERFILES for package in apt_packages(path)}
    if not wanted:
        fail("no apt-get install found in the Dockerfiles (the parser and the files disagree)")
        return
    missing = apt_missing(list(wanted))
    if missing and os.geteuid() == 0:
        print(f"note apt-cache does not know {' '.join(missing)}: apt-get update")
        subprocess.run(["apt-get", "update", "-q"], check=False, capture_output=True)
        missing = apt_missing(missing)
    for package in missing:
        fail(f"{relative(wanted[package])} installs {package}, which bookworm's apt lists do not have")
    if not missing:
        ok(f"apt packages exist in bookworm: {' '.join(sorted(wanted))}")


# ---------------------------------------------------------------------------
# Kubernetes


def closed(schema: object) -> object:
    """The schema with `additionalProperties: false` wherever properties are listed and
    nothing else is allowed: unknown fields fail, as with kubectl's strict field validation."""
    if isinstance(schema, list):
        return [closed(item) for item in schema]
    if not isinstance(schema, dict):
        return schema
    result = {key: closed(value) for key, value in schema.items()}
    if (
        "properties" in result
        and "additionalProperties" not in result
        and not result.get("x-kubernetes-preserve-unknown-fields")
    ):
        result["additionalProperties"] = False
    return result


def keda_schema() -> tuple[dict | None, str]:
    candidates = [os.environ.get("LETHE_KEDA_SCHEMA", "")]
    candidates += [str(ROOT.parent / "shared" / "data" / KEDA_SCHEMA_NAME), str(ROOT / "deploy" / "schemas" / KEDA_SCHEMA_NAME)]
    for candidate in candidates:
        if candidate and Path(candidate).is_file():
            return json.loads(Path(candidate).read_text()), candidate
    return None, ", ".join(c for c in candidates if c)


def container_env(deployment: dict) -> set[str]:
    return {e["name"] for c in deployment["spec"]["template"]["spec"]["containers"] for e in c.get("env", [])}


def check_kubernetes() -> None:
    documents: list[tuple[Path, dict]] = []
    for path in sorted(KUBERNETES.glob("*.yaml")):
        for document in yaml.safe_load_all(path.read_text()):
            if document is not None:
                documents.append((path, document))
    files = {path.name for path, _ in documents}

    config = None
    deployments = {}
    for path, document in documents:
        kind = document.get("kind")
        name = document.get("metadata", {}).get("name", path.stem)
        where = f"{relative(path)} {kind}/{name}"
        api = document.get("apiVersion", "")
        if kind == "Kustomization":
            listed = set(document.get("resources", []))
            for resource in listed - files:
                fail(f"{where}: resource {resource} does not exist")
            for unlisted in files - listed - {path.name}:
                fail(f"{where}: {unlisted} is not among its resources")
            ok(f"{where} lists every manifest")
            continue
        if api.startswith("keda.sh/"):
            continue  # below, once the Deployments are known
        try:
            kubernetes_validate.validate(document, KUBERNETES_VERSION, strict=True)
            ok(f"{where} valid for Kubernetes {KUBERNETES_VERSION} (strict)")
        except kubernetes_validate.ValidationError as error:
            fail(f"{where}: {'/'.join(map(str, error.path))}: {error.message}")
        except kubernetes_validate.SchemaNotFoundError as error:
            fail(f"{where}: no Kubernetes schema for it ({error})")
        if kind == "ConfigMap" and "lethe.yml" in document.get("data", {}):
            config = yaml.safe_load(document["data"]["lethe.yml"])
        if kind == "Deployment":
            deployments[name] = (where, document)

    if config is None:
        fail(f"{relative(KUBERNETES)}: no ConfigMap with lethe.yml")
        return
    grace = duration_seconds(config.get("worker", {}).get("shutdown_grace", "30s"))
    port = int(str(config.get("metrics", {}).get("address", ":")).rsplit(":", 1)[1] or 0)
    spool = config.get("archive", {}).get("spool_directory", "/var/tmp/lethe-spool")
    since = len(problems)
    for name, (where, deployment) in deployments.items():
        pod = deployment["spec"]["template"]["spec"]
        period = pod.get("terminationGracePeriodSeconds", 30)
        if not period > grace:
            fail(f"{where}: terminationGracePeriodSeconds {period} is not above worker.shutdown_grace ({grace:g}s)")
        for container in pod["containers"]:
            ports = {p.get("name"): p["containerPort"] for p in container.get("ports", [])}
            for probe, path in (("livenessProbe", "/healthz"), ("readinessProbe", "/readyz")):
                http = container.get(probe, {}).get("httpGet", {})
                probe_port = ports.get(http.get("port"), http.get("port"))
                if http.get("path") != path or probe_port != port:
                    fail(f"{where}: {probe} is not GET {path} on metrics.address's port {port}")
            context = container.get("securityContext", {})
            if not context.get("readOnlyRootFilesystem") or context.get("allowPrivilegeEscalation", True):
                fail(f"{where}: container {container['name']} needs readOnlyRootFilesystem and no privilege escalation")
            volumes = {v["name"]: v for v in pod.get("volumes", [])}
            mounts = {m["mountPath"]: m["name"] for m in container.get("volumeMounts", [])}
            if "emptyDir" not in volumes.get(mounts.get(spool, ""), {}):
                fail(f"{where}: archive.spool_directory {spool} is not an emptyDir mount (the root filesystem is read-only)")
        if not pod.get("securityContext", {}).get("runAsNonRoot"):
            fail(f"{where}: the pod does not set runAsNonRoot")
    ok_if_clean(since, f"{relative(KUBERNETES)}: grace periods above {grace:g}s, probes on port {port}, spool {spool} writable, non-root")

    scaled = [(p, d) for p, d in documents if d.get("kind") == "ScaledObject"]
    if not scaled:
        fail(f"{relative(KUBERNETES)}: no KEDA ScaledObject")
    schema, source = keda_schema()
    for path, document in scaled:
        where = f"{relative(path)} ScaledObject/{document['metadata']['name']}"
        if schema is None:
            print(f"note {where}: KEDA's ScaledObject schema not found ({source}): schema check skipped")
        else:
            errors = schema_errors(closed(schema), document)
            for error in errors:
                fail(f"{where}: {error} (KEDA schema {source})")
            if not errors:
                ok(f"{where} matches KEDA's ScaledObject schema ({source})")
        spec = document["spec"]
        since = len(problems)
        target = spec["scaleTargetRef"]["name"]
        if target not in deployments:
            fail(f"{where}: scaleTargetRef {target} is not a Deployment here")
            continue
        for trigger in spec["triggers"]:
            metadata = trigger.get("metadata", {})
            if trigger.get("type") != "postgresql":
                fail(f"{where}: trigger type {trigger.get('type')} (expected postgresql)")
            if "lethe.queue_summary" not in metadata.get("query", ""):
                fail(f"{where}: the trigger's query does not read lethe.queue_summary")
            if metadata.get("connectionFromEnv") not in container_env(deployments[target][1]):
                fail(f"{where}: connectionFromEnv {metadata.get('connectionFromEnv')} is not an env var of {target}")
            for key in ("targetQueryValue", "activationTargetQueryValue"):
                if key in metadata and not re.fullmatch(r"\d+(\.\d+)?", str(metadata[key])):
                    fail(f"{where}: {key} {metadata[key]!r} is not a number")
        low, high = spec.get("minReplicaCount", 0), spec.get("maxReplicaCount", 100)
        if isinstance(low, int) and isinstance(high, int) and not 0 <= low <= high:
            fail(f"{where}: minReplicaCount {low} is not between 0 and maxReplicaCount {high}")
        ok_if_clean(since, f"{where}: postgresql trigger on lethe.queue_summary scales {target}")


# ---------------------------------------------------------------------------
# Grafana


def check_dashboard() -> None:
    try:
        dashboard = json.loads(DASHBOARD.read_text())
    except (OSError, json.JSONDecodeError) as error:
        fail(f"{relative(DASHBOARD)}: {error}")
        return
    since = len(problems)
    panels = [p for p in dashboard.get("panels", []) if p.get("type") != "row"]
    targets = [t for p in panels for t in p.get("targets", [])]
    for panel in panels:
        if not panel.get("targets") or not all(t.get("rawSql", "").strip() for t in panel["targets"]):
            fail(f"{relative(DASHBOARD)}: panel {panel.get('title')!r} has a target without SQL")
        if panel.get("datasource", {}).get("type") != "grafana-postgresql-datasource":
            fail(f"{relative(DASHBOARD)}: panel {panel.get('title')!r} is not on the PostgreSQL data source")
    if len(panels) < 6:
        fail(f"{relative(DASHBOARD)}: {len(panels)} panels; expected at least 6")
    ok_if_clean(since, f"{relative(DASHBOARD)}: {len(panels)} panels, {len(targets)} SQL queries")


def main() -> int:
    hadolint = sys.argv[1] if len(sys.argv) > 1 else "hadolint"
    check_compose()
    check_dockerfiles(hadolint)
    check_kubernetes()
    check_dashboard()
    if problems:
        print(f"check-deploy: {len(problems)} problem(s)", file=sys.stderr)
        return 1
    print(f"check-deploy: all {passed} checks passed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
