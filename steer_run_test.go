package crus_test

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/crus-go/crus"
	"github.com/crus-go/crus/internal/fake"
	"github.com/crus-go/crus/wlm"
)

// steerWatch is the fake workload manager, checking at each Steer call
// that the nodes steered last are pending in the stored record of a
// running session.
type steerWatch struct {
	*fake.WLM
	t     *testing.T
	store crus.Store

	mu    sync.Mutex
	id    string
	calls []steerCall
}

type steerCall struct {
	names []string
	last  bool
}

func (m *steerWatch) Steer(ctx context.Context, names []string, last bool) error {
	m.mu.Lock()
	m.calls = append(m.calls, steerCall{slices.Clone(names), last})
	id := m.id
	m.mu.Unlock()
	if last && id != "" {
		s, err := m.store.Get(ctx, id)
		require.NoError(m.t, err)
		p := s.Progress
		assert.False(m.t, p.Paused || p.Cancel || p.Abort != "" || s.Completed, "nodes steered last while the session takes none")
		pending := map[string]bool{}
		for _, n := range p.Nodes {
			pending[n.Name] = n.Phase == crus.PhasePending
		}
		for _, name := range names {
			assert.True(m.t, pending[name], "%s steered last but not pending in the record", name)
		}
	}
	return m.WLM.Steer(ctx, names, last)
}

func (m *steerWatch) steerCalls() []steerCall {
	m.mu.Lock()
	defer m.mu.Unlock()
	return slices.Clone(m.calls)
}

// steerThrough has e's executor drive the workload manager m (the
// fake's, wrapped) in scheduled sessions.
func steerThrough(t *testing.T, e *env, m wlm.Manager) {
	ex, err := crus.NewExecutor(e.w.HSM(), m, e.w.BOS(), e.cfg)
	require.NoError(t, err)
	e.ex = ex
	e.spec.Rollout = crus.Rollout{Strategy: crus.StrategyScheduled}
}

// watchSteering has e's executor steer through a steerWatch.
func watchSteering(t *testing.T, e *env) *steerWatch {
	m := &steerWatch{WLM: e.w.WLM(), t: t, store: e.store}
	steerThrough(t, e, m)
	return m
}

// TestScheduledSteersTheNodesStillToTake: a scheduled session makes the
// nodes it has still to take the workload manager's last choice for new
// jobs, gives each its place back as it is taken, and leaves none steered
// (env.check); jobs that arrive meanwhile go to other nodes first.
func TestScheduledSteersTheNodesStillToTake(t *testing.T) {
	e := newEnv(t, fake.ClusterOptions{Nodes: 16, Busy: 0.8, MaxJob: 3 * time.Hour}, 3)
	e.w.KeepBusy(0.5, 2*time.Hour, 10*time.Minute, e.w.Now().Add(12*time.Hour))
	m := watchSteering(t, e)
	s := e.create()
	m.id = s.UpgradeID
	var steeredMidway []string
	e.onEvent = func(ev crus.Event) {
		if ev.Kind == crus.EventStepStarted && ev.Step == 2 && steeredMidway == nil {
			steeredMidway = e.w.Steered()
		}
	}
	final, err := e.ex.Run(context.Background(), s.UpgradeID)
	require.NoError(t, err)
	e.check(final)
	assert.Equal(t, 16, final.Counts().Upgraded)

	calls := m.steerCalls()
	require.NotEmpty(t, calls)
	first := slices.IndexFunc(calls, func(c steerCall) bool { return c.last })
	require.GreaterOrEqual(t, first, 0, "nodes were steered last")
	assert.Len(t, calls[first].names, 16-3, "at the first round, every node but the first step's")
	assert.NotEmpty(t, steeredMidway, "nodes still to take were steered while the session ran")
	assert.Less(t, len(calls), 16*2, "only the nodes whose want changed are named again")
}

