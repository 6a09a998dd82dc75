// Package storetest is the conformance suite of crus.Store: every store
// (crus.MemoryStore, store/filestore, store/etcdstore, and yours) runs it,
// so that the executor can count on the same contract from each.
//
// It checks copies in and out, the compare-and-swap of Update, the error
// sentinels, ordering, concurrent writers, a 10,000-node record, and,
// where the store has them, the optional capabilities crus.RevisionReader,
// crus.RevisionLister (what List tells of every revision, through
// creates, both kinds of update, deletes and a session created again),
// crus.Reserver (nodes, workload-manager names and groups) and
// crus.NodeUpdater: a write through UpdateNodes gives the same record as
// the same write through Update, with the same conflicts, a read after
// each, past the bound of the messages, and over hundreds of writes of a
// 10,000-node record (so that a store that compacts what it wrote does).
//
//	func TestConformance(t *testing.T) {
//		storetest.RunConformanceTests(t, func(t *testing.T) crus.Store {
//			return newStoreForTest(t) // empty, closed by t.Cleanup
//		})
//	}
package storetest
