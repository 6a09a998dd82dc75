package crus

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/crus-go/crus/batch"
	"github.com/crus-go/crus/bos"
	"github.com/crus-go/crus/hsm"
	"github.com/crus-go/crus/internal/text"
	"github.com/crus-go/crus/wlm"
)

// PreflightError lists every problem a pre-flight check found, one per
// line. It matches ErrPreflight and each problem's own sentinel
// (errors.Is), and each problem is reachable with errors.As.
type PreflightError struct {
	Problems []error
}

func (e *PreflightError) Error() string {
	var b strings.Builder
	b.WriteString(ErrPreflight.Error())
	if len(e.Problems) == 1 {
		b.WriteString(": " + e.Problems[0].Error())
		return b.String()
	}
	fmt.Fprintf(&b, ": %d problems:", len(e.Problems))
	for _, p := range e.Problems {
		b.WriteString("\n  - " + p.Error())
	}
	return b.String()
}

// Unwrap returns ErrPreflight and the problems.
func (e *PreflightError) Unwrap() []error { return append([]error{ErrPreflight}, e.Problems...) }

func preflightError(problems []error) error { return &PreflightError{Problems: problems} }

// preflight collects the problems of a session about to be created.
type preflight struct {
	mu       sync.Mutex
	problems []error
}

func (p *preflight) add(err error) {
	p.mu.Lock()
	p.problems = append(p.problems, err)
	p.mu.Unlock()
}

func (p *preflight) ok() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.problems) == 0
}

// Create checks spec and the world, then records a new session in state
// CREATED without touching any node. The checks (pre-flight):
//
//   - the spec is valid and names this executor's workload manager type;
//   - the boot session template exists and, when the boot orchestrator can
//     read it (bos.TemplateReader), its boot sets can boot the session's
//     nodes (in their node list, in a group they name — the upgrading
//     group counts, since crus puts the nodes there — or by role);
//   - the three groups exist, the upgrading group is empty, the failed
//     group is empty (unless Spec.ClearFailed), the starting group is not;
//   - every starting node is known to HSM and maps to a workload-manager
//     name, one name per node, that the workload manager knows;
//   - if the store is a Reserver, no session in progress holds any of the
//     starting nodes or the upgrading or failed group (ErrReserved names
//     the session and what it holds).
//
// Nodes that are not in service (drained, down, failed: for another reason)
// are recorded as skipped with the reason and never touched. A check that
// fails gives a *PreflightError (matching ErrPreflight) or an
// ErrInvalidSpec error that lists every problem found, and nothing is
// changed anywhere. A backend that cannot be reached is not a problem of
// the session: its error is returned as it is. The starting group's
// members are read once, here: later edits of the group do not change the
// session.
func (e *Executor) Create(ctx context.Context, spec Spec) (*Session, error) {
	s, err := e.prepare(ctx, spec)
	if err != nil {
		return nil, err
	}
	s.UpgradeID = e.cfg.NewID()
	if err := ValidateID(s.UpgradeID); err != nil {
		return nil, fmt.Errorf("crus: Config.NewID: %w", err)
	}
	if err := e.createRecord(ctx, s); err != nil {
		return nil, err
	}
	now, taken := s.Progress.CreatedAt, s.Counts().Pending
	e.log.Info("session created", "session", s.UpgradeID, "starting_label", spec.StartingLabel, "nodes", taken, "skipped", len(s.Progress.Nodes)-taken, "steps", s.Progress.Steps)
	e.emit(Event{Time: now, Session: s.UpgradeID, Kind: EventCreated, Steps: s.Progress.Steps, Nodes: taken, Stage: s.Progress.Stage, Message: s.Messages[0]})
	for _, n := range s.Progress.Nodes {
		if n.Phase == PhaseDone {
			e.emit(Event{Time: now, Session: s.UpgradeID, Kind: EventNode, Steps: s.Progress.Steps, Stage: s.Progress.Stage,
				Node: n.XName, Outcome: n.Outcome, Reason: n.Reason})
		}
	}
	return s, nil
}

