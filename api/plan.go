package api

import (
	"net/http"
	"time"

	"github.com/crus-go/crus"
)

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
	// Reservation, Start and End: the reservation to make or move (book).
	Reservation string    `json:"reservation,omitzero"`
	Start       time.Time `json:"start,omitzero"`
	End         time.Time `json:"end,omitzero"`
	// Reservations names the reservations to delete (unbook).
	Reservations []string `json:"reservations,omitempty"`
	Why          string   `json:"why"`
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
		switch a.Kind {
		case crus.ActReboot:
			act.Boot, act.Template, act.Limit = a.Reboot.Name, a.Reboot.Template, a.Reboot.Limit
		case crus.ActBook:
			act.Reservation, act.Start, act.End = a.Booking.Name, a.Booking.Start, a.Booking.End
		case crus.ActUnbook:
			act.Reservations = a.Unbook
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

func (h *Handler) planCreate(w http.ResponseWriter, r *http.Request, _ []string) {
	if !h.cfg.DryRuns {
		h.fail(w, r, problemf(http.StatusNotImplemented, "dry runs are not enabled on this server"))
		return
	}
	if !h.startDryRun(w, r) {
		return
	}
	defer h.endDryRun()
	spec, ok := h.readSpec(w, r, nil)
	if !ok {
		return
	}
	s, err := h.ex.Preview(r.Context(), spec)
	if err != nil {
		h.fail(w, r, createProblem(err))
		return
	}
	_, d, err := h.ex.Next(r.Context(), s)
	if err != nil {
		h.fail(w, r, backendProblem(err))
		return
	}
	h.writeJSON(w, http.StatusOK, Preview{Session: s, Next: DecisionOf(d)})
}

func (h *Handler) planSession(w http.ResponseWriter, r *http.Request, params []string) {
	if !h.cfg.DryRuns {
		h.fail(w, r, problemf(http.StatusNotImplemented, "dry runs are not enabled on this server"))
		return
	}
	if !h.startDryRun(w, r) {
		return
	}
	defer h.endDryRun()
	s, err := h.ex.Get(r.Context(), params[0])
	if err != nil {
		h.fail(w, r, sessionProblem(err, params[0]))
		return
	}
	if s.Completed {
		h.fail(w, r, sessionProblem(crus.ErrSessionDone, params[0]))
		return
	}
	_, d, err := h.ex.Next(r.Context(), s)
	if err != nil {
		h.fail(w, r, backendProblem(err))
		return
	}
	h.writeJSON(w, http.StatusOK, Preview{Next: DecisionOf(d)})
}

// startDryRun takes a place among the MaxDryRuns dry runs in progress,
// or answers 503 and returns false; endDryRun gives it back.
func (h *Handler) startDryRun(w http.ResponseWriter, r *http.Request) bool {
	select {
	case h.dryRuns <- struct{}{}:
		return true
	default:
		w.Header().Set("Retry-After", "10")
		h.fail(w, r, problemf(http.StatusServiceUnavailable, "%d dry runs are in progress, as many as this server runs at once: try again later", h.cfg.MaxDryRuns))
		return false
	}
}

func (h *Handler) endDryRun() { <-h.dryRuns }
