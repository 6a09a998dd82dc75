// Package conformance holds what the public conformance suites (wlmtest,
// bostest, hsmtest) share: each runs every case on a harness of its own,
// made for the subtest and closed at its end.
package conformance

import (
	"context"
	"testing"
)

// Closer is a suite's harness: Close gives back what it started.
type Closer interface {
	Close(ctx context.Context) error
}

// Open makes the harness of the subtest t with newHarness, failing t if it
// cannot, and closes it when t ends (an error closing it fails t).
func Open[H Closer](t *testing.T, newHarness func(context.Context, *testing.T) (H, error)) H {
	t.Helper()
	ctx := t.Context()
	h, err := newHarness(ctx, t)
	if err != nil {
		t.Fatalf("making harness: %v", err)
	}
	t.Cleanup(func() {
		if err := h.Close(context.WithoutCancel(ctx)); err != nil {
			t.Errorf("closing harness: %v", err)
		}
	})
	return h
}