// MaxIDLength is the longest session id (Config.NewID) Create accepts: a
// UUID has 36 characters.
const MaxIDLength = 64

// MaxStoredIDLength is the longest session id a store accepts: records
// written before Create had MaxIDLength may hold ids up to this long, and
// a store must still read, write and delete them.
const MaxStoredIDLength = 200

// ValidateID checks a session id: 1 to MaxIDLength letters, digits, '.',
// '_' or '-', beginning with a letter or a digit. It names the session's
// boot sessions (crus-<id>-<n>, which BOS takes up to 127 characters of
// these), its reservations (crus-<id>-<n>, up to 100 characters with n of
// 8 digits, a century of 5-minute buckets), its drain reasons ("crus
// <id>: ...") and its file or key in the store.
func ValidateID(id string) error { return checkID(id, MaxIDLength) }

// ValidateStoredID is the check a store makes of the ids it is given:
// ValidateID's alphabet, up to MaxStoredIDLength bytes. An id it accepts
// is safe as a file name or a key segment: no path separator, not "." or
// "..", nothing beginning with '.' or '-'.
func ValidateStoredID(id string) error { return checkID(id, MaxStoredIDLength) }

func checkID(id string, maxLen int) error {
	switch {
	case id == "":
		return errors.New("a session id must not be empty")
	case len(id) > maxLen:
		return fmt.Errorf("session id %q is %d bytes long, more than %d", text.Cap(id, 80), len(id), maxLen)
	}
	for i := 0; i < len(id); i++ {
		c := id[i]
		ok := c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || i > 0 && (c == '.' || c == '_' || c == '-')
		if !ok {
			return fmt.Errorf("session id %q: byte %d (%q) is not allowed; an id is letters, digits, '.', '_' and '-', beginning with a letter or a digit", text.Cap(id, 80), i, c)
		}
	}
	return nil
}

// PreviewID is the UpgradeID of the record Preview returns.
const PreviewID = "preview"

// Preview runs every check Create runs and returns the record Create
// would store (its UpgradeID is PreviewID), but stores nothing and touches
// nothing: a dry run. Its errors are Create's.
func (e *Executor) Preview(ctx context.Context, spec Spec) (*Session, error) {
	s, err := e.prepare(ctx, spec)
	if err != nil {
		return nil, err
	}
	s.UpgradeID = PreviewID
	return s, nil
}

// prepare runs the pre-flight checks and builds the record of a new
// session, without an id and without storing it.
func (e *Executor) prepare(ctx context.Context, spec Spec) (*Session, error) {
	spec = spec.WithDefaults()
	if err := spec.Validate(); err != nil {
		return nil, err
	}
	if spec.WorkloadManagerType != e.cfg.WorkloadManagerType {
		return nil, &FieldError{Field: "workload_manager_type", Value: spec.WorkloadManagerType,
			Problem: fmt.Sprintf("%q is not known here: this executor drives %q", spec.WorkloadManagerType, e.cfg.WorkloadManagerType)}
	}
	pf := &preflight{}
	members, tmpl, err := e.readSpecWorld(ctx, spec, pf)
	if err != nil {
		return nil, err
	}
	starting, upgrading, failed := members["starting"], members["upgrading"], members["failed"]
	if len(upgrading) > 0 {
		pf.add(fmt.Errorf("%w: upgrading group %q must be empty, it has %s: %s", ErrGroupNotEmpty, spec.UpgradingLabel, plural(len(upgrading), "member"), abbreviate(upgrading, 10)))
	}
	if len(failed) > 0 && !spec.ClearFailed {
		pf.add(fmt.Errorf("%w: failed group %q must be empty (or ask for clear_failed), it has %s: %s", ErrGroupNotEmpty, spec.FailedLabel, plural(len(failed), "member"), abbreviate(failed, 10)))
	}
	if _, ok := members["starting"]; ok && len(starting) == 0 {
		pf.add(fmt.Errorf("%w: starting group %q is empty", ErrNoNodes, spec.StartingLabel))
	}
	starting = slices.Clone(starting)
	slices.Sort(starting)
	starting = slices.Compact(starting)
	if tmpl != nil && len(starting) > 0 {
		if err := e.checkCoverage(ctx, spec, *tmpl, starting, pf); err != nil {
			return nil, err
		}
	}
	var names map[string]string
	var state map[string]wlm.Node
	if len(starting) > 0 {
		if names, err = e.mapStarting(ctx, starting, pf); err != nil {
			return nil, err
		}
		if state, err = e.readStarting(ctx, starting, names, pf); err != nil {
			return nil, err
		}
		if policyOf(&spec).scheduled && e.steerer != nil {
			e.checkSteered(starting, names, state, pf)
		}
	}
	if err := e.checkReserved(ctx, spec, starting, names, pf); err != nil {
		return nil, err
	}
	if !pf.ok() {
		return nil, preflightError(pf.problems)
	}

	s, taken := newRecord(spec, starting, names, state, e.words, e.clock.Now())
	if taken == 0 {
		return nil, preflightError([]error{fmt.Errorf("%w: none of the %s of starting group %q is in service", ErrNoNodes, plural(len(starting), "node"), spec.StartingLabel)})
	}
	if spec.ClearFailed && len(failed) > 0 {
		s.Progress.FailedToClear = slices.Clone(failed)
	}
	if policyOf(&spec).scheduled && !e.canBook(ctx) {
		s.Messages[0] += "; the workload manager cannot book nodes (no reservations), so nodes are taken as in rolling by expected job ends"
	}
	return s, nil
}

