package filestore_test

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"hash/crc32"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/crus-go/crus"
	"github.com/crus-go/crus/batch"
	"github.com/crus-go/crus/store/filestore"
	"github.com/crus-go/crus/store/storetest"
)

func open(t *testing.T, dir string) *filestore.Store {
	t.Helper()
	st, err := filestore.Open(dir, filestore.Options{Create: true})
	require.NoError(t, err)
	t.Cleanup(func() { st.Close() })
	return st
}

func TestConformance(t *testing.T) {
	storetest.RunConformanceTests(t, func(t *testing.T) crus.Store { return open(t, t.TempDir()) })
}

// TestReopen checks that what one Store wrote, a later one (a restarted
// controller) reads, reservations included.
func TestReopen(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	st, err := filestore.Open(dir, filestore.Options{})
	require.NoError(t, err)
	s := storetest.Session("a", 30)
	require.NoError(t, st.CreateReserved(ctx, s))
	s.Messages = append(s.Messages, "more")
	require.NoError(t, st.Update(ctx, s))
	require.NoError(t, st.Close())
	_, err = st.Get(ctx, "a")
	assert.ErrorIs(t, err, filestore.ErrClosed)

	st2 := open(t, dir)
	got, err := st2.Get(ctx, "a")
	require.NoError(t, err)
	assert.Equal(t, s.Messages, got.Messages)
	assert.Equal(t, int64(2), got.Revision)
	held, err := st2.Reservations(ctx)
	require.NoError(t, err)
	require.Len(t, held, 1)
	assert.Equal(t, "a", held[0].Session)
	other := storetest.Session("b", 3)
	other.Progress.Nodes[0].XName = s.Progress.Nodes[0].XName
	assert.ErrorIs(t, st2.CreateReserved(ctx, other), crus.ErrReserved)
}

// TestDocumentFormat checks the file an administrator would find.
func TestDocumentFormat(t *testing.T) {
	dir := t.TempDir()
	st := open(t, dir)
	require.NoError(t, st.Create(context.Background(), storetest.Session("abc-1", 2)))
	b, err := os.ReadFile(filepath.Join(dir, "abc-1.journal"))
	require.NoError(t, err)
	assert.True(t, strings.HasPrefix(string(b), "CRUSJRNL"), "%q", b[:16])
	assert.Contains(t, string(b), `{"schema":2,"session":"abc-1"}`, "the file header says what it holds")
	fi, err := os.Stat(filepath.Join(dir, "abc-1.journal"))
	require.NoError(t, err)
	assert.Equal(t, fs.FileMode(0o600), fi.Mode().Perm(), "session files are private")
}

// frames returns the offsets of the frames of a journal (see journal.go:
// an 8-byte magic, then frames of a 10-byte head and a body whose length
// the head gives).
func frames(t *testing.T, b []byte) []int {
	t.Helper()
	var out []int
	for off := 8; off+10 <= len(b); {
		out = append(out, off)
		off += 10 + int(binary.LittleEndian.Uint32(b[off+2:]))
	}
	return out
}

// journalWith returns a store directory holding session s, written by
// Create and then n UpdateNodes of one node and one message each, and the
// session as stored.
func journalWith(t *testing.T, n int) (string, *crus.Session) {
	t.Helper()
	ctx := context.Background()
	dir := t.TempDir()
	st, err := filestore.Open(dir, filestore.Options{})
	require.NoError(t, err)
	defer st.Close()
	s := storetest.Session("s", 40)
	require.NoError(t, st.Create(ctx, s))
	for i := range n {
		s.Progress.Nodes[i].LastError = fmt.Sprintf("write %d", i)
		s.AddMessages(fmt.Sprintf("message %d", i))
		require.NoError(t, st.UpdateNodes(ctx, s, []int{i}))
	}
	return dir, s
}

