#!/usr/bin/env bash
# End-to-end on a kind cluster, for machines with a Docker engine:
# create the cluster, build and load both images, install the chart, run e2e/kind tests, delete.
# Usage: e2e/kind/run.sh [--keep]
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "${here}/../.." && pwd)"
cluster="${PILOTFISH_KIND_CLUSTER:-pilotfish-e2e}"
tag="${PILOTFISH_IMAGE_TAG:-e2e}"
keep=false
[[ "${1:-}" == "--keep" ]] && keep=true

for tool in docker kind kubectl helm; do
  command -v "${tool}" >/dev/null || { echo "run.sh needs ${tool} on PATH" >&2; exit 2; }
done
docker info >/dev/null 2>&1 || { echo "run.sh needs a running Docker engine" >&2; exit 2; }

cleanup() {
  if [[ "${keep}" == false ]]; then
    kind delete cluster --name "${cluster}" >/dev/null 2>&1 || true
  fi
}
trap cleanup EXIT

kind create cluster --name "${cluster}" --wait 120s
docker build -f "${root}/Dockerfile.operator" -t "pilotfish/operator:${tag}" "${root}"
docker build -f "${root}/Dockerfile.sidecar" -t "pilotfish/sidecar:${tag}" "${root}"
kind load docker-image --name "${cluster}" "pilotfish/operator:${tag}" "pilotfish/sidecar:${tag}"

helm install pilotfish "${root}/charts/pilotfish" \
  --namespace pilotfish-system --create-namespace \
  --set "operator.image.tag=${tag}" --set "sidecar.image.tag=${tag}" \
  --wait --timeout 180s

kind export kubeconfig --name "${cluster}"
python -m pytest "${root}/e2e/kind" -v
