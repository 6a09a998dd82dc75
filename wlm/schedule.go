package wlm

import (
	"context"
	"fmt"
	"regexp"
	"time"
)

// Scheduler is implemented by a Manager that can book nodes ahead of time.
// A reservation keeps new work off its nodes from its start to its end;
// before its start, the workload manager's scheduler still starts a job on
// a reserved node when the job's time limit ends before the reservation
// begins (Slurm: a maintenance reservation, "scontrol create reservation
// flags=maint,ignore_jobs", honoured by its backfill scheduler). Jobs
// already running when a reservation starts are not stopped.
//
// crus books each node's slot this way: the scheduler fills the time
// before the slot with jobs that end in time, instead of starting a job
// that would keep the node busy for days.
//
// Reservations belong to whoever named them. crus names its own after the
// session (see crus's package documentation), so it finds and removes them
// by name after a restart; an implementation never creates, changes or
// deletes a reservation it was not given the name of, and Reservations
// lists only the names that begin with the prefix asked.
type Scheduler interface {
	// Reserve creates the reservation r.Name, or changes the one of that
	// name to r: its nodes, start and end. A start in the past means now.
	// Changing the start of a reservation that has begun may end it and
	// make it again (Slurm cannot move a started reservation).
	//
	// The reservation holds the known nodes of r; unknown ones follow the
	// Manager error contract (*batch.NodeError wrapping ErrNodeNotFound).
	// If no node of r is known, nothing is created or changed. A name that
	// is not a valid reservation name (ValidateReservation), no nodes, or
	// an end not after the start is ErrInvalidArgument. Calling it again
	// with the same r changes nothing. A refusal to the user the adapter
	// runs as (not a manager or operator of the workload manager) is
	// ErrPermissionDenied, as it is from Unreserve.
	Reserve(ctx context.Context, r Reservation) error

	// Unreserve deletes the named reservations. A name that does not exist
	// (any more) is not an error, so it can be called again after a
	// failure or a restart.
	Unreserve(ctx context.Context, names []string) error

	// Reservations returns the reservations whose names begin with prefix,
	// sorted by name, each with its nodes sorted. An empty prefix is
	// ErrInvalidArgument: a caller lists its own reservations, never all.
	Reservations(ctx context.Context, prefix string) ([]Reservation, error)
}

// Reservation books Nodes from Start to End.
type Reservation struct {
	Name  string
	Nodes []string // workload-manager node names
	Start time.Time
	End   time.Time
}

// reservationRE: letters, digits, '_', '.' and '-', starting with a letter
// or digit, at most 100 characters; nothing with a meaning on a command
// line or in a URL.
var reservationRE = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_.-]{0,99}$`)

// ValidateReservation checks what every Scheduler refuses alike: the name
// (letters, digits and "_.-", starting with a letter or digit, at most 100
// characters), at least one node, and an end after the start. The error
// matches ErrInvalidArgument.
func ValidateReservation(r Reservation) error {
	switch {
	case !reservationRE.MatchString(r.Name):
		return fmt.Errorf("%w: %q is not a reservation name (letters, digits and \"_.-\", starting with a letter or digit, at most 100 characters)", ErrInvalidArgument, r.Name)
	case len(r.Nodes) == 0:
		return fmt.Errorf("%w: reservation %s has no nodes", ErrInvalidArgument, r.Name)
	case !r.End.After(r.Start):
		return fmt.Errorf("%w: reservation %s ends (%s) before it starts (%s)", ErrInvalidArgument, r.Name,
			r.End.UTC().Format(time.RFC3339), r.Start.UTC().Format(time.RFC3339))
	}
	return nil
}