// TestDamagedFiles covers damaged and foreign files: each is a clear
// error naming the file (and the offset of the damage), and nothing
// overwrites it.
func TestDamagedFiles(t *testing.T) {
	ctx := context.Background()
	flip := func(off int) func(b []byte) []byte {
		return func(b []byte) []byte { b[off] ^= 0x40; return b }
	}
	tests := []struct {
		name    string
		damage  func(b []byte, fr []int) []byte
		want    error
		message string
	}{
		{"snapshot torn", func(b []byte, fr []int) []byte { return b[:fr[2]-20] }, crus.ErrCorruptSession, "snapshot frame incomplete or damaged"},
		{"empty", func(b []byte, fr []int) []byte { return []byte{} }, crus.ErrCorruptSession, "not a crus journal"},
		{"garbage", func(b []byte, fr []int) []byte { return []byte("\x00\x00\x00\x00") }, crus.ErrCorruptSession, "not a crus journal"},
		{"file header damaged", func(b []byte, fr []int) []byte { return flip(fr[0] + 25)(b) }, crus.ErrCorruptSession, "at offset 8: file header frame"},
		{"snapshot damaged", func(b []byte, fr []int) []byte { return flip(fr[1] + 40)(b) }, crus.ErrCorruptSession, fmt.Sprintf("at offset %d: snapshot frame", 0)},
		{"delta damaged in the middle", func(b []byte, fr []int) []byte { return flip(fr[3] + 30)(b) }, crus.ErrCorruptSession, "not a torn write"},
		{"delta out of order", func(b []byte, fr []int) []byte {
			return append(b[:fr[3]:fr[3]], b[fr[4]:]...) // revision 3 missing
		}, crus.ErrCorruptSession, "record of revision 4 after revision 2"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			dir, s := journalWith(t, 5)
			p := filepath.Join(dir, "s.journal")
			b, err := os.ReadFile(p)
			require.NoError(t, err)
			fr := frames(t, b)
			require.Len(t, fr, 7, "header, snapshot, five deltas")
			damaged := tc.damage(b, fr)
			if tc.name == "snapshot damaged" {
				tc.message = fmt.Sprintf("at offset %d: snapshot frame", fr[1])
			}
			if tc.name == "delta damaged in the middle" {
				tc.message = fmt.Sprintf("at offset %d: damaged record", fr[3])
			}
			require.NoError(t, os.WriteFile(p, damaged, 0o600))

			st := open(t, dir)
			check := func(err error, op string) {
				t.Helper()
				require.Error(t, err, op)
				assert.ErrorIs(t, err, tc.want, op)
				assert.ErrorIs(t, err, batch.ErrPermanent, "%s: reading again reads the same damage", op)
				assert.ErrorContains(t, err, tc.message, op)
				assert.ErrorContains(t, err, p, "%s: the error names the file", op)
			}
			_, err = st.Get(ctx, "s")
			check(err, "Get")
			s.AddMessages("would overwrite")
			check(st.Update(ctx, s), "Update")
			check(st.UpdateNodes(ctx, s, []int{1}), "UpdateNodes")
			_, err = st.Revision(ctx, "s")
			check(err, "Revision")
			_, err = st.Revisions(ctx)
			check(err, "Revisions")
			_, err = st.List(ctx)
			check(err, "List")
			_, err = st.Reservations(ctx)
			check(err, "Reservations")
			check(st.CreateReserved(ctx, storetest.Session("other", 2)), "CreateReserved")
			assert.ErrorIs(t, st.Create(ctx, storetest.Session("s", 2)), crus.ErrSessionExists, "Create does not replace it")

			after, err := os.ReadFile(p)
			require.NoError(t, err)
			assert.Equal(t, damaged, after, "the damaged file is never replaced")

			// An administrator may remove it.
			require.NoError(t, st.Delete(ctx, "s"))
			_, err = st.List(ctx)
			require.NoError(t, err)
		})
	}
}

