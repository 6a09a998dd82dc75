package fake_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/crus-go/crus/bos"
	"github.com/crus-go/crus/internal/fake"
	"github.com/crus-go/crus/wlm"
)

func TestStartJobOnFreeAndSchedulerHook(t *testing.T) {
	w := fake.NewCluster(fake.ClusterOptions{Nodes: 5})
	assert.Equal(t, 5, w.FreeCount())
	ended := 0
	require.True(t, w.StartJobOnFree(3, "", time.Hour, 2*time.Hour, func() { ended++ }))
	assert.Equal(t, 2, w.FreeCount())
	assert.False(t, w.StartJobOnFree(3, "", time.Hour, time.Hour, nil), "only 2 nodes free")
	for i, x := range w.XNames()[:3] {
		n, _ := w.Node(x)
		assert.Equal(t, 1, n.Jobs, "node %d runs the job", i)
	}

	runs := 0
	w.SetScheduler(func() { runs++ })
	w.Advance(30 * time.Minute)
	assert.Equal(t, 1, runs, "the hook runs once for what was pending")
	w.Advance(31 * time.Minute)
	assert.Equal(t, 1, ended)
	assert.Equal(t, 5, w.FreeCount(), "free once completing is over")
	assert.GreaterOrEqual(t, runs, 2, "the hook ran after the job freed its nodes")
}

func TestLostCapacity(t *testing.T) {
	w := fake.NewCluster(fake.ClusterOptions{Nodes: 2})
	x := w.XNames()
	require.NoError(t, w.StartJob(x[0], time.Hour, time.Hour))
	m := w.WLM()
	ctx := context.Background()
	require.NoError(t, m.Drain(ctx, []string{"nid000001", "nid000002"}, "crus s1: test"))
	w.Advance(2 * time.Hour)
	// nid000002 was idle: lost from the drain, 2h. nid000001 computed for
	// 1h, then lost 1h.
	assert.InDelta(t, (3 * time.Hour).Seconds(), w.Lost().Seconds(), 5)
	require.NoError(t, m.Resume(ctx, []string{"nid000001", "nid000002"}))
	w.Advance(time.Hour)
	assert.InDelta(t, (3 * time.Hour).Seconds(), w.Lost().Seconds(), 5, "nothing lost once back in service")
	require.NoError(t, m.Drain(ctx, []string{"nid000001"}, "admin: not ours"))
	w.Advance(time.Hour)
	assert.InDelta(t, (3 * time.Hour).Seconds(), w.Lost().Seconds(), 5, "a drain by someone else is not crus's loss")
}

func TestRebootASAP(t *testing.T) {
	w := fake.NewCluster(fake.ClusterOptions{Nodes: 3})
	x := w.XNames()
	require.NoError(t, w.StartJob(x[0], 2*time.Hour, 3*time.Hour))
	w.SetFaults(x[2], fake.NodeFaults{BootFails: true})
	ctx := context.Background()
	start := w.Now()
	require.NoError(t, w.WLM().Reboot(ctx, []string{"nid000001", "nid000002", "nid000003"}, "upgrade"))
	assert.Equal(t, 3, w.RebootsPending())
	nodes, err := w.WLM().Nodes(ctx, []string{"nid000001"})
	require.NoError(t, err)
	assert.True(t, nodes[0].RebootRequested)
	assert.False(t, nodes[0].InService())
	w.Advance(time.Hour)
	assert.Equal(t, 1, w.RebootsPending(), "idle nodes rebooted at once; the busy one waits")
	w.Advance(2 * time.Hour)
	assert.Zero(t, w.RebootsPending())
	assert.Empty(t, w.Violations(), "no job was killed")
	n0, _ := w.Node(x[0])
	assert.True(t, n0.Up && !n0.Drain && n0.BootTime.After(start.Add(2*time.Hour)), "%+v", n0)
	n2, _ := w.Node(x[2])
	assert.False(t, n2.Up, "a node that fails to boot stays down")
	assert.Equal(t, 3, w.MaxOut())
	var _ wlm.Rebooter = w.WLM()
}

