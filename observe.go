package crus

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"slices"
	"sync"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/crus-go/crus/bos"
	"github.com/crus-go/crus/hsm"
	"github.com/crus-go/crus/wlm"
)

// observe reads what the plan needs, fanning the calls out. Each part of
// the scope is read on its own: a part that cannot be read (after the
// call's retries) is left out of the observation and named in its Errors,
// and the others are still used — the planner acts on what is known. Only
// a cancelled ctx is an error.
//
// A light observation (between two full ones) reads the nodes in flight
// first, then only the boot sessions one of whose nodes the workload
// manager shows with a boot time newer than its reboot request: news
// worth a request. The others are left out (not observed: the planner
// waits for them).
// bootDeleted is the error of a boot session the orchestrator accepted and
// then no longer knew.
const bootDeleted = "the boot orchestrator accepted the boot session, then no longer knew it (deleted): whether its nodes rebooted is not known"

func (e *Executor) observe(ctx context.Context, r *run, light bool) (Observation, error) {
	s := r.s
	// All of an observation's calls retry within one RetryTimeout of its
	// start: parts that wait for others (MaxConcurrentCalls, or the boot
	// sessions of a light round after its nodes) do not add their own,
	// so an observation of many boot sessions in an outage does not
	// take minutes on end. Its time bounds how stale the decision is
	// when it acts, and how long the session's reservations go without
	// a look (Executor.horizon, keepAhead).
	ctx = withRetryDeadline(ctx, e.clock.Now().Add(e.cfg.RetryTimeout))
	sc, pos, endsPos := scopeWith(s, r.indexed(), light)
	if r.obsNodes == nil {
		r.obsNodes = make(map[string]wlm.Node, len(sc.Nodes))
	}
	if len(sc.Nodes) == 0 {
		r.forgetNodes()
	}
	obs := Observation{
		Now:           e.clock.Now(),
		Nodes:         r.obsNodes,
		Unknown:       map[string]string{},
		Boots:         make(map[string]bos.Status, len(sc.Boots)),
		MissingBoots:  map[string]bool{},
		BootTimes:     e.bootTimes,
		BootTimeSlack: e.cfg.BootTimeSlack,
		Describer:     e.words,
		Scheduling:    e.scheduler != nil,
		Horizon:       e.horizonFor(r),
		InFlightOnly:  light,
		at:            &r.at,
	}
	r.at.reset(r.indexed(), pos)
	var mu sync.Mutex
	failed := func(part Part, err error) {
		mu.Lock()
		defer mu.Unlock()
		if obs.Errors == nil {
			obs.Errors = map[Part]string{}
		}
		if _, ok := obs.Errors[part]; !ok {
			obs.Errors[part] = errText(err)
		}
		level := slog.LevelWarn
		if slices.ContainsFunc(s.Progress.Conditions, func(c Condition) bool { return c.Kind == partCondition[part] }) {
			level = slog.LevelDebug // said already, when the outage began
		}
		r.log.Log(ctx, level, "could not observe part of the world; acting on the rest", "part", part, "err", err)
		if r.dry {
			return
		}
		e.emit(Event{Time: obs.Now, Session: s.UpgradeID, Kind: EventObserveErr, Step: s.Progress.Step, Steps: s.Progress.Steps,
			Stage: s.Progress.Stage, Message: string(part), Err: err})
	}
	var g errgroup.Group // no shared cancellation: one part failing stops no other
	g.SetLimit(e.cfg.MaxConcurrentCalls)
	if len(sc.Nodes) > 0 {
		g.Go(func() error {
			names := slices.Grow(r.obsNames[:0], len(pos))[:len(pos)] // reused: the manager keeps no names
			r.obsNames = names
			for k, i := range pos {
				names[k] = s.Progress.Nodes[i].Name
			}
			// By position from a wlm.NodesFiller, into the view's
			// array, with no slice made for the answer; else from
			// Nodes.
			var nodes []wlm.Node
			filler, byPosition := e.wlm.(wlm.NodesFiller)
			perNode, err := e.call(ctx, "read nodes", func(ctx context.Context) (err error) {
				if byPosition {
					return filler.NodesInto(ctx, names, r.at.nodes)
				}
				nodes, err = e.wlm.Nodes(ctx, names)
				return err
			})
			if err != nil {
				r.forgetNodes()
				failed(PartNodes, fmt.Errorf("reading %s from the workload manager: %w", plural(len(names), "node"), err))
				return nil
			}
			// No lock from here on: this goroutine alone writes
			// Observation.Nodes and Unknown, the run's map of nodes
			// and the view's states (the job ends go to their own
			// fields), and no part reads them before Wait. The job
			// ends are set meanwhile.
			//
			// Nodes come back in the order asked, less the unknown ones:
			// match them by position, by name if an adapter reorders.
			//
			// The pending nodes (the scheduled strategy's thousands of
			// candidates) matched by position are not put in the map:
			// the planner reads them by position (planner.observed),
			// and setting them in the map was a tenth of a
			// 100,000-node simulated upgrade.
			idx := r.indexed() // (made before: scopeWith)
			pending := func(k int) bool { return idx.isPending(pos[k]) }
			if checkObservedAt && r.at.shadow == nil {
				r.at.shadow = map[string]wlm.Node{}
			}
			keys, inOrder := r.obsNew[:0], true
			// found records the answer for position k, in the view.
			found := func(k int, n wlm.Node) {
				r.at.nodes[k], r.at.seen[k] = n, true
				if x := sc.Nodes[k]; !pending(k) {
					obs.Nodes[x] = n
					keys = append(keys, x)
				} else if checkObservedAt {
					r.at.shadow[x] = n
				}
			}
			if byPosition {
				for k, n := range r.at.nodes {
					if n.Name == names[k] { // (else left out: unknown)
						found(k, n)
					}
				}
			}
			k := 0
			for _, n := range nodes {
				for k < len(names) && names[k] != n.Name && perNode[names[k]] != nil {
					k++
				}
				if k < len(names) && names[k] == n.Name {
					found(k, n)
					k++
				} else if x, ok := r.names.xname(n.Name); ok {
					obs.Nodes[x] = n
					keys, inOrder = append(keys, x), false
				}
			}
			if !inOrder {
				// Positions are not known: all in the map.
				for k, seen := range r.at.seen {
					if seen && pending(k) {
						obs.Nodes[sc.Nodes[k]] = r.at.nodes[k]
						keys = append(keys, sc.Nodes[k])
					}
				}
				slices.Sort(keys)
				keys = slices.Compact(keys)
			}
			r.keepNodes(keys)
			for name, err := range perNode {
				if x, ok := r.names.xname(name); ok && errors.Is(err, wlm.ErrNodeNotFound) {
					delete(obs.Nodes, x)
					delete(r.at.shadow, x)
					obs.Unknown[x] = errText(err)
					if k, ok := slices.BinarySearch(sc.Nodes, x); ok {
						r.at.seen[k] = false
					}
				}
			}
			// By position too, unless results came out of order (then
			// their positions are not known: the planner reads the map).
			r.at.nodesOK = inOrder
			return nil
		})
	}
	if light {
		_ = g.Wait() // the nodes first: they say which boot sessions have news
	}
	if r.boots == nil {
		r.boots = map[string]bootRead{}
	}
	var boots []BootRef
	inScope := make(map[string]bool, len(sc.Boots))
	for _, b := range sc.Boots {
		inScope[b.Name] = true
		last, ok := r.boots[b.Name]
		if ok && last.st.Phase == bos.PhaseComplete && last.st.Error != "" {
			// Failed as a whole: the planner reads the group to tell the
			// nodes the session could not have rebooted.
			sc.Upgrading = true
		}
		// (obs.Nodes is complete only in a light round: read after Wait.)
		news := light && bootNews(obs, b)
		// A status read before its nodes' boot_timeout ran out must not
		// be what fails them: past it, read it again (if that read fails,
		// the planner waits).
		deadline := deadlineOf(b.TimedFrom, s.BootTimeout)
		stale := ok && last.st.Phase != bos.PhaseComplete && obs.Now.After(deadline) && !last.at.After(deadline)
		if !ok || news || stale || !light && last.st.Phase != bos.PhaseComplete && !obs.Now.Before(last.due(e.cfg.PollInterval)) {
			boots = append(boots, b)
		} else {
			obs.Boots[b.Name] = last.st
		}
	}
	for name := range r.boots {
		if !inScope[name] {
			delete(r.boots, name)
		}
	}
	for _, b := range boots {
		g.Go(func() error {
			var st bos.Status
			err := e.retry(ctx, "boot session status", func(ctx context.Context) (err error) {
				st, err = e.boot.Status(ctx, b.Name, b.Nodes)
				return err
			})
			if errors.Is(err, bos.ErrSessionNotFound) && b.Accepted {
				// Accepted, and now unknown: deleted (by an admin, or by
				// the orchestrator's cleanup), though the orchestrator's
				// client may not know it had it (it restarted). Never sent
				// again: over, with no known outcome, read as any status.
				st, err = bos.Status{Name: b.Name, Phase: bos.PhaseComplete, Nodes: map[string]bos.NodeStatus{}, Error: bootDeleted}, nil
			}
			switch {
			case errors.Is(err, bos.ErrSessionNotFound):
				mu.Lock()
				obs.MissingBoots[b.Name] = true
				mu.Unlock()
			case err != nil:
				failed(PartBoots, fmt.Errorf("reading boot session %s: %w", b.Name, err))
			default:
				st = cleanStatus(st)
				mu.Lock()
				obs.Boots[b.Name] = st
				first := obs.Now
				if last, ok := r.boots[b.Name]; ok {
					first = last.first
				}
				r.boots[b.Name] = bootRead{st: st, at: obs.Now, first: first}
				mu.Unlock()
			}
			return nil
		})
	}
	if len(sc.JobEnds) > 0 && e.jobEnder != nil {
		g.Go(func() error {
			names, at := r.names.namesAt(endsPos, pos, r.endsNames, r.endsWhere) // reused: the manager keeps no names
			r.endsNames, r.endsWhere = names, at
			ends := resize(r.endsAt, len(names))
			r.endsAt = ends
			_, err := e.call(ctx, "job ends", func(ctx context.Context) error {
				// By position from a wlm.JobEndsFiller, sparing a map
				// of thousands of names; else from the map.
				return wlm.JobEndsAt(ctx, e.jobEnder, names, ends)
			})
			if err != nil {
				// A hint: without it job_end ranks idle nodes first.
				failed(PartJobEnds, fmt.Errorf("reading the job ends of %s: %w", plural(len(names), "node"), err))
				return nil
			}
			if r.obsEnds == nil {
				r.obsEnds = map[string]time.Time{}
			}
			byX := r.obsEnds // reused, like obs.Nodes
			clear(byX)
			// No lock: this goroutine alone writes Observation.JobEnds
			// and the view's ends. By position (at: where each is among sc.Nodes), where
			// the planner reads them: a map of the thousands of
			// candidates of the scheduled strategy was a tenth of an
			// observation. The map holds only ends without a position.
			if checkObservedAt && r.at.endsShadow == nil {
				r.at.endsShadow = map[string]time.Time{}
			}
			for k, t := range ends {
				switch {
				case t.IsZero():
					// runs nothing, or not known
				case at[k] < 0:
					byX[sc.JobEnds[k]] = t
				default:
					r.at.ends[at[k]] = t
					if checkObservedAt {
						r.at.endsShadow[sc.JobEnds[k]] = t
					}
				}
			}
			obs.JobEnds = byX // not nil: read
			r.at.endsOK = true
			return nil
		})
	}
	if st := &r.steer; !st.known && st.err != nil && !st.unsupported {
		obs.SteeringFailed = errText(st.err)
	}
	if e.scheduler != nil && r.refused != nil {
		// Refused to this user: as without wlm.Scheduler (see book),
		// but for a full look now and then, which tries again.
		obs.BookingRefused = errText(r.refused)
		// (Only a full look reads the reservations: sc.Bookings; a dry
		// run is never refused: it makes none.)
		r.retrying = sc.Bookings && !obs.Now.Before(r.refusedAt.Add(refusalRetry))
		if r.retrying {
			r.refusedAt = obs.Now
			r.log.Debug("asking the workload manager for reservations again: it refused them", "refused", r.refused)
		} else {
			obs.Scheduling = false
		}
	}
	if sc.Bookings && e.scheduler != nil && (r.refused == nil || r.retrying) {
		g.Go(func() error {
			bookings, err := e.bookings(ctx, r)
			if errors.Is(err, wlm.ErrUnsupported) {
				// The workload manager has the methods but cannot book
				// nodes (slurmrestd without a CLI fallback): no
				// reservation of the session can exist, and the
				// scheduled strategy runs as without wlm.Scheduler.
				// Waiting to read them would hold the session's end for
				// ever.
				mu.Lock()
				obs.Scheduling = false
				mu.Unlock()
				return nil
			}
			if err != nil {
				failed(PartBookings, err)
				if r.booked == nil && !r.dry {
					// Nothing read in this run (it began during the
					// outage): delete them all by name, and plan from
					// none left.
					e.forgetBookings(ctx, r)
				}
				if r.booked != nil {
					// Still said (the condition), but planned from what
					// this run last read and has changed since: the
					// reservations are moved on as their slots move.
					mu.Lock()
					obs.Bookings, obs.BookingsObserved = maps.Clone(r.booked), true
					mu.Unlock()
				}
				return nil
			}
			if !r.dry {
				r.booked = maps.Clone(bookings) // not nil: bookings never is
			}
			mu.Lock()
			obs.Bookings, obs.BookingsObserved = bookings, true
			mu.Unlock()
			return nil
		})
	}
	if sc.Upgrading {
		g.Go(func() error {
			m, err := e.members(ctx, s.UpgradingLabel)
			if errors.Is(err, hsm.ErrGroupNotFound) {
				err, m = nil, nil // no group, no members left in it
			}
			if err != nil {
				failed(PartUpgrading, fmt.Errorf("reading upgrading group %q: %w", s.UpgradingLabel, err))
				return nil
			}
			mu.Lock()
			obs.Upgrading, obs.UpgradingObserved = m, true
			mu.Unlock()
			return nil
		})
	}
	_ = g.Wait()
	return obs, ctx.Err()
}

