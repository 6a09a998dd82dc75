package fake_test

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/crus-go/crus/bos"
	"github.com/crus-go/crus/internal/fake"
)

// TestRebootWithJobsAfterAdminResume tells a broken promise from an
// administrator's race: a node given a job before its boot request is a
// violation; a node an administrator resumed after the request was
// accepted, and which got a job before the reboot, is not (it is Raced).
func TestRebootWithJobsAfterAdminResume(t *testing.T) {
	for _, c := range []struct {
		name          string
		resumeAfter   bool // the administrator resumes after the boot request
		wantViolation bool
	}{
		{"job before the request", false, true},
		{"resumed after the request", true, false},
	} {
		t.Run(c.name, func(t *testing.T) {
			w := fake.NewCluster(fake.ClusterOptions{Nodes: 2})
			x := fake.XName(0)
			ctx := context.Background()
			require.NoError(t, w.WLM().Drain(ctx, []string{"nid000001"}, "crus s: test"))
			w.AddMember(fake.UpgradingLabel, x)
			if !c.resumeAfter {
				w.AdminResume(x)
				require.NoError(t, w.StartJob(x, time.Hour, 2*time.Hour))
			}
			require.NoError(t, w.BOS().Reboot(ctx, bos.Request{Name: "b1", Template: fake.Template, Limit: []string{x}}))
			if c.resumeAfter {
				w.AdminResume(x)
				require.NoError(t, w.StartJob(x, time.Hour, 2*time.Hour))
			}
			w.Advance(time.Minute) // the boot session starts: the node is rebooted
			if c.wantViolation {
				assert.Len(t, w.Violations(), 1)
				assert.Empty(t, w.Raced())
			} else {
				assert.Empty(t, w.Violations())
				assert.Len(t, w.Raced(), 1)
			}
		})
	}
}
