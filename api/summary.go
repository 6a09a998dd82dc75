package api

import (
	"context"
	"errors"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/crus-go/crus"
)

// Summary is a session without its per-node records: the original status
// fields, where the session is, and the tally of its nodes. It is what the
// session list, the actions and the event streams give.
type Summary struct {
	crus.Status
	Strategy   crus.Strategy `json:"strategy"`
	Stage      crus.Stage    `json:"stage"`
	StageSince time.Time     `json:"stage_since,omitzero"`
	Step       int           `json:"step"`
	Steps      int           `json:"steps"`
	Result     crus.Result   `json:"result,omitzero"`
	Paused     bool          `json:"paused,omitzero"`
	Cancel     bool          `json:"cancel,omitzero"`
	Abort      string        `json:"abort,omitzero"`
	// Conditions are what holds the session back or degrades its
	// decisions right now (a backend that cannot be read), each since
	// when; none most of the time.
	Conditions []crus.Condition `json:"conditions,omitempty"`
	CreatedAt  time.Time        `json:"created_at,omitzero"`
	StartedAt  time.Time        `json:"started_at,omitzero"`
	EndedAt    time.Time        `json:"ended_at,omitzero"`
	Counts     Counts           `json:"counts"`
	Revision   int64            `json:"revision"`
}

// Counts tallies a session's nodes.
type Counts struct {
	Nodes     int `json:"nodes"`
	Upgraded  int `json:"upgraded"`
	Failed    int `json:"failed"`
	Skipped   int `json:"skipped"`
	Untouched int `json:"untouched"`
	InFlight  int `json:"in_flight"`
	Pending   int `json:"pending"`
}

// SummaryOf summarises a session record.
func SummaryOf(s *crus.Session) Summary {
	c := s.Counts()
	strategy := s.Strategy
	if strategy == "" {
		strategy = crus.StrategyClassic
	}
	p := s.Progress
	return Summary{
		Status: s.Status(), Strategy: strategy,
		Stage: p.Stage, StageSince: p.StageSince, Step: p.Step, Steps: p.Steps, Result: p.Result,
		Paused: p.Paused, Cancel: p.Cancel, Abort: p.Abort, Conditions: slices.Clone(p.Conditions),
		CreatedAt: p.CreatedAt, StartedAt: p.StartedAt, EndedAt: p.EndedAt,
		Counts: Counts{
			Nodes: c.Nodes, Upgraded: c.Upgraded, Failed: c.Failed, Skipped: c.Skipped,
			Untouched: c.Untouched, InFlight: c.InFlight, Pending: c.Pending,
		},
		Revision: s.Revision,
	}
}

// summaries keeps the summary of each session at its revision, so that
// the lists of sessions (GET /sessions, GET /session of the original API)
// read again only the records that moved, where the store can list the
// revisions (crus.RevisionLister): on the file and etcd stores, a list of
// the records decodes every node record of every session (some 50 MB for
// 160,000 nodes, at every request).
//
// A summary is the record's at its revision: a session deleted and
// created again with the same id starts its revisions again on the memory
// and file stores, so the Handler forgets a session it deletes or creates
// (on etcd, revisions never repeat).
type summaries struct {
	mu   sync.Mutex
	byID map[string]Summary
}

func (c *summaries) forget(id string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	delete(c.byID, id)
}

// list returns the summary of every session, in a list's order
// (Executor.List): those cached at the session's current revision as
// they are, the others read (in place where the store can) and kept.
// Without revisions to list, it reads every record (Executor.ViewAll).
func (c *summaries) list(ctx context.Context, ex *crus.Executor) ([]Summary, error) {
	revs, err := ex.Revisions(ctx)
	if errors.Is(err, errors.ErrUnsupported) {
		out := []Summary{}
		err := ex.ViewAll(ctx, func(s *crus.Session) error {
			out = append(out, SummaryOf(s))
			return nil
		})
		return out, err
	}
	if err != nil {
		return nil, err
	}
	c.mu.Lock()
	if c.byID == nil {
		c.byID = map[string]Summary{}
	}
	out := make([]Summary, 0, len(revs))
	var moved []string
	for id, rev := range revs {
		if sum, ok := c.byID[id]; ok && sum.Revision == rev && rev != 0 {
			out = append(out, sum)
		} else {
			moved = append(moved, id)
		}
	}
	for id := range c.byID {
		if _, ok := revs[id]; !ok {
			delete(c.byID, id)
		}
	}
	c.mu.Unlock()
	for _, id := range moved {
		var sum Summary
		err := ex.View(ctx, id, func(s *crus.Session) error {
			sum = SummaryOf(s)
			return nil
		})
		if errors.Is(err, crus.ErrSessionNotFound) {
			continue // deleted since
		}
		if err != nil {
			return nil, err
		}
		out = append(out, sum)
		c.mu.Lock()
		if old, ok := c.byID[id]; !ok || old.Revision < sum.Revision {
			c.byID[id] = sum
		}
		c.mu.Unlock()
	}
	slices.SortFunc(out, func(a, b Summary) int {
		if c := a.CreatedAt.Compare(b.CreatedAt); c != 0 {
			return c
		}
		return strings.Compare(a.UpgradeID, b.UpgradeID)
	})
	return out, nil
}

