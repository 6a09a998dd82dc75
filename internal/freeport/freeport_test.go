package freeport

import (
	"net"
	"strconv"
	"testing"
)

func TestLoopback(t *testing.T) {
	ports, err := Loopback(40)
	if err != nil {
		t.Fatal(err)
	}
	if len(ports) != 40 {
		t.Fatalf("got %d ports, want 40", len(ports))
	}
	lo, rangeErr := ephemeralLow()
	seen := map[int]bool{}
	for _, p := range ports {
		if seen[p] {
			t.Errorf("port %d chosen twice", p)
		}
		seen[p] = true
		if rangeErr == nil && (p < lowest || p >= lo) {
			t.Errorf("port %d is not below the ephemeral range [%d, ...) and at least %d", p, lo, lowest)
		}
		l, err := net.Listen("tcp", "127.0.0.1:"+strconv.Itoa(p))
		if err != nil {
			t.Errorf("port %d was released but cannot be bound: %v", p, err)
			continue
		}
		l.Close()
	}
}

func TestParseRange(t *testing.T) {
	for _, c := range []struct {
		in     string
		lo, hi int
		ok     bool
	}{
		{"32768\t60999\n", 32768, 60999, true},
		{"1024 65535", 1024, 65535, true},
		{"", 0, 0, false},
		{"32768", 0, 0, false},
		{"a b", 0, 0, false},
		{"60999 32768", 0, 0, false},
		{"0 100", 0, 0, false},
		{"100 70000", 0, 0, false},
		{"1 2 3", 0, 0, false},
	} {
		lo, hi, err := parseRange(c.in)
		if (err == nil) != c.ok || lo != c.lo || hi != c.hi {
			t.Errorf("parseRange(%q) = %d, %d, %v; want %d, %d, ok=%v", c.in, lo, hi, err, c.lo, c.hi, c.ok)
		}
	}
}
