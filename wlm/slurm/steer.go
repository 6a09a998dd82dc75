package slurm

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strconv"

	"github.com/crus-go/crus/batch"
	"github.com/crus-go/crus/wlm"
)

// This file implements wlm.Steerer with Slurm's node weights. Facts from
// Slurm 22.05.8 (checked on a real cluster, package slurmtest):
//
//   - "scontrol update NodeName=<hostlist> Weight=N" sets the weight of
//     each node of the list (0 to 4294967280; "Weight=" in `scontrol show
//     node`), and the next job that names no node goes to the idle node
//     of lowest weight, the first in the site's order among equals.
//   - The scheduler compares weights modulo 2^24: a node of weight
//     2^24+1 ties with one of weight 1, and one of weight 2^24 is taken
//     before it (the weight seems to be shifted 8 bits left in 32). An
//     offset of 2^24 would make the steered nodes the first choice, not
//     the last; steered weights stay below 2^24 (see SteerWeight).
//   - An update whose list holds an unknown name fails ("Invalid node
//     name specified", exit 1) and changes no weight at all.
//   - Run as a user who is not a Slurm administrator, the update fails
//     with "Invalid user id" (exit 1).
//   - `scontrol reconfigure` puts back the weights of slurm.conf.

var (
	_ wlm.Steerer = (*CLI)(nil)
	_ wlm.Steerer = (*REST)(nil)
)

// SteerWeight is what Steer adds to a node's weight to make it the
// scheduler's last choice, and takes off again to give the node back its
// place: a node of weight w is steered at w+SteerWeight. Since the same
// offset goes to every node, the site's order stands among the nodes
// steered alike.
//
// It is 2^23 so that a steered weight stays below 2^24, the weights
// Slurm 22.05 tells apart when it picks nodes. The site's own weights
// must be below it: a node whose weight is between SteerWeight and
// 2*SteerWeight reads as steered (and Steer with last false takes the
// offset off), one of a higher weight is left alone either way.
const SteerWeight uint32 = 1 << 23

// Steer implements wlm.Steerer with node weights: one `scontrol show
// node` reads the weights, then one `scontrol update NodeName=<hostlist>
// Weight=<w>` per weight to set (the nodes that go to the same weight
// together, in chunks as every update), none when each node is already
// as asked. Last true takes a node of weight below SteerWeight to its
// weight plus SteerWeight; last false takes one of weight from
// SteerWeight to 2*SteerWeight-1 back down by SteerWeight; anything else
// is left as it is. Unknown nodes are known from the read, before any
// update: they get wlm.ErrNodeNotFound, each, and never reach the
// command line.
//
// A weight set this way does not survive `scontrol reconfigure`, nor a
// restart of slurmctld without -R: the node is then simply not steered.
func (c *CLI) Steer(ctx context.Context, names []string, last bool) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	valid, errs := splitValid(names)
	if len(valid) == 0 {
		return errors.Join(errs...)
	}
	weights := make(map[string]int64, len(valid))
	_, unknown, err := c.read(ctx, valid, weights)
	if err != nil {
		return err
	}
	errs = append(errs, notFound(unknown)...)
	to := map[int64][]string{}
	for _, n := range valid {
		w, ok := weights[n]
		switch {
		case !ok: // unknown, reported
		case w < 0:
			errs = append(errs, &batch.NodeError{Node: n, Err: errors.New("slurm: scontrol show node gave no weight for it")})
		default:
			if t, change := steerTo(w, last); change {
				to[t] = append(to[t], n)
			}
		}
	}
	for _, w := range slices.Sorted(maps.Keys(to)) {
		err := c.update(ctx, to[w], []string{"Weight=" + strconv.FormatInt(w, 10)})
		switch {
		case err == nil:
		case ctx.Err() != nil:
			return err
		case errors.Is(denied(err), wlm.ErrPermissionDenied):
			// The next weights would be refused alike.
			return errors.Join(append(errs, fmt.Errorf("%w (Slurm updates nodes only for root, its SlurmUser and administrators): %w", wlm.ErrPermissionDenied, err))...)
		case refused(err):
			for _, n := range to[w] {
				errs = append(errs, &batch.NodeError{Node: n, Err: fmt.Errorf("slurm refused to steer it: %s", slurmMessage(err))})
			}
		default:
			return errors.Join(append(errs, err)...)
		}
	}
	return errors.Join(errs...)
}

// steeringOf reads a node's place from its weight w (-1: not shown), as
// Steer sets it: steered last from SteerWeight to 2*SteerWeight-1, the
// site's own below; a weight Steer leaves alone either way, or none, says
// nothing.
func steeringOf(w int64) wlm.Steering {
	const off = int64(SteerWeight)
	switch {
	case w < 0 || w >= 2*off:
		return wlm.SteeringUnknown
	case w >= off:
		return wlm.SteeringLast
	}
	return wlm.SteeringNone
}

// steerTo returns the weight that makes a node of weight w the
// scheduler's last choice (last) or gives it back its place, and whether
// that changes w.
func steerTo(w int64, last bool) (int64, bool) {
	const off = int64(SteerWeight)
	switch {
	case last && w < off:
		return w + off, true
	case !last && w >= off && w < 2*off:
		return w - off, true
	}
	return w, false
}

// Steer implements wlm.Steerer through RESTConfig.Fallback: slurmrestd
// 22.05 (API v0.0.38) cannot set a node's weight.
func (r *REST) Steer(ctx context.Context, names []string, last bool) error {
	cli, err := r.fallback("set node weights")
	if err != nil {
		return err
	}
	return cli.Steer(ctx, names, last)
}