func TestPlacement(t *testing.T) {
	nodesOf := func(w *fake.World) []int {
		var busy []int
		for i, x := range w.XNames() {
			if n, _ := w.Node(x); n.Jobs > 0 {
				busy = append(busy, n.NID)
				_ = i
			}
		}
		return busy
	}
	for _, c := range []struct {
		p    fake.Placement
		want []int
	}{
		{fake.PlaceLowest, []int{1, 2, 3}},
		{fake.PlaceHighest, []int{68, 69, 70}},
	} {
		w := fake.NewCluster(fake.ClusterOptions{Nodes: 70})
		w.SetPlacement(c.p)
		require.True(t, w.StartJobOnFree(3, "", time.Hour, time.Hour, nil))
		assert.ElementsMatch(t, c.want, nodesOf(w), c.p.String())
	}

	random := func(seed uint64) []int {
		w := fake.NewCluster(fake.ClusterOptions{Nodes: 70, Options: fake.Options{Seed: seed}})
		w.SetPlacement(fake.PlaceRandom)
		require.True(t, w.StartJobOnFree(5, "", time.Hour, time.Hour, nil))
		require.False(t, w.StartJobOnFree(66, "", time.Hour, time.Hour, nil))
		return nodesOf(w)
	}
	a, b := random(1), random(1)
	assert.Len(t, a, 5)
	assert.Equal(t, a, b, "the same seed places the same way")
	assert.NotEqual(t, a, random(2), "another seed places another way")

	for _, s := range []string{"lowest", "highest", "random"} {
		p, err := fake.ParsePlacement(s)
		require.NoError(t, err)
		assert.Equal(t, s, p.String())
	}
	_, err := fake.ParsePlacement("best")
	assert.Error(t, err)
}

// TestOutlookLeavesOutDrainedNodes: a backfill scheduler plans only on the
// nodes that will return to service when their jobs end.
func TestOutlookLeavesOutDrainedNodes(t *testing.T) {
	w := fake.NewCluster(fake.ClusterOptions{Nodes: 5})
	start := w.Now()
	require.True(t, w.StartJobOnFree(2, "", time.Hour, 2*time.Hour, nil))  // nid 1-2
	require.True(t, w.StartJobOnFree(2, "", time.Hour, 10*time.Hour, nil)) // nid 3-4
	assert.Equal(t, []fake.Avail{
		{From: start, Nodes: 1},
		{From: start.Add(2 * time.Hour), Nodes: 2},
		{From: start.Add(10 * time.Hour), Nodes: 2},
	}, w.Outlook())

	ctx := context.Background()
	require.NoError(t, w.WLM().Drain(ctx, []string{"nid000001"}, "crus s: upgrade"))
	require.NoError(t, w.WLM().Drain(ctx, []string{"nid000003", "nid000004"}, "admin"))
	assert.Equal(t, []fake.Avail{
		{From: start, Nodes: 1},
		{From: start.Add(2 * time.Hour), Nodes: 1},
	}, w.Outlook(), "drained nodes are not expected back, whoever drained them")

	require.NoError(t, w.WLM().Resume(ctx, []string{"nid000001", "nid000003"}))
	w.Advance(90 * time.Minute) // the jobs really end after 1h
	assert.Equal(t, []fake.Avail{{From: w.Now(), Nodes: 4}}, w.Outlook())
}

