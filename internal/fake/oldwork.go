package fake

import "time"

// This file measures the work a scheduler starts, during an upgrade, on
// nodes the upgrade has still to reboot. Such a job keeps its node from
// the upgrade until it ends: the last of them may set the upgrade's end,
// however well the nodes already free were handled.

// OldWork is the work StartJobOnFree started, since MarkUpgrade, on nodes
// that had not rebooted since (jobs that run for no time left out).
type OldWork struct {
	// Jobs: jobs started on at least one such node.
	Jobs int
	// NodeHours: their run times in hours, each times the number of such
	// nodes it ran on. (Not a time.Duration: one 40,960-node job of three
	// days is more node-time than a Duration holds, 2.56 million hours.)
	NodeHours float64
	// LastEnd: the latest end of those jobs (zero: none).
	LastEnd time.Time
}

// MarkUpgrade starts measuring OldWork now, from nothing.
func (w *World) MarkUpgrade() {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.sim.upgradeFrom, w.sim.old = w.now, OldWork{}
}

// OldWork returns the work started on nodes still to reboot since
// MarkUpgrade (nothing if it was not called).
func (w *World) OldWork() OldWork {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.sim.old
}

// countOld adds a job StartJobOnFree starts on nodes, running for runFor,
// to OldWork. Callers hold the lock.
func (w *World) countOld(nodes []*node, runFor time.Duration) {
	if w.sim.upgradeFrom.IsZero() || runFor <= 0 {
		return // (a job that runs for no time holds nothing back)
	}
	old := 0
	for _, n := range nodes {
		// (A reboot's start is kept to the second, as boot times are.)
		if n.sim.rebootStart.Before(w.sim.upgradeFrom.Truncate(time.Second)) {
			old++
		}
	}
	if old == 0 {
		return
	}
	w.sim.old.Jobs++
	w.sim.old.NodeHours += float64(old) * runFor.Hours()
	w.sim.old.LastEnd = later(w.sim.old.LastEnd, w.now.Add(runFor))
}