// Description is a session's summary with its failed and skipped nodes
// and their reasons: what `crus describe` shows, without the other node
// records (GET /sessions/{id}/description).
type Description struct {
	Summary
	// Failed lists the failed nodes with their reasons, in record order.
	Failed []NodeReason `json:"failed"`
	// Skipped lists the skipped nodes with their reasons, in record order.
	Skipped []NodeReason `json:"skipped"`
}

// DescriptionOf describes a session record.
func DescriptionOf(s *crus.Session) Description {
	d := Description{Summary: SummaryOf(s), Failed: []NodeReason{}, Skipped: []NodeReason{}}
	for i := range s.Progress.Nodes {
		n := &s.Progress.Nodes[i]
		switch n.Outcome {
		case crus.OutcomeFailed:
			d.Failed = append(d.Failed, NodeReason{n.XName, n.Name, n.Reason})
		case crus.OutcomeSkipped:
			d.Skipped = append(d.Skipped, NodeReason{n.XName, n.Name, n.Reason})
		}
	}
	return d
}

// Node states in Nodes.Codes, one character per node.
const (
	CodePending   = 'p'
	CodeQuiescing = 'q'
	CodeQuiesced  = 'd'
	CodeBooting   = 'b'
	CodeReturning = 'r'
	CodeResuming  = 's'
	CodeFailing   = 'f'
	CodeReleasing = 'l'
	CodeUpgraded  = 'U'
	CodeFailed    = 'F'
	CodeSkipped   = 'S'
	CodeUntouched = 'T'
	CodeDone      = 'D' // done without an outcome: not expected
)

// CodeOf returns the one-character code of a node's phase and outcome.
func CodeOf(n *crus.NodeRecord) byte {
	switch n.Phase {
	case crus.PhasePending:
		return CodePending
	case crus.PhaseQuiescing:
		return CodeQuiescing
	case crus.PhaseQuiesced:
		return CodeQuiesced
	case crus.PhaseBooting:
		return CodeBooting
	case crus.PhaseReturning:
		return CodeReturning
	case crus.PhaseResuming:
		return CodeResuming
	case crus.PhaseFailing:
		return CodeFailing
	case crus.PhaseReleasing:
		return CodeReleasing
	}
	switch n.Outcome {
	case crus.OutcomeUpgraded:
		return CodeUpgraded
	case crus.OutcomeFailed:
		return CodeFailed
	case crus.OutcomeSkipped:
		return CodeSkipped
	case crus.OutcomeUntouched:
		return CodeUntouched
	}
	return CodeDone
}

// Nodes is the compact per-node state of a session, small enough to send
// again and again for 10,000 nodes: one character per node in record
// order (sorted by xname), and the names only when asked for.
type Nodes struct {
	Session  string `json:"session"`
	Revision int64  `json:"revision"`
	// Codes holds one character per node (see the Code constants).
	Codes string `json:"codes"`
	// Steps holds each node's step (0: not in a step yet), in record order.
	Steps []int `json:"steps"`
	// XNames and Names (the workload manager's) are set when asked for
	// (?names=true).
	XNames []string `json:"xnames,omitempty"`
	Names  []string `json:"wlm_names,omitempty"`
	// Failed lists the failed nodes with their reasons.
	Failed []NodeReason `json:"failed"`
	// Skipped lists the skipped nodes with their reasons.
	Skipped []NodeReason `json:"skipped"`
	// Messages are the session's messages.
	Messages []string `json:"messages"`
}

// NodeReason is a node and why it has its outcome.
type NodeReason struct {
	XName  string `json:"xname"`
	Name   string `json:"wlm_name"`
	Reason string `json:"reason"`
}

// NodesOf builds the compact node state of a session.
func NodesOf(s *crus.Session, names bool) Nodes {
	codes := make([]byte, len(s.Progress.Nodes))
	out := Nodes{
		Session: s.UpgradeID, Revision: s.Revision,
		Steps: make([]int, len(codes)), Failed: []NodeReason{}, Skipped: []NodeReason{},
		Messages: s.Status().Messages,
	}
	if names {
		out.XNames = make([]string, len(codes))
		out.Names = make([]string, len(codes))
	}
	for i := range s.Progress.Nodes {
		n := &s.Progress.Nodes[i]
		codes[i] = CodeOf(n)
		out.Steps[i] = n.Step
		if names {
			out.XNames[i], out.Names[i] = n.XName, n.Name
		}
		switch n.Outcome {
		case crus.OutcomeFailed:
			out.Failed = append(out.Failed, NodeReason{n.XName, n.Name, n.Reason})
		case crus.OutcomeSkipped:
			out.Skipped = append(out.Skipped, NodeReason{n.XName, n.Name, n.Reason})
		}
	}
	out.Codes = string(codes)
	return out
}
