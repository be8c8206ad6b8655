"""Parses every Terraform file (python-hcl2) and checks what a module's user relies on
and what a first apply needs. Exit 1 with one line per problem.

For every module (terraform/aws/modules/*, terraform/azure/modules/* or a cloud's
top-level module): variables have a type and a description, numbers and enumerations a
validation; outputs a description; provider and Terraform versions bounded above and
below; the resources its job needs are there. Across all files: a log group's KMS key
has a policy granting CloudWatch Logs; a SecureString's key is one the role that reads
the parameter may decrypt with, and its tier is chosen by size; no IAM statement writes
to a source bucket beyond locks/; no Azure role assignment on a source is more than a
reader, except on locks/ by condition; a storage account with a ForceNew immutability
policy is protected by prevent_destroy.

For every example: it calls modules with inputs they declare and sets every required
one; images are pinned by digest; each `*_env` a jobs file or appliance configuration
names is a secret given to the module that reads that file, and only there; a jobs file
that uses https appliances names a ca_file and its runner is given the appliances' CA.
"""

import pathlib
import re
import sys
import tomllib

import hcl2

ROOT = pathlib.Path(__file__).resolve().parent
REQUIRED = {
    "aws/modules/target": ["aws_s3_bucket", "aws_s3_bucket_versioning", "aws_s3_bucket_public_access_block",
                           "aws_s3_bucket_server_side_encryption_configuration",
                           "aws_s3_bucket_lifecycle_configuration", "aws_s3_bucket_policy", "aws_kms_key"],
    "aws/modules/access": ["aws_iam_role", "aws_iam_role_policy"],
    "aws/modules/tasks": ["aws_ecs_cluster", "aws_cloudwatch_log_group", "aws_ssm_parameter", "aws_iam_role"],
    "aws/modules/runner": ["aws_ecs_task_definition", "aws_scheduler_schedule", "aws_ecs_service",
                           "aws_cloudwatch_event_rule", "aws_cloudwatch_metric_alarm", "aws_sqs_queue"],
    "aws/modules/archiver": ["aws_ecs_task_definition", "aws_ecs_service", "aws_service_discovery_service",
                             "tls_locally_signed_cert"],
    "aws/modules/endpoints": ["aws_vpc_endpoint"],
    "azure/modules/target": ["azurerm_storage_account", "azurerm_storage_container",
                             "azurerm_storage_management_policy"],
    "azure/modules/access": ["azurerm_user_assigned_identity", "azurerm_role_assignment",
                             "azurerm_federated_identity_credential"],
    "azure/modules/environment": ["azurerm_container_app_environment", "azurerm_log_analytics_workspace"],
    "azure/modules/runner": ["azurerm_container_app_job", "azurerm_container_app",
                             "azurerm_monitor_scheduled_query_rules_alert_v2"],
    "azure/modules/archiver": ["azurerm_container_app", "tls_locally_signed_cert"],
}
# What a module must say somewhere (the defect its absence was).
REQUIRED_TEXT = {
    "aws/modules/access": ["sts:AssumeRoleWithWebIdentity", "pods.eks.amazonaws.com"],
    "aws/modules/archiver": ["MULTIVALUE", "dns+https://"],
}
ENUMERATED = {"mode", "lock_mode", "role", "image"}
S3_WRITES = ("s3:PutObject", "s3:DeleteObject", "s3:PutObjectRetention", "s3:RestoreObject",
             "s3:PutObjectLegalHold", "s3:DeleteObjectVersion", "s3:*")
READER_ROLES = {"Storage Blob Data Reader"}

problems = []


def problem(where, what):
    problems.append(f"{where}: {what}")


def load(path):
    with open(path) as f:
        return hcl2.load(f)


def one(x):
    """python-hcl2 wraps attribute values in one-element lists."""
    return x[0] if isinstance(x, list) and len(x) == 1 else x


def unq(s):
    return s.strip('"') if isinstance(s, str) else s


def text(x):
    return str(x)


def blocks(doc, kind):
    """(type, name, body) of every resource or data block."""
    for block in doc.get(kind, []):
        for rtype, named in block.items():
            for name, body in named.items():
                yield unq(rtype), unq(name), body