// TestRebootTimesArePerNode: a node's k-th reboot takes the same time
// whatever order nodes reboot in, for a given seed.
func TestRebootTimesArePerNode(t *testing.T) {
	rebootedAt := func(seed uint64, order []string) map[string]time.Time {
		w := fake.NewCluster(fake.ClusterOptions{Nodes: 4, Options: fake.Options{Seed: seed, RegisterDelay: time.Second}})
		ctx := context.Background()
		start := w.Now()
		for _, name := range order {
			require.NoError(t, w.WLM().Reboot(ctx, []string{name}, "test"))
			w.Advance(time.Minute)
		}
		w.Advance(time.Hour)
		out := map[string]time.Time{}
		for i, x := range w.XNames() {
			n, _ := w.Node(x)
			// minus the minute each reboot request waited for the previous one
			out[n.Name] = n.BootTime.Add(-time.Duration(slicesIndex(order, n.Name)) * time.Minute)
			_ = i
			assert.True(t, n.BootTime.After(start))
		}
		return out
	}
	a := rebootedAt(7, []string{"nid000001", "nid000002", "nid000003", "nid000004"})
	b := rebootedAt(7, []string{"nid000004", "nid000003", "nid000002", "nid000001"})
	assert.Equal(t, a, b)
	c := rebootedAt(8, []string{"nid000001", "nid000002", "nid000003", "nid000004"})
	assert.NotEqual(t, a, c)

	w := fake.NewCluster(fake.ClusterOptions{Nodes: 400, Options: fake.Options{Seed: 3}})
	mean := w.FirstReboots() / 400
	assert.InDelta(t, (10 * time.Minute).Seconds(), mean.Seconds(), 20, "10m ± 3m uniform")
	assert.NotEqual(t, 10*time.Minute, mean, "drawn, not nominal")
}

// TestShortReboots: a short reboot time gets a jitter in proportion, and
// no jitter makes a reboot take less than a second: every node boots
// after it went down.
func TestShortReboots(t *testing.T) {
	assert.Equal(t, 3*time.Minute, fake.DefaultJitter(10*time.Minute))
	assert.Equal(t, 3*time.Minute, fake.DefaultJitter(time.Hour))
	assert.Equal(t, 36*time.Second, fake.DefaultJitter(2*time.Minute))
	for _, o := range []fake.Options{
		{RebootTime: 2 * time.Minute},                                // default jitter: ± 36s
		{RebootTime: 2 * time.Minute, RebootJitter: 5 * time.Minute}, // longer than the reboot
		{RebootTime: 10 * time.Second},
	} {
		w := fake.NewCluster(fake.ClusterOptions{Nodes: 200, Options: o})
		assert.GreaterOrEqual(t, w.FirstReboots(), 200*time.Second, "%+v: no reboot under a second", o)
		assert.LessOrEqual(t, w.FirstReboots(), 200*(o.RebootTime+max(o.RebootJitter, fake.DefaultJitter(o.RebootTime))), "%+v", o)
		start := w.Now()
		var names []string
		for _, x := range w.XNames() {
			n, _ := w.Node(x)
			names = append(names, n.Name)
		}
		require.NoError(t, w.WLM().Reboot(context.Background(), names, "test"))
		w.Advance(time.Hour)
		for _, x := range w.XNames() {
			n, _ := w.Node(x)
			assert.False(t, n.BootTime.Before(start.Add(time.Second)), "%+v: %s booted %v after its reboot", o, x, n.BootTime.Sub(start))
		}
	}
}

func slicesIndex(s []string, v string) int {
	for i, x := range s {
		if x == v {
			return i
		}
	}
	return -1
}

