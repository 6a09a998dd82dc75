// Package freeport chooses TCP ports on 127.0.0.1 for the daemons the tests
// start (slurmctld, slurmd, slurmrestd, etcd), which must be told their
// port before they bind it.
//
// A port found by listening on port 0 comes from the kernel's ephemeral
// range, the range it also hands to every outgoing connection and to every
// other listener on port 0 (each httptest server of the packages tested at
// the same time). Between the choice and the daemon's bind, one of those
// can take it, and the daemon then fails to start. So Loopback draws its
// ports at random below that range, where the kernel hands out nothing,
// and checks each is free by binding it.
package freeport

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"strconv"
	"strings"
)

// lowest is the lowest port Loopback draws: below it lie the registered
// ports of common services.
const lowest = 20000

// rangeFile holds the kernel's ephemeral port range on Linux.
const rangeFile = "/proc/sys/net/ipv4/ip_local_port_range"

// Loopback returns n distinct TCP ports, each free on 127.0.0.1 when it was
// chosen (all held open together, then released). Another process that
// chooses ports the same way may still take one before the caller binds
// it: callers retry with new ports when a daemon fails to start.
func Loopback(n int) ([]int, error) {
	lo, err := ephemeralLow()
	if err != nil || lo-lowest < 4*n {
		// No room below the ephemeral range: ask the kernel.
		return choose(n, func() (net.Listener, error) { return net.Listen("tcp", "127.0.0.1:0") })
	}
	tries := 0
	return choose(n, func() (net.Listener, error) {
		for {
			tries++
			p := lowest + rand.IntN(lo-lowest)
			l, err := net.Listen("tcp", "127.0.0.1:"+strconv.Itoa(p))
			if err == nil || tries >= 64*n {
				return l, err
			}
		}
	})
}

// choose takes n listeners from listen and returns their distinct ports,
// closing every listener before it returns.
func choose(n int, listen func() (net.Listener, error)) ([]int, error) {
	var ls []net.Listener
	defer func() {
		for _, l := range ls {
			l.Close()
		}
	}()
	ports := make([]int, 0, n)
	for range n {
		l, err := listen()
		if err != nil {
			return nil, fmt.Errorf("freeport: choosing %d ports on 127.0.0.1: %w", n, err)
		}
		ls = append(ls, l)
		ports = append(ports, l.Addr().(*net.TCPAddr).Port)
	}
	return ports, nil
}

// ephemeralLow reads the lowest port of the kernel's ephemeral range.
func ephemeralLow() (int, error) {
	b, err := os.ReadFile(rangeFile)
	if err != nil {
		return 0, err
	}
	lo, _, err := parseRange(string(b))
	return lo, err
}

// parseRange parses ip_local_port_range's "low<TAB>high".
func parseRange(s string) (lo, hi int, err error) {
	f := strings.Fields(s)
	if len(f) != 2 {
		return 0, 0, fmt.Errorf("freeport: %s reads %q, not two ports", rangeFile, s)
	}
	lo, err1 := strconv.Atoi(f[0])
	hi, err2 := strconv.Atoi(f[1])
	if err := errors.Join(err1, err2); err != nil {
		return 0, 0, fmt.Errorf("freeport: %s reads %q: %w", rangeFile, s, err)
	}
	if lo < 1 || hi > 65535 || lo > hi {
		return 0, 0, fmt.Errorf("freeport: %s reads %q, not a range of ports", rangeFile, s)
	}
	return lo, hi, nil
}