def module_dirs():
    for d in sorted(ROOT.glob("*/modules/*")):
        if any(d.glob("*.tf")):
            yield d
    for d in sorted(ROOT.glob("*")):
        if d.is_dir() and any(d.glob("*.tf")):
            yield d


def check_versions(where, doc):
    for t in doc.get("terraform", []):
        rv = one(t.get("required_version", ""))
        if rv and "<" not in rv:
            problem(where, f"required_version {rv!r} has no upper bound")
        for rp in t.get("required_providers", []):
            for name, spec in rp.items():
                spec = one(spec)
                version = one(spec.get("version", "")) if isinstance(spec, dict) else ""
                if ">" not in version or "<" not in version:
                    problem(where, f"provider {name} version {version!r}: bound it below and above")
                if name == "azurerm" and not re.search(r">=\s*4\.(9|[1-9]\d)", version):
                    problem(where, f"azurerm {version!r}: storage_account_id needs 4.9 or newer")


def check_module(mdir):
    rel = str(mdir.relative_to(ROOT))
    variables, resources = {}, set()
    docs = []
    for tf in sorted(mdir.glob("*.tf")):
        try:
            doc = load(tf)
        except Exception as e:  # noqa: BLE001 - the parser's own message is the point
            problem(tf, f"does not parse: {e}")
            continue
        docs.append((tf, doc))
        check_versions(tf, doc)
        for block in doc.get("variable", []):
            for name, body in block.items():
                name = unq(name)
                variables[name] = body
                for key in ("type", "description"):
                    if key not in body:
                        problem(tf, f"variable {name} has no {key}")
                typ = text(one(body.get("type", "")))
                if ("number" in typ or name in ENUMERATED) and "validation" not in body:
                    problem(tf, f"variable {name} ({typ}) has no validation")
        for block in doc.get("output", []):
            for name, body in block.items():
                if "description" not in body:
                    problem(tf, f"output {unq(name)} has no description")
        for rtype, _, _ in blocks(doc, "resource"):
            resources.add(rtype)
    for r in REQUIRED.get(rel, []):
        if r not in resources:
            problem(mdir, f"no {r} resource")
    everything = "".join(tf.read_text() for tf in mdir.glob("*.tf"))
    for t in REQUIRED_TEXT.get(rel, []):
        if t not in everything:
            problem(mdir, f"never says {t!r}")

    return variables, docs


def key_policies(docs):
    """aws_kms_key NAME → the text of the policy document it uses."""
    policies = {name: body for tf, doc in docs for t, name, body in blocks(doc, "data")
                if t == "aws_iam_policy_document"}
    out = {}
    for tf, doc in docs:
        for t, name, body in blocks(doc, "resource"):
            if t == "aws_kms_key":
                m = re.search(r"data\.aws_iam_policy_document\.(\w+)\.json", text(body.get("policy")))
                out[name] = text(policies.get(m.group(1))) if m else ""
    return out, policies


