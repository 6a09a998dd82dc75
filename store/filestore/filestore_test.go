package filestore_test

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/crus-go/crus"
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

// TestDocumentFormat checks the file an administrator would read.
func TestDocumentFormat(t *testing.T) {
	dir := t.TempDir()
	st := open(t, dir)
	require.NoError(t, st.Create(context.Background(), storetest.Session("abc-1", 2)))
	b, err := os.ReadFile(filepath.Join(dir, "abc-1.json"))
	require.NoError(t, err)
	assert.True(t, strings.HasPrefix(string(b), `{"schema":1,"revision":1,"session":{"upgrade_id":"abc-1",`), string(b[:80]))
	fi, err := os.Stat(filepath.Join(dir, "abc-1.json"))
	require.NoError(t, err)
	assert.Equal(t, fs.FileMode(0o600), fi.Mode().Perm(), "session files are private")
}

// TestDamagedFiles covers torn, corrupt and foreign files: each is a clear
// error naming the file, and nothing overwrites it.
func TestDamagedFiles(t *testing.T) {
	ctx := context.Background()
	good := storetest.Session("s", 4)
	tests := []struct {
		name    string
		damage  func(b []byte) []byte
		want    error
		message string
	}{
		{"truncated", func(b []byte) []byte { return b[:len(b)/2] }, crus.ErrCorruptSession, "not a JSON document (torn or damaged)"},
		{"empty", func(b []byte) []byte { return []byte{} }, crus.ErrCorruptSession, "empty"},
		{"garbage", func(b []byte) []byte { return []byte("\x00\x00\x00\x00") }, crus.ErrCorruptSession, "not a JSON document"},
		{"unknown schema", func(b []byte) []byte {
			return []byte(strings.Replace(string(b), `"schema":1`, `"schema":7`, 1))
		}, filestore.ErrUnknownSchema, "unknown schema version 7"},
		{"no schema", func(b []byte) []byte {
			return []byte(strings.Replace(string(b), `"schema":1,`, ``, 1))
		}, filestore.ErrUnknownSchema, "unknown schema version 0"},
		{"another session inside", func(b []byte) []byte {
			return []byte(strings.Replace(string(b), `"upgrade_id":"s"`, `"upgrade_id":"t"`, 1))
		}, crus.ErrCorruptSession, `holds session "t"`},
		{"bad record", func(b []byte) []byte {
			return []byte(strings.Replace(string(b), `"completed":false`, `"completed":"no"`, 1))
		}, crus.ErrCorruptSession, "bad session record"},
		{"bad revision", func(b []byte) []byte {
			return []byte(strings.Replace(string(b), `"revision":1`, `"revision":0`, 1))
		}, crus.ErrCorruptSession, "revision 0"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			st := open(t, dir)
			s := good.Clone()
			require.NoError(t, st.Create(ctx, s))
			p := filepath.Join(dir, "s.json")
			b, err := os.ReadFile(p)
			require.NoError(t, err)
			damaged := tc.damage(b)
			require.NoError(t, os.WriteFile(p, damaged, 0o600))

			check := func(err error, op string) {
				t.Helper()
				require.Error(t, err, op)
				assert.ErrorIs(t, err, tc.want, op)
				assert.ErrorContains(t, err, tc.message, op)
				assert.ErrorContains(t, err, p, "%s: the error names the file", op)
			}
			_, err = st.Get(ctx, "s")
			check(err, "Get")
			// The Store had written the file itself: the change is noticed
			// all the same, and the Update refused.
			s.Messages = append(s.Messages, "would overwrite")
			check(st.Update(ctx, s), "Update")
			_, err = st.Revision(ctx, "s")
			check(err, "Revision")
			_, err = st.List(ctx)
			check(err, "List")
			_, err = st.Reservations(ctx)
			check(err, "Reservations")
			check(st.CreateReserved(ctx, storetest.Session("other", 2)), "CreateReserved")
			assert.ErrorIs(t, st.Create(ctx, good.Clone()), crus.ErrSessionExists, "Create does not replace it")

			// A new Store (a restarted controller) reports it the same way.
			require.NoError(t, st.Close())
			st2 := open(t, dir)
			_, err = st2.Get(ctx, "s")
			check(err, "Get after reopening")
			check(st2.Update(ctx, s), "Update after reopening")

			after, err := os.ReadFile(p)
			require.NoError(t, err)
			assert.Equal(t, damaged, after, "the damaged file is never replaced")

			// An administrator may remove it.
			require.NoError(t, st2.Delete(ctx, "s"))
			_, err = st2.List(ctx)
			require.NoError(t, err)
		})
	}
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
	tmp := filepath.Join(dir, ".s.json.tmp-12345")
	require.NoError(t, os.WriteFile(tmp, []byte(`{"schema":1,"revision":2,"sess`), 0o600))

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
		_, err = st.Get(ctx, id)
		assert.ErrorIs(t, err, crus.ErrSessionNotFound, "%q", id)
		assert.ErrorIs(t, err, filestore.ErrInvalidID, "%q", id)
		assert.ErrorIs(t, st.Delete(ctx, id), crus.ErrSessionNotFound, "%q", id)
	}
	entries, err := os.ReadDir(dir)
	require.NoError(t, err)
	require.Len(t, entries, 1, "only the lock file")
	_, err = os.Stat(filepath.Join(filepath.Dir(dir), "escape.json"))
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
	before, err := os.ReadFile(filepath.Join(dir, "s.json"))
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
	after, err := os.ReadFile(filepath.Join(dir, "s.json"))
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
