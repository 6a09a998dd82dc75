package sim

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync/atomic"
	"time"

	"github.com/crus-go/crus"
	"github.com/crus-go/crus/internal/fake"
)

// Snapshot is a live cluster at one instant, as `crus plan` reads it: the
// nodes a session would take, whether each is in service, and when the
// jobs running on it are expected to end (their time limits: the workload
// manager knows no better).
type Snapshot struct {
	Now   time.Time
	Nodes []SnapshotNode
}

// SnapshotNode is one node of a Snapshot.
type SnapshotNode struct {
	XName string
	// InService is false for a node drained, failed or down for another
	// reason: a session skips it.
	InService bool
	Reason    string
	// JobEnd is the expected end of its jobs; zero if it runs none.
	JobEnd time.Time
}

// SnapshotConfig tunes a run from a Snapshot. The zero value of every
// field but Step gives the default noted.
type SnapshotConfig struct {
	Step int
	Seed uint64
	// RebootTime and RebootJitter: a reboot takes RebootTime ± up to
	// RebootJitter; defaults 10m and fake.DefaultJitter (3m for 10m).
	RebootTime, RebootJitter time.Duration
	// Load, if positive, keeps the nodes not yet taken busy: every 10
	// minutes each idle one starts a new job with this probability,
	// running up to MaxJob (default 4h). Zero: no new jobs (the queue is
	// unknown; the prediction is then a lower bound).
	Load   float64
	MaxJob time.Duration
	// PollInterval is the executor's; default 30s.
	PollInterval time.Duration
	// MaxDuration bounds the simulated time; default 60 days.
	MaxDuration time.Duration
	// Sample is the interval of Prediction.Out; default 10m.
	Sample time.Duration
}

// Prediction is what one strategy would do from a snapshot.
type Prediction struct {
	Strategy string
	Makespan time.Duration
	// Lost is the node-time nodes could not take work because of the
	// upgrade (drained idle, rebooting), in node-hours; Floor is the
	// nodes taken × the mean reboot time.
	Lost     fake.NodeHours
	Floor    time.Duration
	MaxOut   int
	Upgraded int
	Failed   int
	Skipped  int
	// Out holds the nodes out of service because of the upgrade, every
	// SnapshotConfig.Sample from the start.
	Out []int
}

// check refuses what no cluster has: negative times, a load that is not
// a probability (the jitter is checked once the defaults are in).
func (c SnapshotConfig) check() error {
	errs := negatives(field[time.Duration]{"RebootTime", c.RebootTime}, field[time.Duration]{"MaxJob", c.MaxJob},
		field[time.Duration]{"PollInterval", c.PollInterval}, field[time.Duration]{"MaxDuration", c.MaxDuration},
		field[time.Duration]{"Sample", c.Sample})
	if !(c.Load >= 0 && c.Load <= 1) {
		errs = append(errs, fmt.Errorf("Load %v is not a probability (0 to 1)", c.Load))
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("sim: %w", err)
	}
	return nil
}

// RunSnapshot simulates one strategy from a snapshot: a World with the
// snapshot's nodes, their jobs ending at their expected ends, the real
// Executor and Planner in virtual time.
func RunSnapshot(ctx context.Context, snap Snapshot, cfg SnapshotConfig, st Strategy) (Prediction, error) {
	if len(snap.Nodes) == 0 {
		return Prediction{}, errors.New("sim: the snapshot has no nodes")
	}
	if cfg.Step < 1 {
		return Prediction{}, errors.New("sim: the step size must be at least 1")
	}
	if err := cfg.check(); err != nil {
		return Prediction{}, err
	}
	if cfg.RebootTime == 0 {
		cfg.RebootTime = 10 * time.Minute
	}
	if cfg.RebootJitter == 0 {
		cfg.RebootJitter = fake.DefaultJitter(cfg.RebootTime)
	}
	if err := checkJitter(cfg.RebootTime, cfg.RebootJitter); err != nil {
		return Prediction{}, err
	}
	if cfg.MaxJob == 0 {
		cfg.MaxJob = 4 * time.Hour
	}
	if cfg.PollInterval == 0 {
		cfg.PollInterval = 30 * time.Second
	}
	if cfg.MaxDuration == 0 {
		cfg.MaxDuration = 60 * 24 * time.Hour
	}
	if cfg.Sample == 0 {
		cfg.Sample = 10 * time.Minute
	}
	now := snap.Now
	if now.IsZero() {
		now = time.Date(2026, 1, 5, 8, 0, 0, 0, time.UTC)
	}
	w := fake.New(fake.Options{Start: now, Seed: cfg.Seed, RebootTime: cfg.RebootTime, RebootJitter: cfg.RebootJitter})
	xnames := make([]string, len(snap.Nodes))
	taken := 0
	for i, n := range snap.Nodes {
		xnames[i] = n.XName
		w.AddNode(n.XName, i+1)
	}
	w.AddGroup(fake.StartingLabel, xnames...)
	w.AddGroup(fake.UpgradingLabel)
	w.AddGroup(fake.FailedLabel)
	w.AddTemplate(fake.Template, fake.UpgradingLabel)
	for _, n := range snap.Nodes {
		if !n.InService {
			reason := n.Reason
			if reason == "" {
				reason = "out of service"
			}
			w.AdminDrain(n.XName, reason)
			continue
		}
		taken++
		if !n.JobEnd.IsZero() {
			run := max(n.JobEnd.Sub(now), time.Minute)
			if err := w.StartJob(n.XName, run, run); err != nil {
				return Prediction{}, fmt.Errorf("sim: %s: %w", n.XName, err)
			}
		}
	}
	if cfg.Load > 0 {
		w.KeepBusy(cfg.Load, cfg.MaxJob, 10*time.Minute, time.Time{})
	}
	p := Prediction{Strategy: st.Name, Floor: time.Duration(taken) * cfg.RebootTime}
	// Sample the nodes out of service because of the upgrade.
	inService := map[string]bool{}
	for _, n := range snap.Nodes {
		inService[n.XName] = n.InService
	}
	var sample func()
	finished := false
	sample = func() {
		if finished {
			return
		}
		out := 0
		for _, x := range xnames {
			ns, _ := w.Node(x)
			if inService[x] && (!ns.Up || (ns.Drain || ns.Fail) && strings.HasPrefix(ns.Reason, "crus ")) {
				out++
			}
		}
		p.Out = append(p.Out, out)
		w.Schedule(w.Now().Add(cfg.Sample), sample)
	}
	w.Schedule(now, sample)

	var err error
	if st.RebootASAP {
		err = snapshotASAP(ctx, w, snap, cfg, &p)
	} else {
		err = snapshotCrus(ctx, w, cfg, st, now, &p)
	}
	finished = true
	if err != nil {
		return p, err
	}
	p.Lost = w.Lost()
	p.MaxOut = w.MaxOut()
	if v := w.Violations(); len(v) > 0 {
		return p, fmt.Errorf("sim: %s: %d nodes rebooted while running jobs, e.g. %s", st.Name, len(v), v[0])
	}
	return p, nil
}

