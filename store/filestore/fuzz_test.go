package filestore

import (
	"errors"
	"testing"

	"github.com/crus-go/crus/store/internal/record"
	"github.com/crus-go/crus/store/storetest"
)

// FuzzJournal feeds decodeJournal arbitrary files: it must never panic,
// and must either decode a session (the one the file names) or say what
// is wrong and where.
func FuzzJournal(f *testing.F) {
	s := storetest.Session("s", 3)
	b, err := newJournal(s, 1)
	if err != nil {
		f.Fatal(err)
	}
	var last []byte
	for i := range 3 {
		s.Progress.Nodes[i].LastError = "x"
		s.AddMessages("m")
		d, err := record.MakeDelta(s, []int{i}, s.MessagesTotal()-1)
		if err != nil {
			f.Fatal(err)
		}
		p, err := record.EncodeDelta(d, last)
		if err != nil {
			f.Fatal(err)
		}
		last = d.Header
		b = appendFrame(b, typeDelta, int64(2+i), p)
	}
	f.Add(b)
	f.Add(b[:len(b)-5])
	f.Add([]byte(magic))
	f.Fuzz(func(t *testing.T, b []byte) {
		j, err := decodeJournal("s", b)
		if err != nil {
			var c *corruptAt
			var u errUnknownSchema
			if !errors.As(err, &c) && !errors.As(err, &u) {
				t.Fatalf("an error of another kind: %v", err)
			}
			if c != nil && (c.off < 0 || c.off > len(b)) {
				t.Fatalf("offset %d outside the file (%d bytes)", c.off, len(b))
			}
			return
		}
		if j.s.UpgradeID != "s" || j.rev < 1 || j.end+j.torn != len(b) || j.end < j.snapshot {
			t.Fatalf("inconsistent journal: id %q rev %d end %d torn %d snapshot %d of %d bytes", j.s.UpgradeID, j.rev, j.end, j.torn, j.snapshot, len(b))
		}
	})
}
