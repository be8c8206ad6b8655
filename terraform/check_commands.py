"""Every container's command line, composed with its image's ENTRYPOINT and CMD the way
the runtime composes them, parsed by the real binary (OFFSITE_CHECK_ARGS=1: clap parses
the arguments, then the binary exits without running). A manifest that passes `job run`
to an image whose ENTRYPOINT is already `offsite job run` fails here.

Kubernetes: `command` replaces ENTRYPOINT (and drops CMD), `args` replaces CMD. A
`/bin/sh -c SCRIPT` command (ECS task definitions, Container Apps) is checked by the
`exec BINARY ARGS` its script ends in. Kubernetes is read as deployed: the overlays
rendered by `kubectl kustomize`, one file each in RENDERED (images already renamed by
the overlay, so an image is told apart by its name). Usage:
check_commands.py OFFSITE ARCHIVER RENDERED
"""
import glob
import json
import os
import re
import shlex
import subprocess
import sys

import yaml

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BINS = {"offsite": sys.argv[1], "offsite-archiver": sys.argv[2]}
DOCKERFILES = {"offsite": "Dockerfile", "offsite-archiver": "archiver/Dockerfile"}


def instruction(dockerfile, name):
    """An exec-form ENTRYPOINT or CMD of the final stage."""
    found = None
    for line in open(os.path.join(ROOT, dockerfile)):
        if line.startswith("FROM "):
            found = None
        if line.startswith(name + " "):
            found = json.loads(line[len(name) + 1:])
    return found or []


IMAGES = {
    kind: (instruction(f, "ENTRYPOINT"), instruction(f, "CMD"))
    for kind, f in DOCKERFILES.items()
}


def healthcheck(dockerfile):
    """The exec-form HEALTHCHECK CMD of the final stage, if any."""
    found = None
    for line in open(os.path.join(ROOT, dockerfile)):
        if line.startswith("FROM "):
            found = None
        m = re.match(r"HEALTHCHECK .*?CMD (\[.*\])\s*$", line)
        if m:
            found = json.loads(m.group(1))
    return found


def image_kind(image):
    return "offsite-archiver" if "archiver" in image else "offsite"


def parse(where, argv):
    """Runs the binary argv names with the rest of argv, arguments only."""
    if argv[:2] == ["/bin/sh", "-c"]:
        m = re.search(r"exec (offsite(?:-archiver)?)\b(.*)$", argv[2])
        if not m:
            sys.exit(f"{where}: a shell command that does not exec offsite: {argv[2]!r}")
        argv = [m.group(1)] + shlex.split(m.group(2))
    name = os.path.basename(argv[0]) if argv else ""
    if name not in BINS:
        sys.exit(f"{where}: runs {argv[:1]}, not offsite or offsite-archiver")
    env = dict(os.environ, OFFSITE_CHECK_ARGS="1")
    r = subprocess.run([BINS[name]] + argv[1:], env=env, capture_output=True, text=True)
    if r.returncode != 0:
        sys.exit(f"{where}: the binary refuses {argv}:\n{r.stderr.strip()}")
    print(f"{where}: {' '.join(argv[:3])} … accepted", flush=True)


# What Kubernetes itself gives a container to expand in `$(NAME)` references.
RUNTIME = {"JOB_COMPLETION_INDEX": "0"}


def expand(words, container):
    """`$(NAME)` as Kubernetes expands it: the container's env values, then the
    runtime's own variables; anything else stays as written (as Kubernetes leaves it)."""
    values = dict(RUNTIME)
    values.update({e["name"]: e["value"] for e in container.get("env", []) if "value" in e})
    sub = lambda m: values.get(m.group(1), m.group(0))
    return [re.sub(r"\$\(([A-Za-z_][A-Za-z0-9_]*)\)", sub, w) for w in words]


def pod_specs(doc):
    kind, spec = doc.get("kind"), doc.get("spec") or {}
    if kind in ("Deployment", "StatefulSet", "DaemonSet", "Job"):
        yield spec["template"]["spec"]
    elif kind == "CronJob":
        yield spec["jobTemplate"]["spec"]["template"]["spec"]


def kubernetes(rendered):
    n = 0
    for path in sorted(glob.glob(os.path.join(rendered, "*.yaml"))):
        for doc in yaml.safe_load_all(open(path)):
            for pod in pod_specs(doc or {}):
                for c in pod.get("initContainers", []) + pod["containers"]:
                    entry, cmd = IMAGES[image_kind(c["image"])]
                    command = c.get("command")
                    args = c.get("args")
                    argv = (command if command is not None else entry) + (
                        args if args is not None else (cmd if command is None else [])
                    )
                    rel = os.path.basename(path)
                    where = f"kubernetes overlay {rel}: {doc['kind']} {doc['metadata']['name']} container {c['name']}"
                    parse(where, expand(argv, c))
                    n += 1
    return n


def terraform():
    """The shell scripts of ECS task definitions and Container Apps (HCL strings)."""
    n = 0
    for path in sorted(glob.glob(os.path.join(ROOT, "terraform", "**", "*.tf"), recursive=True)):
        text = open(path).read()
        for literal in re.findall(r'"((?:[^"\\]|\\.)*exec offsite(?:[^"\\]|\\.)*)"', text):
            script = json.loads(f'"{literal}"')
            parse(os.path.relpath(path, ROOT), ["/bin/sh", "-c", script])
            n += 1
    return n


def version(v):
    return tuple(int(x) for x in v.split("."))


def base_images(dockerfile):
    """Every FROM names an ARG default (images/pin-base-images.sh pins them), the Rust
    toolchain is no older than the crates' rust-version, and the final image is labelled."""
    text = open(os.path.join(ROOT, dockerfile)).read()
    args = dict(re.findall(r"^ARG (\w+)=(\S+)", text, re.M))
    for image in re.findall(r"^FROM (\S+)", text, re.M):
        m = re.fullmatch(r"\$\{(\w+)\}", image)
        if not m or m.group(1) not in args:
            sys.exit(f"{dockerfile}: FROM {image}: name an ARG with a default (pinned by images/pin-base-images.sh)")
    rust = re.match(r"rust:(\d+\.\d+)", args.get("RUST_IMAGE", ""))
    wanted = re.search(r'^rust-version = "([\d.]+)"', open(os.path.join(ROOT, "Cargo.toml")).read(), re.M)
    if not rust or version(rust.group(1)) < version(".".join(wanted.group(1).split(".")[:2])):
        sys.exit(f"{dockerfile}: RUST_IMAGE {args.get('RUST_IMAGE')!r} is older than rust-version {wanted.group(1)} (or names no version)")
    for label in ("title", "version", "revision", "licenses"):
        if f"org.opencontainers.image.{label}=" not in text:
            sys.exit(f"{dockerfile}: no org.opencontainers.image.{label} label")


def images():
    """Each image's HEALTHCHECK: a command line its binary must accept too."""
    n = 0
    for kind, f in DOCKERFILES.items():
        base_images(f)
        argv = healthcheck(f)
        if argv is None:
            sys.exit(f"{f}: no HEALTHCHECK")
        parse(f"{f}: HEALTHCHECK", argv)
        n += 1
    return n


if __name__ == "__main__":
    images()
    k, t = kubernetes(sys.argv[3]), terraform()
    print(f"container command lines: {k} Kubernetes, {t} Terraform, all accepted")
