package demo

import (
	"testing"
	"time"

	"github.com/crus-go/crus/internal/fake"
)

// TestPacedFastClockKeepsGoing: at the fastest speed the demo takes, the
// virtual time since the start outgrows a time.Duration (292 years)
// within 2.6 hours of real time; the clock must keep moving forward at
// its pace, not turn back or stop there. The real time is made up: the
// ticks of three hours are computed, not waited for.
func TestPacedFastClockKeepsGoing(t *testing.T) {
	w := fake.New(fake.Options{Start: time.Date(2026, 1, 5, 8, 0, 0, 0, time.UTC)})
	p := NewPaced(w, MaxSpeed)
	real0 := time.Date(2026, 1, 5, 8, 0, 0, 0, time.UTC)
	p.real0, p.virt0 = real0, w.Now()
	const tick = 50 * time.Millisecond
	last := p.virt0
	for i := 1; i <= int(3*time.Hour/tick); i++ {
		now := real0.Add(time.Duration(i) * tick)
		got := p.due(now)
		if !got.After(last) {
			t.Fatalf("after %v of real time the clock went from %v to %v", now.Sub(real0), last, got)
		}
		last = got
	}
	// The pace held: 3 hours at a million times real time, as seconds
	// past the start (to a millisecond; the origin moves every day of
	// virtual time, each time losing less than a nanosecond).
	want := 3 * 3600 * MaxSpeed
	if got := float64(last.Unix()-w.Now().Unix()) + float64(last.Nanosecond()-w.Now().Nanosecond())/1e9; got < want-1e-3 || got > want+1e-3 {
		t.Errorf("after 3 hours: %f virtual seconds on, want %f", got, want)
	}
}