// TestRevisionsReadNoRecord: Revisions of a file this Store has not read
// (after a restart) takes the revision from the frames without inflating
// a record: a delta whose payload is damaged behind a valid checksum
// fails List and Get, not Revisions; once the Store wrote or read a file,
// a stat tells that it did not change.
func TestRevisionsReadNoRecord(t *testing.T) {
	ctx := context.Background()
	dir, _ := journalWith(t, 5)
	p := filepath.Join(dir, "s.journal")
	b, err := os.ReadFile(p)
	require.NoError(t, err)
	fr := frames(t, b)
	require.Len(t, fr, 7)
	// Garble the payload of the delta of revision 4, and seal it again.
	body := b[fr[4]+10 : fr[5]]
	for i := 9; i < len(body); i++ {
		body[i] ^= 0x55
	}
	binary.LittleEndian.PutUint32(b[fr[4]+6:], crc32.Checksum(body, crc32.MakeTable(crc32.Castagnoli)))
	require.NoError(t, os.WriteFile(p, b, 0o600))

	st := open(t, dir)
	_, err = st.List(ctx)
	require.ErrorIs(t, err, crus.ErrCorruptSession, "the records are damaged")
	revs, err := st.Revisions(ctx)
	require.NoError(t, err, "Revisions inflates no record")
	assert.Equal(t, map[string]int64{"s": 6}, revs)

	// A file this Store wrote: its revision from the stat.
	good := storetest.Session("g", 30)
	require.NoError(t, st.Create(ctx, good))
	require.NoError(t, os.Remove(p))
	revs, err = st.Revisions(ctx)
	require.NoError(t, err)
	assert.Equal(t, map[string]int64{"g": 1}, revs, "a file removed is gone from the list")
	good.AddMessages("more")
	require.NoError(t, st.UpdateNodes(ctx, good, nil))
	revs, err = st.Revisions(ctx)
	require.NoError(t, err)
	assert.Equal(t, map[string]int64{"g": 2}, revs)
}

// TestUnknownSchema: a journal of another schema (a newer crus) is left
// alone.
func TestUnknownSchema(t *testing.T) {
	ctx := context.Background()
	dir, _ := journalWith(t, 1)
	p := filepath.Join(dir, "s.journal")
	b, err := os.ReadFile(p)
	require.NoError(t, err)
	// Rewrite the file header frame with schema 7 and a right checksum.
	fr := frames(t, b)
	body := []byte(strings.Replace(string(b[fr[0]+10:fr[1]]), `"schema":2`, `"schema":7`, 1))
	head := append([]byte{0xC5, 0x5A}, binary.LittleEndian.AppendUint32(nil, uint32(len(body)))...)
	head = binary.LittleEndian.AppendUint32(head, crc32.Checksum(body, crc32.MakeTable(crc32.Castagnoli)))
	nb := append(append(append([]byte("CRUSJRNL"), head...), body...), b[fr[1]:]...)
	require.NoError(t, os.WriteFile(p, nb, 0o600))
	st := open(t, dir)
	_, err = st.Get(ctx, "s")
	assert.ErrorIs(t, err, filestore.ErrUnknownSchema)
	assert.ErrorIs(t, err, batch.ErrPermanent, "reading again reads the same file")
	assert.ErrorContains(t, err, "unknown schema version 7 in file "+p)
}

// TestWriteErrors: the file system's refusals that last until someone
// acts (full, over quota, read-only, not permitted) match ErrNotWritable
// and batch.ErrPermanent, so that the executor stops at once rather than
// retrying a write that cannot land; others stay worth retrying. Each
// keeps the system's error and the session's id.
func TestWriteErrors(t *testing.T) {
	for _, tc := range []struct {
		err       error
		permanent bool
	}{
		{syscall.ENOSPC, true},
		{syscall.EDQUOT, true},
		{syscall.EROFS, true},
		{syscall.EACCES, true},
		{syscall.EPERM, true},
		{syscall.EIO, false},
		{syscall.EINTR, false},
		{errors.New("something else"), false},
	} {
		err := filestore.WriteErr("s1", "", &fs.PathError{Op: "write", Path: "/var/lib/crus/s1.journal", Err: tc.err})
		assert.ErrorIs(t, err, tc.err)
		assert.Equal(t, tc.permanent, errors.Is(err, filestore.ErrNotWritable), "%v", tc.err)
		assert.Equal(t, tc.permanent, errors.Is(err, batch.ErrPermanent), "%v", tc.err)
		assert.ErrorContains(t, err, "writing session s1: ")
		assert.ErrorContains(t, err, tc.err.Error())
	}
}

