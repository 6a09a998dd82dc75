package api

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/crus-go/crus"
	"github.com/crus-go/crus/batch"
	"github.com/crus-go/crus/bos"
	"github.com/crus-go/crus/hsm"
	"github.com/crus-go/crus/wlm"
)

// Backends are the executor's backends, for the dry runs: a dry run of a
// create runs Executor.Create on them with a store of its own (pre-flight
// reads, never writes), and both dry runs observe the world the way the
// executor does and call crus.Plan.
type Backends struct {
	Groups  hsm.GroupStore
	Manager wlm.Manager
	Boot    bos.Orchestrator
	// Config is the executor's configuration (Mapper, Clock,
	// WorkloadManagerType, BootTimeSlack). Its Store, OnEvent and Logger
	// are not used.
	Config crus.Config
}

// Preview is the answer of a dry run.
type Preview struct {
	// Session is the record a create would store (POST /plan); absent for
	// a session that exists.
	Session *crus.Session `json:"session,omitempty"`
	// Next is what crus would do next.
	Next Decision `json:"next"`
}

// Decision is the JSON form of a crus.Decision.
type Decision struct {
	Stage    crus.Stage  `json:"stage"`
	Step     int         `json:"step"`
	Steps    int         `json:"steps"`
	Done     bool        `json:"done,omitzero"`
	Result   crus.Result `json:"result,omitzero"`
	Abort    string      `json:"abort,omitzero"`
	Actions  []Action    `json:"actions"`
	Changes  []Change    `json:"changes"`
	Messages []string    `json:"messages"`
	Wake     time.Time   `json:"wake,omitzero"`
}

// Action is one call crus would make.
type Action struct {
	Kind     crus.ActionKind `json:"kind"`
	Nodes    []string        `json:"nodes"`
	Label    string          `json:"label,omitzero"`
	Reason   string          `json:"reason,omitzero"`
	Boot     string          `json:"boot,omitzero"`     // the boot session to create
	Template string          `json:"template,omitzero"` // its template
	Limit    []string        `json:"limit,omitempty"`   // its limit
	Why      string          `json:"why"`
}

// Change is a transition of one node record.
type Change struct {
	XName   string       `json:"xname"`
	Phase   crus.Phase   `json:"phase"`
	Outcome crus.Outcome `json:"outcome,omitzero"`
	Reason  string       `json:"reason,omitzero"`
	Step    int          `json:"step,omitzero"`
}

// DecisionOf converts a crus.Decision.
func DecisionOf(d crus.Decision) Decision {
	out := Decision{
		Stage: d.Stage, Step: d.Step, Steps: d.Steps, Done: d.Done, Result: d.Result, Abort: d.Abort,
		Actions: []Action{}, Changes: []Change{}, Messages: d.Messages, Wake: d.Wake,
	}
	if out.Messages == nil {
		out.Messages = []string{}
	}
	for _, a := range d.Actions {
		act := Action{Kind: a.Kind, Nodes: a.Nodes, Label: a.Label, Reason: a.Reason, Why: a.Why}
		if a.Kind == crus.ActReboot {
			act.Boot, act.Template, act.Limit = a.Reboot.Name, a.Reboot.Template, a.Reboot.Limit
		}
		if act.Nodes == nil {
			act.Nodes = []string{}
		}
		out.Actions = append(out.Actions, act)
	}
	for _, c := range d.Changes {
		out.Changes = append(out.Changes, Change{XName: c.XName, Phase: c.Phase, Outcome: c.Outcome, Reason: c.Reason, Step: c.Step})
	}
	return out
}

// dryRunID is the id of the record a dry run of a create builds.
const dryRunID = "00000000-0000-0000-0000-000000000000"

func (h *Handler) planCreate(w http.ResponseWriter, r *http.Request, _ []string) {
	b := h.cfg.Backends
	if b == nil {
		h.fail(w, r, problemf(http.StatusNotImplemented, "dry runs are not enabled on this server"))
		return
	}
	body, p := readBody(w, r, h.cfg.MaxBodyBytes)
	if p != nil {
		h.fail(w, r, p)
		return
	}
	spec, p := decodeSpec(body, nil)
	if p != nil {
		h.fail(w, r, p)
		return
	}
	cfg := b.Config
	cfg.Store, cfg.OnEvent, cfg.Logger = crus.NewMemoryStore(), nil, nil
	cfg.NewID = func() string { return dryRunID }
	if cfg.RetryTimeout == 0 || cfg.RetryTimeout > 10*time.Second {
		cfg.RetryTimeout = 10 * time.Second
	}
	dry, err := crus.NewExecutor(b.Groups, b.Manager, b.Boot, cfg)
	if err != nil {
		h.fail(w, r, &Problem{Status: http.StatusInternalServerError, Detail: err.Error()})
		return
	}
	s, err := dry.Create(r.Context(), spec)
	if err != nil {
		h.fail(w, r, createProblem(err))
		return
	}
	// The dry run's store knows no other session: check what the real one
	// holds, as Create would.
	if res, ok := h.cfg.Store.(crus.Reserver); ok {
		held, err := res.Reservations(r.Context())
		if err != nil {
			h.fail(w, r, backendProblem(err))
			return
		}
		if err := crus.CheckReservations(crus.ReservationOf(s), held); err != nil {
			h.fail(w, r, createProblem(fmt.Errorf("%w: %w", crus.ErrPreflight, err)))
			return
		}
	}
	d, err := h.next(r.Context(), s)
	if err != nil {
		h.fail(w, r, backendProblem(err))
		return
	}
	writeJSON(w, http.StatusOK, Preview{Session: s, Next: DecisionOf(d)})
}

