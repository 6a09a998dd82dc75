package etcdstore

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"time"

	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/crus-go/crus"
)

// ReplicaConfig tunes a Replica. The zero value of every field is usable.
type ReplicaConfig struct {
	// Name identifies the replica in its leader keys and logs. Empty
	// means a random name.
	Name string
	// TTL is the lease's time to live: how long after this replica dies
	// (stops renewing its lease) another one takes its sessions over.
	// Default 10s; at least 2s, etcd's minimum; whole seconds.
	TTL time.Duration
	// Margin is how long before its lease could expire, as last renewed,
	// the replica stops acting on its sessions if it could not renew it.
	// It covers the call in flight and the drift between the clocks'
	// rates. Default TTL/4; less than TTL/2.
	Margin time.Duration
	// Rescan is how often the replica looks for sessions to drive even
	// without a watch event. Default TTL.
	Rescan time.Duration
	// RetryAfter is how long the replica waits before running a session
	// again whose Run failed (the store unreachable, a corrupt record),
	// keeping its lease on it. Default 30s.
	RetryAfter time.Duration
	// Logger receives structured logs. Nil means no logging.
	Logger *slog.Logger
}

func (c ReplicaConfig) withDefaults() ReplicaConfig {
	if c.Name == "" {
		c.Name = "replica-" + newGen()
	}
	if c.TTL == 0 {
		c.TTL = 10 * time.Second
	}
	c.TTL = c.TTL.Round(time.Second)
	if c.Margin == 0 {
		c.Margin = c.TTL / 4
	}
	if c.Rescan == 0 {
		c.Rescan = c.TTL
	}
	if c.RetryAfter == 0 {
		c.RetryAfter = 30 * time.Second
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	return c
}

// Replica drives, from one controller process, the sessions of a Store
// that no other replica drives. Any number of replicas may watch the same
// etcd; for each session in progress exactly one holds the session's
// leader key, bound to its lease, and runs it with its Executor.
//
// The lease is renewed every TTL/3. Every write of a session the replica
// drives is a transaction that also compares the leader key's create
// revision, so once the lease has expired (and the key is gone, or
// another's) the write is refused with crus.ErrLeaseLost. Before that, a
// replica that could not renew its lease stops acting on its sessions
// (their Run's context is cancelled) Margin before the lease could expire
// as last renewed: the time counted from the moment the renewal was sent,
// which is before etcd received it, so the replica's deadline is never
// later than etcd's. When a replica dies, its lease expires TTL after its
// last renewal, its leader keys go, and another replica, watching them,
// takes the sessions over: a takeover takes at most about TTL.
//
// Stopping Run (cancelling its context) stops the sessions' Runs and
// revokes the lease, so that another replica takes over at once.
type Replica struct {
	st  *Store
	ex  *crus.Executor
	cfg ReplicaConfig
	log *slog.Logger

	mu      sync.Mutex
	driving map[string]bool
}

// NewReplica returns a Replica that drives the sessions of st with ex.
// ex must have been created with Config.Store set to st (the very same
// *Store), since the fencing of writes lives in st.
func NewReplica(st *Store, ex *crus.Executor, cfg ReplicaConfig) (*Replica, error) {
	if st == nil || ex == nil {
		return nil, errors.New("etcdstore: NewReplica needs a Store and an Executor")
	}
	if cfg.TTL < 0 || cfg.Margin < 0 || cfg.Rescan < 0 || cfg.RetryAfter < 0 {
		return nil, errors.New("etcdstore: ReplicaConfig durations must not be negative")
	}
	cfg = cfg.withDefaults()
	if cfg.TTL < 2*time.Second {
		return nil, fmt.Errorf("etcdstore: ReplicaConfig.TTL %s is below etcd's minimum of 2s", cfg.TTL)
	}
	if cfg.Margin >= cfg.TTL/2 {
		return nil, fmt.Errorf("etcdstore: ReplicaConfig.Margin %s must be less than half the TTL (%s)", cfg.Margin, cfg.TTL)
	}
	return &Replica{st: st, ex: ex, cfg: cfg, log: cfg.Logger.With("replica", cfg.Name), driving: map[string]bool{}}, nil
}

// Name returns the replica's name.
func (r *Replica) Name() string { return r.cfg.Name }

// Run drives sessions until ctx is cancelled, then stops them and revokes
// the lease. It returns ctx's error. When the lease is lost (etcd
// unreachable for longer than the TTL allows), it stops its sessions and
// starts again with a new lease.
func (r *Replica) Run(ctx context.Context) error {
	for {
		err := r.term(ctx)
		if ctx.Err() != nil {
			return ctx.Err()
		}
		r.log.Warn("lease lost; starting again with a new one", "err", err)
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(r.cfg.TTL / 4):
		}
	}
}

