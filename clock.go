package crus

import "time"

// Clock is the executor's source of time. The zero Config uses the real
// clock. Tests and simulations may pass another one, so that hours of
// waiting for jobs and reboots take no wall time.
//
// An implementation must guarantee:
//   - Now never goes backwards, whichever goroutine calls it;
//   - the channel of After(d) receives a time no earlier than Now()+d at
//     the call, and never before that time has come;
//   - both are safe for concurrent use.
//
// The executor stamps every record with Now (when a drain or a reboot was
// requested) and computes its deadlines from it (boot_timeout,
// return_timeout, drain timeouts). So Now must also be the time of the
// world the executor observes and acts on. A virtual clock that moves the
// whole simulated world forward when After is called (as the World of
// package crustest does) meets this for one Run at a time, since the Run
// that waits is the only one acting. With several sessions running at
// once, each Run's wait moves the world under the others, between their
// observation and their action: their times and deadlines are stale, and
// timeouts fire early or late. Do not share such a clock between Runs.
//
// The simplest correct clock is the real one inside a testing/synctest
// bubble: leave Config.Clock nil and run the test in synctest.Test. Time
// in the bubble moves only when every goroutine in it waits, so any
// number of Runs see one consistent time and hours pass instantly (see
// crustest.Options.RealClock for an in-memory world that follows it):
//
//	synctest.Test(t, func(t *testing.T) {
//		w := crustest.New(crustest.Options{RealClock: true})
//		ex, _ := crus.NewExecutor(w.HSM(), w.WLM(), w.BOS(), w.Config()) // Clock nil
//		// Create and Run as many sessions as you like, in goroutines.
//	})
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
