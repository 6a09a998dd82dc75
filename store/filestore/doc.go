// Package filestore is a crus.Store that keeps each session as one JSON
// document in a directory, for a controller that runs on one machine and
// must survive its own restarts.
//
// # Layout
//
// The directory holds one file per session, named <upgrade_id>.json:
//
//	{"schema": 1, "revision": 12, "session": { ...the session record... }}
//
// and a lock file, crus.lock, naming the process that has the store open.
// The record is the one the executor keeps (crus.Session's JSON form), so
// an administrator can read it with jq.
//
// # Durability
//
// Every write goes to a temporary file in the directory, which is synced,
// renamed over the session's file, and followed by a sync of the
// directory: after a crash at any instant the file holds either the old
// record or the new one, never a mixture. A file that is nevertheless
// torn or corrupt (a disk fault, a hand edit), or written by a newer
// version (an unknown schema), is reported with its path and never
// silently replaced: Get, Update and List fail on it (matching
// crus.ErrCorruptSession or ErrUnknownSchema) until an administrator
// repairs or removes it.
//
// # One process at a time
//
// Open takes an exclusive lock (flock) on crus.lock and holds it until
// Close; a second Open of the same directory, from this process or
// another, fails with ErrLocked naming the holder. The lock dies with its
// process, so a crashed controller never leaves the directory locked. For
// several controller replicas sharing sessions, use store/etcdstore.
package filestore
