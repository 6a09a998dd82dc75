package crus

import (
	"cmp"
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"pgregory.net/rapid"
)

var slotNow = time.Date(2026, 1, 5, 8, 0, 0, 0, time.UTC)

func mins(m int) time.Time { return slotNow.Add(time.Duration(m) * time.Minute) }

func slotParamsFor(step int) slotParams {
	return slotParams{now: slotNow, step: step, room: step, reboot: 10 * time.Minute, slack: 5 * time.Minute, lead: time.Minute,
		grain: 5 * time.Minute, length: time.Hour, prefix: "crus-s-", epoch: slotNow}
}

func TestAssignSlots(t *testing.T) {
	for _, c := range []struct {
		name    string
		step    int
		out     []time.Time
		pending []slotNode
		want    []time.Time
	}{
		{"earliest free first, each when a lane is free", 2, nil,
			[]slotNode{{x: "a", idle: true}, {x: "b", free: unixNs(mins(60))}, {x: "c", free: unixNs(mins(30))}, {x: "d", idle: true}, {x: "e", free: unixNs(mins(5))}},
			[]time.Time{mins(0), mins(60), mins(30), mins(0), mins(10)}},
		{"nodes out hold their lanes until they return", 2, []time.Time{mins(5), mins(20)},
			[]slotNode{{x: "a", idle: true}, {x: "b", idle: true}, {x: "c", idle: true}},
			[]time.Time{mins(5), mins(15), mins(20)}},
		{"a return in the past frees its lane now", 1, []time.Time{mins(-5)},
			[]slotNode{{x: "a", idle: true}}, []time.Time{mins(0)}},
		{"more out than lanes (cap lowered): wait for enough returns", 1, []time.Time{mins(5), mins(10), mins(15)},
			[]slotNode{{x: "a", idle: true}, {x: "b", free: unixNs(mins(16))}}, []time.Time{mins(15), mins(25)}},
		{"ties broken by xname", 1, nil,
			[]slotNode{{x: "b", idle: true}, {x: "a", idle: true}}, []time.Time{mins(10), mins(0)}},
		{"no lanes: nothing assigned", 0, nil, []slotNode{{x: "a", idle: true}}, []time.Time{{}}},
	} {
		t.Run(c.name, func(t *testing.T) {
			assert.Equal(t, c.want, assignSlots(slotParamsFor(c.step), c.out, c.pending))
		})
	}
}

func TestPlanSlots(t *testing.T) {
	p := slotParamsFor(2)
	plan := planSlots(p, []time.Time{mins(12)}, []slotNode{
		{x: "a", idle: true},                                   // slot now, lane free: taken
		{x: "b", idle: true},                                   // slot 10 (a's lane): waits 10m > slack 5m: neither taken nor booked
		{x: "c", free: unixNs(mins(61))},                       // slot 61: booked in bucket 12 (60-65)
		{x: "d", free: unixNs(mins(62)), booking: "crus-s-13"}, // slot 62: stays in its reservation (65), within a grain
		{x: "e", free: unixNs(mins(16))},                       // slot 20 (b's lane): waits 4m: booked, bucket 4 (20-25)
		{x: "f", free: unixNs(mins(-3))},                       // busy past its expected end: slot 12 (the out node's lane), waits: not booked
	})
	assert.Equal(t, []time.Time{mins(0), mins(10), mins(61), mins(62), mins(20), mins(12)}, plan.times())
	assert.Equal(t, []string{"a"}, plan.take)
	assert.Equal(t, []Booking{
		{Name: "crus-s-12", Nodes: []string{"c"}, Start: mins(60), End: mins(120)},
		{Name: "crus-s-13", Nodes: []string{"d"}, Start: mins(65), End: mins(125)},
		{Name: "crus-s-4", Nodes: []string{"e"}, Start: mins(20), End: mins(80)},
	}, plan.book)

	// Few nodes left: every one is booked at its free time, the front
	// ones no sooner than the lead.
	plan = planSlots(slotParamsFor(4), nil, []slotNode{{x: "a", free: unixNs(mins(30))}, {x: "b", free: unixNs(mins(-1))}, {x: "c", idle: true}})
	assert.Equal(t, []string{"c"}, plan.take)
	assert.Equal(t, []Booking{
		{Name: "crus-s-0", Nodes: []string{"b"}, Start: mins(1), End: mins(61)},
		{Name: "crus-s-6", Nodes: []string{"a"}, Start: mins(30), End: mins(90)},
	}, plan.book)
}

