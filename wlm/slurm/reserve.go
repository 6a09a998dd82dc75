package slurm

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/crus-go/crus/internal/text"
	"github.com/crus-go/crus/wlm"
)

// This file implements wlm.Scheduler with Slurm's maintenance
// reservations. Facts from Slurm 22.05 (checked on a real cluster):
//
//   - "scontrol create reservation ReservationName=N StartTime=T
//     EndTime=E Nodes=<hostlist> Flags=MAINT,IGNORE_JOBS Users=root"
//     books the nodes: until T the backfill scheduler starts a job there
//     only if its time limit ends by T ("ReqNodeNotAvail, May be reserved
//     for other job" otherwise); from T the node shows MAINTENANCE+RESERVED
//     and takes no job; IGNORE_JOBS lets the reservation cover nodes whose
//     running jobs end later, MAINT lets it overlap other reservations.
//   - "scontrol update ReservationName=N StartTime=.. EndTime=..
//     Nodes=.." moves it; once it has started, a new StartTime is refused
//     ("Reservation already started") while EndTime and Nodes still change.
//   - A name Slurm does not know: "Requested reservation is invalid" on
//     update and delete, "Duplicate reservation name" on a create of a
//     name it knows, "Invalid node name specified" for an unknown node
//     (nothing is created or changed); each exits 1.
//   - "scontrol show reservation -o" prints one line per reservation
//     (times as SLURM_TIME_FORMAT says), or "No reservations in the
//     system".

var (
	_ wlm.Scheduler = (*CLI)(nil)
	_ wlm.Scheduler = (*REST)(nil)
)

// reservationFlags are the flags of every reservation the adapters make.
const reservationFlags = "MAINT,IGNORE_JOBS"

// slurmSays reports whether err is scontrol exiting non-zero with msg in
// what it said.
func slurmSays(err error, msg string) bool {
	var ce *CommandError
	return errors.As(err, &ce) && ce.exited() && strings.Contains(ce.Message, msg)
}

// timeArg renders a time for scontrol, which reads it in TZ (UTC for the
// adapter's commands); a time not after now is "now".
func timeArg(t, now time.Time) string {
	if !t.After(now) {
		return "now"
	}
	return t.UTC().Format(isoLayout)
}

// Reserve implements wlm.Scheduler: one `scontrol update ReservationName=..`
// when the reservation exists, plus one `scontrol create reservation` when
// it does not. Moving the start of a reservation that has begun deletes
// and creates it (two more commands). An unknown node costs one `scontrol
// show node` to find it and one more command for the known nodes.
func (c *CLI) Reserve(ctx context.Context, r wlm.Reservation) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if err := wlm.ValidateReservation(r); err != nil {
		return err
	}
	nodes, errs := splitValid(r.Nodes)
	if len(nodes) == 0 {
		return errors.Join(errs...)
	}
	err := c.reserve(ctx, r, nodes)
	if slurmSays(err, "Invalid node name") {
		_, unknown, rerr := c.show(ctx, nodes)
		if rerr != nil {
			return errors.Join(append(errs, err, rerr)...)
		}
		if len(unknown) > 0 {
			errs = append(errs, notFound(unknown)...)
			nodes = slices.DeleteFunc(nodes, func(n string) bool { return slices.Contains(unknown, n) })
			err = nil
			if len(nodes) > 0 {
				err = c.reserve(ctx, r, nodes)
			}
		}
	}
	if err != nil {
		errs = append(errs, fmt.Errorf("slurm: reservation %s: %w", r.Name, denied(err)))
	}
	return errors.Join(errs...)
}

// denied marks with wlm.ErrPermissionDenied a refusal of a reservation
// command to the user it ran as: Slurm answers "Invalid user id" to
// anyone but root, its SlurmUser and operators.
func denied(err error) error {
	if slurmSays(err, "Invalid user id") || slurmSays(err, "Access/permission denied") {
		return fmt.Errorf("%w (Slurm makes, moves and deletes reservations only for root, its SlurmUser and operators): %w", wlm.ErrPermissionDenied, err)
	}
	return err
}

// reserve makes or moves the reservation for the nodes (valid names).
func (c *CLI) reserve(ctx context.Context, r wlm.Reservation, nodes []string) error {
	hl := CompressHostlist(nodes)
	if len(hl) > c.maxHostlst {
		return fmt.Errorf("%w: reservation %s: %d nodes make a hostlist of %d bytes, more than one argument may hold", wlm.ErrInvalidArgument, r.Name, len(nodes), len(hl))
	}
	now := time.Now()
	start, end := timeArg(r.Start, now), timeArg(r.End, now)
	update := func(withStart bool) error {
		args := []string{"update", "ReservationName=" + r.Name}
		if withStart {
			args = append(args, "StartTime="+start)
		}
		_, _, err := c.runCmd(ctx, c.cfg.Scontrol, append(args, "EndTime="+end, "Nodes="+hl)...)
		return err
	}
	create := func() error {
		_, _, err := c.runCmd(ctx, c.cfg.Scontrol, "create", "reservation", "ReservationName="+r.Name,
			"StartTime="+start, "EndTime="+end, "Nodes="+hl, "Flags="+reservationFlags, "Users=root")
		return err
	}
	err := update(true)
	switch {
	case slurmSays(err, "Requested reservation is invalid"):
		err = create()
		if slurmSays(err, "Duplicate reservation name") { // made meanwhile
			err = update(true)
		}
	case slurmSays(err, "already started") && start == "now":
		err = update(false) // it has begun, as asked: change the rest
	case slurmSays(err, "already started"):
		if err = c.unreserve(ctx, r.Name); err == nil {
			err = create()
		}
	}
	return err
}

