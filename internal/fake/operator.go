package fake

import (
	"time"
)

// Faults that model backend outages and an operator acting on nodes behind
// crus's back, at any moment. The property tests draw them for every
// strategy.

// Outage makes every call of op (a backend method such as "bos.Reboot",
// "wlm.Nodes" or "hsm.Members"; see Calls) fail with err (ErrInjected if
// nil) from virtual time from until until, before doing anything.
func (w *World) Outage(op string, from, until time.Time, err error) {
	if err == nil {
		err = ErrInjected
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	w.injected.Outage(op, from, until, err)
}

// AdminFail fails a node as an administrator would, with reason (Slurm's
// State=FAIL): it takes no new work; running jobs go on.
func (w *World) AdminFail(xname, reason string) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if n, ok := w.nodes[xname]; ok {
		n.fail, n.reason, n.reasonTime = true, reason, w.now
		w.update(n)
	}
}

// AddMember adds a node to an HSM group as an administrator would (the
// group is created if missing), without counting a call.
func (w *World) AddMember(label, xname string) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.groups[label] == nil {
		w.groups[label] = map[string]bool{}
	}
	w.groups[label][xname] = true
}

// RemoveMember removes a node from an HSM group as an administrator would,
// without counting a call.
func (w *World) RemoveMember(label, xname string) {
	w.mu.Lock()
	defer w.mu.Unlock()
	delete(w.groups[label], xname)
}
