package fake

import (
	"context"
	"fmt"
	"regexp"
	"slices"
	"strings"
	"time"

	"github.com/crus-go/crus/bos"
	"github.com/crus-go/crus/hsm"
)

// BOS is the World's Boot Orchestration Service. A session is pending for
// Options.PendingDelay, then reads group membership, reboots its nodes and
// completes when each has booted or failed.
type BOS struct{ w *World }

var _ bos.Orchestrator = (*BOS)(nil)

// BOS returns the World's boot orchestrator.
func (w *World) BOS() *BOS { return &BOS{w} }

type bootSession struct {
	req     bos.Request
	phase   bos.Phase
	err     string
	start   time.Time
	end     time.Time
	acts    uint64 // World.acts when the request that created it was sent
	targets map[string]bool
	results map[string]bos.NodeStatus
}

var sessionNameRE = regexp.MustCompile(`^[a-zA-Z0-9](?:[-._a-zA-Z0-9]{0,125}[a-zA-Z0-9])?$`)

func (b *BOS) begin(ctx context.Context, op string) (*World, error) { return b.w.begin(ctx, op) }

// CheckTemplate implements bos.Orchestrator.
func (b *BOS) CheckTemplate(ctx context.Context, name string) error {
	w, err := b.begin(ctx, "bos.CheckTemplate")
	if err != nil {
		return err
	}
	defer w.mu.Unlock()
	if _, ok := w.templates[name]; !ok {
		return fmt.Errorf("%w: %q", bos.ErrTemplateNotFound, name)
	}
	return nil
}

// Reboot implements bos.Orchestrator.
func (b *BOS) Reboot(ctx context.Context, req bos.Request) (err error) {
	// The request is sent now: an administrator's resume from here on,
	// while it travels (SetLatency), is the administrator's race (Raced).
	var sent uint64
	b.w.locked(func() { b.w.acts++; sent = b.w.acts })
	w, err := b.begin(ctx, "bos.Reboot")
	if err != nil {
		return err
	}
	defer w.end("bos.Reboot", &err)
	if !sessionNameRE.MatchString(req.Name) {
		return fmt.Errorf("%w: session name %q", bos.ErrInvalidRequest, req.Name)
	}
	if len(req.Limit) == 0 {
		return fmt.Errorf("%w: a reboot needs a limit", bos.ErrInvalidRequest)
	}
	if _, ok := w.templates[req.Template]; !ok {
		return fmt.Errorf("%w: %q", bos.ErrTemplateNotFound, req.Template)
	}
	if s, ok := w.sessions[req.Name]; ok {
		if s.req.Template == req.Template && slices.Equal(s.req.Limit, req.Limit) && s.req.Within == req.Within {
			return nil
		}
		return fmt.Errorf("%w: %q", bos.ErrSessionExists, req.Name)
	}
	req.Limit = slices.Clone(req.Limit)
	s := &bootSession{req: req, phase: bos.PhasePending, start: w.now, acts: sent, results: map[string]bos.NodeStatus{}}
	w.sessions[req.Name] = s
	w.schedule(w.now.Add(w.opts.PendingDelay), func() { w.locked(func() { w.startSession(s) }) })
	return nil
}

// startSession chooses the session's nodes, reading group membership now
// (as BOS does while a session is pending), and reboots them.
func (w *World) startSession(s *bootSession) {
	t := w.templates[s.req.Template]
	candidates := map[string]bool{}
	for _, g := range t.nodeGroups {
		for x := range w.groups[g] {
			candidates[x] = true
		}
	}
	limit := map[string]bool{}
	for _, l := range s.req.Limit {
		if hsm.ValidateXName(l) == nil {
			limit[l] = true
			continue
		}
		for x := range w.groups[l] {
			limit[x] = true
		}
	}
	s.targets = map[string]bool{}
	for x := range candidates {
		if limit[x] && (s.req.Within == "" || w.groups[s.req.Within][x]) {
			s.targets[x] = true
		}
	}
	switch {
	case t.broken != "":
		s.phase, s.err, s.end = bos.PhaseComplete, t.broken, w.now
		return
	case len(s.targets) == 0:
		s.phase, s.err, s.end = bos.PhaseComplete, "no nodes found to boot (limit "+strings.Join(s.req.Limit, ",")+")", w.now
		return
	}
	s.phase = bos.PhaseRunning
	for _, x := range sortedSet(s.targets) {
		n := w.nodes[x]
		w.reboot(n, s.acts, func(ok bool, reason string) {
			if ok {
				s.results[x] = bos.NodeStatus{Result: bos.ResultSucceeded}
			} else {
				s.results[x] = bos.NodeStatus{Result: bos.ResultFailed, Reason: reason}
			}
			if len(s.results) == len(s.targets) {
				s.phase, s.end = bos.PhaseComplete, w.now
			}
		})
	}
}

