//go:build tools

// Package tools pins the node's Kubernetes commands (kubelet, kube-scheduler,
// kube-controller-manager), built from the official k8s.io/kubernetes module at the same version as
// kube-apiserver. go.mod is generated beside this file by e2e/testenv/gobuild.py, as for the
// control plane's wrapper module.
package tools

import (
	_ "k8s.io/kubernetes/cmd/kube-controller-manager"
	_ "k8s.io/kubernetes/cmd/kube-scheduler"
	_ "k8s.io/kubernetes/cmd/kubelet"
)