// Unreserve implements wlm.Scheduler: one `scontrol delete
// ReservationName=..` per name (scontrol deletes one at a time).
func (c *CLI) Unreserve(ctx context.Context, names []string) error {
	var errs []error
	for _, n := range names {
		if err := ctx.Err(); err != nil {
			return err
		}
		if !validReservationName(n) {
			errs = append(errs, fmt.Errorf("%w: %q is not a reservation name", wlm.ErrInvalidArgument, n))
			continue
		}
		if err := c.unreserve(ctx, n); err != nil {
			errs = append(errs, fmt.Errorf("slurm: deleting reservation %s: %w", n, denied(err)))
		}
	}
	return errors.Join(errs...)
}

func (c *CLI) unreserve(ctx context.Context, name string) error {
	_, _, err := c.runCmd(ctx, c.cfg.Scontrol, "delete", "ReservationName="+name)
	if slurmSays(err, "Requested reservation is invalid") {
		return nil // gone already
	}
	return err
}

func validReservationName(n string) bool {
	return wlm.ValidateReservation(wlm.Reservation{Name: n, Nodes: []string{"x"}, End: time.Unix(1, 0)}) == nil
}

// Reservations implements wlm.Scheduler with one `scontrol show
// reservation -o`.
func (c *CLI) Reservations(ctx context.Context, prefix string) ([]wlm.Reservation, error) {
	if prefix == "" {
		return nil, fmt.Errorf("%w: listing reservations needs a name prefix", wlm.ErrInvalidArgument)
	}
	stdout, _, err := c.runCmd(ctx, c.cfg.Scontrol, "--oneliner", "show", "reservation")
	if err != nil {
		return nil, err
	}
	out, err := parseShowReservation(stdout, prefix)
	if err != nil {
		return nil, err
	}
	slices.SortFunc(out, func(a, b wlm.Reservation) int { return strings.Compare(a.Name, b.Name) })
	return out, nil
}

// parseShowReservation reads `scontrol show reservation -o`: one
// reservation a line, as Key=Value words (a value runs to the next word
// that starts a key). Only the reservations whose name begins with prefix
// are read further: the others are the site's, and what they hold (a
// node list or a time crus cannot read) is no reason to fail to list
// crus's own. A line with no name at all is an error: the output is not
// what crus knows, and its own reservations may be among it.
func parseShowReservation(out []byte, prefix string) ([]wlm.Reservation, error) {
	var res []wlm.Reservation
	sc := bufio.NewScanner(bytes.NewReader(out))
	sc.Buffer(make([]byte, 0, 64<<10), 16<<20)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line == "" || line == "No reservations in the system" {
			continue
		}
		f := reservationFields(line)
		name, ok := f["ReservationName"]
		if !ok {
			return nil, fmt.Errorf("slurm: scontrol show reservation: a line without ReservationName: %.200q", line)
		}
		if !strings.HasPrefix(name, prefix) {
			continue
		}
		r := wlm.Reservation{Name: name}
		var okS, okE bool
		r.Start, okS = parseTime(f["StartTime"])
		r.End, okE = parseTime(f["EndTime"])
		if !okS || !okE {
			return nil, fmt.Errorf("slurm: scontrol show reservation %s: cannot read its times %q, %q", text.Cap(name, 80), text.Cap(f["StartTime"], 40), text.Cap(f["EndTime"], 40))
		}
		if nodes := f["Nodes"]; nodes != "" && nodes != "(null)" {
			names, err := ExpandHostlist(nodes)
			if err != nil {
				return nil, fmt.Errorf("slurm: scontrol show reservation %s: nodes %q: %w", text.Cap(name, 80), text.Cap(nodes, 200), err)
			}
			slices.Sort(names)
			r.Nodes = names
		}
		res = append(res, r)
	}
	return res, sc.Err()
}

// reservationFields splits one line of Key=Value words.
func reservationFields(line string) map[string]string {
	f := map[string]string{}
	key := ""
	for _, w := range strings.Fields(line) {
		k, v, ok := strings.Cut(w, "=")
		if ok && k != "" && strings.IndexFunc(k, func(r rune) bool { return !isLetter(byte(r)) && r != '_' }) < 0 {
			if _, seen := f[k]; !seen {
				f[k], key = v, k
				continue
			}
			key = ""
			continue
		}
		if key != "" {
			f[key] += " " + w
		}
	}
	return f
}

// fallback returns the CLI a REST adapter hands reservations to:
// slurmrestd (up to at least API v0.0.41) lists reservations but cannot
// make or change them.
func (r *REST) fallback(op string) (*CLI, error) {
	if r.cfg.Fallback == nil {
		return nil, fmt.Errorf("%w: slurmrestd cannot %s and RESTConfig.Fallback is nil", wlm.ErrUnsupported, op)
	}
	return r.cfg.Fallback, nil
}

// Reserve implements wlm.Scheduler through RESTConfig.Fallback.
func (r *REST) Reserve(ctx context.Context, res wlm.Reservation) error {
	cli, err := r.fallback("make reservations")
	if err != nil {
		return err
	}
	return cli.Reserve(ctx, res)
}

// Unreserve implements wlm.Scheduler through RESTConfig.Fallback.
func (r *REST) Unreserve(ctx context.Context, names []string) error {
	cli, err := r.fallback("delete reservations")
	if err != nil {
		return err
	}
	return cli.Unreserve(ctx, names)
}

// Reservations implements wlm.Scheduler through RESTConfig.Fallback, so
// that the reservations read are those the fallback makes.
func (r *REST) Reservations(ctx context.Context, prefix string) ([]wlm.Reservation, error) {
	cli, err := r.fallback("list reservations here")
	if err != nil {
		return nil, err
	}
	return cli.Reservations(ctx, prefix)
}
