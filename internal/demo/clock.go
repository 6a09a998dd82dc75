package demo

import (
	"context"
	"sync"
	"time"

	"github.com/crus-go/crus/internal/fake"
)

// Paced is a crus.Clock on a fake.World whose virtual time runs Speed
// times faster than real time: Run moves the world on every tick, and
// After fires when the world's time reaches the deadline (the World's own
// After would jump to it at once).
type Paced struct {
	w     *fake.World
	speed float64

	mu    sync.Mutex
	real0 time.Time
	virt0 time.Time
}

// NewPaced returns a clock running w at speed virtual seconds per real
// second, from now on.
func NewPaced(w *fake.World, speed float64) *Paced {
	return &Paced{w: w, speed: speed, real0: time.Now(), virt0: w.Now()}
}

// Now implements crus.Clock: the world's time.
func (p *Paced) Now() time.Time { return p.w.Now() }

// After implements crus.Clock: the channel receives the world's time once
// it has moved d on.
func (p *Paced) After(d time.Duration) <-chan time.Time {
	ch := make(chan time.Time, 1)
	p.w.Schedule(p.w.Now().Add(d), func() { ch <- p.w.Now() })
	return ch
}

// Run moves the world on every tick until ctx is cancelled.
func (p *Paced) Run(ctx context.Context, tick time.Duration) {
	t := time.NewTicker(tick)
	defer t.Stop()
	p.mu.Lock()
	p.real0, p.virt0 = time.Now(), p.w.Now()
	p.mu.Unlock()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			p.w.RunUntil(p.due(time.Now()))
		}
	}
}

// reanchor is the virtual time after which due takes its latest reading
// as its new origin.
const reanchor = 24 * time.Hour

// due returns the world's time at real time now: speed times the real
// time since the origin, past the origin's virtual time. A time.Duration
// holds 292 years, which a clock a million times faster than real time
// passes within 2.6 hours; due therefore moves its origin on once a day
// of virtual time has gone by (losing less than a nanosecond each time),
// and moves at most 146 years at once.
func (p *Paced) due(now time.Time) time.Time {
	p.mu.Lock()
	defer p.mu.Unlock()
	v := float64(now.Sub(p.real0)) * p.speed
	if v < float64(reanchor) {
		return p.virt0.Add(time.Duration(v))
	}
	p.real0, p.virt0 = now, p.virt0.Add(time.Duration(min(v, 1<<62)))
	return p.virt0
}
