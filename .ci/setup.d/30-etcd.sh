#!/usr/bin/env bash
# The etcd store's tests (store/etcdstore, and the crash and replica tests
# of the root package) start a real etcd server on loopback: Debian's
# etcd-server package provides the binary. The tests start and stop their
# own server; the package's service must not run.
set -euo pipefail
if command -v etcd >/dev/null 2>&1; then
	etcd --version | sed -n 1p
	exit 0
fi
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
# Keep the package's init script from starting a system-wide etcd.
policy=/usr/sbin/policy-rc.d
created_policy=false
if [ ! -e "$policy" ]; then
	printf '#!/bin/sh\nexit 101\n' >"$policy"
	chmod 755 "$policy"
	created_policy=true
fi
apt-get install -y -qq --no-install-recommends etcd-server >/dev/null
if [ "$created_policy" = true ]; then
	rm -f "$policy"
fi
etcd --version | sed -n 1p