// horizon bounds the time from one observation to the actions of the next
// decision: a poll interval, the observation's calls retried (the nodes,
// then the boot sessions), and a few actions retried before the next
// observation.
func (e *Executor) horizon() time.Duration {
	return e.cfg.PollInterval + 6*e.cfg.RetryTimeout
}

// horizonFor is horizon, widened for a run whose backends are slower
// than that allows for. A reservation is moved on once it is due within
// half a lead (keepAhead); it must not begin before the run looks again
// and its move is through. With calls that each took two minutes, an
// observation took six, and reservations began on nodes crus had not
// taken, beyond the cap (TestSlowBackendsKeepTheCap). So half a lead is
// at least twice the longest of the run's recent stretches of work
// between two looks (the next stretch, then the move, which is no
// longer), and a retry time more. A healthy run works for seconds
// between two looks: its lead stays horizon's.
func (e *Executor) horizonFor(r *run) time.Duration {
	return max(e.horizon(), 4*r.busy.longest()+2*e.cfg.RetryTimeout)
}

// busyWindow is how many of a run's last stretches of work between two
// looks at its reservations horizonFor takes into account.
const busyWindow = 64

// busyGaps keeps a run's last busyWindow stretches of work between two
// looks at its reservations; its naps (Executor.sleep) do not count,
// since they are sized from the lead.
type busyGaps struct {
	last time.Time // the last look, zero while resting
	gaps [busyWindow]time.Duration
	n    int
}

