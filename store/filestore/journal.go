package filestore

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"hash/crc32"

	"github.com/crus-go/crus"
	"github.com/crus-go/crus/store/internal/record"
)

// The journal of a session, <id>.journal:
//
//	file   = magic frame*
//	magic  = "CRUSJRNL"
//	frame  = 0xC5 0x5A, length (uint32 LE), CRC-32C of body (uint32 LE), body
//	body   = type (1 byte), revision (int64 LE), payload
//
// The first frame is the file header (type 'H', revision 0, payload
// {"schema":2,"session":"<id>"}), the second a snapshot of the whole
// record (type 'S', payload record.Encode of the crus.Session), then one
// delta per write since (type 'D', payload record.Encode of a
// record.Delta), each one revision after the one before.
//
// Header and snapshot are written together to a new file that is synced
// and renamed into place, so they are whole or absent. Deltas are
// appended and synced: a crash in the middle of an append leaves a torn
// tail, which is recognised as such — a frame that is incomplete or fails
// its checksum, with no valid frame after it — and dropped (the write was
// never acknowledged); the next append overwrites it. A bad frame with a
// valid frame after it is damage, not a torn append, and is reported with
// the file and its offset.
const (
	magic     = "CRUSJRNL"
	frameHead = 10 // marker, length, checksum
	bodyHead  = 9  // type, revision

	typeHeader   = 'H'
	typeSnapshot = 'S'
	typeDelta    = 'D'

	// maxBody bounds a frame's body; maxSnapshotJSON and maxDeltaJSON
	// what its payload may inflate to.
	maxBody         = 1 << 30
	maxSnapshotJSON = 2 << 30
	maxDeltaJSON    = 256 << 20
)

var (
	marker = [2]byte{0xC5, 0x5A}
	crcTab = crc32.MakeTable(crc32.Castagnoli)
)

// fileHeader is the payload of the header frame.
type fileHeader struct {
	Schema  int    `json:"schema"`
	Session string `json:"session"`
}

// appendFrame appends one frame to b.
func appendFrame(b []byte, typ byte, rev int64, payload []byte) []byte {
	body := make([]byte, 0, bodyHead+len(payload))
	body = append(body, typ)
	body = binary.LittleEndian.AppendUint64(body, uint64(rev))
	body = append(body, payload...)
	b = append(b, marker[:]...)
	b = binary.LittleEndian.AppendUint32(b, uint32(len(body)))
	b = binary.LittleEndian.AppendUint32(b, crc32.Checksum(body, crcTab))
	return append(b, body...)
}

// frameAt returns the body of the frame at off and the offset after it,
// or ok false if there is no whole, valid frame there.
func frameAt(b []byte, off int) (body []byte, next int, ok bool) {
	if off < 0 || len(b)-off < frameHead || b[off] != marker[0] || b[off+1] != marker[1] {
		return nil, 0, false
	}
	n := int(binary.LittleEndian.Uint32(b[off+2:]))
	if n < bodyHead || n > maxBody || n > len(b)-off-frameHead {
		return nil, 0, false
	}
	body = b[off+frameHead : off+frameHead+n]
	if crc32.Checksum(body, crcTab) != binary.LittleEndian.Uint32(b[off+6:]) {
		return nil, 0, false
	}
	return body, off + frameHead + n, true
}

// validFrameAfter reports whether a valid frame starts anywhere after
// off: if one does, the bytes at off are damage, not a torn tail.
func validFrameAfter(b []byte, off int) bool {
	for i := off + 1; i < len(b); {
		k := bytes.IndexByte(b[i:], marker[0])
		if k < 0 {
			return false
		}
		i += k
		if _, _, ok := frameAt(b, i); ok {
			return true
		}
		i++
	}
	return false
}

// journal is what reading a session file tells.
type journal struct {
	s        *crus.Session
	rev      int64
	snapshot int    // bytes of the magic, header and snapshot
	end      int    // offset after the last good frame: where the next delta goes
	torn     int    // bytes of a torn tail dropped after end
	last     []byte // the header of the last delta, nil if none
}

// errUnknownSchema is decodeJournal's report of another schema, which the
// caller turns into ErrUnknownSchema naming the file.
type errUnknownSchema struct{ schema int }

func (e errUnknownSchema) Error() string { return fmt.Sprintf("schema %d", e.schema) }

// corruptAt is damage at an offset of the file.
type corruptAt struct {
	off int
	msg string
}

func (e *corruptAt) Error() string { return fmt.Sprintf("at offset %d: %s", e.off, e.msg) }

