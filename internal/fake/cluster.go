package fake

import (
	"fmt"
	"math/rand/v2"
	"time"
)

// Labels and template of the groups a Cluster creates.
const (
	StartingLabel  = "crus-starting"
	UpgradingLabel = "crus-upgrading"
	FailedLabel    = "crus-failed"
	Template       = "compute-upgrade"
)

// ClusterOptions describe a ready-made cluster.
type ClusterOptions struct {
	Options
	Nodes int // compute nodes; default 8
	// Busy is the fraction of nodes running a job at the start (0..1).
	Busy float64
	// MaxJob bounds the remaining run time of those jobs (uniform in
	// (0, MaxJob]); default 4h. The workload manager knows a time limit
	// 0-50% longer than the real run time, as users overestimate.
	MaxJob time.Duration
}

// XName returns the xname of the i-th node (from 0) of a cluster of
// HPE Cray EX cabinets: 8 chassis of 8 slots of 2 BMCs of 2 nodes, so 256
// nodes per cabinet from x1000.
func XName(i int) string {
	cab, rem := 1000+i/256, i%256
	return fmt.Sprintf("x%dc%ds%db%dn%d", cab, rem/32, rem%32/4, rem%4/2, rem%2)
}

// NewCluster returns a World with opts.Nodes nodes (NIDs from 1), the
// starting group holding all of them, empty upgrading and failed groups, a
// boot session template targeting the upgrading group, and jobs running
// on a fraction of the nodes.
func NewCluster(opts ClusterOptions) *World {
	if opts.Nodes == 0 {
		opts.Nodes = 8
	}
	if opts.MaxJob == 0 {
		opts.MaxJob = 4 * time.Hour
	}
	w := New(opts.Options)
	rng := rand.New(rand.NewPCG(opts.Seed+1, opts.Seed^0xdeadbeef))
	xnames := make([]string, opts.Nodes)
	for i := range opts.Nodes {
		xnames[i] = XName(i)
		w.AddNode(xnames[i], i+1)
	}
	w.AddGroup(StartingLabel, xnames...)
	w.AddGroup(UpgradingLabel)
	w.AddGroup(FailedLabel)
	w.AddTemplate(Template, UpgradingLabel)
	for _, x := range xnames {
		if rng.Float64() >= opts.Busy {
			continue
		}
		run := time.Duration(rng.Int64N(int64(opts.MaxJob))) + time.Minute
		limit := run + time.Duration(rng.Float64()*0.5*float64(run))
		if err := w.StartJob(x, run.Truncate(time.Second), limit.Truncate(time.Minute)); err != nil {
			panic(err) // a new node is always in service
		}
	}
	return w
}

// KeepBusy keeps the cluster loaded: every interval, each node that is in
// service and idle starts a new job with probability busy, running for up
// to maxJob (uniform), with a time limit 0-50% longer. It stops at stop
// (zero: never). Deterministic for a given World seed.
func (w *World) KeepBusy(busy float64, maxJob, interval time.Duration, stop time.Time) {
	w.mu.Lock()
	rng := rand.New(rand.NewPCG(w.opts.Seed+2, w.opts.Seed^0xb5ad4eceda1ce2a9))
	w.mu.Unlock()
	var tick func()
	tick = func() {
		now := w.Now()
		if !stop.IsZero() && now.After(stop) {
			return
		}
		for _, x := range w.XNames() {
			if !w.idleInService(x) || rng.Float64() >= busy {
				continue
			}
			run := time.Duration(rng.Int64N(int64(maxJob))) + time.Minute
			limit := run + time.Duration(rng.Float64()*0.5*float64(run))
			_, _ = w.TryStartJob(x, run.Truncate(time.Second), limit.Truncate(time.Minute)) // as a scheduler would: clear of reservations
		}
		w.Schedule(now.Add(interval), tick)
	}
	w.Schedule(w.Now().Add(interval), tick)
}

func (w *World) idleInService(xname string) bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	n, ok := w.nodes[xname]
	return ok && n.up && !n.drain && !n.fail && !n.rebooting && len(n.jobs) == 0 && !w.now.Before(n.completingUntil)
}
