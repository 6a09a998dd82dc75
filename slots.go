package crus

import (
	"cmp"
	"math"
	"math/bits"
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
	x string // xname
	// rank orders nodes of the same free time before their xnames do:
	// callers that know the xnames' order (the records are sorted) give
	// it, sparing string comparisons; it must agree with the xnames'
	// order. Zero for all: by xname. Never negative.
	rank int
	// free is when it is expected free, in Unix nanoseconds (unixNs: a
	// time too far for them is the nearest that is not); not after now
	// if idle. (Not a time.Time: the planner slots thousands of nodes at
	// every decision, and a smaller node is less memory to write and
	// read: 56 bytes, from 80.)
	free int64
	// booking is the name of the reservation that holds it now, "" if
	// none.
	booking string
	idle    bool // runs nothing now: may be taken at once
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

// lanesNow returns the times the step lanes come free, in order, given the
// expected returns of the nodes out now (a return in the past means now).
// With more nodes out than lanes (the cap was lowered), a lane comes free
// only when enough of them are back: the lanes are the latest step
// returns.
func (b *slotBufs) lanesNow(now time.Time, step int, out []time.Time) []int64 {
	h := resize(b.lanes, max(step, len(out)))
	b.lanes = h
	rs := h[len(h)-len(out):]
	within := nsAheadOf(now)
	for i, t := range out {
		rs[i] = within(unixNs(t))
	}
	slices.Sort(rs)
	if len(rs) > step {
		// The latest step returns, where the lanes start.
		copy(h, rs[len(rs)-step:])
		return h[:step]
	}
	for i := range step - len(rs) {
		h[i] = now.UnixNano()
	}
	return h[:step]
}

// farthest is how far ahead the slot planner looks: an expected free
// time later than this (a job without a time limit) counts as this far,
// where times still fit Unix nanoseconds.
const farthest = 100 * 365 * 24 * time.Hour

// unixNs returns t in Unix nanoseconds, and for a time they cannot hold
// (within a second) the nearest one they can: the zero time and any
// before 1678 are the least, any after 2262 the greatest. (Its seconds
// are compared, not the times: it is called for thousands of nodes at
// every decision.)
func unixNs(t time.Time) int64 {
	const lim = math.MaxInt64/int64(time.Second) - 1 // seconds whose every nanosecond fits
	switch sec := t.Unix(); {
	case sec < -lim:
		return math.MinInt64
	case sec > lim:
		return math.MaxInt64
	}
	return t.UnixNano()
}

// nsAheadOf returns a function that clamps a time t in Unix nanoseconds
// (unixNs) to [now, now + farthest] (a time in the past is now): the
// slot planner clamps thousands of times to the same now.
func nsAheadOf(now time.Time) func(t int64) int64 {
	nowNs, lastNs := now.UnixNano(), now.Add(farthest).UnixNano()
	return func(t int64) int64 {
		return min(max(t, nowNs), lastNs)
	}
}

func laterTime(a, b time.Time) time.Time {
	if a.After(b) {
		return a
	}
	return b
}

// assignSlots returns each pending node's slot, in the order of pending:
// nodes taken in order of their expected free time (then xname), each
// when it is free and a lane is, every lane busy for reboot after. No
// lanes, no slots (zero times).
func assignSlots(p slotParams, out []time.Time, pending []slotNode) []time.Time {
	var b slotBufs
	pl := slotPlan{slots: b.slotTimes(p, b.slotOrder(p, out, pending)), loc: p.now.Location()}
	slots := make([]time.Time, len(pending))
	for k := range slots {
		slots[k] = pl.slot(k)
	}
	return slots
}

// slotBufs is the slot planner's scratch space. The executor keeps one per
// running session (in its nodeIndex) and the planner reuses it from one
// decision to the next: the scheduled strategy slots its whole lookahead,
// thousands of nodes, at every decision, and allocating these buffers
// anew each time cost a third of the decision (in the garbage collector)
// at 100,000 nodes. What the planner returns never points into it. The
// zero value is ready to use.
type slotBufs struct {
	keys, tmp           []slotKey
	few                 fewScratch
	given, lanes, slots []int64
	taken               []bool
	members             []bookMember
	bookOf              []int32 // each pending node's booking in the plan, -1 none
}

// resize returns buf with length n, reusing its array when it can; the
// contents are not cleared.
func resize[T any](buf []T, n int) []T {
	if cap(buf) < n {
		return make([]T, n, n+n/4)
	}
	return buf[:n]
}

// slotTimes returns the slots of keys, in the order of pending (keys[k].i),
// in Unix nanoseconds: zero without lanes.
func (b *slotBufs) slotTimes(p slotParams, keys []slotKey) []int64 {
	slots := resize(b.slots, len(keys))
	b.slots = slots
	if p.step < 1 {
		clear(slots)
		return slots
	}
	for _, c := range keys {
		slots[c.i] = c.slot
	}
	return slots
}

// slotKey is a pending node in slot order: its index in pending, when it
// is expected free and its slot, in Unix nanoseconds (cheap to compare).
type slotKey struct {
	free, slot int64
	rank, i    int32 // (a node's rank and place fit: sim.MaxNodes is a million)
}

// slotOrder assigns the slots (none without lanes) and returns the nodes
// in slot order.
//
// It costs a sort and O(1) per node: the lane that comes free first is
// the earlier of two queues, each in order: the lanes as they are now
// (sorted once), and the lanes given a node so far. Slots never go down
// (nodes come in order of free time, and the earliest lane only moves
// on), so each lane given a node comes free no sooner than the one before
// it: appending keeps that queue in order.
func (b *slotBufs) slotOrder(p slotParams, out []time.Time, pending []slotNode) []slotKey {
	keys := resize(b.keys, len(pending))
	b.keys = keys
	within := nsAheadOf(p.now)
	for i := range pending {
		keys[i] = slotKey{free: within(pending[i].free), rank: int32(pending[i].rank), i: int32(i)}
	}
	b.tmp = resize(b.tmp, len(keys))
	sortSlotKeysIn(keys, b.tmp, &b.few, p.now.UnixNano(), pending)
	if p.step < 1 {
		return keys
	}
	reboot := int64(p.reboot)
	now0 := b.lanesNow(p.now, p.step, out)
	given := resize(b.given, len(pending))[:0]
	b.given = given
	head := 0 // of given
	for k := range keys {
		// The lane that comes free first.
		var lane int64
		switch {
		case len(now0) > 0 && (head == len(given) || now0[0] <= given[head]):
			lane, now0 = now0[0], now0[1:]
		default:
			lane = given[head]
			head++
		}
		s := max(keys[k].free, lane)
		keys[k].slot = s
		given = append(given, s+reboot)
	}
	return keys
}

// sortSlotKeys sorts keys by free time, then rank, then xname. Free
// times are not before now.
//
// It is a least-significant-digit radix sort, byte by byte, on rank then
// on the time since now (bytes all keys share cost one look): a few
// passes over the keys, where a comparison sort costs log n of them (the
// scheduled strategy slots its whole lookahead, thousands of nodes, at
// every decision). Keys in rank order with few distinct free times are
// counted into place instead (sortFew). Keys equal in free time and
// rank (callers that give no ranks) are then put in xname order by a
// comparison sort.
func sortSlotKeys(keys []slotKey, now int64, pending []slotNode) {
	sortSlotKeysIn(keys, make([]slotKey, len(keys)), new(fewScratch), now, pending)
}

// sortSlotKeysIn is sortSlotKeys with buf, as long as keys, and few as its
// scratch space.
func sortSlotKeysIn(keys, buf []slotKey, few *fewScratch, now int64, pending []slotNode) {
	if len(keys) < 2 {
		return
	}
	// The bits in which keys differ: a byte they all share takes no pass.
	// Keys already in rank order (the planner gives them in record order)
	// need no rank pass at all: the passes keep the order of equals.
	var orRank, andRank, orFree, andFree uint64 = 0, ^uint64(0), 0, ^uint64(0)
	inRankOrder := true
	for j, k := range keys {
		r, f := uint64(k.rank), uint64(k.free-now)
		orRank, andRank, orFree, andFree = orRank|r, andRank&r, orFree|f, andFree&f
		inRankOrder = inRankOrder && (j == 0 || keys[j-1].rank <= k.rank)
	}
	if inRankOrder {
		if sortFew(keys, buf, few) {
			sortXNameTies(keys, pending)
			return
		}
		orRank, andRank = 0, 0
	}
	src, dst := keys, buf
	// pass orders the keys by one byte of their rank or free time, keeping
	// the order of keys with the same byte.
	pass := func(rank bool, shift uint) {
		digit := func(k slotKey) uint8 {
			if rank {
				return uint8(uint64(k.rank) >> shift)
			}
			return uint8(uint64(k.free-now) >> shift)
		}
		var count [256]int
		for _, k := range src {
			count[digit(k)]++
		}
		pos := 0
		for d, c := range count {
			count[d] = pos
			pos += c
		}
		for _, k := range src {
			d := digit(k)
			dst[count[d]] = k
			count[d]++
		}
		src, dst = dst, src
	}
	for shift := uint(0); shift < 64; shift += 8 {
		if (orRank^andRank)>>shift&0xff != 0 {
			pass(true, shift)
		}
	}
	for shift := uint(0); shift < 64; shift += 8 {
		if (orFree^andFree)>>shift&0xff != 0 {
			pass(false, shift)
		}
	}
	if &src[0] != &keys[0] {
		copy(keys, src)
	}
	sortXNameTies(keys, pending)
}

// fewScratch is the scratch space of sortFew, kept between calls.
type fewScratch struct {
	table        []int32 // open addressing: 1 + the index in vals, 0 empty
	vals         []int64 // the distinct free times, as first met
	id, at, tier []int32 // each key's index in vals; where each value's keys go; vals in order
}

// sortFew sorts keys in rank order by free time, keeping their order
// within a free time (as the radix passes do), with buf (as long as keys)
// as its scratch space, if the keys have few distinct free times: at most
// one in eight. It reports whether it sorted.
//
// Few is the common case: the nodes of a job share its end, and lie next
// to each other in record order. The simulated 100,000-node scheduled
// upgrade gives six runs of one free time, on average, in the lookahead's
// four thousand keys. Then each key costs a comparison with the one
// before it (a hash look-up where it differs) and two passes of counting,
// where the radix passes cost five or six passes of two loops each; the
// distinct times alone are sorted by comparison.
func sortFew(keys, buf []slotKey, sc *fewScratch) bool {
	limit := len(keys)/8 + 1
	shift := 64 - bits.Len(uint(2*limit)) // table of 2^(64-shift) > 2*limit entries
	sc.table = resize(sc.table, 1<<(64-shift))
	clear(sc.table)
	mask := uint64(len(sc.table) - 1)
	vals := sc.vals[:0]
	id := resize(sc.id, len(keys))
	sc.id = id
	for j, k := range keys {
		if j > 0 && k.free == keys[j-1].free {
			id[j] = id[j-1]
			continue
		}
		for h := uint64(k.free) * 0x9E3779B97F4A7C15 >> shift; ; h = (h + 1) & mask {
			e := sc.table[h]
			if e == 0 {
				if len(vals) == limit {
					sc.vals = vals
					return false
				}
				vals = append(vals, k.free)
				sc.table[h] = int32(len(vals))
				id[j] = int32(len(vals) - 1)
				break
			}
			if vals[e-1] == k.free {
				id[j] = e - 1
				break
			}
		}
	}
	sc.vals = vals
	tier := resize(sc.tier, len(vals))
	for v := range tier {
		tier[v] = int32(v)
	}
	slices.SortFunc(tier, func(a, b int32) int { return cmp.Compare(vals[a], vals[b]) }) // distinct: no ties
	at := resize(sc.at, len(vals))
	sc.tier, sc.at = tier, at
	clear(at)
	for _, v := range id {
		at[v]++
	}
	pos := int32(0)
	for _, v := range tier {
		pos, at[v] = pos+at[v], pos
	}
	for j, k := range keys {
		buf[at[id[j]]] = k
		at[id[j]]++
	}
	copy(keys, buf)
	return true
}

// sortXNameTies puts keys equal in free time and rank (callers that give no
// ranks) in xname order.
func sortXNameTies(keys []slotKey, pending []slotNode) {
	for j := 1; j < len(keys); j++ {
		if a, b := keys[j-1], keys[j]; a.free == b.free && a.rank == b.rank && pending[a.i].x > pending[b.i].x {
			slices.SortFunc(keys, func(a, b slotKey) int {
				return cmp.Or(cmp.Compare(a.free, b.free), cmp.Compare(a.rank, b.rank), strings.Compare(pending[a.i].x, pending[b.i].x))
			})
			return
		}
	}
}

// slotPlan is what the slot planner decides.
type slotPlan struct {
	// slots are the pending nodes' slots, in Unix nanoseconds (see slot;
	// they are in slotBufs.planSlots's space).
	slots []int64
	loc   *time.Location
	// take lists the idle pending nodes to take now (their slot has come
	// and a lane is free), in slot order.
	take []string
	// book lists the reservations to hold, sorted by name.
	book []Booking
}

// slot returns pending node k's slot; the zero time if it has none (no
// lanes).
func (pl slotPlan) slot(k int) time.Time {
	if pl.slots[k] == 0 {
		return time.Time{}
	}
	return time.Unix(0, pl.slots[k]).In(pl.loc)
}

// planSlots assigns the slots and decides what to take and what to book.
func planSlots(p slotParams, out []time.Time, pending []slotNode) slotPlan {
	var b slotBufs
	return b.planSlots(p, out, pending)
}

// planSlots is the package's planSlots in b's space: the plan's slots are
// b's, valid until its next use; the rest of the plan is its own.
func (b *slotBufs) planSlots(p slotParams, out []time.Time, pending []slotNode) slotPlan {
	keys := b.slotOrder(p, out, pending)
	plan := slotPlan{slots: b.slotTimes(p, keys), loc: p.now.Location()}
	if p.step < 1 {
		return plan
	}
	now := p.now.UnixNano()
	room := min(p.room, p.step-len(out))
	taken := resize(b.taken, len(pending))
	b.taken = taken
	clear(taken)
	for _, c := range keys {
		if room <= 0 || c.slot > now {
			break
		}
		if pending[c.i].idle {
			plan.take = append(plan.take, pending[c.i].x)
			taken[c.i] = true
			room--
		}
	}
	slices.Sort(plan.take)

	// Book the nodes that would not wait long for their lane, in buckets
	// of grain; a node stays in its bucket while its slot moves by less
	// than grain.
	// The bookings wanted (plan.book), in order of their first node, by
	// name, with the nodes each gets: the booking's index and the node's
	// in pending.
	byName := map[string]int{}
	members := b.members[:0]
	var counts []int
	book := func(name string, start time.Time) int {
		k, ok := byName[name]
		if !ok {
			k = len(plan.book)
			plan.book = append(plan.book, Booking{Name: name, Start: start})
			counts = append(counts, 0)
			byName[name] = k
		}
		return k
	}
	// The bucket of the node before, [lo, hi) in Unix nanoseconds: nodes
	// in slot order share buckets.
	last := -1
	var lo, hi int64
	// The booking that holds the node before, and the start of its
	// bucket: nodes in slot order share bookings, so a name is parsed and
	// looked up once per run of them.
	var heldName string
	var held time.Time
	var heldNs int64
	isHeld, heldK := false, -1
	epoch, grain := p.epoch.UnixNano(), int64(p.grain)
	for _, c := range keys {
		n := &pending[c.i]
		if n.booking != heldName {
			heldName, heldK = n.booking, -1
			held, isHeld = p.bucketStart(n.booking)
			heldNs = held.UnixNano()
		}
		switch {
		case taken[c.i]:
			continue
		case n.unknownEnd && !isHeld:
			continue
		case !n.unknownEnd && time.Duration(c.slot-c.free) > p.slack:
			continue
		}
		var k int
		switch {
		case isHeld && (n.unknownEnd || c.slot > heldNs-grain && c.slot < heldNs+2*grain):
			if heldK < 0 {
				heldK = book(n.booking, held)
			}
			k = heldK
		case last >= 0 && lo <= c.slot && c.slot < hi:
			k = last
		default:
			// The slot's bucket: its grain since the epoch.
			bucket := int64(0)
			if grain > 0 && c.slot > epoch {
				bucket = (c.slot - epoch) / grain
			}
			start := p.epoch.Add(time.Duration(bucket) * p.grain)
			k = book(p.bucketName(bucket), start)
			last, lo, hi = k, start.UnixNano(), start.Add(p.grain).UnixNano()
		}
		members = append(members, bookMember{booking: k, node: int(c.i)})
		counts[k]++
	}
	b.members = members
	// The nodes of all bookings in one array (one allocation, where
	// appending to each cost a third of a decision's garbage), each
	// booking its part, in order of the bookings.
	all := make([]string, len(members))
	at := make([]int, len(plan.book)) // where booking k's next node goes
	off := 0
	for k, n := range counts {
		at[k] = off
		off += n
	}
	earliest := p.now.Add(p.lead)
	// Each booking's nodes in xname order: as they come in pending, if
	// pending is in rank order (the planner's is: record order), else
	// sorted below.
	inOrder := true
	for j := 1; j < len(pending) && inOrder; j++ {
		inOrder = pending[j-1].rank < pending[j].rank
	}
	if inOrder {
		bookOf := resize(b.bookOf, len(pending))
		b.bookOf = bookOf
		for j := range bookOf {
			bookOf[j] = -1
		}
		for _, m := range members {
			bookOf[m.node] = int32(m.booking)
		}
		for j, k := range bookOf {
			if k >= 0 {
				all[at[k]] = pending[j].x
				at[k]++
			}
		}
	} else {
		for _, m := range members {
			all[at[m.booking]] = pending[m.node].x
			at[m.booking]++
		}
	}
	from := 0
	for k := range plan.book {
		bk := &plan.book[k]
		bk.Nodes = all[from:at[k]:at[k]]
		from = at[k]
		bk.Start = laterTime(bk.Start, earliest).Truncate(time.Second)
		if bk.Start.Before(earliest) {
			bk.Start = bk.Start.Add(time.Second)
		}
		bk.End = bk.Start.Add(p.length)
		if !inOrder {
			slices.Sort(bk.Nodes)
		}
	}
	slices.SortFunc(plan.book, func(a, b Booking) int { return strings.Compare(a.Name, b.Name) })
	return plan
}

// bookMember is a node planSlots books: its booking's index in the plan
// and its index in pending.
type bookMember struct{ booking, node int }

// bucketName names the reservation of bucket k.
func (p slotParams) bucketName(k int64) string { return p.prefix + strconv.FormatInt(k, 10) }

// bucketStart returns the start of the bucket a reservation name of this
// planner stands for; false if the name is not one.
func (p slotParams) bucketStart(name string) (time.Time, bool) {
	k, ok := p.bucketNumber(name)
	if !ok {
		return time.Time{}, false
	}
	return p.epoch.Add(time.Duration(k) * p.grain), true
}

// bucketNumber returns the bucket number a reservation name of this
// planner stands for; false if the name is not one.
func (p slotParams) bucketNumber(name string) (int64, bool) {
	rest, ok := strings.CutPrefix(name, p.prefix)
	if !ok || name == "" {
		return 0, false
	}
	k, err := strconv.ParseInt(rest, 10, 64)
	if err != nil || k < 0 {
		return 0, false
	}
	return k, true
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
