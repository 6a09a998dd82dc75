package etcdstore

// SetCompaction sets the compaction thresholds of st: a write is a new
// snapshot once the deltas pass ratio times the snapshot and min bytes.
func SetCompaction(st *Store, ratio, min int) {
	st.mu.Lock()
	defer st.mu.Unlock()
	st.ratio, st.min = ratio, min
}