// TestSteeringFollowsPause: a paused session gives every node its place
// back; resumed, it steers the nodes still to take again.
func TestSteeringFollowsPause(t *testing.T) {
	e := newEnv(t, fake.ClusterOptions{Nodes: 12, Busy: 0.8, MaxJob: 2 * time.Hour}, 3)
	m := watchSteering(t, e)
	s := e.create()
	m.id = s.UpgradeID
	ctx := context.Background()
	var whilePaused, beforePause []string
	paused := false
	e.onEvent = func(ev crus.Event) {
		switch {
		case ev.Kind == crus.EventStepStarted && ev.Step == 2 && !paused:
			paused = true
			beforePause = e.w.Steered()
			_, err := e.ex.Pause(ctx, s.UpgradeID)
			require.NoError(t, err)
		case ev.Kind == crus.EventStage && ev.Stage == crus.StagePaused && whilePaused == nil:
			e.w.Schedule(e.w.Now().Add(time.Hour), func() {
				whilePaused = append(e.w.Steered(), "(read)")
				_, err := e.ex.Resume(ctx, s.UpgradeID)
				require.NoError(t, err)
			})
		}
	}
	final, err := e.ex.Run(ctx, s.UpgradeID)
	require.NoError(t, err)
	e.check(final)
	assert.Equal(t, 12, final.Counts().Upgraded)
	assert.NotEmpty(t, beforePause, "steered before the pause")
	assert.Equal(t, []string{"(read)"}, whilePaused, "no node steered an hour into the pause")
	calls := m.steerCalls()
	resumed := 0
	for _, c := range calls {
		if c.last {
			resumed++
		}
	}
	assert.GreaterOrEqual(t, resumed, 2, "steered again after the resume: %v", calls)
}

// failingSteer is the fake workload manager whose Steer fails from the
// moment failing is set; once every node of the session is done (the
// session waits only to give places back), it works again after
// recoverAfter (never, if zero).
type failingSteer struct {
	*fake.WLM
	w     *fake.World
	store crus.Store

	mu           sync.Mutex
	id           string
	failing      bool
	recoverAfter time.Duration
	endBlocked   time.Time // the first failed call once every node was done
}

func (m *failingSteer) Steer(ctx context.Context, names []string, last bool) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	now := m.w.Now()
	if m.failing && m.endBlocked.IsZero() {
		s, err := m.store.Get(ctx, m.id)
		if err != nil {
			return err
		}
		if !slices.ContainsFunc(s.Progress.Nodes, func(n crus.NodeRecord) bool { return n.Phase != crus.PhaseDone }) {
			m.endBlocked = now
		}
	}
	if m.failing && (m.endBlocked.IsZero() || m.recoverAfter == 0 || now.Before(m.endBlocked.Add(m.recoverAfter))) {
		return fake.ErrInjected
	}
	return m.WLM.Steer(ctx, names, last)
}

// steerOutage runs a scheduled session whose Steer fails from its second
// step on, and works again recoverAfter after the session could have
// ended (never, if zero).
func steerOutage(t *testing.T, recoverAfter time.Duration) (*env, *failingSteer, *crus.Session) {
	e := newEnv(t, fake.ClusterOptions{Nodes: 8, Busy: 0.5, MaxJob: time.Hour}, 4)
	m := &failingSteer{WLM: e.w.WLM(), w: e.w, store: e.store, recoverAfter: recoverAfter}
	steerThrough(t, e, m)
	s := e.create()
	m.id = s.UpgradeID
	e.onEvent = func(ev crus.Event) {
		if ev.Kind == crus.EventStepStarted && ev.Step == 2 {
			m.mu.Lock()
			m.failing = true
			m.mu.Unlock()
		}
	}
	final, err := e.ex.Run(context.Background(), s.UpgradeID)
	require.NoError(t, err)
	assert.Equal(t, 8, final.Counts().Upgraded)
	require.False(t, m.endBlocked.IsZero(), "the session waited to give nodes their place back")
	return e, m, final
}

// TestSteeringOutageDelaysTheEnd: a session is not recorded done while
// the workload manager cannot give its nodes their place back; it ends
// once it can, with none left steered.
func TestSteeringOutageDelaysTheEnd(t *testing.T) {
	e, m, final := steerOutage(t, 10*time.Minute)
	e.check(final)
	ended := final.Progress.EndedAt
	assert.False(t, ended.Before(m.endBlocked.Add(10*time.Minute)), "recorded done at %s, before steering could be undone at %s", ended, m.endBlocked.Add(10*time.Minute))
	assert.Less(t, ended.Sub(m.endBlocked), 15*time.Minute, "done soon after")
	for _, msg := range final.Messages {
		assert.NotContains(t, msg, "place back")
	}
	assert.True(t, slices.ContainsFunc(final.Messages, func(m string) bool {
		return strings.HasPrefix(m, "New jobs could not be steered away from the nodes still to take (fake: injected")
	}), "condition steering_failed began: %q", final.Messages)
}

