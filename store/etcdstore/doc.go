// Package etcdstore is a crus.Store on etcd, for controllers that run as
// several replicas: any replica can read and write any session, every
// write is a compare-and-swap on the session's revision (a stale writer
// loses instead of overwriting), and its leases (a crus.Leaser, for
// crus.Driver) make sure that exactly one replica drives each session at a
// time, taking over within a lease TTL when the one driving it dies.
//
// # Layout
//
// Everything lives under a configurable prefix (default "/crus/"):
//
//	<prefix>sessions/<id>                   head: a few fields naming the session's snapshot
//	<prefix>records/<id>/<gen>/h            snapshot: the record without its nodes (messages included)
//	<prefix>records/<id>/<gen>/c/<n>        snapshot: node records n*ChunkSize.., compressed JSON
//	<prefix>records/<id>/<gen>/d/<k>        the k-th write since the snapshot: header, changed nodes, new messages
//	<prefix>active/<id>                     what a session in progress holds (crus.Reservation)
//	<prefix>active-rev                      bumped by every Create, to serialise reservation checks
//	<prefix>leaders/<id>                    the replica driving the session, bound to its lease
//
// A write of a session (crus.NodeUpdater, or an Update based on the
// revision this Store last wrote or read) is one transaction that puts one
// key, the next delta: the header, the node records that changed and the
// messages added, compressed against the delta before — some 150 bytes for
// a node that moves on, whatever the size of the session. It compares
// that the head and the last delta are the ones the writer knows and that
// no delta follows (and the lease key, when fenced): a compare-and-swap on
// the session's revision. The head is written only with a snapshot and by
// the write that completes the session, and messages never ride in it. Once the deltas pass four times the snapshot, a write is a new
// snapshot under a new generation instead, and the same transaction
// deletes the old generation: each byte of a delta costs etcd at most
// 1.25 bytes, and a read decodes at most five snapshots' worth. A
// snapshot too big for one transaction (MaxTxnOps, MaxTxnBytes: a
// 100,000-node record) is first written in transactions of their own,
// under its new generation, invisible until the head that names it is
// written; a crash in between leaves an unnamed generation, which the
// session's deletion removes. Keys of a generation are never rewritten,
// so a reader at the head's revision sees a consistent record. Values
// read from etcd are not trusted: a head is checked before anything is
// allocated for what it announces, each value inflates to a bounded size,
// and a damaged record is an error naming its key (crus.ErrCorruptSession,
// which matches batch.ErrPermanent: the executor does not read it again
// and again, a Driver only after its RetryAfter).
//
// The session's revision (crus.Session.Revision) is its last delta's
// ModRevision, or the head's when no delta follows the snapshot.
//
// # What it costs etcd, and what to set
//
// etcd keeps every version of every key until it is compacted, and by
// default (no --auto-compaction-*, --quota-backend-bytes 2 GB) it never
// compacts: a store whose writes rewrite whole records fills it. Measured
// with go run ./internal/storecost (see the README), one 10,000-node
// rolling session adds about 28 MB to etcd's database and one revision
// per write (5.8 per node), a classic one 6 MB (1.1 revisions per node):
// etcd's defaults hold some seventy such sessions. Operators should still
// let etcd compact its history, as any etcd deployment should:
//
//	--auto-compaction-mode=revision --auto-compaction-retention=10000
//
// (or periodic, e.g. 1h) and defragment now and then; the quota can stay
// at its default. When the database is full all the same, etcd refuses
// every write with "mvcc: database space exceeded"; the store reports
// ErrNoSpace, which names the remedy, and the executor stops before
// acting on what it could not record.
//
// # Reservations
//
// The active key of a session is written with its head at creation and
// deleted by the same transaction that completes or deletes it, so it
// holds exactly while the session is in progress; CreateReserved checks it
// in a transaction that compares active-rev. An active key whose session
// is gone or completed (written by hand or by an older version) is
// dropped when a check meets it.
//
// # Replicas
//
// The Store is a crus.Leaser: every controller process makes a Store, an
// Executor writing through that very Store, and a crus.Driver on both:
//
//	st, err := etcdstore.New(client, etcdstore.Config{Prefix: "/crus/"})
//	ex, err := crus.NewExecutor(groups, manager, boot, crus.Config{Store: st})
//	d, err := crus.NewDriver(ex, st, crus.DriverConfig{TTL: 10 * time.Second})
//	go d.Run(ctx) // until shutdown
//
// A session created by any of them (ex.Create) is driven by whichever
// replica acquires its leader key first (a key bound to the replica's
// etcd lease); every write of it is then fenced to that key, so that a
// replica whose lease expired cannot write it any more (crus.ErrLeaseLost).
// If that process dies, another takes the session over about TTL later
// and carries on from the record. Run is not to be called by hand for
// sessions the replicas drive.
package etcdstore