// term holds one lease: it drives sessions until the lease is lost or ctx
// ends.
func (r *Replica) term(ctx context.Context) error {
	sent := time.Now()
	lease, err := r.st.c.Grant(ctx, int64(r.cfg.TTL/time.Second))
	if err != nil {
		return fmt.Errorf("granting a lease: %w", err)
	}
	tctx, cancel := context.WithCancelCause(ctx)
	var wg sync.WaitGroup
	defer func() {
		cancel(nil)
		wg.Wait() // every session's Run has returned: nothing acts any more
		rctx, rcancel := context.WithTimeout(context.Background(), r.cfg.TTL/2)
		defer rcancel()
		if _, err := r.st.c.Revoke(rctx, lease.ID); err != nil {
			r.log.Debug("could not revoke the lease; it expires by itself", "err", err)
		}
	}()
	log := r.log.With("lease", fmt.Sprintf("%x", lease.ID))
	log.Info("lease granted", "ttl", r.cfg.TTL)
	wg.Go(func() { r.keepAlive(tctx, cancel, lease.ID, sent.Add(time.Duration(lease.TTL)*time.Second)) })

	// Watch the sessions in progress (new ones) and the leader keys (one
	// gone: its replica died or finished).
	wactive := r.st.c.Watch(tctx, r.st.activePrefix(), clientv3.WithPrefix(), clientv3.WithFilterDelete())
	wleaders := r.st.c.Watch(tctx, r.st.leaderPrefix(), clientv3.WithPrefix(), clientv3.WithFilterPut())
	rescan := time.NewTicker(r.cfg.Rescan)
	defer rescan.Stop()
	try := func(id string) {
		if r.claim(id) {
			ok, rev, err := r.acquire(tctx, id, lease.ID)
			if err != nil || !ok {
				if err != nil && tctx.Err() == nil {
					log.Warn("could not campaign for a session", "session", id, "err", err)
				}
				r.unclaim(id)
				return
			}
			wg.Go(func() {
				defer r.unclaim(id)
				r.drive(tctx, log, id, rev)
			})
		}
	}
	scan := func() {
		resp, err := r.st.c.Get(tctx, r.st.activePrefix(), clientv3.WithPrefix(), clientv3.WithKeysOnly())
		if err != nil {
			if tctx.Err() == nil {
				log.Warn("could not list the sessions in progress", "err", err)
			}
			return
		}
		for _, kv := range resp.Kvs {
			try(strings.TrimPrefix(string(kv.Key), r.st.activePrefix()))
		}
	}
	scan()
	for {
		select {
		case <-tctx.Done():
			return context.Cause(tctx)
		case <-rescan.C:
			scan()
		case wr, ok := <-wactive:
			if !ok || wr.Err() != nil {
				wactive = r.st.c.Watch(tctx, r.st.activePrefix(), clientv3.WithPrefix(), clientv3.WithFilterDelete())
				scan()
				continue
			}
			for _, ev := range wr.Events {
				try(strings.TrimPrefix(string(ev.Kv.Key), r.st.activePrefix()))
			}
		case wr, ok := <-wleaders:
			if !ok || wr.Err() != nil {
				wleaders = r.st.c.Watch(tctx, r.st.leaderPrefix(), clientv3.WithPrefix(), clientv3.WithFilterPut())
				scan()
				continue
			}
			for _, ev := range wr.Events {
				id := strings.TrimPrefix(string(ev.Kv.Key), r.st.leaderPrefix())
				if resp, err := r.st.c.Get(tctx, r.st.activeKey(id), clientv3.WithKeysOnly()); err == nil && len(resp.Kvs) > 0 {
					try(id)
				}
			}
		}
	}
}