func snapshotCrus(ctx context.Context, w *fake.World, cfg SnapshotConfig, st Strategy, start time.Time, p *Prediction) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	deadline := start.Add(cfg.MaxDuration)
	var tooLong atomic.Bool
	ex, err := crus.NewExecutor(w.HSM(), w.WLM(), w.BOS(), crus.Config{
		Clock: deadlineClock{World: w, deadline: deadline, over: func() {
			tooLong.Store(true)
			cancel()
		}},
		PollInterval: cfg.PollInterval, NewID: func() string { return "plan" },
	})
	if err != nil {
		return err
	}
	final, err := runSession(ctx, ex, cfg.Step, cfg.MaxDuration, st, 0, &tooLong)
	if err != nil {
		return err
	}
	p.Makespan = final.Progress.EndedAt.Sub(start)
	c := final.Counts()
	p.Upgraded, p.Failed, p.Skipped = c.Upgraded, c.Failed, c.Skipped
	return nil
}

// snapshotASAP is the uncapped reference: every node in service is asked
// to reboot through the workload manager as soon as its jobs end.
func snapshotASAP(ctx context.Context, w *fake.World, snap Snapshot, cfg SnapshotConfig, p *Prediction) error {
	var names []string
	for i, n := range snap.Nodes {
		if n.InService {
			names = append(names, fmt.Sprintf(crus.DefaultNIDFormat, i+1))
		} else {
			p.Skipped++
		}
	}
	start := w.Now()
	if err := w.WLM().Reboot(ctx, names, "crus plan: reboot ASAP"); err != nil {
		return err
	}
	for w.RebootsPending() > 0 {
		if err := ctx.Err(); err != nil {
			return err
		}
		if now := w.Advance(30 * time.Second); now.Sub(start) > cfg.MaxDuration {
			return fmt.Errorf("%w (%s, %s)", ErrTooLong, "reboot-asap", cfg.MaxDuration)
		}
	}
	p.Makespan = w.Now().Sub(start)
	for _, n := range snap.Nodes {
		if !n.InService {
			continue
		}
		ns, _ := w.Node(n.XName)
		if ns.Up && ns.BootTime.After(start) {
			p.Upgraded++
		} else {
			p.Failed++
		}
	}
	return nil
}

// Strategies are the contenders `crus plan` compares: the original
// algorithm, the uncapped reference, and crus's strategies (drain is the
// drain timeout of those that use one).
func Strategies(drain time.Duration) []Strategy {
	rolling := crus.Rollout{Strategy: crus.StrategyRolling}
	with := func(f func(*crus.Rollout)) crus.Rollout { r := rolling; f(&r); return r }
	return []Strategy{
		{Name: "classic"},
		{Name: "reboot-asap", RebootASAP: true},
		{Name: "classic-job_end-timeout", Rollout: crus.Rollout{Order: crus.OrderJobEnd, DrainTimeout: crus.Duration(drain)}},
		{Name: "rolling", Rollout: rolling},
		{Name: "rolling-idle_first", Rollout: with(func(r *crus.Rollout) { r.Order = crus.OrderIdleFirst })},
		{Name: "rolling-job_end", Rollout: with(func(r *crus.Rollout) { r.Order = crus.OrderJobEnd })},
		{Name: "rolling-job_end-timeout", Rollout: with(func(r *crus.Rollout) {
			r.Order, r.DrainTimeout = crus.OrderJobEnd, crus.Duration(drain)
		})},
		{Name: "scheduled", Rollout: crus.Rollout{Strategy: crus.StrategyScheduled}},
	}
}

// Choose returns the prediction crus would pick: among the capped
// strategies that finished, the shortest makespan, then the least lost
// capacity. It returns -1 if none finished.
func Choose(preds []Prediction, errs []error) int {
	best := -1
	for i, p := range preds {
		if errs[i] != nil || p.Strategy == "reboot-asap" {
			continue
		}
		if best < 0 || p.Makespan < preds[best].Makespan ||
			(p.Makespan == preds[best].Makespan && p.Lost < preds[best].Lost) {
			best = i
		}
	}
	return best
}
