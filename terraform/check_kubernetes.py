"""What the Kubernetes schemas cannot see in the rendered overlays (kubectl kustomize
output, one file per overlay): that each pod's volumes name something the overlay makes
or the README tells you to create, with the keys the configuration files read; that
every file a jobs file or appliance configuration names lies under a mount of the pod
that reads it; that appliances never mount the runner's secrets; that a `dns+https://`
archiver URL names a headless Service of the StatefulSet; that workload identity and
IRSA reach every pod of an annotated service account; that the NetworkPolicies admit the
runners to the appliances; the Prometheus Operator resources (no schema here). It also
writes each jobs file and appliance configuration out (paths rewritten to stand-ins)
for `job validate --offline` and `offsite-archiver check --offline`.

Usage: check_kubernetes.py RENDERED_DIR STANDIN_DIR
"""
import glob
import os
import re
import sys
import tomllib

import yaml

# What kubernetes/README.md tells you to create yourself, and the keys each holds.
CREATED_BY_YOU = {
    ("Secret", "offsite-runner-secrets"): {"source", "target", "archiver-token"},
    ("Secret", "offsite-archiver-passwords"): {"source", "target"},
    ("Secret", "offsite-archiver-tls"): {"tls.crt", "tls.key"},
    ("ConfigMap", "offsite-archiver-ca"): {"ca.pem"},
}
# Secrets an appliance must never see: they hold what only the runner needs.
RUNNER_ONLY = {"offsite-runner-secrets"}
FILE_KEYS = ("password_file", "token_file", "ca_file", "tokens_file", "cert", "key")

problems = []


def problem(where, what):
    problems.append(f"{where}: {what}")


def pod_of(doc):
    kind, spec = doc["kind"], doc.get("spec") or {}
    if kind in ("Deployment", "StatefulSet", "DaemonSet", "Job"):
        return spec["template"]
    if kind == "CronJob":
        return spec["jobTemplate"]["spec"]["template"]
    return None


def files_named(value, found):
    """Every path under a FILE_KEYS key, anywhere in a parsed TOML document."""
    if isinstance(value, dict):
        for k, v in value.items():
            if k in FILE_KEYS and isinstance(v, str):
                found.append(v)
            else:
                files_named(v, found)
    elif isinstance(value, list):
        for v in value:
            files_named(v, found)
    return found


def mounts(pod, objects):
    """(mountPath, subPath, kind, name, keys) for each ConfigMap or Secret volume mount."""
    volumes = {}
    for v in pod["spec"].get("volumes", []):
        if "configMap" in v:
            volumes[v["name"]] = ("ConfigMap", v["configMap"]["name"])
        elif "secret" in v:
            volumes[v["name"]] = ("Secret", v["secret"]["secretName"])
    out = []
    for c in pod["spec"]["containers"]:
        for m in c.get("volumeMounts", []):
            if m["name"] in volumes:
                kind, name = volumes[m["name"]]
                out.append((m["mountPath"], m.get("subPath"), kind, name, keys_of(kind, name, objects)))
    return out


def keys_of(kind, name, objects):
    if (kind, name) in objects:
        return set((objects[(kind, name)].get("data") or {}).keys())
    return CREATED_BY_YOU.get((kind, name))


def config_text(path, pod, objects):
    """The jobs file or appliance configuration a container reads at `path`."""
    for mount, sub, kind, name, _ in mounts(pod, objects):
        if kind != "ConfigMap" or (kind, name) not in objects:
            continue
        data = objects[(kind, name)].get("data") or {}
        if sub and mount == path:
            return data.get(sub)
        if not sub and path.startswith(mount.rstrip("/") + "/"):
            return data.get(path[len(mount.rstrip("/")) + 1:])
    return None


def check_file_reachable(where, path, pod, objects):
    for mount, sub, kind, name, keys in mounts(pod, objects):
        if sub and mount == path:
            return
        prefix = mount.rstrip("/") + "/"
        if not sub and path.startswith(prefix):
            key = path[len(prefix):]
            if keys is not None and key not in keys:
                problem(where, f"{path} is key {key!r} of {kind} {name}, which holds {sorted(keys)}")
            return
    problem(where, f"{path} is under no mount of the pod")


