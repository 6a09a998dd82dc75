package crus

import (
	"container/heap"
	"slices"
	"strconv"
	"strings"
	"time"
)

// This file is the slot planner of the scheduled strategy: pure functions
// of what the executor observed, no I/O and no clock.
//
// The cap is a set of step lanes: a node out of service occupies one from
// the moment crus takes it until it is expected back. Each pending node is
// expected free (running nothing) at some time: now if idle, else when its
// jobs are expected to end. assignSlots gives every pending node a slot,
// the time crus would take it: the node expected free first gets the first
// lane to come free. The slots say which nodes to book with the workload
// manager (wlm.Scheduler) and from when, so that its scheduler starts on
// them only jobs that end by then, instead of a job that would keep a node
// for days while crus waits for it.
//
// A booked node whose jobs end before its slot sits idle until then: lost
// capacity. So a node is booked only when it would wait at most a slack
// for its lane; the others keep working, and their slots move as their
// jobs end. When fewer nodes are pending than lanes, every node's slot is
// its free time and every node is booked: the last nodes start no new job.
// Only idle nodes are taken: a booked node still running its job occupies
// no lane.

// slotNode is a pending node as the slot planner sees it.
type slotNode struct {
	x    string    // xname
	free time.Time // expected free; not after now if idle
	idle bool      // runs nothing now: may be taken at once
	// booking is the name of the reservation that holds it now, "" if
	// none.
	booking string
	// unknownEnd: busy, when its jobs end is not known; it is not booked
	// anew, but keeps the booking it holds (a moment without news is no
	// reason to let a long job in).
	unknownEnd bool
}

// slotParams tune the slot planner.
type slotParams struct {
	now    time.Time
	step   int           // lanes: the cap on nodes out of service
	room   int           // nodes that may be taken now (the gates may allow fewer than the free lanes)
	reboot time.Duration // expected time from taking a node to its return
	// slack is the longest a booked node is expected to idle before its
	// slot.
	slack time.Duration
	// lead is the least time before a booking starts: crus takes a node
	// before its reservation begins, and moves the reservation on while
	// it cannot, so that a reservation of crus's never holds a node out of
	// service by itself.
	lead time.Duration
	// grain groups slots into one reservation (and keeps a node in its
	// reservation while its slot moves by less than this).
	grain time.Duration
	// length is how long a reservation lasts: crus removes it once it
	// takes the nodes; if crus stops, its nodes are free again after it.
	length time.Duration
	// prefix names the reservations (prefix + bucket number); epoch is
	// the start of bucket 0.
	prefix string
	epoch  time.Time
}

// laneHeap is a min-heap of the times lanes come free.
type laneHeap []time.Time

func (h laneHeap) Len() int           { return len(h) }
func (h laneHeap) Less(i, j int) bool { return h[i].Before(h[j]) }
func (h laneHeap) Swap(i, j int)      { h[i], h[j] = h[j], h[i] }
func (h *laneHeap) Push(x any)        { *h = append(*h, x.(time.Time)) }
func (h *laneHeap) Pop() any {
	old := *h
	x := old[len(old)-1]
	*h = old[:len(old)-1]
	return x
}

// lanes returns the times the step lanes come free, given the expected
// returns of the nodes out now (a return in the past means now). With more
// nodes out than lanes (the cap was lowered), a lane comes free only when
// enough of them are back: the lanes are the latest step returns.
func lanes(now time.Time, step int, out []time.Time) laneHeap {
	rs := make([]time.Time, len(out))
	for i, t := range out {
		rs[i] = laterTime(t, now)
	}
	slices.SortFunc(rs, time.Time.Compare)
	if len(rs) > step {
		rs = rs[len(rs)-step:]
	}
	h := make(laneHeap, 0, step)
	for range step - len(rs) {
		h = append(h, now)
	}
	h = append(h, rs...)
	heap.Init(&h)
	return h
}

func laterTime(a, b time.Time) time.Time {
	if a.After(b) {
		return a
	}
	return b
}

// assignSlots returns each pending node's slot, in the order of pending:
// nodes taken in order of their expected free time (then xname), each
// when it is free and a lane is, every lane busy for reboot after.
func assignSlots(p slotParams, out []time.Time, pending []slotNode) []time.Time {
	slots, _ := assignSlotsOrdered(p, out, pending)
	return slots
}

