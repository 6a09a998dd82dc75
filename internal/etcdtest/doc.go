// Package etcdtest starts real etcd servers for crus's tests: the etcd
// binary (Debian's etcd-server package; .ci/setup.d/30-etcd.sh installs
// it) as a child process on loopback, with its data on tmpfs when there is
// one. Each server is stopped by the pid the test started, and its ports
// and data go with it.
//
// Without an etcd binary the tests that need one are skipped, unless the
// CI environment variable is set: in CI a missing etcd is a failure.
package etcdtest