def check_pod(overlay, doc, pod, objects, headless, standins, out_dir):
    where = f"{overlay}: {doc['kind']} {doc['metadata']['name']}"
    spec = pod["spec"]
    for v in spec.get("volumes", []):
        ref = ("ConfigMap", v["configMap"]["name"]) if "configMap" in v else (
            ("Secret", v["secret"]["secretName"]) if "secret" in v else None)
        if ref and ref not in objects and ref not in CREATED_BY_YOU:
            problem(where, f"volume {v['name']} names {ref[0]} {ref[1]}, which neither the overlay makes nor the README asks for")
    for c in spec["containers"]:
        for e in c.get("env", []):
            ref = (e.get("valueFrom") or {}).get("configMapKeyRef")
            if ref:
                data = (objects.get(("ConfigMap", ref["name"])) or {}).get("data") or {}
                if ref["key"] not in data:
                    problem(where, f"env {e['name']} reads key {ref['key']!r} of ConfigMap {ref['name']}, which the overlay does not make")
    is_archiver = any("offsite-archiver" in c["image"] for c in spec["containers"])
    for c in spec["containers"]:
        argv = (c.get("command") or []) + (c.get("args") or [])
        if "--config" not in argv:
            continue
        path = argv[argv.index("--config") + 1]
        text = config_text(path, pod, objects)
        if text is None:
            problem(where, f"--config {path} is in no ConfigMap mounted by the pod")
            continue
        parsed = tomllib.loads(text)
        for f in files_named(parsed, []):
            check_file_reachable(f"{where} ({path})", f, pod, objects)
        name = f"{overlay}-{'archiver' if is_archiver else 'jobs'}.toml"
        rewritten = text
        for f in set(files_named(parsed, [])):
            rewritten = rewritten.replace(f'"{f}"', f'"{standins}/{os.path.basename(f)}"')
        open(os.path.join(out_dir, name), "w").write(rewritten)
        for job in parsed.get("job", []):
            for url in (job.get("archivers") or {}).get("urls", []):
                m = re.match(r"dns\+https://([^:/]+):(\d+)$", url)
                if m and (m.group(1), int(m.group(2))) not in headless:
                    problem(where, f"{url} names no headless Service of this overlay with that port")
    if is_archiver:
        for _, _, kind, name, _ in mounts(pod, objects):
            if kind == "Secret" and name in RUNNER_ONLY:
                problem(where, f"an appliance mounts {name}, which holds the runner's token")
    sa = objects.get(("ServiceAccount", spec.get("serviceAccountName", "default")))
    notes = ((sa or {}).get("metadata") or {}).get("annotations") or {}
    labels = pod["metadata"].get("labels") or {}
    identity = "azure.workload.identity/client-id" in notes or "eks.amazonaws.com/role-arn" in notes
    if identity and not (spec.get("securityContext") or {}).get("fsGroup"):
        problem(where, "a non-root pod with a cloud identity and no fsGroup: it cannot read its projected token")
    if "azure.workload.identity/client-id" in notes and labels.get("azure.workload.identity/use") != "true":
        problem(where, "its service account has a workload identity but the pod lacks the label azure.workload.identity/use: \"true\"")
    return is_archiver, labels


def selects(selector, labels):
    return all(labels.get(k) == v for k, v in (selector.get("matchLabels") or {}).items())


def check_monitoring(overlay, docs):
    services = [d for d in docs if d["kind"] == "Service"]
    for d in docs:
        where = f"{overlay}: {d['kind']} {d['metadata']['name']}"
        if d["kind"] == "ServiceMonitor":
            for ep in d["spec"]["endpoints"]:
                if not any(selects(d["spec"]["selector"], s["metadata"].get("labels") or {})
                           and any(p.get("name") == ep["port"] for p in s["spec"]["ports"])
                           for s in services):
                    problem(where, f"selects no Service with a port named {ep['port']}")
        if d["kind"] == "PrometheusRule":
            for g in d["spec"]["groups"]:
                for r in g["rules"]:
                    for key in ("alert", "expr"):
                        if not r.get(key):
                            problem(where, f"a rule without {key}")
                    if not (r.get("labels") or {}).get("severity"):
                        problem(where, f"{r.get('alert')}: no severity label")
                    if not (r.get("annotations") or {}).get("summary"):
                        problem(where, f"{r.get('alert')}: no summary")
                    if str(r.get("expr")).count("(") != str(r.get("expr")).count(")"):
                        problem(where, f"{r.get('alert')}: unbalanced parentheses")