// look notes a look at now, ending a stretch of work begun at the last
// look.
func (g *busyGaps) look(now time.Time) {
	if !g.last.IsZero() && now.After(g.last) {
		g.gaps[g.n%busyWindow] = now.Sub(g.last)
		g.n++
	}
	g.last = now
}

// rest ends the stretch of work at now: the run naps until its next
// look.
func (g *busyGaps) rest(now time.Time) {
	g.look(now)
	g.last = time.Time{}
}

// longest returns the longest of the stretches kept.
func (g *busyGaps) longest() time.Duration {
	var m time.Duration
	for _, d := range g.gaps {
		m = max(m, d)
	}
	return m
}

// bootRead is a boot session's status as last read (at), and when it was
// first read.
type bootRead struct {
	st        bos.Status
	at, first time.Time
}

// due returns when a running boot session is read again without news (no
// node of it seen back): a poll interval after the last read, or a
// half of the time it has been followed, whichever is later. A boot
// takes minutes; reading it every poll costs more than it tells.
func (b bootRead) due(poll time.Duration) time.Time {
	return b.at.Add(max(poll, b.at.Sub(b.first)/2))
}

// bootNews reports whether a node of the boot session is seen back with a
// boot time newer than its reboot request: its boot session may now report
// it booted.
func bootNews(obs Observation, b BootRef) bool {
	if !obs.BootTimes {
		return false
	}
	since := b.Requested.Add(-obs.BootTimeSlack)
	for _, x := range b.Nodes {
		if w, seen := obs.Nodes[x]; seen && w.Responding() && w.BootTime.After(since) {
			return true
		}
	}
	return false
}

