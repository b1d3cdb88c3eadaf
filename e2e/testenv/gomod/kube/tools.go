//go:build tools

// Package tools pins the Kubernetes commands the test environment builds from the official
// k8s.io/kubernetes module. go.mod is generated beside this file by e2e/testenv/gobuild.py, with
// one replace line per staging module, derived from the downloaded k8s.io/kubernetes go.mod.
package tools

import (
	_ "k8s.io/kubernetes/cmd/kube-apiserver"
	_ "k8s.io/kubernetes/cmd/kubectl"
)