// TestTornTail: a crash in the middle of an append leaves part of a
// record at the end of the journal. It is dropped, never misread: the
// session is as of the last whole record, and the next write replaces the
// torn bytes.
func TestTornTail(t *testing.T) {
	ctx := context.Background()
	dir, _ := journalWith(t, 3)
	p := filepath.Join(dir, "s.journal")
	whole, err := os.ReadFile(p)
	require.NoError(t, err)
	fr := frames(t, whole)
	last := fr[len(fr)-1]
	// Every prefix of the last record, and the whole record with its last
	// byte or its checksum wrong, is a torn tail.
	var cases [][]byte
	for cut := last + 1; cut < len(whole); cut += 7 {
		cases = append(cases, whole[:cut])
	}
	bad := slices.Clone(whole)
	bad[len(bad)-1] ^= 1
	cases = append(cases, bad, append(slices.Clone(whole[:last]), make([]byte, len(whole)-last)...))
	for i, b := range cases {
		require.NoError(t, os.WriteFile(p, b, 0o600))
		st, err := filestore.Open(dir, filestore.Options{})
		require.NoError(t, err)
		revs, err := st.Revisions(ctx)
		require.NoError(t, err, "case %d: %d bytes", i, len(b))
		assert.Equal(t, map[string]int64{"s": 3}, revs, "case %d: Revisions drops the torn write", i)
		got, err := st.Get(ctx, "s")
		require.NoError(t, err, "case %d: %d bytes", i, len(b))
		assert.Equal(t, int64(3), got.Revision, "case %d: the torn write is not there", i)
		assert.Equal(t, "write 1", got.Progress.Nodes[1].LastError)
		assert.Empty(t, got.Progress.Nodes[2].LastError, "case %d", i)
		assert.Equal(t, "message 1", got.Messages[len(got.Messages)-1])

		// The next write goes where the torn one began.
		got.Progress.Nodes[2].LastError = "again"
		got.AddMessages("again")
		require.NoError(t, st.UpdateNodes(ctx, got, []int{2}))
		require.NoError(t, st.Close())
		st2, err := filestore.Open(dir, filestore.Options{})
		require.NoError(t, err)
		again, err := st2.Get(ctx, "s")
		require.NoError(t, err)
		assert.Equal(t, int64(4), again.Revision)
		assert.Equal(t, "again", again.Progress.Nodes[2].LastError)
		assert.Equal(t, "again", again.Messages[len(again.Messages)-1])
		require.NoError(t, st2.Close())
		after, err := os.ReadFile(p)
		require.NoError(t, err)
		assert.Len(t, frames(t, after), len(fr), "case %d: no torn bytes left behind", i)
	}
}

// TestCompaction: once the deltas outgrow the snapshot, a write rewrites
// the journal as one snapshot; the record is the same, and what is
// written stays proportional to what changed.
func TestCompaction(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	st := open(t, dir)
	filestore.SetCompaction(st, 4, 1024)
	s := storetest.Session("s", 500)
	require.NoError(t, st.Create(ctx, s))
	p := filepath.Join(dir, "s.journal")
	snapshots := st.Stats().Snapshots
	var maxSize, maxSnapshot int64
	for i := range 1000 {
		k := i * 7 % 500
		s.Progress.Nodes[k].LastError = fmt.Sprintf("write %d", i)
		s.AddMessages(fmt.Sprintf("message %d", i))
		before := st.Stats().Snapshots
		require.NoError(t, st.UpdateNodes(ctx, s, []int{k}))
		fi, err := os.Stat(p)
		require.NoError(t, err)
		maxSize = max(maxSize, fi.Size())
		if st.Stats().Snapshots > before {
			maxSnapshot = max(maxSnapshot, fi.Size())
		}
	}
	stats := st.Stats()
	assert.Greater(t, stats.Snapshots, snapshots+1, "compacted more than once")
	assert.LessOrEqual(t, maxSize, 5*maxSnapshot+1024, "the journal stays within 1 + ratio snapshots")
	assert.Less(t, stats.Bytes/stats.Writes, int64(1000), "a write of one node costs what changed, compactions included")
	got, err := st.Get(ctx, "s")
	require.NoError(t, err)
	assert.Equal(t, s.Revision, got.Revision)
	assert.Equal(t, s.Progress.Nodes, got.Progress.Nodes)
	assert.Equal(t, s.Messages, got.Messages)
	assert.Equal(t, s.MessagesDropped, got.MessagesDropped)
}