// assignSlotsOrdered is assignSlots, also returning the order in which
// the nodes were given their slots: by expected free time, then xname. A
// node free earlier never gets a later slot, so it is slot order too.
func assignSlotsOrdered(p slotParams, out []time.Time, pending []slotNode) ([]time.Time, []int) {
	order := make([]int, len(pending))
	free := make([]int64, len(pending)) // Unix nanoseconds: cheap to compare
	for i := range order {
		order[i] = i
		free[i] = laterTime(pending[i].free, p.now).UnixNano()
	}
	slices.SortFunc(order, func(a, b int) int {
		if free[a] != free[b] {
			if free[a] < free[b] {
				return -1
			}
			return 1
		}
		return strings.Compare(pending[a].x, pending[b].x)
	})
	slots := make([]time.Time, len(pending))
	if p.step < 1 {
		return slots, order
	}
	h := lanes(p.now, p.step, out)
	for _, i := range order {
		s := laterTime(time.Unix(0, free[i]).In(p.now.Location()), h[0])
		slots[i] = s
		h[0] = s.Add(p.reboot)
		heap.Fix(&h, 0)
	}
	return slots, order
}

// slotPlan is what the slot planner decides.
type slotPlan struct {
	slots []time.Time // per pending node
	// take lists the idle pending nodes to take now (their slot has come
	// and a lane is free), in slot order.
	take []string
	// book lists the reservations to hold, sorted by name.
	book []Booking
}

// planSlots assigns the slots and decides what to take and what to book.
func planSlots(p slotParams, out []time.Time, pending []slotNode) slotPlan {
	slots, order := assignSlotsOrdered(p, out, pending)
	plan := slotPlan{slots: slots}
	room := min(p.room, p.step-len(out))
	taken := map[int]bool{}
	for _, i := range order {
		if room <= 0 || plan.slots[i].After(p.now) {
			break
		}
		if pending[i].idle {
			plan.take = append(plan.take, pending[i].x)
			taken[i] = true
			room--
		}
	}
	slices.Sort(plan.take)

	// Book the nodes that would not wait long for their lane, in buckets
	// of grain; a node stays in its bucket while its slot moves by less
	// than grain.
	byName := map[string]*Booking{}
	earliest := p.now.Add(p.lead)
	for _, i := range order {
		n, s := pending[i], plan.slots[i]
		held, isHeld := p.bucketStart(n.booking)
		switch {
		case taken[i]:
			continue
		case n.unknownEnd && !isHeld:
			continue
		case !n.unknownEnd && s.Sub(laterTime(n.free, p.now)) > p.slack:
			continue
		}
		name, start := p.bucket(s)
		if isHeld && (n.unknownEnd || s.After(held.Add(-p.grain)) && s.Before(held.Add(2*p.grain))) {
			name, start = n.booking, held
		}
		b := byName[name]
		if b == nil {
			b = &Booking{Name: name, Start: start}
			byName[name] = b
		}
		b.Nodes = append(b.Nodes, n.x)
	}
	for _, b := range byName {
		b.Start = laterTime(b.Start, earliest).Truncate(time.Second)
		if b.Start.Before(earliest) {
			b.Start = b.Start.Add(time.Second)
		}
		b.End = b.Start.Add(p.length)
		slices.Sort(b.Nodes)
		plan.book = append(plan.book, *b)
	}
	slices.SortFunc(plan.book, func(a, b Booking) int { return strings.Compare(a.Name, b.Name) })
	return plan
}

// bucket returns the reservation name and start of a slot: its grain
// bucket since the epoch.
func (p slotParams) bucket(s time.Time) (string, time.Time) {
	k := int64(0)
	if p.grain > 0 && s.After(p.epoch) {
		k = int64(s.Sub(p.epoch) / p.grain)
	}
	return p.prefix + strconv.FormatInt(k, 10), p.epoch.Add(time.Duration(k) * p.grain)
}

// bucketStart returns the start of the bucket a reservation name of this
// planner stands for; false if the name is not one.
func (p slotParams) bucketStart(name string) (time.Time, bool) {
	rest, ok := strings.CutPrefix(name, p.prefix)
	if !ok || name == "" {
		return time.Time{}, false
	}
	k, err := strconv.ParseInt(rest, 10, 64)
	if err != nil || k < 0 {
		return time.Time{}, false
	}
	return p.epoch.Add(time.Duration(k) * p.grain), true
}

func absDuration(d time.Duration) time.Duration {
	if d < 0 {
		return -d
	}
	return d
}

// rebook compares the reservations wanted with those held (by name) and
// returns the ones to make or change and the names to delete. A held
// reservation equal to the wanted one (nodes, and times to the second) is
// left alone.
func rebook(held, want []Booking) (change []Booking, drop []string) {
	have := make(map[string]Booking, len(held))
	for _, h := range held {
		have[h.Name] = h
	}
	for _, w := range want {
		h, ok := have[w.Name]
		delete(have, w.Name)
		if ok && slices.Equal(h.Nodes, w.Nodes) && absDuration(h.Start.Sub(w.Start)) < time.Second && absDuration(h.End.Sub(w.End)) < time.Second {
			continue
		}
		change = append(change, w)
	}
	for name := range have {
		drop = append(drop, name)
	}
	slices.Sort(drop)
	return change, drop
}
