// Package storetest is the conformance suite of crus.Store: every store
// (crus.MemoryStore, store/filestore, store/etcdstore, and yours) runs it,
// so that the executor can count on the same contract from each.
//
// It checks copies in and out, the compare-and-swap of Update, the error
// sentinels, ordering, concurrent writers, a 10,000-node record, and,
// where the store has them, the optional capabilities crus.RevisionReader
// and crus.Reserver.
//
//	func TestConformance(t *testing.T) {
//		storetest.RunConformanceTests(t, func(t *testing.T) crus.Store {
//			return newStoreForTest(t) // empty, closed by t.Cleanup
//		})
//	}
package storetest
