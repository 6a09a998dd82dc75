// Package filestore is a crus.Store that keeps each session as a journal
// in a directory, for a controller that runs on one machine and must
// survive its own restarts.
//
// # Layout
//
// The directory holds one file per session, <upgrade_id>.journal, and a
// lock file, crus.lock, naming the process that has the store open. A
// journal is a snapshot of the whole record followed by one delta per
// write since: the header (every field but the node records and the
// messages), the node records that changed and the messages added
// (crus.NodeUpdater). Each is compressed JSON in a frame with its length
// and a CRC-32C checksum (see journal.go for the bytes). So a write costs
// what changed — a few hundred bytes for a node that moves on — not the
// whole record (4 MB of JSON for 10,000 nodes). Once the deltas pass four
// times the snapshot, the next write rewrites the journal as one
// snapshot: every byte is written at most 1.25 times, whatever the size
// of the session, and a read decodes at most five snapshots' worth.
// Stats tells what a Store wrote.
//
// Files of schema 1 (<upgrade_id>.json, one JSON document rewritten by
// every write) are still read; the next write of such a session replaces
// it with a journal.
//
// # Durability
//
// A new journal (Create, Update, a compaction) is written to a temporary
// file in the directory, which is synced, linked or renamed into place,
// and followed by a sync of the directory: after a crash the session's
// file is the old one or the new one, never a mixture. A delta is
// appended and synced before the write returns. A crash in the middle of
// an append leaves a torn tail — a frame incomplete or failing its
// checksum, with no valid frame after it — which is recognised and
// dropped (that write was never acknowledged) and overwritten by the next
// append. Anything else that fails to decode — a damaged frame with valid
// frames after it, a damaged snapshot, revisions out of order, a foreign
// file — is reported with the file's path and the offset of the damage,
// and never replaced: Get, Update and List fail on it (matching
// crus.ErrCorruptSession, or ErrUnknownSchema for a file written by a
// newer version) until an administrator repairs or removes it. Those
// errors match batch.ErrPermanent, as do the file system's refusals that
// last until someone acts (ErrNotWritable: full, over quota, read-only,
// not permitted): the executor stops at once rather than retrying.
//
// # One process at a time
//
// Open takes an exclusive lock (flock) on crus.lock and holds it until
// Close; a second Open of the same directory, from this process or
// another, fails with ErrLocked naming the holder. The lock dies with its
// process, so a crashed controller never leaves the directory locked. For
// several controller replicas sharing sessions, use store/etcdstore.
//
// Open refuses (ErrUnsafeDir) a directory writable by its group or by
// others, and a lock file that is a symbolic link or not a regular file:
// whoever can write in the directory could replace the sessions or make
// crus overwrite another file. Session files are opened without following
// symbolic links either.
package filestore