// TestLegacyFile: a session file of schema 1 (one JSON document) is
// read, and its next write replaces it with a journal.
func TestLegacyFile(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	s := storetest.Session("old", 10)
	rec, err := json.Marshal(s)
	require.NoError(t, err)
	doc := fmt.Sprintf(`{"schema":1,"revision":7,"session":%s}`+"\n", rec)
	require.NoError(t, os.WriteFile(filepath.Join(dir, "old.json"), []byte(doc), 0o600))
	st := open(t, dir)
	got, err := st.Get(ctx, "old")
	require.NoError(t, err)
	assert.Equal(t, int64(7), got.Revision)
	assert.Equal(t, s.Progress.Nodes, got.Progress.Nodes)
	held, err := st.Reservations(ctx)
	require.NoError(t, err)
	require.Len(t, held, 1, "a session of schema 1 holds its nodes")

	got.Progress.Nodes[3].LastError = "first write"
	got.AddMessages("first write")
	require.NoError(t, st.UpdateNodes(ctx, got, []int{3}))
	assert.Equal(t, int64(8), got.Revision)
	_, err = os.Stat(filepath.Join(dir, "old.json"))
	assert.ErrorIs(t, err, fs.ErrNotExist, "the document is replaced by a journal")
	again, err := st.Get(ctx, "old")
	require.NoError(t, err)
	assert.Equal(t, got.Progress.Nodes, again.Progress.Nodes)
	assert.Equal(t, got.Messages, again.Messages)

	require.NoError(t, os.WriteFile(filepath.Join(dir, "new.json"), []byte(`{"schema":3,"revision":1,"session":{}}`), 0o600))
	_, err = st.Get(ctx, "new")
	assert.ErrorIs(t, err, filestore.ErrUnknownSchema)
}

// TestSymlinkedLockFile: a lock file that is a symbolic link is refused,
// and its target is left untouched (it was truncated and overwritten).
func TestSymlinkedLockFile(t *testing.T) {
	dir := t.TempDir()
	target := filepath.Join(t.TempDir(), "precious")
	require.NoError(t, os.WriteFile(target, []byte("do not overwrite\n"), 0o600))
	require.NoError(t, os.Symlink(target, filepath.Join(dir, filestore.LockFile)))
	_, err := filestore.Open(dir, filestore.Options{})
	require.Error(t, err)
	assert.ErrorIs(t, err, filestore.ErrUnsafeDir)
	assert.ErrorContains(t, err, "symbolic link")
	assert.ErrorContains(t, err, filepath.Join(dir, filestore.LockFile))
	b, err := os.ReadFile(target)
	require.NoError(t, err)
	assert.Equal(t, "do not overwrite\n", string(b), "the target is untouched")

	// A session file that is a symbolic link is not followed either.
	dir2 := t.TempDir()
	require.NoError(t, os.Symlink(target, filepath.Join(dir2, "s.journal")))
	st := open(t, dir2)
	_, err = st.Get(context.Background(), "s")
	require.Error(t, err)
	assert.NotErrorIs(t, err, crus.ErrSessionNotFound)
}

// TestUnsafeDir: a store directory others may write is refused.
func TestUnsafeDir(t *testing.T) {
	for _, mode := range []fs.FileMode{0o777, 0o770, 0o720, 0o702} {
		dir := filepath.Join(t.TempDir(), "store")
		require.NoError(t, os.Mkdir(dir, 0o700))
		require.NoError(t, os.Chmod(dir, mode))
		_, err := filestore.Open(dir, filestore.Options{})
		require.Error(t, err, "%04o", mode)
		assert.ErrorIs(t, err, filestore.ErrUnsafeDir)
		assert.ErrorContains(t, err, fmt.Sprintf("%s is writable by its group or by others (mode %04o)", dir, mode))
		_, err = os.Stat(filepath.Join(dir, filestore.LockFile))
		assert.ErrorIs(t, err, fs.ErrNotExist, "nothing written in it")
	}
	dir := filepath.Join(t.TempDir(), "store")
	require.NoError(t, os.Mkdir(dir, 0o755))
	require.NoError(t, os.Chmod(dir, 0o755))
	st, err := filestore.Open(dir, filestore.Options{})
	require.NoError(t, err, "readable by others is fine: the files are private")
	require.NoError(t, st.Close())
}

