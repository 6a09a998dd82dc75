package crus_test

import (
	"context"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/crus-go/crus"
	"github.com/crus-go/crus/internal/fake"
	"github.com/crus-go/crus/store/filestore"
)

// TestRunOnFileStoreBadInput: an executor on a file store given a session
// that does not exist, or whose file is damaged, fails with a clear error
// and touches nothing; the file is left as it was.
func TestRunOnFileStoreBadInput(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	st, err := filestore.Open(dir, filestore.Options{})
	require.NoError(t, err)
	defer st.Close()
	e := newEnv(t, fake.ClusterOptions{Nodes: 4}, 2)
	e.cfg.Store = st
	ex := e.executor()

	_, err = ex.Run(ctx, "no-such-session")
	assert.ErrorIs(t, err, crus.ErrSessionNotFound)
	assert.ErrorContains(t, err, "no-such-session")
	_, err = ex.Delete(ctx, "no-such-session")
	assert.ErrorIs(t, err, crus.ErrSessionNotFound)
	_, err = ex.Run(ctx, "../../etc/passwd")
	assert.ErrorIs(t, err, crus.ErrSessionNotFound)

	s, err := ex.Create(ctx, e.spec)
	require.NoError(t, err)
	p := filepath.Join(dir, s.UpgradeID+".journal")
	b, err := os.ReadFile(p)
	require.NoError(t, err)
	torn := b[:len(b)-40]
	require.NoError(t, os.WriteFile(p, torn, 0o600))

	// A restarted controller opens the store again.
	require.NoError(t, st.Close())
	st, err = filestore.Open(dir, filestore.Options{})
	require.NoError(t, err)
	e.cfg.Store = st
	ex = e.executor()

	_, err = ex.Run(ctx, s.UpgradeID)
	assert.ErrorIs(t, err, crus.ErrCorruptSession)
	assert.ErrorContains(t, err, p)
	_, err = ex.Delete(ctx, s.UpgradeID)
	assert.ErrorIs(t, err, crus.ErrCorruptSession)
	_, err = ex.Create(ctx, e.spec)
	assert.ErrorIs(t, err, crus.ErrCorruptSession, "a damaged record may hold the nodes: refuse")
	assert.Empty(t, e.w.Touched(), "nothing touched")
	after, err := os.ReadFile(p)
	require.NoError(t, err)
	assert.Equal(t, torn, after, "the damaged file is left as it was")

	// Repaired, the session runs.
	require.NoError(t, os.WriteFile(p, b, 0o600))
	final, err := ex.Run(ctx, s.UpgradeID)
	require.NoError(t, err)
	e.check(final)
	assert.Equal(t, 4, final.Counts().Upgraded)
}