func (h *Handler) planSession(w http.ResponseWriter, r *http.Request, params []string) {
	if h.cfg.Backends == nil {
		h.fail(w, r, problemf(http.StatusNotImplemented, "dry runs are not enabled on this server"))
		return
	}
	s, err := h.ex.Get(r.Context(), params[0])
	if err != nil {
		h.fail(w, r, sessionProblem(err, params[0]))
		return
	}
	if s.Completed {
		h.fail(w, r, sessionProblem(crus.ErrSessionDone, params[0]))
		return
	}
	d, err := h.next(r.Context(), s)
	if err != nil {
		h.fail(w, r, backendProblem(err))
		return
	}
	writeJSON(w, http.StatusOK, Preview{Next: DecisionOf(d)})
}

// next observes what crus.ScopeFor(s) asks for and returns crus.Plan's
// decision.
func (h *Handler) next(ctx context.Context, s *crus.Session) (crus.Decision, error) {
	obs, err := Observe(ctx, h.cfg.Backends, s)
	if err != nil {
		return crus.Decision{}, err
	}
	return crus.Plan(s, obs)
}

// Observe reads from the backends what crus.ScopeFor(s) says the next
// crus.Plan needs, as the executor does before planning.
func Observe(ctx context.Context, b *Backends, s *crus.Session) (crus.Observation, error) {
	now := time.Now()
	if b.Config.Clock != nil {
		now = b.Config.Clock.Now()
	}
	slack := b.Config.BootTimeSlack
	if slack == 0 {
		slack = 3 * time.Second
	}
	obs := crus.Observation{
		Now: now, Nodes: map[string]wlm.Node{}, Unknown: map[string]string{},
		Boots: map[string]bos.Status{}, MissingBoots: map[string]bool{}, BootTimeSlack: slack,
	}
	if r, ok := b.Manager.(wlm.BootTimeReporter); ok {
		obs.BootTimes = r.ReportsBootTime()
	}
	sc := crus.ScopeFor(s)
	xnameOf := map[string]string{}
	names := func(xnames []string) []string {
		out := make([]string, 0, len(xnames))
		for _, x := range xnames {
			if n := s.Node(x); n != nil {
				xnameOf[n.Name] = x
				out = append(out, n.Name)
			}
		}
		return out
	}
	if len(sc.Nodes) > 0 {
		nodes, err := b.Manager.Nodes(ctx, names(sc.Nodes))
		perNode, rest := batch.Split(err)
		if rest != nil {
			return obs, fmt.Errorf("reading nodes from the workload manager: %w", rest)
		}
		for _, n := range nodes {
			obs.Nodes[xnameOf[n.Name]] = n
		}
		for name, err := range perNode {
			if errors.Is(err, wlm.ErrNodeNotFound) {
				obs.Unknown[xnameOf[name]] = err.Error()
			}
		}
	}
	for _, ref := range sc.Boots {
		st, err := b.Boot.Status(ctx, ref.Name, ref.Nodes)
		switch {
		case errors.Is(err, bos.ErrSessionNotFound):
			obs.MissingBoots[ref.Name] = true
		case err != nil:
			return obs, fmt.Errorf("reading boot session %s: %w", ref.Name, err)
		default:
			obs.Boots[ref.Name] = st
		}
	}
	if sc.Upgrading {
		m, err := b.Groups.Members(ctx, s.UpgradingLabel)
		if err != nil {
			return obs, fmt.Errorf("reading the upgrading group: %w", err)
		}
		obs.Upgrading, obs.UpgradingObserved = m, true
	}
	if j, ok := b.Manager.(wlm.JobEnder); ok && len(sc.JobEnds) > 0 {
		ends, err := j.JobEnds(ctx, names(sc.JobEnds))
		if _, rest := batch.Split(err); rest != nil {
			return obs, fmt.Errorf("reading job ends: %w", rest)
		}
		obs.JobEnds = map[string]time.Time{}
		for name, t := range ends {
			obs.JobEnds[xnameOf[name]] = t
		}
	}
	return obs, nil
}