// reboot powers a node off now and boots it after a random reboot time;
// done is called (under the lock) with the boot's outcome. requested is
// World.acts when the reboot was asked for (0: by the workload manager).
func (w *World) reboot(n *node, requested uint64, done func(ok bool, reason string)) {
	if len(n.jobs) > 0 {
		v := fmt.Sprintf("%s: %s (%s) rebooted while running %d jobs", w.now.Format(time.RFC3339), n.xname, n.name, len(n.jobs))
		if requested != 0 && n.adminResumed > requested {
			// An administrator put it back in service after the boot
			// request was accepted: BOS reboots what it was asked to,
			// and no client can recall it. Not a promise of crus's.
			w.raced = append(w.raced, v+" (resumed by an administrator after its boot request)")
		} else {
			w.violations = append(w.violations, v)
		}
		n.jobs = nil
	}
	asap := n.asap
	n.up, n.rebooting = false, true
	n.reboots++
	w.reboots++
	n.touched++
	w.update(n)
	w.powerOff(n)
	w.schedule(w.now.Add(w.rebootTime(n)), func() {
		w.locked(func() {
			if reason, failed := w.bootFailure(n); failed {
				n.rebooting = false
				if asap {
					w.asapDone(n)
				}
				w.update(n)
				w.powerOn(n, false)
				done(false, reason)
				return
			}
			n.bootTime = w.now.Truncate(time.Second)
			w.update(n)
			done(true, "")
			if n.faults.NeverReturns {
				n.rebooting = false
				if asap {
					w.asapDone(n)
				}
				w.update(n)
				w.powerOn(n, false)
				return
			}
			w.schedule(w.now.Add(w.opts.RegisterDelay), func() {
				w.locked(func() {
					n.up, n.rebooting, n.agentStart = true, false, w.now.Truncate(time.Second)
					n.completingUntil = time.Time{}
					if asap { // nextstate=RESUME
						w.asapDone(n)
						n.drain, n.reason = false, ""
					}
					w.update(n)
					w.powerOn(n, true)
				})
			})
		})
	})
}

// Status implements bos.Orchestrator.
func (b *BOS) Status(ctx context.Context, name string, nodes []string) (bos.Status, error) {
	w, err := b.begin(ctx, "bos.Status")
	if err != nil {
		return bos.Status{}, err
	}
	defer w.mu.Unlock()
	s, ok := w.sessions[name]
	if !ok {
		return bos.Status{}, fmt.Errorf("%w: %q", bos.ErrSessionNotFound, name)
	}
	st := bos.Status{Name: name, Phase: s.phase, Error: s.err, StartTime: s.start, EndTime: s.end, Nodes: map[string]bos.NodeStatus{}}
	for _, x := range nodes {
		if r, ok := s.results[x]; ok {
			st.Nodes[x] = r
		}
	}
	return st, nil
}

// Sessions returns the names of every boot session created, sorted.
func (w *World) Sessions() []string {
	w.mu.Lock()
	defer w.mu.Unlock()
	out := make([]string, 0, len(w.sessions))
	for k := range w.sessions {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}

// RepairTemplate undoes BreakTemplate.
func (w *World) RepairTemplate(name string) { w.BreakTemplate(name, "") }

var _ bos.TemplateReader = (*BOS)(nil)

// Template implements bos.TemplateReader: the template's one boot set
// targets its node groups.
func (b *BOS) Template(ctx context.Context, name string) (bos.Template, error) {
	w, err := b.begin(ctx, "bos.Template")
	if err != nil {
		return bos.Template{}, err
	}
	defer w.mu.Unlock()
	t, ok := w.templates[name]
	if !ok {
		return bos.Template{}, fmt.Errorf("%w: %q", bos.ErrTemplateNotFound, name)
	}
	return bos.Template{Name: name, BootSets: []bos.BootSet{{Name: "compute", NodeGroups: slices.Clone(t.nodeGroups)}}}, nil
}