// cleanStatus cleans and caps the text of a boot session's status: it
// becomes nodes' reasons.
func cleanStatus(st bos.Status) bos.Status {
	st.Error = errTextOf(st.Error)
	for x, n := range st.Nodes {
		if n.Reason != "" {
			n.Reason = errTextOf(n.Reason)
			st.Nodes[x] = n
		}
	}
	return st
}

// keepNodes leaves in the run's map of observed nodes (Observation.Nodes,
// reused from one observation to the next) only the nodes of keys, the
// ones this observation set (sorted). The map is not cleared and filled
// anew: its values are large, so the map holds each in an allocation of
// its own, which setting an existing key reuses; a full observation of
// the scheduled strategy reads thousands of nodes, and allocating them
// again at every poll was a tenth of a 100,000-node simulated upgrade
// (13 s of 125), and much of its garbage.
func (r *run) keepNodes(keys []string) {
	j := 0
	for _, x := range r.obsKeys { // sorted: the keys of the last observation
		for j < len(keys) && keys[j] < x {
			j++
		}
		if j == len(keys) || keys[j] != x {
			delete(r.obsNodes, x)
		}
	}
	r.obsKeys, r.obsNew = keys, r.obsKeys[:0]
}

// forgetNodes empties the run's map of observed nodes.
func (r *run) forgetNodes() {
	clear(r.obsNodes)
	r.obsKeys = r.obsKeys[:0]
}
