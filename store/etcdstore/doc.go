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
//	<prefix>sessions/<id>              head: the record without its nodes, and the list of node chunks
//	<prefix>nodes/<id>/<n>.<gen>       node records n*ChunkSize.., gzip-compressed JSON, never rewritten
//	<prefix>active/<id>                what a session in progress holds (crus.Reservation, gzip JSON)
//	<prefix>active-rev                 bumped by every Create, to serialise reservation checks
//	<prefix>leaders/<id>               the replica driving the session, bound to its lease
//
// A 10,000-node record is some 5 MB of JSON, past etcd's 1.5 MiB request
// limit, and most writes change a handful of nodes. So the node records are
// split into chunks of ChunkSize (128) nodes, each compressed (about 8 KB
// for 128 nodes), and an Update writes only the chunks that changed, under
// new keys, together with the head in one transaction that compares the
// head's revision (and the lease key, when fenced): a typical write is the
// head and one or two chunks. Chunk keys are never overwritten, so a head
// and the chunks it names always agree, and a reader at the head's
// revision sees a consistent record. A write too big for one transaction
// (MaxTxnOps, MaxTxnBytes: a 100,000-node record) first writes its new
// chunks in transactions of their own, invisible until the head that names
// them is written; a crash in between leaves unreferenced chunks, which
// the session's deletion removes.
//
// The session's revision (crus.Session.Revision) is the head's
// ModRevision.
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