// TestLossByCause follows three drained nodes through the causes of lost
// capacity: waiting, rebooting, returning, failed; and a draining one.
func TestLossByCause(t *testing.T) {
	w := fake.NewCluster(fake.ClusterOptions{Nodes: 3, Options: fake.Options{RebootJitter: -1, RegisterDelay: time.Minute}})
	x := w.XNames()
	w.SetFaults(x[2], fake.NodeFaults{NeverReturns: true})
	require.NoError(t, w.StartJob(x[0], time.Hour, time.Hour))
	ctx := context.Background()
	m := w.WLM()
	all := []string{"nid000001", "nid000002", "nid000003"}
	require.NoError(t, m.Drain(ctx, all, "crus s: upgrade"))
	w.Advance(2 * time.Hour)
	// nid1 drains for 1h, then waits 1h; nid2 and nid3 wait 2h.
	l := w.Loss()
	assert.InDelta(t, time.Hour.Seconds(), l.Draining.Seconds(), 1)
	assert.InDelta(t, (5 * time.Hour).Seconds(), l.Waiting.Seconds(), 5)

	require.NoError(t, w.BOS().Reboot(ctx, bosRequest(w, x)))
	w.Advance(time.Hour)
	require.NoError(t, m.Resume(ctx, all[:2]))
	w.Advance(time.Hour)
	require.NoError(t, m.Fail(ctx, all[2:], "crus s: never came back"))
	w.Advance(time.Hour)
	l = w.Loss()
	// The boot session is pending 10s, then each reboot takes exactly 10m
	// and registering 1m; the two good nodes return after 1h (resumed), the
	// bad one is failed after 2h.
	assert.InDelta(t, (5*time.Hour + 3*10*time.Second).Seconds(), l.Waiting.Seconds(), 5)
	assert.InDelta(t, (30 * time.Minute).Seconds(), l.Rebooting.Seconds(), 5)
	assert.InDelta(t, (2 * (time.Hour - 10*time.Minute - 10*time.Second)).Seconds(), l.Returning.Seconds(), 5)
	assert.InDelta(t, (2*time.Hour - 10*time.Minute - 10*time.Second).Seconds(), l.Failed.Seconds(), 5)
	assert.Equal(t, l.Total(), w.Lost())
}

// TestRebootASAPTimeout: a node whose workload-manager reboot fails is
// given up only at the reboot timeout, and counts as out until then.
func TestRebootASAPTimeout(t *testing.T) {
	w := fake.NewCluster(fake.ClusterOptions{Nodes: 2, Options: fake.Options{RebootJitter: -1}})
	x := w.XNames()
	w.SetFaults(x[1], fake.NodeFaults{BootFails: true})
	w.SetRebootTimeout(40 * time.Minute)
	require.NoError(t, w.WLM().Reboot(context.Background(), []string{"nid000001", "nid000002"}, "upgrade"))
	w.Advance(39 * time.Minute)
	assert.Equal(t, 1, w.RebootsPending(), "the good node is back; the bad one is not given up yet")
	w.Advance(2 * time.Minute)
	assert.Zero(t, w.RebootsPending())
	n, _ := w.Node(x[1])
	assert.Equal(t, "reboot timed out", n.Reason)
	l := w.Loss()
	assert.InDelta(t, (30 * time.Minute).Seconds(), l.Failed.Seconds(), 1)
	assert.InDelta(t, (20 * time.Minute).Seconds(), l.Rebooting.Seconds(), 1)
}

// bosRequest puts the nodes in the upgrading group and asks BOS to reboot
// them.
func bosRequest(w *fake.World, xnames []string) bos.Request {
	w.AddGroup(fake.UpgradingLabel, xnames...)
	return bos.Request{Name: "test-1", Template: fake.Template, Limit: xnames}
}