// decodeJournal decodes the contents of the journal of session id.
// Errors are *corruptAt or errUnknownSchema.
func decodeJournal(id string, b []byte) (*journal, error) {
	bad := func(off int, format string, args ...any) error {
		return &corruptAt{off: off, msg: fmt.Sprintf(format, args...)}
	}
	if len(b) < len(magic) || string(b[:len(magic)]) != magic {
		return nil, bad(0, "not a crus journal (no %q at its start)", magic)
	}
	off := len(magic)
	body, next, ok := frameAt(b, off)
	if !ok {
		return nil, bad(off, "file header frame incomplete or damaged")
	}
	if body[0] != typeHeader {
		return nil, bad(off, "first frame of type %q, not the file header", body[0])
	}
	var fh fileHeader
	if err := json.Unmarshal(body[bodyHead:], &fh); err != nil {
		return nil, bad(off, "file header: %v", err)
	}
	if fh.Schema != SchemaVersion {
		return nil, errUnknownSchema{fh.Schema}
	}
	if fh.Session != id {
		return nil, bad(off, "holds session %q", fh.Session)
	}
	off = next
	body, next, ok = frameAt(b, off)
	if !ok {
		return nil, bad(off, "snapshot frame incomplete or damaged")
	}
	if body[0] != typeSnapshot {
		return nil, bad(off, "second frame of type %q, not a snapshot", body[0])
	}
	j := &journal{rev: int64(binary.LittleEndian.Uint64(body[1:]))}
	if j.rev < 1 {
		return nil, bad(off, "snapshot of revision %d", j.rev)
	}
	var s crus.Session
	if err := record.Decode(body[bodyHead:], maxSnapshotJSON, &s); err != nil {
		return nil, bad(off, "bad session record: %v", err)
	}
	if s.UpgradeID != id {
		return nil, bad(off, "snapshot holds session %q", s.UpgradeID)
	}
	j.s = &s
	off = next
	j.snapshot = off
	for off < len(b) {
		body, next, ok := frameAt(b, off)
		if !ok {
			if validFrameAfter(b, off) {
				return nil, bad(off, "damaged record (valid records follow it, so it is not a torn write)")
			}
			j.torn = len(b) - off
			break
		}
		rev := int64(binary.LittleEndian.Uint64(body[1:]))
		switch {
		case body[0] != typeDelta:
			return nil, bad(off, "record of type %q after the snapshot", body[0])
		case rev != j.rev+1:
			return nil, bad(off, "record of revision %d after revision %d", rev, j.rev)
		}
		d, err := record.DecodeDelta(body[bodyHead:], maxDeltaJSON, j.last)
		if err != nil {
			return nil, bad(off, "bad record of revision %d: %v", rev, err)
		}
		if err := d.Apply(j.s); err != nil {
			return nil, bad(off, "record of revision %d: %v", rev, err)
		}
		j.last = d.Header
		j.rev = rev
		off = next
	}
	j.end = off
	j.s.Revision = j.rev
	return j, nil
}

// newJournal returns the contents of a new journal holding s at revision
// rev: magic, header and snapshot.
func newJournal(s *crus.Session, rev int64) ([]byte, error) {
	h, err := json.Marshal(fileHeader{Schema: SchemaVersion, Session: s.UpgradeID})
	if err != nil {
		return nil, err
	}
	snap, err := record.Encode(s)
	if err != nil {
		return nil, err
	}
	b := make([]byte, 0, len(magic)+2*(frameHead+bodyHead)+len(h)+len(snap))
	b = append(b, magic...)
	b = appendFrame(b, typeHeader, 0, h)
	return appendFrame(b, typeSnapshot, rev, snap), nil
}

// journalRevision returns the revision of the journal of session id
// without decoding its records: its frames' checksums and revisions are
// checked, their payloads (the snapshot, the deltas) not inflated. Its
// errors are decodeJournal's; damage it cannot see, reading the records
// does.
func journalRevision(id string, b []byte) (int64, error) {
	bad := func(off int, format string, args ...any) error {
		return &corruptAt{off: off, msg: fmt.Sprintf(format, args...)}
	}
	if len(b) < len(magic) || string(b[:len(magic)]) != magic {
		return 0, bad(0, "not a crus journal (no %q at its start)", magic)
	}
	off := len(magic)
	body, next, ok := frameAt(b, off)
	if !ok {
		return 0, bad(off, "file header frame incomplete or damaged")
	}
	if body[0] != typeHeader {
		return 0, bad(off, "first frame of type %q, not the file header", body[0])
	}
	var fh fileHeader
	if err := json.Unmarshal(body[bodyHead:], &fh); err != nil {
		return 0, bad(off, "file header: %v", err)
	}
	if fh.Schema != SchemaVersion {
		return 0, errUnknownSchema{fh.Schema}
	}
	if fh.Session != id {
		return 0, bad(off, "holds session %q", fh.Session)
	}
	off = next
	body, next, ok = frameAt(b, off)
	if !ok {
		return 0, bad(off, "snapshot frame incomplete or damaged")
	}
	if body[0] != typeSnapshot {
		return 0, bad(off, "second frame of type %q, not a snapshot", body[0])
	}
	rev := int64(binary.LittleEndian.Uint64(body[1:]))
	if rev < 1 {
		return 0, bad(off, "snapshot of revision %d", rev)
	}
	for off = next; off < len(b); off = next {
		body, next, ok = frameAt(b, off)
		if !ok {
			if validFrameAfter(b, off) {
				return 0, bad(off, "damaged record (valid records follow it, so it is not a torn write)")
			}
			break // a torn tail
		}
		r := int64(binary.LittleEndian.Uint64(body[1:]))
		switch {
		case body[0] != typeDelta:
			return 0, bad(off, "record of type %q after the snapshot", body[0])
		case r != rev+1:
			return 0, bad(off, "record of revision %d after revision %d", r, rev)
		}
		rev = r
	}
	return rev, nil
}
