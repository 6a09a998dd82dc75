package scaletest

import (
	"context"
	"testing"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/crus-go/crus"
	"github.com/crus-go/crus/internal/etcdtest"
	"github.com/crus-go/crus/store/etcdstore"
	"github.com/crus-go/crus/store/filestore"
)

// Backends are the stores the benchmarks of the surfaces run on: the
// ones `crus serve` runs with.
var Backends = []string{"file", "etcd"}

// NewBackend returns an empty store of a kind of Backends: a file store in
// a directory of the test's own, or an etcd store under a prefix of the
// test's own on the package's shared etcd server (etcdtest.Shared: call
// etcdtest.Main from TestMain), skipped where there is no etcd.
func NewBackend(tb testing.TB, kind string) crus.Store {
	tb.Helper()
	switch kind {
	case "file":
		st, err := filestore.Open(tb.TempDir(), filestore.Options{})
		if err != nil {
			tb.Fatal(err)
		}
		tb.Cleanup(func() { st.Close() })
		return st
	case "etcd":
		c, prefix := etcdtest.Shared(tb)
		st, err := etcdstore.New(c, etcdstore.Config{Prefix: prefix})
		if err != nil {
			tb.Fatal(err)
		}
		tb.Cleanup(func() { // the shared server outlives the benchmark: free its space
			_, _ = c.Delete(context.Background(), prefix, clientv3.WithPrefix())
		})
		return st
	}
	tb.Fatalf("scaletest: no backend %q", kind)
	return nil
}
