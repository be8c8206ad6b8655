"""Parses every Terraform file (python-hcl2) and checks what a module's user relies on:
every variable has a type and a description, every output a description, each example
calls its module with inputs the module declares and sets every input without a default,
and the resources the issue asks for are there. Exit 1 with one line per problem."""

import pathlib
import sys

import hcl2

ROOT = pathlib.Path(__file__).resolve().parent
REQUIRED = {
    "aws": ["aws_s3_bucket", "aws_s3_bucket_versioning", "aws_s3_bucket_public_access_block",
            "aws_s3_bucket_server_side_encryption_configuration",
            "aws_s3_bucket_lifecycle_configuration", "aws_iam_role", "aws_ecs_service",
            "aws_ecs_task_definition", "aws_cloudwatch_event_target"],
    "azure": ["azurerm_storage_account", "azurerm_storage_container",
              "azurerm_user_assigned_identity", "azurerm_role_assignment",
              "azurerm_container_app_job", "azurerm_container_app"],
}


def load(path):
    with open(path) as f:
        return hcl2.load(f)


def unq(s):
    return s.strip('"') if isinstance(s, str) else s


def main():
    problems = []
    for module, required in REQUIRED.items():
        mdir = ROOT / module
        variables, resources = {}, set()
        for tf in sorted(mdir.glob("*.tf")):
            try:
                doc = load(tf)
            except Exception as e:  # noqa: BLE001 - the parser's own message is the point
                problems.append(f"{tf}: does not parse: {e}")
                continue
            for block in doc.get("variable", []):
                for name, body in block.items():
                    name = unq(name)
                    variables[name] = body
                    for key in ("type", "description"):
                        if key not in body:
                            problems.append(f"{tf}: variable {name} has no {key}")
            for block in doc.get("output", []):
                for name, body in block.items():
                    if "description" not in body:
                        problems.append(f"{tf}: output {unq(name)} has no description")
            for block in doc.get("resource", []):
                resources.update(unq(k) for k in block)
        for r in required:
            if r not in resources:
                problems.append(f"{mdir}: no {r} resource")
        mandatory = {n for n, b in variables.items() if "default" not in b}
        for ex in sorted((mdir / "examples").glob("*/main.tf")):
            doc = load(ex)
            calls = [b for block in doc.get("module", []) for b in block.values()]
            if not calls:
                problems.append(f"{ex}: calls no module")
            for call in calls:
                given = {k for k in call if k not in ("source", "providers", "depends_on") and not k.startswith("__")}
                for k in sorted(given - variables.keys()):
                    problems.append(f"{ex}: input {k} is not a variable of {module}")
                for k in sorted(mandatory - given):
                    problems.append(f"{ex}: required input {k} is not set")
    for p in problems:
        print(p)
    print(f"check_hcl: {len(problems)} problem(s)")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