def check_workload(overlay, d, pod, docs, objects):
    """What keeps a workload up and bounded: appliances behind a headless Service, spread
    and guarded by a PodDisruptionBudget; runs that start in their zone, are skipped when
    missed and end."""
    where = f"{overlay}: {d['kind']} {d['metadata']['name']}"
    spec = d["spec"]
    if d["kind"] == "StatefulSet":
        svc = objects.get(("Service", spec["serviceName"]))
        if not svc or svc["spec"].get("clusterIP") != "None":
            problem(where, "its serviceName is no headless Service")
    if d["kind"] in ("StatefulSet", "Deployment") and spec.get("replicas", 1) > 1:
        labels = pod["metadata"].get("labels") or {}
        if not any(o["kind"] == "PodDisruptionBudget" and selects(o["spec"]["selector"], labels) for o in docs):
            problem(where, "several replicas and no PodDisruptionBudget: a node drain may take them all")
        if "podAntiAffinity" not in str(pod["spec"].get("affinity")) and not pod["spec"].get("topologySpreadConstraints"):
            problem(where, "several replicas and nothing spreads them over nodes")
    if d["kind"] == "CronJob":
        for key in ("timeZone", "startingDeadlineSeconds"):
            if key not in spec:
                problem(where, f"no {key}")
        if "activeDeadlineSeconds" not in spec["jobTemplate"]["spec"]:
            problem(where, "no activeDeadlineSeconds: a stuck run could hold the next night's slot")
    if d["kind"] == "Job" and "activeDeadlineSeconds" not in spec:
        problem(where, "no activeDeadlineSeconds")


def check_overlay(path, standins, out_dir):
    overlay = os.path.basename(path)[: -len(".yaml")]
    docs = [d for d in yaml.safe_load_all(open(path)) if d]
    objects = {(d["kind"], d["metadata"]["name"]): d for d in docs}
    headless = set()
    for d in docs:
        if d["kind"] == "Service" and d["spec"].get("clusterIP") == "None":
            for p in d["spec"]["ports"]:
                headless.add((f"{d['metadata']['name']}.{d['metadata']['namespace']}.svc", p["port"]))
    archiver_policies = [d for d in docs if d["kind"] == "NetworkPolicy"
                         and selects(d["spec"]["podSelector"], {"app.kubernetes.io/name": "offsite-archiver"})]
    pods = 0
    for d in docs:
        pod = pod_of(d)
        if pod is None:
            continue
        pods += 1
        is_archiver, labels = check_pod(overlay, d, pod, objects, headless, standins, out_dir)
        check_workload(overlay, d, pod, docs, objects)
        if not is_archiver and "offsite-runner-secrets" in [m[3] for m in mounts(pod, objects)]:
            admitted = any(selects(peer.get("podSelector") or {}, labels)
                           for p in archiver_policies for rule in p["spec"].get("ingress", [])
                           for peer in rule.get("from", []))
            if archiver_policies and not admitted:
                problem(f"{overlay}: {d['kind']} {d['metadata']['name']}",
                        "a runner pod the archivers' NetworkPolicy does not admit")
    check_monitoring(overlay, docs)
    print(f"{overlay}: {len(docs)} objects, {pods} workloads checked")


if __name__ == "__main__":
    rendered, standins = sys.argv[1], sys.argv[2]
    out_dir = os.path.join(rendered, "configs")
    os.makedirs(out_dir, exist_ok=True)
    for path in sorted(glob.glob(os.path.join(rendered, "*.yaml"))):
        check_overlay(path, standins, out_dir)
    if problems:
        sys.exit("\n".join(problems))