// TestCrashLeftovers: a crash in the middle of a write leaves a temporary
// file and the previous record; the next Open removes the first and reads
// the second.
func TestCrashLeftovers(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	st, err := filestore.Open(dir, filestore.Options{})
	require.NoError(t, err)
	require.NoError(t, st.Create(ctx, storetest.Session("s", 3)))
	require.NoError(t, st.Close())
	tmp := filepath.Join(dir, ".s.journal.tmp-12345")
	require.NoError(t, os.WriteFile(tmp, []byte("CRUSJRNL\xc5\x5a"), 0o600))

	st2 := open(t, dir)
	_, err = os.Stat(tmp)
	assert.ErrorIs(t, err, fs.ErrNotExist, "the half-written file is removed")
	got, err := st2.Get(ctx, "s")
	require.NoError(t, err)
	assert.Equal(t, int64(1), got.Revision)
	list, err := st2.List(ctx)
	require.NoError(t, err)
	assert.Len(t, list, 1)
}

func TestBadIDs(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	st := open(t, dir)
	for _, id := range []string{"../escape", "a/b", ".hidden", "", "-flag", strings.Repeat("x", 300)} {
		s := storetest.Session("x", 1)
		s.UpgradeID = id
		err := st.Create(ctx, s)
		assert.ErrorIs(t, err, filestore.ErrInvalidID, "%q", id)
		assert.ErrorIs(t, err, batch.ErrPermanent, "%q", id)
		_, err = st.Get(ctx, id)
		assert.ErrorIs(t, err, crus.ErrSessionNotFound, "%q", id)
		assert.ErrorIs(t, err, filestore.ErrInvalidID, "%q", id)
		assert.ErrorIs(t, st.Delete(ctx, id), crus.ErrSessionNotFound, "%q", id)
	}
	entries, err := os.ReadDir(dir)
	require.NoError(t, err)
	require.Len(t, entries, 1, "only the lock file")
	_, err = os.Stat(filepath.Join(filepath.Dir(dir), "escape.journal"))
	assert.ErrorIs(t, err, fs.ErrNotExist)
}

func TestOpenErrors(t *testing.T) {
	base := t.TempDir()
	_, err := filestore.Open(filepath.Join(base, "missing"), filestore.Options{})
	assert.ErrorIs(t, err, fs.ErrNotExist)
	assert.ErrorContains(t, err, "missing")
	_, err = os.Stat(filepath.Join(base, "missing"))
	assert.ErrorIs(t, err, fs.ErrNotExist, "not created without Options.Create")

	file := filepath.Join(base, "file")
	require.NoError(t, os.WriteFile(file, nil, 0o600))
	_, err = filestore.Open(file, filestore.Options{})
	assert.ErrorContains(t, err, "is not a directory")
	_, err = filestore.Open("", filestore.Options{})
	assert.Error(t, err)

	st, err := filestore.Open(filepath.Join(base, "new", "store"), filestore.Options{Create: true})
	require.NoError(t, err)
	require.NoError(t, st.Close())
	fi, err := os.Stat(filepath.Join(base, "new", "store"))
	require.NoError(t, err)
	assert.Equal(t, fs.FileMode(0o700), fi.Mode().Perm())
}

// TestLocked: one Store per directory, in this process or another; the
// error names the holder; Close releases it.
func TestLocked(t *testing.T) {
	dir := t.TempDir()
	st, err := filestore.Open(dir, filestore.Options{})
	require.NoError(t, err)
	_, err = filestore.Open(dir, filestore.Options{})
	assert.ErrorIs(t, err, filestore.ErrLocked)
	assert.ErrorContains(t, err, fmt.Sprintf("locked by pid %d on ", os.Getpid()))

	// Another process: a child holding the lock with flock(1) semantics is
	// this test binary itself, run as a helper.
	require.NoError(t, st.Close())
	cmd := exec.Command(os.Args[0], "-test.run=^TestHelperHoldLock$")
	cmd.Env = append(os.Environ(), "FILESTORE_HELPER_DIR="+dir)
	stdout, err := cmd.StdoutPipe()
	require.NoError(t, err)
	stdin, err := cmd.StdinPipe()
	require.NoError(t, err)
	require.NoError(t, cmd.Start())
	buf := make([]byte, 6)
	_, err = stdout.Read(buf)
	require.NoError(t, err)
	require.Equal(t, "locked", string(buf))
	_, err = filestore.Open(dir, filestore.Options{})
	assert.ErrorIs(t, err, filestore.ErrLocked)
	assert.ErrorContains(t, err, fmt.Sprintf("locked by pid %d on ", cmd.Process.Pid))
	// The holder dies without closing: the lock dies with it.
	require.NoError(t, cmd.Process.Kill())
	_ = cmd.Wait()
	stdin.Close()
	st, err = filestore.Open(dir, filestore.Options{})
	require.NoError(t, err, "a dead holder leaves no lock behind")
	require.NoError(t, st.Close())
}