// TestSteeringOutageEndsAtLast: a session whose nodes cannot get their
// place back ends after steerEndWait (30 minutes) all the same, and says
// they may stay steered.
func TestSteeringOutageEndsAtLast(t *testing.T) {
	e, m, final := steerOutage(t, 0)
	ended := final.Progress.EndedAt
	assert.False(t, ended.Before(m.endBlocked.Add(30*time.Minute)), "gave up at %s, before 30 minutes from %s", ended, m.endBlocked)
	assert.Less(t, ended.Sub(m.endBlocked), 35*time.Minute)
	assert.True(t, slices.ContainsFunc(final.Messages, func(m string) bool {
		return strings.Contains(m, "could not give nodes back their place in its choice for new jobs for 30m0s")
	}), "%q", final.Messages)
	assert.NotEmpty(t, e.w.Steered(), "the nodes it could not give back stay steered, as the message says")
	for _, x := range e.w.Steered() {
		e.w.AdminSteer(x, false)
	}
	e.check(final)
}

// TestSteeringAfterRestart: a run taken up after a crash gives back their
// place to the session's nodes the run before steered and took since,
// and never touches a node outside the session, steered or not.
func TestSteeringAfterRestart(t *testing.T) {
	e := newEnv(t, fake.ClusterOptions{Nodes: 10, Busy: 0.8, MaxJob: 2 * time.Hour}, 2)
	e.w.AddNode("x9000c0s0b0n0", 9000) // outside the session, steered by the site
	e.w.AdminSteer("x9000c0s0b0n0", true)
	e.spec.Rollout = crus.Rollout{Strategy: crus.StrategyScheduled}
	s := e.create()
	require.Nil(t, s.Node("x9000c0s0b0n0"))
	ctx, cancel := context.WithCancel(context.Background())
	e.onEvent = func(ev crus.Event) {
		if ev.Kind == crus.EventStepStarted && ev.Step == 3 {
			cancel()
		}
	}
	_, err := e.ex.Run(ctx, s.UpgradeID)
	require.ErrorIs(t, err, context.Canceled)
	// As if the crash came after the nodes of step 2 were taken but
	// before they were given their place back.
	s, err = e.store.Get(context.Background(), s.UpgradeID)
	require.NoError(t, err)
	taken := 0
	for _, n := range s.Progress.Nodes {
		if n.Phase != crus.PhasePending {
			e.w.AdminSteer(n.XName, true)
			taken++
		}
	}
	require.Positive(t, taken)
	e.onEvent = nil
	final, err := e.executor().Run(context.Background(), s.UpgradeID)
	require.NoError(t, err)
	assert.Equal(t, 10, final.Counts().Upgraded)
	assert.Equal(t, []string{"x9000c0s0b0n0"}, e.w.Steered(), "the node outside the session keeps its steering")
	e.w.AdminSteer("x9000c0s0b0n0", false)
	e.check(final)
}

var _ wlm.Steerer = (*steerWatch)(nil)

// answeringSteer is the fake workload manager whose Steer answers err,
// always.
type answeringSteer struct {
	*fake.WLM
	err   error
	calls atomic.Int64
}

func (m *answeringSteer) Steer(context.Context, []string, bool) error {
	m.calls.Add(1)
	return m.err
}

// runAnsweringSteer runs a scheduled session of 8 nodes whose workload
// manager answers Steer with err, and returns it with the Steer calls.
func runAnsweringSteer(t *testing.T, err error) (*crus.Session, int64) {
	e := newEnv(t, fake.ClusterOptions{Nodes: 8, Busy: 0.5, MaxJob: time.Hour}, 4)
	m := &answeringSteer{WLM: e.w.WLM(), err: err}
	steerThrough(t, e, m)
	s := e.run()
	assert.Equal(t, 8, s.Counts().Upgraded)
	return s, m.calls.Load()
}

// TestSteeringRefusedDoesNotHoldTheEnd: a workload manager that refuses
// steering for good does not keep a session from ending; the last message
// says nodes may stay steered, and the refused call is made only every
// ten minutes.
func TestSteeringRefusedDoesNotHoldTheEnd(t *testing.T) {
	s, calls := runAnsweringSteer(t, fmt.Errorf("scontrol: Invalid user id: %w", wlm.ErrPermissionDenied))
	assert.True(t, slices.ContainsFunc(s.Messages, func(m string) bool { return strings.Contains(m, "refuses to give nodes back their place") }), "%q", s.Messages)
	assert.True(t, slices.ContainsFunc(s.Messages, func(m string) bool {
		return strings.HasPrefix(m, "New jobs could not be steered away from the nodes still to take (scontrol: Invalid user id")
	}), "condition steering_failed began: %q", s.Messages)
	elapsed := s.Progress.EndedAt.Sub(s.Progress.StartedAt)
	assert.LessOrEqual(t, calls, int64(elapsed/(10*time.Minute))+2, "one refused call per 10 minutes over %s", elapsed)
}

