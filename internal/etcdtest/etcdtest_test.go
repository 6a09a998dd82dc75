package etcdtest_test

import (
	"context"
	"fmt"
	"net"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/crus-go/crus/internal/etcdtest"
)

// TestStartStop starts a server, uses it, stops it, and checks that the
// process is gone and its port free.
func TestStartStop(t *testing.T) {
	s := etcdtest.Start(t)
	t.Logf("%s at %s, pid %d", s.Version, s.Endpoint, s.Pid())
	c := s.Client(t)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_, err := c.Put(ctx, "k", "v")
	require.NoError(t, err)
	got, err := c.Get(ctx, "k")
	require.NoError(t, err)
	require.Len(t, got.Kvs, 1)
	assert.Equal(t, "v", string(got.Kvs[0].Value))

	pid := s.Pid()
	require.NoError(t, s.Stop())
	_, err = os.Stat(fmt.Sprintf("/proc/%d", pid))
	assert.True(t, os.IsNotExist(err), "the etcd process is gone")
	l, err := net.Listen("tcp", strings.TrimPrefix(s.Endpoint, "http://"))
	require.NoError(t, err, "the client port is free again")
	l.Close()
	require.NoError(t, s.Stop(), "stopping twice is harmless")
}
