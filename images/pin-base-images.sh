#!/usr/bin/env bash
# Pins both Dockerfiles' base images to the digests their tags name today, for a
# reproducible release build: ARG RUST_IMAGE=rust:1.95-slim-bookworm becomes
# rust:1.95-slim-bookworm@sha256:…, the same for BASE_IMAGE. Needs Docker with buildx
# (it asks the registry; nothing is pulled). Run from anywhere; review and commit the
# change. A pinned tag is pinned again to the tag's current digest.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
for f in "$root/Dockerfile" "$root/archiver/Dockerfile"; do
  for arg in RUST_IMAGE BASE_IMAGE; do
    current=$(sed -n "s/^ARG $arg=//p" "$f")
    tag=${current%%@*}
    digest=$(docker buildx imagetools inspect "$tag" --format '{{json .Manifest.Digest}}' | tr -d '"')
    [[ $digest == sha256:* ]] || { echo "$tag: no digest ($digest)" >&2; exit 1; }
    sed -i "s|^ARG $arg=.*|ARG $arg=$tag@$digest|" "$f"
    echo "$f: $arg=$tag@$digest"
  done
done
