package filestore

// SetCompaction sets the compaction thresholds of st: the journal is
// rewritten once its deltas pass ratio times the snapshot and min bytes.
func SetCompaction(st *Store, ratio, min int) {
	st.mu.Lock()
	defer st.mu.Unlock()
	st.ratio, st.min = ratio, min
}

// WriteErr is writeErr, for the tests of the errors it marks.
var WriteErr = writeErr
