package pbs

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/crus-go/crus/batch"
	"github.com/crus-go/crus/wlm"
)

// This file gives the adapter crus's optional wlm.Scheduler, so that the
// scheduled strategy can book each node's slot ahead, with PBS's
// maintenance reservations: pbs_rsub --hosts makes one (a PBS manager
// only), pbs_ralter moves it, pbs_rdel deletes it and pbs_rstat lists
// them. The scheduler then starts on a reserved host only jobs whose
// walltime ends before the reservation begins, and none while it runs;
// jobs running when it begins go on.

// Resv is a reservation as the server reports it (pbs_rstat -f).
type Resv struct {
	ID    string   // the server's ("M123.server")
	Name  string   // Reserve_Name: crus's name for it
	Hosts []string // the hosts it holds
	Start time.Time
	End   time.Time
	// Running: it has begun (RESV_RUNNING). PBS moves the start of a
	// reservation only before it begins.
	Running bool
}

// ErrUnauthorized is the server's refusal of a reservation to a user who
// is not a PBS manager ("Unauthorized Request"). A Reserver's errors wrap
// it for that case.
var ErrUnauthorized = errors.New("pbs: Unauthorized Request")

// Reserver is the part of the server's API for maintenance reservations.
type Reserver interface {
	// Reservations lists every reservation of the server.
	Reservations(ctx context.Context) ([]Resv, error)
	// Submit makes a maintenance reservation of the hosts, named name,
	// from start to end, and returns its ID (pbs_rsub --hosts -N -R -E).
	// A start in the past means now (a client of the real server sends
	// the current time). The hosts exist.
	Submit(ctx context.Context, name string, hosts []string, start, end time.Time) (string, error)
	// Alter moves the reservation id to start and end (pbs_ralter -R -E).
	// The start of a running reservation cannot change.
	Alter(ctx context.Context, id string, start, end time.Time) error
	// Delete deletes the reservation id (pbs_rdel).
	Delete(ctx context.Context, id string) error
}

// Scheduling is the adapter over a server that has reservations: a
// Manager that is also a wlm.Scheduler.
type Scheduling struct {
	*Manager
	r Reserver
	p Prioritizer // nil: the server sets no priorities (Steer is unsupported)
}

var _ wlm.Scheduler = (*Scheduling)(nil)

// NewScheduling returns an adapter for the server that books nodes too,
// and steers them if the server is a Prioritizer.
func NewScheduling[S interface {
	Server
	Reserver
}](s S) *Scheduling {
	p, _ := any(s).(Prioritizer)
	return &Scheduling{Manager: New(s), r: s, p: p}
}

// classify makes the server's refusal to a non-manager crus's permanent
// wlm.ErrPermissionDenied: the scheduled strategy then stops booking, and
// asks again now and then.
func classify(what string, err error) error {
	if errors.Is(err, ErrUnauthorized) {
		return fmt.Errorf("pbs: %s: %w: %w", what, wlm.ErrPermissionDenied, err)
	}
	return fmt.Errorf("pbs: %s: %w", what, err)
}

// named returns the reservations whose name is name.
func (m *Scheduling) named(ctx context.Context, name string) ([]Resv, error) {
	all, err := m.r.Reservations(ctx)
	if err != nil {
		return nil, classify("pbs_rstat", err)
	}
	return slices.DeleteFunc(all, func(r Resv) bool { return r.Name != name }), nil
}

// Reserve implements wlm.Scheduler: it makes the reservation, or brings
// the one of that name in line with r. PBS cannot change the hosts of a
// reservation, nor the start of one that has begun: those are deleted and
// made again.
func (m *Scheduling) Reserve(ctx context.Context, r wlm.Reservation) error {
	if err := wlm.ValidateReservation(r); err != nil {
		return err
	}
	_, hosts, unknown, err := m.lookup(ctx, r.Nodes)
	if err != nil {
		return err
	}
	slices.Sort(hosts)
	hosts = slices.Compact(hosts)
	perNode := batch.Nodes(unknown, wlm.ErrNodeNotFound)
	if len(hosts) == 0 {
		return perNode
	}
	have, err := m.named(ctx, r.Name)
	if err != nil {
		return err
	}
	start, end := r.Start.Truncate(time.Second), r.End.Truncate(time.Second)
	if len(have) == 1 {
		h := have[0]
		sameHosts := slices.Equal(sortedCopy(h.Hosts), hosts)
		switch {
		case sameHosts && h.End.Equal(end) && (h.Start.Equal(start) || h.Running && !start.After(h.Start)):
			return perNode // as asked already
		case sameHosts && (!h.Running || !start.After(h.Start)):
			if h.Running {
				start = h.Start // begun: only its end moves
			}
			if err := m.r.Alter(ctx, h.ID, start, end); err != nil {
				return classify("pbs_ralter "+h.ID, err)
			}
			return perNode
		}
	}
	// Made anew: none yet, other hosts, a begun one moved, or (never made
	// by crus) more than one of that name.
	for _, h := range have {
		if err := m.r.Delete(ctx, h.ID); err != nil {
			return classify("pbs_rdel "+h.ID, err)
		}
	}
	if _, err := m.r.Submit(ctx, r.Name, hosts, start, end); err != nil {
		return classify("pbs_rsub", err)
	}
	return perNode
}

// Unreserve implements wlm.Scheduler: every reservation of those names is
// deleted; a name with none is not an error.
func (m *Scheduling) Unreserve(ctx context.Context, names []string) error {
	if len(names) == 0 {
		return nil
	}
	all, err := m.r.Reservations(ctx)
	if err != nil {
		return classify("pbs_rstat", err)
	}
	var errs []error
	for _, h := range all {
		if !slices.Contains(names, h.Name) {
			continue
		}
		if err := m.r.Delete(ctx, h.ID); err != nil {
			errs = append(errs, classify("pbs_rdel "+h.ID, err))
		}
	}
	return errors.Join(errs...)
}

// Reservations implements wlm.Scheduler: the reservations whose name
// begins with prefix, sorted by name, each with its hosts sorted.
func (m *Scheduling) Reservations(ctx context.Context, prefix string) ([]wlm.Reservation, error) {
	if prefix == "" {
		return nil, fmt.Errorf("%w: listing reservations needs a prefix", wlm.ErrInvalidArgument)
	}
	all, err := m.r.Reservations(ctx)
	if err != nil {
		return nil, classify("pbs_rstat", err)
	}
	var out []wlm.Reservation
	for _, h := range all {
		if strings.HasPrefix(h.Name, prefix) {
			out = append(out, wlm.Reservation{Name: h.Name, Nodes: sortedCopy(h.Hosts), Start: h.Start, End: h.End})
		}
	}
	slices.SortFunc(out, func(a, b wlm.Reservation) int { return strings.Compare(a.Name, b.Name) })
	return out, nil
}

func sortedCopy(s []string) []string {
	c := slices.Clone(s)
	slices.Sort(c)
	return c
}