// canBook reports whether the workload manager can book nodes for the
// scheduled strategy: it has wlm.Scheduler, and does not answer
// wlm.ErrUnsupported to a listing (slurmrestd without its CLI fallback).
// A listing that fails otherwise says nothing against it. Without it, a
// scheduled session runs as rolling by expected job ends, and says so
// from its creation rather than leave the admin to find out.
func (e *Executor) canBook(ctx context.Context) bool {
	if e.scheduler == nil {
		return false
	}
	err := e.attempt(ctx, "list reservations", func(ctx context.Context) error {
		_, err := e.scheduler.Reservations(ctx, "crus-")
		return err
	})
	return !errors.Is(err, wlm.ErrUnsupported)
}

// readSpecWorld reads, at once, the template and the three groups. A
// missing template or group is a problem of the session; a failing read
// is returned as an error.
func (e *Executor) readSpecWorld(ctx context.Context, spec Spec, pf *preflight) (map[string][]string, *bos.Template, error) {
	var mu sync.Mutex
	members := map[string][]string{}
	var tmpl *bos.Template
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(e.cfg.MaxConcurrentCalls)
	g.Go(func() error {
		var err error
		if tr, ok := e.boot.(bos.TemplateReader); ok {
			var t bos.Template
			err = e.retry(gctx, "read template", func(gctx context.Context) (err error) { t, err = tr.Template(gctx, spec.TemplateID); return err })
			if err == nil {
				mu.Lock()
				tmpl = &t
				mu.Unlock()
			}
		} else {
			err = e.retry(gctx, "check template", func(gctx context.Context) error { return e.boot.CheckTemplate(gctx, spec.TemplateID) })
		}
		switch {
		case errors.Is(err, bos.ErrTemplateNotFound):
			pf.add(fmt.Errorf("boot session template: %w", err))
		case err != nil:
			return fmt.Errorf("reading boot session template %q: %w", spec.TemplateID, err)
		}
		return nil
	})
	for _, l := range []struct{ role, label string }{
		{"starting", spec.StartingLabel}, {"upgrading", spec.UpgradingLabel}, {"failed", spec.FailedLabel},
	} {
		g.Go(func() error {
			m, err := e.members(gctx, l.label)
			switch {
			case errors.Is(err, hsm.ErrGroupNotFound):
				pf.add(fmt.Errorf("%s group: %w", l.role, err))
			case err != nil:
				return fmt.Errorf("reading %s group %q: %w", l.role, l.label, err)
			default:
				mu.Lock()
				members[l.role] = m
				mu.Unlock()
			}
			return nil
		})
	}
	return members, tmpl, g.Wait()
}

