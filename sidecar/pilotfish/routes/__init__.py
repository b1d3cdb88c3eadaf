"""The routes document: the contract between the operator (writer) and the sidecar (reader).

It is not tied to Kubernetes, so it can be produced and consumed without a cluster: ``render``
makes it from API objects, ``loader`` reads it from a mounted ConfigMap, ``pilotfish local`` does
both on a laptop.
"""