// TestSteeringUnsupported: a workload manager that answers Steer with
// wlm.ErrUnsupported is asked once; the session runs and ends as without
// wlm.Steerer.
func TestSteeringUnsupported(t *testing.T) {
	s, calls := runAnsweringSteer(t, fmt.Errorf("slurm: set node weights needs RESTConfig.Fallback: %w", wlm.ErrUnsupported))
	assert.Equal(t, int64(1), calls)
	for _, m := range s.Messages {
		assert.NotContains(t, m, "place back")
		assert.NotContains(t, m, "could not be steered")
	}
}

// TestSteeringReassertedAfterReset: weights reset behind the session's
// back (Slurm: scontrol reconfigure) are set again within the hour, by a
// workload manager whose node reads do not tell a node's place.
func TestSteeringReassertedAfterReset(t *testing.T) {
	pending, steered := steeringAfterReset(t, func(m *fake.WLM) wlm.Manager { return placeUnread{m} }, 70*time.Minute)
	assert.Equal(t, pending, steered, "70 minutes after the reset, the nodes still to take are steered again")
}

// TestSteeringLossSeenAtOnce: where the node reads tell a node's place
// (wlm.Node.Steering), the reset is seen at the next observation, and
// the nodes still to take are steered again within minutes; without it,
// they are not yet.
func TestSteeringLossSeenAtOnce(t *testing.T) {
	pending, steered := steeringAfterReset(t, func(m *fake.WLM) wlm.Manager { return m }, 3*time.Minute)
	assert.Equal(t, pending, steered, "3 minutes after the reset, the nodes still to take are steered again")

	pending, steered = steeringAfterReset(t, func(m *fake.WLM) wlm.Manager { return placeUnread{m} }, 3*time.Minute)
	assert.NotEqual(t, pending, steered, "unseen, the reset waits for the hourly reassertion")
}

// TestSteeringLossOfOneNodeSeen: one node still to take, among the 80
// in view (step 20), given its place back behind the session's back, is
// steered again within minutes: the nodes looked at per observation are
// bounded, but the look goes round the view.
func TestSteeringLossOfOneNodeSeen(t *testing.T) {
	for _, unread := range []bool{false, true} {
		e := newEnv(t, fake.ClusterOptions{Nodes: 200, Busy: 0.9, MaxJob: 6 * time.Hour}, 20)
		e.w.KeepBusy(0.9, 6*time.Hour, 15*time.Minute, e.w.Now().Add(48*time.Hour))
		var m wlm.Manager = e.w.WLM()
		if unread {
			m = placeUnread{e.w.WLM()}
		}
		steerThrough(t, e, m)
		s := e.create()
		var reset string
		var after []string
		e.onEvent = func(ev crus.Event) {
			if ev.Kind != crus.EventStepStarted || ev.Step != 2 || reset != "" {
				return
			}
			steered := e.w.Steered()
			require.Greater(t, len(steered), 70)
			reset = steered[69] // past the first 64 looked at
			e.w.AdminSteer(reset, false)
			e.w.Schedule(e.w.Now().Add(3*time.Minute), func() { after = e.w.Steered() })
		}
		final, err := e.ex.Run(context.Background(), s.UpgradeID)
		require.NoError(t, err)
		e.check(final)
		require.NotEmpty(t, reset)
		require.NotNil(t, after)
		rec := final.Node(reset)
		require.NotNil(t, rec)
		if unread {
			assert.NotContains(t, after, reset, "unseen, the reset waits for the hourly reassertion")
		} else {
			assert.Contains(t, after, reset, "3 minutes after the reset, %s is steered again", reset)
		}
	}
}

