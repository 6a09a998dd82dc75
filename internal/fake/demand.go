package fake

import "time"

// This file splits the capacity lost waiting (Loss.Waiting) by whether a
// waiting job could have used it. The benchmark counts a node idle before
// its reboot as lost, drained or booked, whether or not any job would
// have run there: an upper bound. While no waiting job would fit even on
// all the nodes lost waiting, nothing was lost in fact; Loss.Unwanted is
// that part, and Total less it is a tighter upper bound.

// demand integrates, over time, the nodes lost waiting while no waiting
// job could use them.
type demand struct {
	jobsWait bool      // a job waits for nodes (SetDemand)
	nodes    int       // nodes lost waiting now
	unwanted NodeHours // node-time lost waiting with no job waiting, up to since
	since    time.Time
}

// advance brings unwanted up to now.
func (d *demand) advance(now time.Time) {
	if !d.jobsWait && d.nodes > 0 && now.After(d.since) {
		d.unwanted += NodeHours(float64(d.nodes) * now.Sub(d.since).Hours())
	}
	d.since = now
}

// waiting adds delta to the nodes lost waiting, from now. A node more
// may be what a waiting job lacked: until the scheduler says otherwise
// (SetDemand), its wait counts (the count stays an upper bound).
func (d *demand) waiting(now time.Time, delta int) {
	d.advance(now)
	d.nodes += delta
	if delta > 0 {
		d.jobsWait = true
	}
}

// unwantedAt returns the node-time lost waiting with no job waiting, up
// to now, without changing it.
func (d demand) unwantedAt(now time.Time) NodeHours {
	d.advance(now)
	return d.unwanted
}

// SetDemand says whether a waiting job could use the nodes lost waiting
// from now on: the scheduler that replays a workload calls it after each
// pass (Waiting says how many nodes that is). Without it, no job is
// taken to want them (a world without a workload) until a node starts
// waiting, and from then on every one is.
func (w *World) SetDemand(jobsWait bool) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.sim.demand.advance(w.now)
	w.sim.demand.jobsWait = jobsWait
}

// Waiting returns how many nodes are lost waiting now: out of service
// because of crus, or held for a reservation of crus's, and idle, before
// their reboot.
func (w *World) Waiting() int {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.sim.demand.nodes
}
