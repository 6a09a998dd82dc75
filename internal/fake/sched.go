package fake

import (
	"context"
	"fmt"
	"math/bits"
	"slices"
	"time"

	"github.com/crus-go/crus/wlm"
)

// This file gives the World what a workload simulation needs: whole-node
// jobs placed on free nodes (for a trace-driven scheduler), a hook that
// runs the scheduler whenever nodes may have been freed, the capacity lost
// because of crus, and the workload manager's own reboot (wlm.Rebooter,
// Slurm's "scontrol reboot ASAP nextstate=RESUME"), the uncapped
// reference crus is compared with.

var _ wlm.Rebooter = (*WLM)(nil)

// SetScheduler installs fn, called (without the World's lock, so it may
// call the World's methods) before virtual time moves on whenever nodes
// may have become free since it last ran: a job ended, a node was resumed
// or came back from a reboot. A trace-driven scheduler uses it to start
// queued jobs at once. nil removes it.
func (w *World) SetScheduler(fn func()) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.hook, w.kick = fn, fn != nil
}

// FreeCount returns how many nodes are idle and in service: up, responding,
// not drained, failed, rebooting or waiting for a reboot, and done
// completing their last job.
func (w *World) FreeCount() int {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.freeCount
}

// StartJobOnFree starts one job on k free nodes, the first ones in the
// order they were added (deterministic). The job really runs for runFor;
// the workload manager knows only its time limit (at least runFor). ended,
// if not nil, is called (without the lock) when the job ends. It returns
// false, starting nothing, if fewer than k nodes are free.
func (w *World) StartJobOnFree(k int, runFor, limit time.Duration, ended func()) bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	if k < 1 || k > w.freeCount {
		return false
	}
	w.jobID++
	j := job{id: w.jobID, end: w.now.Add(runFor), limit: w.now.Add(max(limit, runFor))}
	nodes := make([]*node, 0, k)
	for wi := 0; wi < len(w.freeBits) && len(nodes) < k; wi++ {
		for word := w.freeBits[wi]; word != 0 && len(nodes) < k; word &= word - 1 {
			nodes = append(nodes, w.order[wi*64+bits.TrailingZeros64(word)])
		}
	}
	for _, n := range nodes {
		n.jobs = append(n.jobs, j)
		w.update(n)
	}
	w.schedule(j.end, func() {
		w.locked(func() {
			// One event for the job's end and one for the end of its
			// nodes' completing time, however wide it is.
			until := w.now.Add(w.opts.CompletingTime)
			for _, n := range nodes {
				if i := slices.IndexFunc(n.jobs, func(x job) bool { return x.id == j.id }); i >= 0 {
					n.jobs = slices.Delete(n.jobs, i, i+1)
					if len(n.jobs) == 0 {
						n.completingUntil = until
					}
					w.update(n)
				}
			}
			w.schedule(until, func() {
				w.locked(func() {
					for _, n := range nodes {
						w.completed(n)
					}
				})
			})
		})
		if ended != nil {
			ended()
		}
	})
	return true
}

// Lost returns the node-time lost because of crus so far: for every node,
// the time it was out of service because of crus (drained or failed with
// a crus reason but not failed yet, rebooting, or waiting for a workload
// manager reboot) while running no job.
func (w *World) Lost() time.Duration {
	w.mu.Lock()
	defer w.mu.Unlock()
	total := w.lost
	for _, n := range w.order {
		if !n.lostSince.IsZero() {
			total += w.now.Sub(n.lostSince)
		}
	}
	return total
}

// RebootsPending returns how many nodes asked to reboot through
// wlm.Rebooter have not finished (rebooted and returned, or failed to).
func (w *World) RebootsPending() int {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.asapLeft
}

// Reboot implements wlm.Rebooter: each node takes no new job, reboots as
// soon as its jobs have ended (not through BOS), and returns to service
// afterwards. A node that fails to boot or never returns stays down.
func (m *WLM) Reboot(ctx context.Context, names []string, reason string) error {
	w := m.w
	w.mu.Lock()
	defer w.mu.Unlock()
	if err := ctx.Err(); err != nil {
		return err
	}
	if err := w.call("wlm.Reboot"); err != nil {
		return err
	}
	if reason == "" {
		return fmt.Errorf("%w: reboot needs a reason", wlm.ErrInvalidArgument)
	}
	return w.each(names, func(n *node) error {
		if n.asap {
			return nil
		}
		n.asap, n.reason, n.reasonTime = true, reason, w.now
		w.asapLeft++
		if n.up && !n.rebooting && len(n.jobs) == 0 && !w.now.Before(n.completingUntil) {
			w.rebootASAP(n)
		}
		return nil
	})
}

// rebootASAP reboots a node whose workload-manager reboot is due. Callers
// hold the lock.
func (w *World) rebootASAP(n *node) {
	w.reboot(n, func(bool, string) {})
}

// asapDone ends a node's workload-manager reboot. Callers hold the lock.
func (w *World) asapDone(n *node) {
	if n.asap {
		n.asap = false
		w.asapLeft--
	}
}
