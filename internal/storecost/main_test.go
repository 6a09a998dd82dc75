package main

import (
	"fmt"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/crus-go/crus/internal/etcdtest"
)

func TestMain(m *testing.M) { etcdtest.Main(m) }

// TestCostPerNode runs whole rolling sessions on the durable stores and
// checks the goals of issue 14 at a size CI can afford: at most 5 KB
// written per node upgraded, at most 5 KB of etcd's database per node,
// and a cost per write that does not grow with the session.
func TestCostPerNode(t *testing.T) {
	c, prefix := etcdtest.Shared(t)
	srv := etcdtest.SharedServer(t)
	perWrite := map[int]int64{}
	for _, nodes := range []int{200, 600} {
		for _, store := range []string{"file", "etcd"} {
			t.Run(fmt.Sprintf("%s/%d", store, nodes), func(t *testing.T) {
				r, err := measure(store, "rolling", nodes, 50, 1, t.TempDir(), c, srv, fmt.Sprintf("%s%s-%d/", prefix, store, nodes))
				require.NoError(t, err)
				require.Positive(t, r.upgraded)
				per := r.bytes / int64(r.upgraded)
				t.Logf("%d writes, %d bytes per write, %d bytes per node upgraded", r.writes, r.bytes/r.writes, per)
				assert.LessOrEqual(t, per, int64(5000), "bytes written per node upgraded")
				if store == "etcd" {
					grown := (r.dbAfter - r.dbBefore) / int64(r.upgraded)
					t.Logf("etcd's database grew by %d bytes per node, %.1f revisions per node", grown, float64(r.revAfter-r.revBefore)/float64(r.upgraded))
					assert.LessOrEqual(t, grown, int64(5000), "etcd database bytes per node upgraded")
				}
				if store == "file" {
					perWrite[nodes] = r.bytes / r.writes
				}
			})
		}
	}
	if perWrite[200] > 0 && perWrite[600] > 0 {
		assert.Less(t, float64(perWrite[600]), 1.5*float64(perWrite[200]), "the cost of a write does not grow with the session: %v", perWrite)
	}
}