func TestRebook(t *testing.T) {
	b := func(name string, start int, nodes ...string) Booking {
		return Booking{Name: name, Nodes: nodes, Start: mins(start), End: mins(start + 60)}
	}
	held := []Booking{b("r1", 10, "a"), b("r2", 20, "b", "c"), b("r3", 30, "d")}
	held[0].Start = held[0].Start.Add(300 * time.Millisecond) // Slurm's second resolution
	change, drop := rebook(held, []Booking{b("r1", 10, "a"), b("r2", 20, "b"), b("r4", 40, "d")})
	assert.Equal(t, []Booking{b("r2", 20, "b"), b("r4", 40, "d")}, change)
	assert.Equal(t, []string{"r3"}, drop)
	change, drop = rebook(nil, nil)
	assert.Empty(t, change)
	assert.Empty(t, drop)
}

// occupancy counts the lanes in use at t: nodes out not back yet, and
// pending nodes taken at their slot and not back yet (but skip).
func occupancy(t time.Time, out, slots []time.Time, reboot time.Duration, skip int) int {
	n := 0
	for _, r := range out {
		if r.After(t) {
			n++
		}
	}
	for j, s := range slots {
		if j != skip && !s.After(t) && s.Add(reboot).After(t) {
			n++
		}
	}
	return n
}

func drawSlotCase(t *rapid.T) (slotParams, []time.Time, []slotNode) {
	p := slotParamsFor(rapid.IntRange(1, 8).Draw(t, "step"))
	p.reboot = time.Duration(rapid.IntRange(1, 30).Draw(t, "reboot")) * time.Minute
	p.room = rapid.IntRange(0, p.step).Draw(t, "room") // the gates may allow fewer
	out := make([]time.Time, rapid.IntRange(0, 12).Draw(t, "out"))
	for i := range out {
		out[i] = mins(rapid.IntRange(-20, 60).Draw(t, fmt.Sprint("ret", i)))
	}
	pending := make([]slotNode, rapid.IntRange(0, 30).Draw(t, "pending"))
	ranked := rapid.Bool().Draw(t, "ranked")
	for i := range pending {
		idle := rapid.Bool().Draw(t, fmt.Sprint("idle", i))
		free := mins(rapid.IntRange(-30, 240).Draw(t, fmt.Sprint("free", i)))
		if idle {
			free = time.Time{}
		}
		pending[i] = slotNode{x: fmt.Sprintf("x%03d", i), free: unixNs(free), idle: idle}
		if !idle && rapid.IntRange(0, 5).Draw(t, fmt.Sprint("unknown", i)) == 0 {
			pending[i].free, pending[i].unknownEnd = unixNs(time.Time{}), true
		}
		if ranked {
			pending[i].rank = i // agrees with the xnames' order
		}
		if rapid.Bool().Draw(t, fmt.Sprint("held", i)) {
			pending[i].booking = fmt.Sprintf("crus-s-%d", rapid.IntRange(0, 60).Draw(t, fmt.Sprint("bucket", i)))
		}
	}
	return p, out, pending
}