// keepAlive renews the lease every TTL/3. It cancels the term when etcd
// says the lease is gone, or when it could not renew it in time: Margin
// before validUntil, the lease's end counted from when the last
// successful renewal was sent.
func (r *Replica) keepAlive(ctx context.Context, cancel context.CancelCauseFunc, id clientv3.LeaseID, validUntil time.Time) {
	stop := time.NewTimer(time.Until(validUntil.Add(-r.cfg.Margin)))
	defer stop.Stop()
	next := time.NewTimer(r.cfg.TTL / 3)
	defer next.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-stop.C:
			cancel(fmt.Errorf("lease not renewed within %s of its expiry", r.cfg.Margin))
			return
		case <-next.C:
		}
		sent := time.Now()
		rctx, rcancel := context.WithDeadline(ctx, validUntil.Add(-r.cfg.Margin))
		resp, err := r.st.c.KeepAliveOnce(rctx, id)
		rcancel()
		switch {
		case err == nil:
			validUntil = sent.Add(time.Duration(resp.TTL) * time.Second)
			stop.Reset(time.Until(validUntil.Add(-r.cfg.Margin)))
			next.Reset(r.cfg.TTL / 3)
		case errors.Is(err, rpctypes.ErrLeaseNotFound):
			cancel(fmt.Errorf("lease expired: %w", err))
			return
		default:
			next.Reset(r.cfg.TTL / 20) // try again soon; stop fires if it is too late
		}
	}
}

// claim marks the session as being campaigned for or driven here, and
// reports whether it was not already.
func (r *Replica) claim(id string) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.driving[id] {
		return false
	}
	r.driving[id] = true
	return true
}

func (r *Replica) unclaim(id string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	delete(r.driving, id)
}

// acquire creates the session's leader key bound to the lease, if no one
// holds it, and returns its create revision.
func (r *Replica) acquire(ctx context.Context, id string, lease clientv3.LeaseID) (bool, int64, error) {
	if checkID(id) != nil {
		return false, 0, nil
	}
	key := r.st.leaderKey(id)
	resp, err := r.st.c.Txn(ctx).
		If(clientv3.Compare(clientv3.CreateRevision(key), "=", 0)).
		Then(clientv3.OpPut(key, r.cfg.Name, clientv3.WithLease(lease))).
		Commit()
	if err != nil {
		return false, 0, err
	}
	return resp.Succeeded, resp.Header.Revision, nil
}

// drive runs the session while this replica holds it.
func (r *Replica) drive(ctx context.Context, log *slog.Logger, id string, rev int64) {
	log = log.With("session", id)
	key := r.st.leaderKey(id)
	r.st.setFence(id, key, rev)
	defer r.st.clearFence(id)
	log.Info("driving the session")
	for {
		s, err := r.ex.Run(ctx, id)
		switch {
		case err == nil && s != nil && s.Completed,
			errors.Is(err, crus.ErrSessionNotFound), errors.Is(err, crus.ErrSessionDone):
			// Done: let go of the session at once.
			dctx, cancel := context.WithTimeout(context.Background(), r.cfg.TTL/2)
			_, derr := r.st.c.Txn(dctx).If(clientv3.Compare(clientv3.CreateRevision(key), "=", rev)).Then(clientv3.OpDelete(key)).Commit()
			cancel()
			if derr != nil {
				log.Debug("could not release the session; it goes with the lease", "err", derr)
			}
			log.Info("session finished; released", "err", err)
			return
		case ctx.Err() != nil:
			log.Info("stopped driving the session", "why", context.Cause(ctx))
			return
		case errors.Is(err, crus.ErrLeaseLost):
			log.Warn("lost the session to another replica", "err", err)
			return
		}
		log.Error("running the session failed; trying again later", "err", err, "in", r.cfg.RetryAfter)
		select {
		case <-ctx.Done():
			return
		case <-time.After(r.cfg.RetryAfter):
		}
	}
}
