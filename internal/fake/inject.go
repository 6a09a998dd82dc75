package fake

import (
	"maps"
	"slices"
	"time"
)

// Injected holds the faults injected into calls, by operation ("wlm.Drain",
// "bos.Reboot", ...): failures of the next calls, outages (windows of time
// in which every call fails), and writes whose answers are lost (the next
// ones, or those in windows of time), their work done. It is the
// bookkeeping of World's FailNext, Outage, LoseNextAnswers and
// LoseAnswers, shared with the test kit (crustest), which injects the same
// faults into an outside adapter's calls. The zero value is ready; it is
// not safe for concurrent use (its owner holds its own lock).
type Injected struct {
	next     map[string][]error
	outages  map[string][]window
	lostNext map[string]int
	lost     map[string][]window
}

// writeOps are the calls that change something: the only ones whose
// answers can be lost, their work done (a lost read is a failed read).
var writeOps = []string{
	"hsm.AddMembers", "hsm.RemoveMembers", "bos.Reboot",
	"wlm.Drain", "wlm.Resume", "wlm.Fail", "wlm.Reserve", "wlm.Unreserve", "wlm.Steer",
}

// WriteOps returns the calls whose answers can be lost (LoseNext, LoseIn).
func WriteOps() []string { return slices.Clone(writeOps) }

// IsWrite reports whether op is one of WriteOps.
func IsWrite(op string) bool { return slices.Contains(writeOps, op) }

// window is a span of time [from, until) in which calls of an operation
// fail with err, or lose their answers.
type window struct {
	from, until time.Time
	err         error
}

func (w window) covers(t time.Time) bool { return !t.Before(w.from) && t.Before(w.until) }

// FailNext makes the next n calls of op fail with err.
func (f *Injected) FailNext(op string, n int, err error) {
	if f.next == nil {
		f.next = map[string][]error{}
	}
	for range n {
		f.next[op] = append(f.next[op], err)
	}
}

// Outage makes every call of op from from until until fail with err.
func (f *Injected) Outage(op string, from, until time.Time, err error) {
	if f.outages == nil {
		f.outages = map[string][]window{}
	}
	f.outages[op] = append(f.outages[op], window{from: from, until: until, err: err})
}

// LoseNext makes the answers of the next n successful calls of op lost.
func (f *Injected) LoseNext(op string, n int) {
	if f.lostNext == nil {
		f.lostNext = map[string]int{}
	}
	f.lostNext[op] += n
}

// LoseIn makes the answers of every successful call of op from from until
// until lost.
func (f *Injected) LoseIn(op string, from, until time.Time) {
	if f.lost == nil {
		f.lost = map[string][]window{}
	}
	f.lost[op] = append(f.lost[op], window{from: from, until: until})
}

// Fail returns the failure injected into a call of op made at now, if
// any: the next of FailNext's (used up), else an outage's.
func (f *Injected) Fail(op string, now time.Time) error {
	if q := f.next[op]; len(q) > 0 {
		f.next[op] = q[1:]
		return q[0]
	}
	for _, o := range f.outages[op] {
		if o.covers(now) {
			return o.err
		}
	}
	return nil
}

// Lost reports whether the answer of a successful call of op ended at now
// is to be lost (one of LoseNext's is used up).
func (f *Injected) Lost(op string, now time.Time) bool {
	if f.lostNext[op] > 0 {
		f.lostNext[op]--
		return true
	}
	return slices.ContainsFunc(f.lost[op], func(w window) bool { return w.covers(now) })
}

// Clone returns a copy that shares nothing with f.
func (f *Injected) Clone() Injected {
	c := Injected{lostNext: maps.Clone(f.lostNext)}
	cloneAll := func(m map[string][]window) map[string][]window {
		if m == nil {
			return nil
		}
		out := make(map[string][]window, len(m))
		for op, ws := range m {
			out[op] = slices.Clone(ws)
		}
		return out
	}
	c.outages, c.lost = cloneAll(f.outages), cloneAll(f.lost)
	if f.next != nil {
		c.next = make(map[string][]error, len(f.next))
		for op, q := range f.next {
			c.next[op] = slices.Clone(q)
		}
	}
	return c
}
