package crus

import "time"

// Clock is the executor's source of time. The zero Config uses the real
// clock; simulations and tests pass a virtual one (internal/fake's World is
// one), so that hours of waiting for jobs and reboots take no wall time.
type Clock interface {
	// Now returns the current time.
	Now() time.Time
	// After returns a channel that receives the time once d has passed.
	After(d time.Duration) <-chan time.Time
}

type realClock struct{}

func (realClock) Now() time.Time                         { return time.Now() }
func (realClock) After(d time.Duration) <-chan time.Time { return time.After(d) }

// clockTimer adapts a Clock to backoff.Timer, so that retries wait on the
// executor's clock too.
type clockTimer struct {
	clock Clock
	c     <-chan time.Time
}

func (t *clockTimer) Start(d time.Duration) { t.c = t.clock.After(d) }
func (t *clockTimer) Stop()                 {}
func (t *clockTimer) C() <-chan time.Time   { return t.c }