// steeringAfterReset runs a scheduled session over the workload manager
// wrap makes of the fake's, gives every node its place back behind the
// session's back when its second step starts, and returns, after, the
// nodes pending in the record and those steered last, sorted.
func steeringAfterReset(t *testing.T, wrap func(*fake.WLM) wlm.Manager, after time.Duration) (pending, steered []string) {
	t.Helper()
	e := newEnv(t, fake.ClusterOptions{Nodes: 24, Busy: 0.9, MaxJob: 6 * time.Hour}, 2)
	e.w.KeepBusy(0.9, 6*time.Hour, 15*time.Minute, e.w.Now().Add(48*time.Hour))
	steerThrough(t, e, wrap(e.w.WLM()))
	s := e.create()
	var reset bool
	e.onEvent = func(ev crus.Event) {
		if ev.Kind != crus.EventStepStarted || ev.Step != 2 || reset {
			return
		}
		reset = true
		for _, x := range e.w.Steered() {
			e.w.AdminSteer(x, false)
		}
		e.w.Schedule(e.w.Now().Add(after), func() {
			steered = e.w.Steered()
			rec, err := e.store.Get(context.Background(), s.UpgradeID)
			require.NoError(t, err)
			pending = []string{}
			for _, n := range rec.Progress.Nodes {
				if n.Phase == crus.PhasePending {
					pending = append(pending, n.XName)
				}
			}
		})
	}
	final, err := e.ex.Run(context.Background(), s.UpgradeID)
	require.NoError(t, err)
	e.check(final)
	require.True(t, reset)
	require.NotNil(t, pending, "the session ran for %s after the reset", after)
	require.NotEmpty(t, pending)
	slices.Sort(pending)
	return pending, steered
}

// placeUnread is the fake workload manager with node reads that do not
// tell a node's place in its choice (wlm.SteeringUnknown), as an adapter
// that cannot read it.
type placeUnread struct{ *fake.WLM }

func (m placeUnread) Nodes(ctx context.Context, names []string) ([]wlm.Node, error) {
	nodes, err := m.WLM.Nodes(ctx, names)
	for k := range nodes {
		nodes[k].Steering = wlm.SteeringUnknown
	}
	return nodes, err
}

func (m placeUnread) NodesInto(ctx context.Context, names []string, out []wlm.Node) error {
	err := m.WLM.NodesInto(ctx, names, out)
	for k := range out {
		out[k].Steering = wlm.SteeringUnknown
	}
	return err
}

// TestCreateRefusesNodesSteeredAlready: a scheduled session is refused,
// with every such node named and nothing changed, when the workload
// manager reports nodes of its starting group as its last choice already
// before it exists. crus could not tell the site's setting from its own,
// and would change it when it gives the nodes their place back (Slurm: a
// site's weight of 9,000,000, above slurm.SteerWeight, came back as
// 611,392 after a session on the real cluster). The other strategies do
// not steer, and take such nodes.
func TestCreateRefusesNodesSteeredAlready(t *testing.T) {
	e := newEnv(t, fake.ClusterOptions{Nodes: 6, Busy: 0.5, MaxJob: time.Hour}, 2)
	steered := []string{fake.XName(1), fake.XName(4)}
	for _, x := range steered {
		e.w.AdminSteer(x, true)
	}
	before := e.w.Calls()
	e.spec.Rollout = crus.Rollout{Strategy: crus.StrategyScheduled}
	for _, create := range []func(context.Context, crus.Spec) (*crus.Session, error){e.ex.Preview, e.ex.Create} {
		_, err := create(context.Background(), e.spec)
		require.ErrorIs(t, err, crus.ErrPreflight)
		require.ErrorIs(t, err, crus.ErrSteered)
		for _, x := range steered {
			n, _ := e.w.Node(x)
			assert.Contains(t, err.Error(), n.Name)
		}
		assert.Contains(t, err.Error(), "weight", "the error says what to change on Slurm")
	}
	assert.Equal(t, steered, e.w.Steered(), "the nodes keep the site's setting")
	assert.Empty(t, e.w.Reservations("crus-"))
	after := e.w.Calls()
	for _, op := range []string{"wlm.Steer", "wlm.Drain", "wlm.Reserve", "hsm.AddMembers"} {
		assert.Equal(t, before[op], after[op], "%s called by a refused Create", op)
	}
	list, err := e.store.List(context.Background())
	require.NoError(t, err)
	assert.Empty(t, list, "no session stored")

	// A rolling session does not steer: the nodes are taken as any.
	e.spec.Rollout = crus.Rollout{Strategy: crus.StrategyRolling}
	_, err = e.ex.Create(context.Background(), e.spec)
	require.NoError(t, err)
}