// TestSlotProperties: the lanes never exceed the cap, no node is given a
// slot before it is free, earlier free means no later slot, no lane is
// left idle while a free node waits, the input order does not matter, and
// bookings list their nodes in xname order.
func TestSlotProperties(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		p, out, pending := drawSlotCase(t)
		slots := assignSlots(p, out, pending)
		free := func(i int) time.Time { return laterTime(time.Unix(0, pending[i].free), p.now) }
		for i, s := range slots {
			if s.Before(free(i)) {
				t.Fatalf("%s: slot %v before it is free %v", pending[i].x, s, free(i))
			}
			if n := occupancy(s, out, slots, p.reboot, i) + 1; n > max(p.step, 0) {
				t.Fatalf("%s taken at %v with %d lanes in use, cap %d", pending[i].x, s, n, p.step)
			}
			if s.After(free(i)) {
				// It waited: just before its slot every lane was busy.
				before := s.Add(-time.Nanosecond)
				if n := occupancy(before, out, slots, p.reboot, i); n < p.step {
					t.Fatalf("%s waited until %v while only %d of %d lanes were busy", pending[i].x, s, n, p.step)
				}
			}
			for j := range pending {
				if free(j).After(free(i)) && slots[j].Before(s) {
					t.Fatalf("%s (free %v) got an earlier slot than %s (free %v)", pending[j].x, free(j), pending[i].x, free(i))
				}
			}
		}
		shuffled := slices.Clone(pending)
		rand.New(rand.NewPCG(1, uint64(len(pending)))).Shuffle(len(shuffled), func(i, j int) { shuffled[i], shuffled[j] = shuffled[j], shuffled[i] })
		again := assignSlots(p, out, shuffled)
		for k, n := range shuffled {
			i := slices.IndexFunc(pending, func(m slotNode) bool { return m.x == n.x })
			if !again[k].Equal(slots[i]) {
				t.Fatalf("%s: slot %v in one order, %v in another", n.x, slots[i], again[k])
			}
		}

		plan := planSlots(p, out, pending)
		room := min(p.room, p.step-len(out))
		if len(plan.take) > max(room, 0) {
			t.Fatalf("took %d nodes with room for %d", len(plan.take), room)
		}
		booked := map[string]bool{}
		for _, b := range plan.book {
			if b.Start.Before(p.now.Add(p.lead)) || !b.End.Equal(b.Start.Add(p.length)) {
				t.Fatalf("booking %+v starts before now + lead or lasts not %s", b, p.length)
			}
			if !slices.IsSorted(b.Nodes) {
				t.Fatalf("booking %s: nodes not in xname order: %v", b.Name, b.Nodes)
			}
			for _, x := range b.Nodes {
				if booked[x] || slices.Contains(plan.take, x) {
					t.Fatalf("%s booked twice, or booked and taken", x)
				}
				booked[x] = true
			}
		}
		for i, n := range pending {
			taken := slices.Contains(plan.take, n.x)
			if taken && (!n.idle || plan.slot(i).After(p.now)) {
				t.Fatalf("took %s: idle %v, slot %v", n.x, n.idle, plan.slot(i))
			}
			if booked[n.x] && !n.unknownEnd && plan.slot(i).Sub(free(i)) > p.slack {
				t.Fatalf("booked %s to wait %s, more than the slack", n.x, plan.slot(i).Sub(free(i)))
			}
			if !taken && !booked[n.x] && !n.unknownEnd && plan.slot(i).Sub(free(i)) <= p.slack {
				t.Fatalf("%s neither taken nor booked though it waits only %s", n.x, plan.slot(i).Sub(free(i)))
			}
			if n.unknownEnd && !taken && booked[n.x] != (n.booking != "") {
				t.Fatalf("%s, end unknown: booked %v, held %q: it should keep what it holds, and only that", n.x, booked[n.x], n.booking)
			}
			if len(pending) <= room && !taken && !booked[n.x] && !n.unknownEnd {
				// (A busy node whose end is unknown is not booked anew:
				// checked above.)
				t.Fatalf("%s neither taken nor booked with a lane for every node", n.x)
			}
		}
	})
}