// TestHelperHoldLock is run by TestLocked in a child process.
func TestHelperHoldLock(t *testing.T) {
	dir := os.Getenv("FILESTORE_HELPER_DIR")
	if dir == "" {
		t.Skip("helper process for TestLocked")
	}
	_, err := filestore.Open(dir, filestore.Options{})
	if err != nil {
		fmt.Fprint(os.Stdout, "failed", err)
		os.Exit(1)
	}
	fmt.Fprint(os.Stdout, "locked")
	select {} // until killed
}

// TestPermissionDenied opens a store directory the process may not write.
// Root may write anywhere, so as root the test runs a copy of itself as
// user nobody.
func TestPermissionDenied(t *testing.T) {
	base, err := os.MkdirTemp("", "crus-filestore-perm-")
	require.NoError(t, err)
	t.Cleanup(func() { os.RemoveAll(base) })
	require.NoError(t, os.Chmod(base, 0o755))
	dir := filepath.Join(base, "store")
	st, err := filestore.Open(dir, filestore.Options{Create: true})
	require.NoError(t, err)
	require.NoError(t, st.Create(context.Background(), storetest.Session("s", 2)))
	require.NoError(t, st.Close())
	before, err := os.ReadFile(filepath.Join(dir, "s.journal"))
	require.NoError(t, err)
	require.NoError(t, os.Chmod(dir, 0o555))
	t.Cleanup(func() { os.Chmod(dir, 0o700) })

	var msg string
	if os.Geteuid() != 0 {
		_, err := filestore.Open(dir, filestore.Options{})
		require.Error(t, err)
		assert.ErrorIs(t, err, fs.ErrPermission)
		msg = err.Error()
	} else {
		self, err := os.Executable()
		require.NoError(t, err)
		bin, err := os.ReadFile(self)
		require.NoError(t, err)
		copyPath := filepath.Join(base, "filestore.test")
		require.NoError(t, os.WriteFile(copyPath, bin, 0o755))
		cmd := exec.Command(copyPath, "-test.run=^TestHelperOpen$")
		cmd.Env = []string{"FILESTORE_HELPER_OPEN=" + dir}
		cmd.Dir = base
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: 65534, Gid: 65534}}
		out, err := cmd.CombinedOutput()
		require.NoError(t, err, "%s", out)
		msg = string(out)
		assert.Contains(t, msg, "ErrPermission=true")
	}
	assert.Contains(t, msg, "permission denied")
	assert.Contains(t, msg, dir, "the error names the directory")
	after, err := os.ReadFile(filepath.Join(dir, "s.journal"))
	require.NoError(t, err)
	assert.Equal(t, before, after, "nothing changed")
}

// TestHelperOpen is run by TestPermissionDenied as another user.
func TestHelperOpen(t *testing.T) {
	dir := os.Getenv("FILESTORE_HELPER_OPEN")
	if dir == "" {
		t.Skip("helper process for TestPermissionDenied")
	}
	_, err := filestore.Open(dir, filestore.Options{})
	if err == nil {
		t.Fatal("opened a directory without permission")
	}
	fmt.Printf("%v\nErrPermission=%v\n", err, errors.Is(err, fs.ErrPermission))
}

func BenchmarkUpdate10k(b *testing.B) {
	ctx := context.Background()
	st, err := filestore.Open(b.TempDir(), filestore.Options{})
	require.NoError(b, err)
	defer st.Close()
	s := storetest.Session("big", 10000)
	require.NoError(b, st.Create(ctx, s))
	b.ResetTimer()
	for i := range b.N {
		s.Progress.Nodes[i%10000].LastError = fmt.Sprint(i)
		if err := st.Update(ctx, s); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkReads(b *testing.B) {
	for _, n := range []int{10000, 160000} {
		b.Run(fmt.Sprint(n/1000, "k"), func(b *testing.B) {
			st, err := filestore.Open(b.TempDir(), filestore.Options{})
			require.NoError(b, err)
			defer st.Close()
			storetest.BenchmarkReads(b, st, n)
		})
	}
}