// TestReservationsInTheWorld: reserved nodes take only jobs that end
// before their reservation, nothing while it is active; crus's count as
// out and, idle before their start, as lost; the outlook of a backfill
// scheduler sees them only between reservations.
func TestReservationsInTheWorld(t *testing.T) {
	w := fake.NewCluster(fake.ClusterOptions{Nodes: 4})
	ctx := context.Background()
	m := w.WLM()
	t0 := w.Now()
	require.NoError(t, m.Reserve(ctx, wlm.Reservation{Name: "crus-s-1", Nodes: []string{"nid000002", "nid000001"}, Start: t0.Add(2 * time.Hour), End: t0.Add(3 * time.Hour)}))
	require.NoError(t, m.Reserve(ctx, wlm.Reservation{Name: "admin-1", Nodes: []string{"nid000003"}, Start: t0.Add(time.Hour), End: t0.Add(4 * time.Hour)}))

	f := w.Free()
	assert.Equal(t, fake.FreeNodes{Open: 1, Until: []time.Time{t0.Add(time.Hour), t0.Add(2 * time.Hour), t0.Add(2 * time.Hour)}}, f)
	assert.Equal(t, 4, f.For(t0.Add(time.Hour)), "a job ending when the first reservation starts fits")
	assert.Equal(t, 3, f.For(t0.Add(90*time.Minute)))
	assert.Equal(t, 1, f.For(t0.Add(150*time.Minute)))
	assert.Equal(t, []fake.Avail{
		{From: t0, Until: t0.Add(time.Hour), Nodes: 1},
		{From: t0, Until: t0.Add(2 * time.Hour), Nodes: 2},
		{From: t0, Nodes: 1},
		{From: t0.Add(3 * time.Hour), Nodes: 2},
		{From: t0.Add(4 * time.Hour), Nodes: 1},
	}, w.Outlook(), "one entry for each span, its nodes summed")

	assert.False(t, w.StartJobOnFree(2, "", time.Hour, 3*time.Hour, nil), "only nid4 is clear for 3h")
	require.True(t, w.StartJobOnFree(3, "", time.Hour, 90*time.Minute, nil), "nid1, 2 and 4 are clear for 90m")
	for _, x := range w.XNames() {
		n, _ := w.Node(x)
		assert.Equal(t, n.Name != "nid000003", n.Jobs == 1, n.Name)
	}
	assert.Zero(t, w.MaxOut(), "a reservation that has not begun takes nothing out")

	w.Advance(2*time.Hour + time.Minute)
	assert.Equal(t, 2, w.MaxOut(), "from its start crus's reservation holds nid1-2 out; admin's is not crus's")
	assert.Equal(t, 1, w.FreeCount(), "nid4; nid3 is held by admin's reservation")
	w.Advance(2 * time.Hour)
	assert.Equal(t, 4, w.FreeCount(), "every reservation is over")
	// nid1-2 ended their jobs after 1h (and 2s completing): idle under
	// crus's reservation until it ended at 3h, before and after its start.
	assert.InDelta(t, (4 * time.Hour).Seconds(), w.Loss().Waiting.Seconds(), 5)
	assert.Equal(t, w.Loss().Total(), w.Loss().Waiting)
	list, err := m.Reservations(ctx, "crus-")
	require.NoError(t, err)
	assert.Empty(t, list, "ended reservations are gone")
}

// TestReserveNamesANodeOnce: a reservation that names a node twice holds
// it once, in name order, and the call counts once as touching it; an
// unknown name is a per-node error and changes nothing else.
func TestReserveNamesANodeOnce(t *testing.T) {
	w := fake.NewCluster(fake.ClusterOptions{Nodes: 3})
	t0 := w.Now()
	err := w.WLM().Reserve(context.Background(), wlm.Reservation{Name: "crus-s-1",
		Nodes: []string{"nid000003", "nid000001", "nid000003", "nid999999"}, Start: t0.Add(time.Hour), End: t0.Add(2 * time.Hour)})
	require.ErrorIs(t, err, wlm.ErrNodeNotFound)
	got := w.Reservations("crus-")
	require.Len(t, got, 1)
	assert.Equal(t, []string{"nid000001", "nid000003"}, got[0].Nodes)
	assert.Equal(t, map[string]int{w.XNames()[0]: 1, w.XNames()[2]: 1}, w.Touched())
}

// TestLossBeyondDuration: capacity lost past 2^63 ns (2.56 million
// node-hours, within reach of a 160,000-node machine) is counted, not
// wrapped around to a negative time.Duration.
func TestLossBeyondDuration(t *testing.T) {
	const nodes = 30000
	w := fake.NewCluster(fake.ClusterOptions{Nodes: nodes})
	names := make([]string, nodes)
	for i := range names {
		names[i] = fmt.Sprintf("nid%06d", i+1)
	}
	require.NoError(t, w.WLM().Drain(context.Background(), names, "crus s: upgrade"))
	w.Advance(100 * time.Hour)
	assert.InDelta(t, float64(nodes*100), w.Loss().Waiting.Hours(), 1)
	assert.InDelta(t, float64(nodes*100), w.Lost().Hours(), 1)
}
