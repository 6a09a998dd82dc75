package etcdstore

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/crus-go/crus"
)

// Leases: the Store is a crus.Leaser, so that crus.Driver runs one replica
// of several on it. A lease is an etcd lease; a session is acquired by
// creating its leader key bound to the lease (if no key exists), and every
// later write of the session by this Store is a transaction that also
// compares the leader key's create revision: once the lease has expired
// (and the key is gone, or another's) the write is refused with
// crus.ErrLeaseLost.

var _ crus.Leaser = (*Store)(nil)

// Grant implements crus.Leaser: an etcd lease of ttl (whole seconds, at
// least etcd's minimum of 2 s).
func (st *Store) Grant(ctx context.Context, ttl time.Duration) (crus.Lease, error) {
	secs := int64(ttl.Round(time.Second) / time.Second)
	if secs < 2 {
		return nil, fmt.Errorf("etcdstore: lease TTL %s is below etcd's minimum of 2s", ttl)
	}
	resp, err := st.c.Grant(ctx, secs)
	if err != nil {
		return nil, fmt.Errorf("etcdstore: granting a lease: %w", err)
	}
	return &lease{st: st, id: resp.ID, ttl: time.Duration(resp.TTL) * time.Second, held: map[string]int64{}}, nil
}

// Active implements crus.Leaser: the sessions in progress, sorted.
func (st *Store) Active(ctx context.Context) ([]string, error) {
	resp, err := st.c.Get(ctx, st.activePrefix(), clientv3.WithPrefix(), clientv3.WithKeysOnly())
	if err != nil {
		return nil, fmt.Errorf("etcdstore: listing the sessions in progress: %w", err)
	}
	ids := make([]string, 0, len(resp.Kvs))
	for _, kv := range resp.Kvs {
		ids = append(ids, strings.TrimPrefix(string(kv.Key), st.activePrefix()))
	}
	slices.Sort(ids)
	return ids, nil
}

// WatchFree implements crus.Leaser: it watches the sessions in progress
// (a new one) and the leader keys (one deleted: its replica let go or
// died; the session is sent if still in progress).
func (st *Store) WatchFree(ctx context.Context) <-chan string {
	out := make(chan string)
	wctx, cancel := context.WithCancel(ctx)
	wactive := st.c.Watch(wctx, st.activePrefix(), clientv3.WithPrefix(), clientv3.WithFilterDelete())
	wleaders := st.c.Watch(wctx, st.leaderPrefix(), clientv3.WithPrefix(), clientv3.WithFilterPut())
	go func() {
		defer close(out)
		defer cancel()
		send := func(id string) bool {
			select {
			case out <- id:
				return true
			case <-wctx.Done():
				return false
			}
		}
		for {
			select {
			case <-wctx.Done():
				return
			case wr, ok := <-wactive:
				if !ok || wr.Err() != nil {
					return
				}
				for _, ev := range wr.Events {
					if !send(strings.TrimPrefix(string(ev.Kv.Key), st.activePrefix())) {
						return
					}
				}
			case wr, ok := <-wleaders:
				if !ok || wr.Err() != nil {
					return
				}
				for _, ev := range wr.Events {
					id := strings.TrimPrefix(string(ev.Kv.Key), st.leaderPrefix())
					if resp, err := st.c.Get(wctx, st.activeKey(id), clientv3.WithKeysOnly()); err == nil && len(resp.Kvs) > 0 {
						if !send(id) {
							return
						}
					}
				}
			}
		}
	}()
	return out
}

// lease is a crus.Lease on an etcd lease.
type lease struct {
	st  *Store
	id  clientv3.LeaseID
	ttl time.Duration

	held map[string]int64 // session -> leader key's create revision (under st.mu)
}

func (l *lease) TTL() time.Duration { return l.ttl }

func (l *lease) KeepAlive(ctx context.Context) error {
	_, err := l.st.c.KeepAliveOnce(ctx, l.id)
	if errors.Is(err, rpctypes.ErrLeaseNotFound) {
		return fmt.Errorf("%w: %w", crus.ErrLeaseLost, err)
	}
	return err
}

// Acquire creates the session's leader key bound to the lease, if no one
// holds it, and fences the Store's writes of the session to it.
func (l *lease) Acquire(ctx context.Context, id string) (bool, error) {
	if checkID(id) != nil {
		return false, nil
	}
	key := l.st.leaderKey(id)
	resp, err := l.st.c.Txn(ctx).
		If(clientv3.Compare(clientv3.CreateRevision(key), "=", 0)).
		Then(clientv3.OpPut(key, fmt.Sprintf("%x", int64(l.id)), clientv3.WithLease(l.id))).
		Commit()
	if err != nil || !resp.Succeeded {
		return false, err
	}
	rev := resp.Header.Revision
	l.st.setFence(id, key, rev)
	l.st.mu.Lock()
	l.held[id] = rev
	l.st.mu.Unlock()
	return true, nil
}

// Release deletes the session's leader key if this lease still holds it,
// and stops fencing its writes.
func (l *lease) Release(ctx context.Context, id string) error {
	l.st.mu.Lock()
	rev, ok := l.held[id]
	delete(l.held, id)
	l.st.mu.Unlock()
	if !ok {
		return nil
	}
	l.st.clearFence(id)
	key := l.st.leaderKey(id)
	_, err := l.st.c.Txn(ctx).If(clientv3.Compare(clientv3.CreateRevision(key), "=", rev)).Then(clientv3.OpDelete(key)).Commit()
	return err
}

// Revoke revokes the etcd lease (its leader keys go with it) and stops
// fencing the sessions it held.
func (l *lease) Revoke(ctx context.Context) error {
	l.st.mu.Lock()
	ids := make([]string, 0, len(l.held))
	for id := range l.held {
		ids = append(ids, id)
	}
	clear(l.held)
	l.st.mu.Unlock()
	for _, id := range ids {
		l.st.clearFence(id)
	}
	_, err := l.st.c.Revoke(ctx, l.id)
	return err
}