def check_grants(rel, docs):
    keys, policies = key_policies(docs)
    local_values = {k: text(v) for _, doc in docs for block in doc.get("locals", []) for k, v in block.items()}

    def expanded(x):
        """The text of x with each local.NAME it names replaced by that local's text."""
        return re.sub(r"local\.(\w+)", lambda m: local_values.get(m.group(1), m.group(0)), text(x))

    for tf, doc in docs:
        for t, name, body in blocks(doc, "resource"):
            if t == "aws_cloudwatch_log_group":
                m = re.search(r"aws_kms_key\.(\w+)\.arn", text(body.get("kms_key_id")))
                if m and "logs." not in keys.get(m.group(1), ""):
                    problem(tf, f"log group {name} is encrypted with aws_kms_key.{m.group(1)}, whose policy does not grant CloudWatch Logs (logs.REGION.amazonaws.com)")
            if t == "aws_ssm_parameter":
                if "tier" not in body:
                    problem(tf, f"SSM parameter {name} has no tier: a standard one holds 4 KB")
                m = re.search(r"aws_kms_key\.(\w+)\.arn", text(body.get("key_id")))
                if m:
                    readers = [p for p in policies.values() if "ssm:GetParameters" in text(p)]
                    if not any(f"aws_kms_key.{m.group(1)}.arn" in text(p) and "kms:Decrypt" in text(p) for p in readers):
                        problem(tf, f"SSM parameter {name} is under aws_kms_key.{m.group(1)}, which no role reading parameters may decrypt with")
        for t, name, body in blocks(doc, "resource"):
            check_resource(tf, t, name, body, keys, expanded)
        for t, name, body in blocks(doc, "data"):
            if t != "aws_iam_policy_document":
                continue
            statements = body.get("statement", []) + [one(d.get("content")) or {} for d in body.get("dynamic", [])
                                                      for d in d.values()]
            bounded = any(one(st.get("effect")) == "Deny" and "object-lock-remaining-retention-days" in text(st)
                          for st in statements)
            for st in statements:
                if (one(st.get("effect", "Allow")) != "Deny" and "s3:PutObjectRetention" in text(st.get("actions"))
                        and "object-lock-mode" not in text(st.get("condition")) and not bounded):
                    problem(tf, f"policy {name}: {one(st.get('sid', '?'))} allows PutObjectRetention with no bound on mode or length")
            for st in body.get("statement", []):
                actions, resources = text(st.get("actions")), text(st.get("resources"))
                if any(a in actions for a in S3_WRITES) and "source" in resources and "lock" not in resources:
                    problem(tf, f"policy {name}: {one(st.get('sid', '?'))} writes to a source beyond locks/")
        for t, name, body in blocks(doc, "resource"):
            if t == "azurerm_role_assignment" and "source" in text(body.get("scope")) + text(body.get("for_each")):
                role = unq(one(body.get("role_definition_name")))
                if role not in READER_ROLES and "locks/" not in expanded(body.get("condition")):
                    problem(tf, f"role assignment {name} gives {role} on a source: readers only, writers only on locks/ (a condition)")
            # immutability_policy is ForceNew (also as a dynamic block).
            if t == "azurerm_storage_account" and "immutability_policy" in text(body):
                life = one(body.get("lifecycle")) or {}
                if one(life.get("prevent_destroy")) is not True:
                    problem(tf, f"storage account {name}: immutability_policy is ForceNew; without lifecycle prevent_destroy a change plans to replace the backups")


def check_resource(tf, t, name, body, keys, expanded):
    """Rules on single resources (each the check of a defect found in review)."""
    body_text = expanded(body)
    life = one(body.get("lifecycle")) or {}
    if t == "aws_kms_key" and one(life.get("prevent_destroy")) is True:
        policy = keys.get(name, "")
        if "kms:ScheduleKeyDeletion" not in policy or "Deny" not in policy:
            problem(tf, f"key {name} protects backups but anyone with KMS admin may disable or delete it (deny that to all but named admins)")
    if t == "aws_s3_bucket_lifecycle_configuration":
        for days in re.findall(r"'noncurrent_days': \['?(\d+)'?\]", text(body)):
            if int(days) < 7:
                problem(tf, f"{name}: hidden versions expire after {days} day(s): a mistaken delete is lost that fast")
    if t == "aws_security_group" and "0.0.0.0/0" in body_text:
        problem(tf, f"security group {name} opens to 0.0.0.0/0: take the addresses from the caller")
    if t == "aws_ecs_task_definition" and "healthCheck" not in body_text:
        problem(tf, f"task definition {name}: no container health check")
    if t == "azurerm_container_app":
        for probe in re.findall(r"'readiness_probe': \[\{[^}]*'transport': \['(\w+)'\]", body_text):
            if probe == "TCP":
                problem(tf, f"container app {name}: readiness by TCP only; probe its HTTP(S) endpoint")
        exposed = text((one(body.get("ingress")) or {}).get("exposed_port"))
        if "count" in body and "'tcp'" in body_text.lower() and "count.index" not in exposed:
            problem(tf, f"container app {name}: several apps with TCP ingress need a port each (exposed_port from count.index)")
    if t == "azurerm_storage_account" and "account_replication_type" in body:
        replication = text(body.get("account_replication_type"))
        if not re.search(r"'(LRS|GRS|RAGRS)'", replication) and "Archive" not in text(life.get("precondition")):
            problem(tf, f"storage account {name}: its replication may not support the Archive tier, and no precondition says so")


