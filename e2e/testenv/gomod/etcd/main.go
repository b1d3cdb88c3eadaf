// Command etcd is the etcd server, built from the official go.etcd.io/etcd/server/v3 module for
// the test environment only: the same entry point the upstream etcd binary calls.
package main

import (
	"os"

	"go.etcd.io/etcd/server/v3/etcdmain"
)

func main() {
	etcdmain.Main(os.Args)
}
