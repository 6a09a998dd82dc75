package crus

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
)

// ErrReserved: a node or a group the new session needs is held by another
// session still in progress. The error is a *ReservedError that names each
// such session and what it holds.
var ErrReserved = errors.New("crus: held by another session in progress")

// Reserver is implemented by a Store that keeps two sessions from driving
// the same nodes or groups. The Executor uses it when the Store has it
// (MemoryStore, store/filestore and store/etcdstore do): Create refuses a
// session that shares a node, or its upgrading or failed group, with a
// session in progress, and names the conflict.
//
// A session holds its reservation from the moment its record is created
// until the record is completed or deleted. Release is part of the write
// that completes or deletes the record, so no crash can separate them; a
// store that keeps reservations apart from the records must drop, when it
// next checks, any reservation whose session is gone or completed.
type Reserver interface {
	// Reservations returns what each session in progress holds, ordered by
	// session id.
	Reservations(ctx context.Context) ([]Reservation, error)

	// CreateReserved stores a new session as Store.Create does, provided no
	// session in progress holds any of the nodes or labels of
	// ReservationOf(s). Otherwise it returns a *ReservedError (matching
	// ErrReserved) and stores nothing. The check and the write are atomic:
	// of two overlapping sessions created at once, one is refused.
	CreateReserved(ctx context.Context, s *Session) error
}

// Reservation is what a session in progress holds: every node of its
// record, and the groups it writes to (its upgrading and failed groups).
type Reservation struct {
	Session string   `json:"session"`
	Nodes   []string `json:"nodes"`  // xnames, sorted
	Labels  []string `json:"labels"` // group labels, sorted
}

// ReservationOf returns what session s holds while it is in progress.
func ReservationOf(s *Session) Reservation {
	r := Reservation{Session: s.UpgradeID, Nodes: make([]string, len(s.Progress.Nodes))}
	for i := range s.Progress.Nodes {
		r.Nodes[i] = s.Progress.Nodes[i].XName
	}
	slices.Sort(r.Nodes)
	r.Nodes = slices.Compact(r.Nodes)
	for _, l := range []string{s.UpgradingLabel, s.FailedLabel} {
		if l != "" {
			r.Labels = append(r.Labels, l)
		}
	}
	slices.Sort(r.Labels)
	r.Labels = slices.Compact(r.Labels)
	return r
}

// Conflict is what one session in progress holds of what another asks for.
type Conflict struct {
	Session string   // the session holding them
	Nodes   []string // shared nodes, sorted
	Labels  []string // shared groups, sorted
}

// ReservedError is the refusal of a session whose nodes or groups are held
// by other sessions in progress.
type ReservedError struct {
	Conflicts []Conflict // one per holding session, ordered by session id
}

func (e *ReservedError) Error() string {
	var b strings.Builder
	b.WriteString(ErrReserved.Error())
	for i, c := range e.Conflicts {
		if i == 0 {
			b.WriteString(": ")
		} else {
			b.WriteString("; ")
		}
		fmt.Fprintf(&b, "session %s", c.Session)
		var parts []string
		switch len(c.Labels) {
		case 0:
		case 1:
			parts = append(parts, "group "+c.Labels[0])
		default:
			parts = append(parts, "groups "+strings.Join(c.Labels, ", "))
		}
		if len(c.Nodes) > 0 {
			parts = append(parts, fmt.Sprintf("%d of its nodes (%s)", len(c.Nodes), abbreviate(c.Nodes, 10)))
		}
		b.WriteString(" holds " + strings.Join(parts, " and "))
	}
	return b.String()
}

// Unwrap makes errors.Is(err, ErrReserved) match.
func (e *ReservedError) Unwrap() error { return ErrReserved }

// CheckReservations returns a *ReservedError if any reservation in held,
// other than r's own session's, shares a node or a label with r, and nil
// otherwise. Stores implementing Reserver use it, so that every store
// refuses the same conflicts.
func CheckReservations(r Reservation, held []Reservation) error {
	var conflicts []Conflict
	for _, h := range held {
		if h.Session == r.Session {
			continue
		}
		c := Conflict{Session: h.Session, Nodes: intersect(r.Nodes, h.Nodes), Labels: intersect(r.Labels, h.Labels)}
		if len(c.Nodes) > 0 || len(c.Labels) > 0 {
			conflicts = append(conflicts, c)
		}
	}
	if len(conflicts) == 0 {
		return nil
	}
	slices.SortFunc(conflicts, func(a, b Conflict) int { return strings.Compare(a.Session, b.Session) })
	return &ReservedError{Conflicts: conflicts}
}

// intersect returns the strings in both sorted lists, sorted.
func intersect(a, b []string) []string {
	var out []string
	for i, j := 0, 0; i < len(a) && j < len(b); {
		switch c := strings.Compare(a[i], b[j]); {
		case c < 0:
			i++
		case c > 0:
			j++
		default:
			out = append(out, a[i])
			i++
			j++
		}
	}
	return out
}

var _ Reserver = (*MemoryStore)(nil)

// Reservations implements Reserver: every session not completed holds its
// reservation.
func (m *MemoryStore) Reservations(ctx context.Context) ([]Reservation, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.reservations(), nil
}

func (m *MemoryStore) reservations() []Reservation {
	var out []Reservation
	for _, s := range m.sessions {
		if !s.Completed {
			out = append(out, ReservationOf(s))
		}
	}
	slices.SortFunc(out, func(a, b Reservation) int { return strings.Compare(a.Session, b.Session) })
	return out
}

// CreateReserved implements Reserver.
func (m *MemoryStore) CreateReserved(ctx context.Context, s *Session) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if _, ok := m.sessions[s.UpgradeID]; ok {
		return fmt.Errorf("%w: %s", ErrSessionExists, s.UpgradeID)
	}
	if err := CheckReservations(ReservationOf(s), m.reservations()); err != nil {
		return err
	}
	s.Revision = 1
	m.sessions[s.UpgradeID] = s.Clone()
	return nil
}