def check_example_providers(ex, doc):
    for block in doc.get("provider", []):
        for pname, body in block.items():
            if unq(pname) == "azurerm" and one(body.get("storage_use_azuread")) is not True:
                problem(ex, "an azurerm provider without storage_use_azuread = true (the target has no shared keys: 403)")
    for block in doc.get("variable", []):
        for vname, body in block.items():
            if one(body.get("sensitive")) is True:
                problem(ex, f"variable {unq(vname)} is sensitive: secrets must not pass through Terraform (its state)")


def call_files(ex, call, key):
    """The TOML file a module input reads with file("${path.module}/NAME")."""
    m = re.search(r'file\(\\?"\$\{path\.module\}/([^"\\]+)\\?"\)', text(call.get(key)))
    if not m:
        return None
    with open(ex.parent / m.group(1), "rb") as f:
        return tomllib.load(f)


def envs(value, found):
    if isinstance(value, dict):
        for k, v in value.items():
            if k.endswith("_env") and isinstance(v, str):
                found.add(v)
            else:
                envs(v, found)
    elif isinstance(value, list):
        for v in value:
            envs(v, found)
    return found


def check_example(ex, modules):
    doc = load(ex)
    check_versions(ex, doc)
    check_example_providers(ex, doc)
    calls = [(unq(n), b) for block in doc.get("module", []) for n, b in block.items()]
    if not calls:
        problem(ex, "calls no module")
    for name, call in calls:
        src = (ex.parent / unq(one(call["source"]))).resolve()
        variables = modules.get(src)
        if variables is None:
            problem(ex, f"module {name}: no module at {one(call['source'])}")
            continue
        given = {k for k in call if k not in ("source", "providers", "depends_on") and not k.startswith("__")}
        for k in sorted(given - variables.keys()):
            problem(ex, f"module {name}: input {k} is not a variable of {src.name}")
        mandatory = {n for n, b in variables.items() if "default" not in b}
        for k in sorted(mandatory - given):
            problem(ex, f"module {name}: required input {k} is not set")
        image = unq(one(call.get("image", "")))
        if "image" in call and "@sha256:" not in image:
            problem(ex, f"module {name}: image {image!r} is not pinned by digest")
        secrets = set()
        for key in ("secret_arns", "key_vault_secret_ids"):
            if isinstance(one(call.get(key)), dict):
                secrets |= set(one(call.get(key)).keys())
        for key in ("jobs_toml", "archiver_toml"):
            parsed = call_files(ex, call, key)
            if parsed is None:
                continue
            for env in sorted(envs(parsed, set()) - secrets):
                problem(ex, f"module {name}: its {key} names {env}, which is not in its secret_arns")
            if key == "archiver_toml" and any("TOKEN" in s for s in secrets):
                problem(ex, f"module {name}: an appliance is given a token secret ({sorted(secrets)}); only the runner needs it")
            for job in parsed.get("job", []):
                arch = job.get("archivers") or {}
                if any("https://" in u for u in arch.get("urls", [])):
                    if not arch.get("ca_file"):
                        problem(ex, f"module {name}: job {job.get('name')} uses https appliances without ca_file")
                    if "archiver_ca_pem" not in call:
                        problem(ex, f"module {name}: its jobs use https appliances but it is given no archiver_ca_pem")


def main():
    modules = {}
    all_docs = []
    for mdir in module_dirs():
        variables, docs = check_module(mdir)
        modules[mdir.resolve()] = variables
        all_docs.append((mdir, docs))
    for mdir, docs in all_docs:
        check_grants(str(mdir.relative_to(ROOT)), docs)
    for ex in sorted(ROOT.glob("*/examples/*/main.tf")):
        check_example(ex, modules)
        check_grants(str(ex.parent.relative_to(ROOT)), [(ex, load(ex))])
    for p in problems:
        print(p)
    print(f"check_hcl: {len(modules)} modules, {len(list(ROOT.glob('*/examples/*/main.tf')))} examples, {len(problems)} problem(s)")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