func (e *Executor) members(ctx context.Context, label string) ([]string, error) {
	var m []string
	err := e.retry(ctx, "read group", func(ctx context.Context) (err error) {
		m, err = e.groups.Members(ctx, label)
		return err
	})
	return m, err
}

// ErrTemplateCoverage: the boot session template cannot boot some of the
// session's nodes; the session would drain them for nothing.
var ErrTemplateCoverage = errors.New("crus: the template's boot sets do not include the session's nodes")

// checkCoverage checks that the template's boot sets can boot every
// starting node: each must be in a boot set's node list or in a group a
// boot set names (the upgrading group counts for every node: crus puts
// them there), unless a boot set targets roles (which cannot be told here).
func (e *Executor) checkCoverage(ctx context.Context, spec Spec, t bos.Template, starting []string, pf *preflight) error {
	members := map[string][]string{spec.UpgradingLabel: starting}
	for _, g := range t.Groups() {
		if g == spec.UpgradingLabel {
			continue
		}
		m, err := e.members(ctx, g)
		switch {
		case errors.Is(err, hsm.ErrGroupNotFound):
		case err != nil:
			return fmt.Errorf("reading group %q of template %q: %w", g, t.Name, err)
		}
		members[g] = m
	}
	if out := t.Uncovered(starting, members); len(out) > 0 {
		groups := "no node groups"
		if gs := t.Groups(); len(gs) > 0 {
			groups = "node groups " + strings.Join(gs, ", ")
		}
		pf.add(fmt.Errorf("%w: template %q (%s) cannot boot %s of the starting group: %s; its boot sets should name the upgrading group %q in node_groups",
			ErrTemplateCoverage, t.Name, groups, plural(len(out), "node"), abbreviate(out, 10), spec.UpgradingLabel))
	}
	return nil
}

// mapStarting maps the starting nodes to workload-manager names. Nodes HSM
// does not know, and a mapping that is not one to one, are problems.
func (e *Executor) mapStarting(ctx context.Context, starting []string, pf *preflight) (map[string]string, error) {
	var names map[string]string
	var perNode map[string]error
	err := e.retry(ctx, "map node names", func(ctx context.Context) error {
		var err error
		names, err = mapNames(ctx, e.cfg.Mapper, starting)
		var rest error
		perNode, rest = batch.Split(err)
		return rest // single nodes are reported below, not retried
	})
	switch {
	case errors.Is(err, ErrNameMapping):
		pf.add(err)
	case err != nil:
		return nil, fmt.Errorf("mapping node names: %w", err)
	}
	var unknown, unmapped []string
	var unknownErr, unmappedErr error
	for _, x := range starting {
		switch err := perNode[x]; {
		case err == nil:
		case errors.Is(err, hsm.ErrComponentNotFound):
			unknown = append(unknown, x)
			unknownErr = err
		default:
			unmapped = append(unmapped, fmt.Sprintf("%s (%v)", x, err))
			unmappedErr = err
		}
	}
	if len(unknown) > 0 {
		pf.add(fmt.Errorf("HSM does not know %s of the starting group: %s: %w", plural(len(unknown), "node"), abbreviate(unknown, 20), unknownErr))
	}
	if len(unmapped) > 0 {
		pf.add(saying(fmt.Sprintf("%s of the starting group have no workload-manager name: %s", plural(len(unmapped), "node"), abbreviate(unmapped, 20)), unmappedErr))
	}
	return names, nil
}

// saying returns an error that says msg and matches cause (errors.Is,
// errors.As) without saying it again: for a list of nodes whose every
// item gives its node's cause already.
func saying(msg string, cause error) error { return &causedError{msg: msg, cause: cause} }

type causedError struct {
	msg   string
	cause error
}

func (e *causedError) Error() string { return e.msg }
func (e *causedError) Unwrap() error { return e.cause }

