#!/usr/bin/env bash
# End-to-end on a kind cluster, for machines with a Docker engine (not Pilotfish's CI machine):
# create the cluster, build and load both images, install charts/pilotfish, run the e2e/kind tests,
# delete the cluster. Uses its own kubeconfig file, so ~/.kube/config is left alone.
#
# Usage: e2e/kind/run.sh [--keep]
#   --keep   keep the cluster (and print how to reach it) instead of deleting it
# Environment: PILOTFISH_KIND_CLUSTER (pilotfish-e2e), PILOTFISH_IMAGE_TAG (e2e), PYTHON (python3),
#              KIND_NODE_IMAGE (kind's default node image when unset)
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "${here}/../.." && pwd)"
cluster="${PILOTFISH_KIND_CLUSTER:-pilotfish-e2e}"
tag="${PILOTFISH_IMAGE_TAG:-e2e}"
python="${PYTHON:-python3}"
operator_image="pilotfish/operator:${tag}"
sidecar_image="pilotfish/sidecar:${tag}"

keep=false
case "${1:-}" in
  --keep) keep=true ;;
  "") ;;
  *) echo "usage: $0 [--keep]" >&2; exit 2 ;;
esac

for tool in docker kind kubectl helm "${python}"; do
  command -v "${tool}" >/dev/null || { echo "run.sh needs ${tool} on PATH" >&2; exit 2; }
done
docker info >/dev/null 2>&1 || { echo "run.sh needs a running Docker engine (docker info failed)" >&2; exit 2; }
[[ -d "${root}/charts/pilotfish" ]] || { echo "charts/pilotfish is missing" >&2; exit 2; }

workdir="$(mktemp -d "${TMPDIR:-/tmp}/pilotfish-kind.XXXXXX")"
export KUBECONFIG="${workdir}/kubeconfig"

cleanup() {
  local status=$?
  if [[ "${keep}" == true ]]; then
    echo "cluster ${cluster} kept: export KUBECONFIG=${KUBECONFIG}; delete it with: kind delete cluster --name ${cluster}" >&2
  else
    kind delete cluster --name "${cluster}" >/dev/null 2>&1 || true
    rm -rf "${workdir}"
  fi
  exit "${status}"
}
trap cleanup EXIT

create_args=(--name "${cluster}" --wait 120s)
if [[ -n "${KIND_NODE_IMAGE:-}" ]]; then
  create_args+=(--image "${KIND_NODE_IMAGE}")
fi
kind create cluster "${create_args[@]}"

docker build -f "${root}/Dockerfile.operator" -t "${operator_image}" "${root}"
docker build -f "${root}/Dockerfile.sidecar" -t "${sidecar_image}" "${root}"
kind load docker-image --name "${cluster}" "${operator_image}" "${sidecar_image}"

# IfNotPresent: the images exist only inside the kind nodes, never in a registry.
helm install pilotfish "${root}/charts/pilotfish" \
  --namespace pilotfish-system --create-namespace \
  --set "operator.image.repository=pilotfish/operator" --set "operator.image.tag=${tag}" \
  --set "operator.image.pullPolicy=IfNotPresent" \
  --set "sidecar.image.repository=pilotfish/sidecar" --set "sidecar.image.tag=${tag}" \
  --set "sidecar.image.pullPolicy=IfNotPresent" \
  --wait --timeout 180s

cd "${root}"
"${python}" -m pytest e2e/kind -v -p no:cacheprovider
