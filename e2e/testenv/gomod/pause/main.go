// The pod sandbox ("pause") process of the test node: it holds the pod's namespaces, reaps the
// zombies of the processes that share its PID namespace, and exits on SIGTERM or SIGINT. It does
// what Kubernetes' own pause.c does; it is written in Go so the test environment builds it with the
// toolchain it already needs, with no C compiler and no registry.
package main

import (
	"os"
	"os/signal"
	"syscall"
)

func main() {
	signals := make(chan os.Signal, 8)
	signal.Notify(signals, syscall.SIGTERM, syscall.SIGINT, syscall.SIGCHLD)
	for sig := range signals {
		if sig != syscall.SIGCHLD {
			os.Exit(0)
		}
		for {
			pid, err := syscall.Wait4(-1, nil, syscall.WNOHANG, nil)
			if pid <= 0 || err != nil {
				break
			}
		}
	}
}