// readStarting reads the starting nodes from the workload manager. Nodes
// it does not know are a problem.
func (e *Executor) readStarting(ctx context.Context, starting []string, names map[string]string, pf *preflight) (map[string]wlm.Node, error) {
	var wnames []string
	for _, x := range starting {
		if n := names[x]; n != "" {
			wnames = append(wnames, n)
		}
	}
	if len(wnames) == 0 {
		return nil, nil
	}
	var nodes []wlm.Node
	perNode, err := e.call(ctx, "read nodes", func(ctx context.Context) (err error) {
		nodes, err = e.wlm.Nodes(ctx, wnames)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("reading the starting nodes from the workload manager: %w", err)
	}
	if len(perNode) > 0 {
		var unknown []string
		var last error
		for _, x := range starting {
			if err, ok := perNode[names[x]]; ok {
				unknown = append(unknown, fmt.Sprintf("%s (%s: %s)", names[x], x, errText(err)))
				last = err
			}
		}
		pf.add(saying(fmt.Sprintf("the workload manager does not know %s of the starting group: %s", plural(len(unknown), "node"), abbreviate(unknown, 20)), last))
	}
	state := make(map[string]wlm.Node, len(nodes))
	for _, n := range nodes {
		state[n.Name] = n
	}
	return state, nil
}

// checkSteered is the pre-flight check of a session that will steer its
// nodes: a starting node the workload manager reports as its last choice
// already (wlm.SteeringLast) is a problem. No session in progress holds
// the node (checkReserved), so it is the site's setting (Slurm: a weight
// from slurm.SteerWeight up, which reads as steered), or one a session
// left behind when it could not give it back: crus could not tell either
// from its own steering, and giving the node its place back as it takes
// it would change it (Slurm: lower the weight by slurm.SteerWeight).
func (e *Executor) checkSteered(starting []string, names map[string]string, state map[string]wlm.Node, pf *preflight) {
	var steered []string
	for _, x := range starting {
		if n, ok := state[names[x]]; ok && n.Steering == wlm.SteeringLast {
			steered = append(steered, fmt.Sprintf("%s (%s)", names[x], x))
		}
	}
	if len(steered) > 0 {
		pf.add(fmt.Errorf("%w: the workload manager reports %s of the starting group as its last choice for new jobs already: %s. "+
			"The scheduled strategy steers the nodes it has still to take the same way and gives each its place back as it takes it, which would change this setting. "+
			"Give them their place back first (Slurm: a node weight from 8388608, slurm.SteerWeight, to 16777215 reads as steered; keep the site's weights below 8388608), "+
			"or choose another strategy",
			ErrSteered, plural(len(steered), "node"), abbreviate(steered, 20)))
	}
}

// packNames returns the names of xnames (by names, "" if none) as
// substrings of one string, in that order. A run reads thousands of its
// nodes' names at every poll, in record order; made one by one (in a
// mapper's map order, say) they lie scattered across memory, and at
// 100,000 nodes reading them was the costliest line of the simulated
// workload manager's answer to Nodes.
func packNames(xnames []string, names map[string]string) []string {
	size := 0
	for _, x := range xnames {
		size += len(names[x])
	}
	var b strings.Builder
	b.Grow(size)
	for _, x := range xnames {
		b.WriteString(names[x])
	}
	all, at := b.String(), 0
	out := make([]string, len(xnames))
	for i, x := range xnames {
		end := at + len(names[x])
		out[i], at = all[at:end], end
	}
	return out
}

// newRecord builds the record of a new session: one node record per
// starting node (sorted), the nodes not in service skipped with the
// reason, and the others cut into the steps of the rollout (the original
// algorithm numbers its fixed slices now; rolling numbers its batches as
// it takes them). Conditions are worded by words. It is pure. It returns the record (without an id) and
// how many nodes it will take.
func newRecord(spec Spec, starting []string, names map[string]string, state map[string]wlm.Node, words wlm.Describer, now time.Time) (*Session, int) {
	s := &Session{
		Kind:       Kind,
		APIVersion: APIVersion,
		State:      StateCreated,
		Spec:       spec,
		Progress:   Progress{Stage: StageStarting, StageSince: now, CreatedAt: now},
	}
	pol := policyOf(&spec)
	s.Progress.Nodes = make([]NodeRecord, len(starting))
	_, stepOf := spec.plannedSteps(len(starting), spec.StepSize)
	taken, skipped := 0, 0
	packed := packNames(starting, names)
	for i, x := range starting {
		r := NodeRecord{XName: x, Name: packed[i], Phase: PhasePending, Since: now}
		w, ok := state[names[x]]
		takeable := w.InService() || pol.retryFailed && failedByCrus(&w)
		switch {
		case !ok:
			r.Phase, r.Outcome, r.Finished = PhaseDone, OutcomeSkipped, now
			r.Reason = "not reported by the workload manager at session start"
			skipped++
		case !takeable:
			r.Phase, r.Outcome, r.Finished = PhaseDone, OutcomeSkipped, now
			r.Reason = capReason("not in service at session start: " + describeWith(words, w))
			skipped++
		default:
			if !pol.rolling {
				r.Step = stepOf(taken)
			}
			taken++
		}
		s.Progress.Nodes[i] = r
	}
	s.Progress.Steps, _ = spec.plannedSteps(taken, spec.StepSize)
	msg := fmt.Sprintf("Session created: %s to upgrade in %s of at most %d", plural(taken, "node"), plural(s.Progress.Steps, "step"), spec.StepSize)
	if pol.rolling {
		s.Progress.Steps = 0
		how := "rolling"
		if pol.scheduled {
			how = "each at its slot (scheduled)"
		}
		msg = fmt.Sprintf("Session created: %s to upgrade, %s, at most %d out of service at once", plural(taken, "node"), how, spec.StepSize)
	}
	if skipped > 0 {
		msg += fmt.Sprintf("; %s skipped (not in service)", plural(skipped, "node"))
	}
	s.Messages = []string{msg}
	return s, taken
}

// checkReserved is the pre-flight check of reservations: it reports, as a
// problem, the sessions in progress that hold any of the starting nodes or
// the spec's groups. CreateReserved checks again, atomically, when the
// record is stored.
func (e *Executor) checkReserved(ctx context.Context, spec Spec, starting []string, names map[string]string, pf *preflight) error {
	rs, ok := e.store.(Reserver)
	if !ok || starting == nil {
		return nil
	}
	held, err := rs.Reservations(ctx)
	if err != nil {
		return fmt.Errorf("reading the sessions in progress: %w", err)
	}
	nodes := make([]NodeRecord, len(starting))
	for i, x := range starting {
		nodes[i].XName, nodes[i].Name = x, names[x]
	}
	r := ReservationOf(&Session{Spec: spec, Progress: Progress{Nodes: nodes}})
	if err := CheckReservations(r, held); err != nil {
		pf.add(err)
	}
	return nil
}

// createRecord stores a new session, reserving its nodes and groups when
// the store can. It retries as the run's writes do, each attempt under
// CallTimeout. An attempt that failed may have stored the record all the
// same (its answer lost): the next then finds the id taken, or the nodes
// held by this very session; the record is read back, and if it is the
// one being created, it was created (not reported as failed while it
// exists, and a Driver runs it).
func (e *Executor) createRecord(ctx context.Context, s *Session) error {
	uncertain := false // an attempt failed: its write may have landed
	err := e.retryStore(ctx, nil, "store session", func(ctx context.Context) error {
		var err error
		if rs, ok := e.store.(Reserver); ok {
			err = rs.CreateReserved(ctx, s)
		} else {
			err = e.store.Create(ctx, s)
		}
		if err != nil && !isStoreAnswer(err) {
			uncertain = true
		}
		return err
	})
	if uncertain && (errors.Is(err, ErrSessionExists) || errors.Is(err, ErrReserved)) {
		if stored, gerr := e.getSession(ctx, s.UpgradeID); gerr == nil {
			all := make([]int, len(s.Progress.Nodes))
			for i := range all {
				all[i] = i
			}
			if landed(s, stored, all) {
				s.Revision = stored.Revision
				return nil
			}
		}
	}
	switch {
	case errors.Is(err, ErrReserved):
		return preflightError([]error{err})
	case err != nil:
		return fmt.Errorf("storing session %s: %w", s.UpgradeID, err)
	}
	return nil
}