// TestSortSlotKeys: the sort of the slot planner (by counting few distinct
// times, or radix) orders keys as a comparison by free time, rank and
// xname does, over the whole range of times it takes (now to a century
// ahead), ranks or none, runs of one free time, a few times in any order,
// and ties.
func TestSortSlotKeys(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		now := slotNow.UnixNano()
		n := rapid.IntRange(0, 300).Draw(t, "n")
		ranked := rapid.Bool().Draw(t, "ranked")
		// Keys come in runs of one free time, as the nodes of a job do in
		// record order: long runs take the sort by runs.
		run := rapid.IntRange(1, 60).Draw(t, "run")
		// Or free times drawn from a few, in any order: few distinct times
		// in short runs take the sort by counting.
		pool := rapid.SliceOfN(rapid.Int64Range(0, int64(farthest)), 0, 40).Draw(t, "pool")
		pending := make([]slotNode, n)
		keys := make([]slotKey, n)
		for i := range keys {
			var free int64
			kind := 4
			switch {
			case len(pool) > 0:
				kind = 5
			case i%run == 0:
				kind = rapid.IntRange(0, 3).Draw(t, fmt.Sprint("kind", i))
			}
			switch kind {
			case 5: // one of the pool's
				free = pool[rapid.IntRange(0, len(pool)-1).Draw(t, fmt.Sprint("pooled", i))]
			case 4: // the run's
				free = keys[i-1].free - now
			case 0: // now
			case 1: // a few distinct values: ties
				free = int64(rapid.IntRange(0, 3).Draw(t, fmt.Sprint("few", i))) * int64(time.Minute)
			case 2:
				free = rapid.Int64Range(0, int64(48*time.Hour)).Draw(t, fmt.Sprint("free", i))
			default:
				free = rapid.Int64Range(0, int64(farthest)).Draw(t, fmt.Sprint("far", i))
			}
			pending[i] = slotNode{x: fmt.Sprintf("x%04d", rapid.IntRange(0, 9999).Draw(t, fmt.Sprint("x", i)))}
			keys[i] = slotKey{free: now + free, i: int32(i)}
		}
		if ranked {
			// Ranks agree with the xnames' order, as the planner's do.
			byX := make([]int, n)
			for i := range byX {
				byX[i] = i
			}
			slices.SortStableFunc(byX, func(a, b int) int { return strings.Compare(pending[a].x, pending[b].x) })
			for r, i := range byX {
				keys[i].rank = int32(r)
			}
			if rapid.Bool().Draw(t, "in rank order") {
				// As the planner gives them: in record order.
				slices.SortFunc(keys, func(a, b slotKey) int { return int(a.rank - b.rank) })
			}
		}
		want := slices.Clone(keys)
		slices.SortStableFunc(want, func(a, b slotKey) int {
			if c := cmp.Compare(a.free, b.free); c != 0 {
				return c
			}
			if c := cmp.Compare(a.rank, b.rank); c != 0 {
				return c
			}
			return strings.Compare(pending[a.i].x, pending[b.i].x)
		})
		sortSlotKeys(keys, now, pending)
		for j := range keys {
			a, b := keys[j], want[j]
			if a.free != b.free || a.rank != b.rank || pending[a.i].x != pending[b.i].x {
				t.Fatalf("position %d: got free %d rank %d %s, want free %d rank %d %s", j,
					a.free-now, a.rank, pending[a.i].x, b.free-now, b.rank, pending[b.i].x)
			}
		}
	})
}

// times returns all the plan's slots.
func (pl slotPlan) times() []time.Time {
	out := make([]time.Time, len(pl.slots))
	for k := range out {
		out[k] = pl.slot(k)
	}
	return out
}

// TestUnixNs: times in Unix nanoseconds, and the nearest they hold for
// those they cannot (a job without a limit may be expected to end in
// year 9999); the slot planner then counts them at most farthest ahead.
func TestUnixNs(t *testing.T) {
	now := time.Date(2026, 1, 5, 8, 0, 0, 0, time.UTC)
	within := nsAheadOf(now)
	for _, c := range []struct {
		t      time.Time
		ns, in int64
	}{
		{time.Time{}, math.MinInt64, now.UnixNano()},
		{time.Date(1600, 1, 1, 0, 0, 0, 0, time.UTC), math.MinInt64, now.UnixNano()},
		{now.Add(-time.Hour), now.Add(-time.Hour).UnixNano(), now.UnixNano()},
		{now.Add(time.Hour), now.Add(time.Hour).UnixNano(), now.Add(time.Hour).UnixNano()},
		{time.Date(9999, 1, 1, 0, 0, 0, 0, time.UTC), math.MaxInt64, now.Add(farthest).UnixNano()},
		{time.Unix(0, math.MaxInt64), math.MaxInt64, now.Add(farthest).UnixNano()}, // the limits themselves
		{time.Unix(0, math.MinInt64), math.MinInt64, now.UnixNano()},
		{time.Unix(9223372035, 999999999), 9223372035999999999, now.Add(farthest).UnixNano()}, // the last second counted
	} {
		if got := unixNs(c.t); got != c.ns {
			t.Errorf("unixNs(%v) = %d, want %d", c.t, got, c.ns)
		}
		if got := within(unixNs(c.t)); got != c.in {
			t.Errorf("within(unixNs(%v)) = %d, want %d", c.t, got, c.in)
		}
	}
}
