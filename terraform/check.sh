#!/usr/bin/env bash
# Offline checks of the deployment files: Terraform formatting (hclwrite's Format, the
# function behind `terraform fmt`, from npm's @cdktf/hcl-tools), HCL parsed and checked
# (python-hcl2), the example jobs files validated by the built `offsite`, every
# container's command line parsed by the binary its image runs, the Kubernetes
# manifests against their schemas (kubernetes-validate), and a checkov scan of both.
# Tools are installed once into ~/.cache/offsite-tools. Needs the debug offsite and
# offsite-archiver binaries (or OFFSITE_BIN, OFFSITE_ARCHIVER_BIN). Run from anywhere: bash terraform/check.sh
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/.." && pwd)
tools=${OFFSITE_TOOLS:-$HOME/.cache/offsite-tools}
venv=$tools/iac-venv
if [ ! -f "$venv/.ok-1" ]; then
  rm -rf "$venv"
  python3 -m venv "$venv"
  "$venv/bin/pip" install -q checkov==3.3.30 python-hcl2==8.1.4 kubernetes-validate==1.37.0
  touch "$venv/.ok-1"
fi
export HCL_TOOLS=$tools/hcl-tools/node_modules
if [ ! -f "$tools/hcl-tools/.ok-1" ]; then
  mkdir -p "$tools/hcl-tools"
  (cd "$tools/hcl-tools" && npm init -y >/dev/null && npm install --silent @cdktf/hcl-tools@0.21.0)
  touch "$tools/hcl-tools/.ok-1"
fi

cd "$root"
mapfile -t tf < <(find terraform -name '*.tf' | sort)
echo "== terraform fmt (hclwrite Format) of ${#tf[@]} files"
node terraform/fmt.mjs "${tf[@]}"
echo "== HCL parsed and checked"
"$venv/bin/python" terraform/check_hcl.py
echo "== example jobs files"
O=${OFFSITE_BIN:-${CARGO_TARGET_DIR:-$root/target}/debug/offsite}
# The Kubernetes jobs file lives in a ConfigMap: taken out to be validated as well.
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
"$venv/bin/python" -c '
import sys, yaml
for d in yaml.safe_load_all(open("kubernetes/runner.yaml")):
    if d["kind"] == "ConfigMap" and d["metadata"]["name"] == "offsite-jobs":
        jobs = d["data"]["jobs.toml"].replace("/run/secrets/offsite/", sys.argv[2] + "/")
        open(sys.argv[1], "w").write(jobs)
' "$tmp/k8s-jobs.toml" "$tmp"
# Stand-ins for the secrets the files name (validation reads them).
for f in source target archiver-token; do echo stand-in-secret-value > "$tmp/$f"; done
touch "$tmp/archiver-ca.pem"
export OFFSITE_PASSWORD=x OFFSITE_SOURCE_PASSWORD=x OFFSITE_TARGET_PASSWORD=x \
  OFFSITE_ARCHIVER_TOKEN=stand-in-token-value
for j in terraform/*/examples/*/jobs.toml localstack/compose/jobs.toml "$tmp/k8s-jobs.toml"; do
  "$O" job validate --config "$j" --offline >/dev/null || { echo "$j: see above"; exit 1; }
  echo "$j: valid"
done
echo "== container command lines, composed with their images' ENTRYPOINT and CMD"
A=${OFFSITE_ARCHIVER_BIN:-${CARGO_TARGET_DIR:-$root/target}/debug/offsite-archiver}
"$venv/bin/python" terraform/check_commands.py "$O" "$A"
echo "== Kubernetes manifests against their schemas"
"$venv/bin/kubernetes-validate" --strict kubernetes/*.yaml
echo "== checkov"
"$venv/bin/checkov" --skip-download --quiet --compact -d terraform --framework terraform
"$venv/bin/checkov" --skip-download --quiet --compact -d kubernetes --framework kubernetes
echo "deployment files: all checks passed"
