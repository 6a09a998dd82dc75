package e2e_test

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/crus-go/crus"
	"github.com/crus-go/crus/bos"
	"github.com/crus-go/crus/hsm"
	"github.com/crus-go/crus/internal/apispec"
	"github.com/crus-go/crus/internal/bosserver"
	"github.com/crus-go/crus/internal/fake"
	"github.com/crus-go/crus/internal/hsmserver"
)

const bootError = "kernel panic - not syncing: VFS: unable to mount root fs"

// worldBooter puts the simulated nodes of a fake.World behind the BOS test
// server: a BOS session's reboot becomes a reboot of the World's nodes,
// which its workload manager sees (down, then up with a new boot time),
// and the World's outcome of each boot becomes the BOS component's.
type worldBooter struct {
	w *fake.World
}

const worldTemplate, worldGroup = "e2e-world-boot", "e2e-world-all"

func (b worldBooter) Reboot(session string, xnames []string) {
	err := b.w.BOS().Reboot(context.Background(), bos.Request{Name: "w-" + session, Template: worldTemplate, Limit: xnames})
	if err != nil {
		panic(fmt.Sprintf("world reboot: %v", err)) // the test's own setup is wrong
	}
}

func (b worldBooter) Result(session, xname string) (bool, string) {
	st, err := b.w.BOS().Status(context.Background(), "w-"+session, []string{xname})
	if err != nil {
		return false, ""
	}
	r := st.Nodes[xname]
	return r.Result != bos.ResultInProgress, r.Reason
}

// groupWatch records every change of the upgrading group made while a BOS
// session is pending: BOS reads the group then, so such a change could add
// nodes to, or take nodes out of, a reboot.
type groupWatch struct {
	bos   *bosserver.Server
	label string
	mu    sync.Mutex
	bad   []string
}

func (g *groupWatch) wrap(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodGet && strings.Contains(r.URL.Path, "/groups/"+g.label+"/members") {
			if p := g.bos.Pending(); len(p) > 0 {
				g.mu.Lock()
				g.bad = append(g.bad, fmt.Sprintf("%s %s while BOS sessions %v are pending", r.Method, r.URL.Path, p))
				g.mu.Unlock()
			}
		}
		next.ServeHTTP(w, r)
	})
}

func (g *groupWatch) violations() []string {
	g.mu.Lock()
	defer g.mu.Unlock()
	return slices.Clone(g.bad)
}

type stack struct {
	world  *fake.World
	hsmSrv *hsmserver.Server
	bosSrv *bosserver.Server
	ex     *crus.Executor
	groups *hsm.Client
	boot   bos.Orchestrator
	watch  *groupWatch
	failed []string // nodes whose boots fail
}

func newStack(t *testing.T, nodes int, v1 bool) *stack {
	t.Helper()
	s := &stack{world: fake.NewCluster(fake.ClusterOptions{
		Options: fake.Options{Seed: 7}, Nodes: nodes, Busy: 0.6, MaxJob: 2 * time.Hour,
	})}
	xnames := s.world.XNames()
	// The World simulates the nodes; its own groups are not crus's.
	s.world.AddGroup(worldGroup, xnames...)
	s.world.AddTemplate(worldTemplate, worldGroup)
	for i, x := range xnames {
		if i%13 == 5 {
			s.world.SetFaults(x, fake.NodeFaults{BootFails: true, BootError: bootError})
			s.failed = append(s.failed, x)
		}
	}

	report := func(v apispec.Violation) { t.Errorf("API document violated: %s", v) }
	var err error
	if s.hsmSrv, err = hsmserver.New(hsmserver.Options{Report: report, Token: "e2e-token"}); err != nil {
		t.Fatal(err)
	}
	for _, x := range xnames {
		n, _ := s.world.Node(x)
		s.hsmSrv.AddComponent(x, n.NID)
	}
	s.hsmSrv.SetGroup(fake.StartingLabel, xnames...)
	s.hsmSrv.SetGroup(fake.UpgradingLabel)
	s.hsmSrv.SetGroup(fake.FailedLabel)
	if s.bosSrv, err = bosserver.New(bosserver.Options{
		V1: v1, Now: s.world.Now, PendingDelay: 15 * time.Second, Groups: s.hsmSrv.Group,
		Booter: worldBooter{s.world}, Report: report, Token: "e2e-token",
	}); err != nil {
		t.Fatal(err)
	}
	s.bosSrv.AddTemplate(fake.Template, []string{fake.UpgradingLabel}, nil)

	s.watch = &groupWatch{bos: s.bosSrv, label: fake.UpgradingLabel}
	hsmTS := httptest.NewServer(s.watch.wrap(s.hsmSrv))
	t.Cleanup(hsmTS.Close)
	bosTS := httptest.NewServer(s.bosSrv)
	t.Cleanup(bosTS.Close)

	log := slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelInfo}))
	groups, err := hsm.New(hsm.Config{BaseURL: hsmTS.URL + s.hsmSrv.Base(), Tokens: staticToken("e2e-token"), Logger: log})
	if err != nil {
		t.Fatal(err)
	}
	var boot bos.Orchestrator
	bcfg := bos.Config{BaseURL: bosTS.URL + s.bosSrv.Base(), Tokens: staticToken("e2e-token"), Logger: log}
	if v1 {
		boot, err = bos.NewV1(bos.V1Config{Config: bcfg})
	} else {
		boot, err = bos.New(bcfg)
	}
	if err != nil {
		t.Fatal(err)
	}
	if s.ex, err = crus.NewExecutor(groups, s.world.WLM(), boot, crus.Config{Clock: s.world, Logger: log}); err != nil {
		t.Fatal(err)
	}
	s.groups, s.boot = groups, boot
	return s
}

type staticToken string

func (s staticToken) Token(context.Context) (string, error) { return string(s), nil }

// TestFullStack: the executor upgrades 40 nodes in steps of 8 through the
// HTTP HSM and BOS servers; three nodes fail to boot.
func TestFullStack(t *testing.T) {
	for _, tc := range []struct {
		name  string
		v1    bool
		limit crus.BootLimit
	}{
		{"v2/limit=nodes", false, crus.LimitNodes},
		{"v2/limit=label", false, crus.LimitLabel},
		{"v1/limit=label", true, crus.LimitLabel},
	} {
		t.Run(tc.name, func(t *testing.T) {
			const nodes, step = 40, 8
			start := time.Now()
			s := newStack(t, nodes, tc.v1)
			ctx := t.Context()
			sess, err := s.ex.Create(ctx, crus.Spec{
				StartingLabel: fake.StartingLabel, UpgradingLabel: fake.UpgradingLabel, FailedLabel: fake.FailedLabel,
				StepSize: step, TemplateID: fake.Template, WorkloadManagerType: "slurm", BootLimit: tc.limit,
			})
			if err != nil {
				t.Fatalf("Create: %v", err)
			}
			simStart := s.world.Now()
			final, err := s.ex.Run(ctx, sess.UpgradeID)
			if err != nil {
				t.Fatalf("Run: %v", err)
			}
			c := final.Counts()
			t.Logf("%d nodes in steps of %d: %d upgraded, %d failed, %d skipped; %s simulated, %s wall; max out %d",
				c.Nodes, step, c.Upgraded, c.Failed, c.Skipped, s.world.Now().Sub(simStart).Round(time.Minute), time.Since(start).Round(time.Millisecond), s.world.MaxOut())

			if !final.Completed || c.Nodes != nodes || c.Failed != len(s.failed) || c.Upgraded != nodes-len(s.failed) || c.Untouched+c.Skipped != 0 {
				t.Errorf("final counts %+v (completed %v); want %d upgraded, %d failed", c, final.Completed, nodes-len(s.failed), len(s.failed))
			}
			for _, n := range final.Progress.Nodes {
				wantFail := slices.Contains(s.failed, n.XName)
				switch {
				case wantFail && (n.Outcome != crus.OutcomeFailed || !strings.Contains(n.Reason, "kernel panic")):
					t.Errorf("node %s: %s %q; want failed with BOS's reason", n.XName, n.Outcome, n.Reason)
				case !wantFail && n.Outcome != crus.OutcomeUpgraded:
					t.Errorf("node %s: %s %q; want upgraded", n.XName, n.Outcome, n.Reason)
				}
				if st, _ := s.world.Node(n.XName); st.Reboots != 1 {
					t.Errorf("node %s rebooted %d times, want once", n.XName, st.Reboots)
				}
			}
			if got, _ := s.hsmSrv.Group(fake.FailedLabel); !slices.Equal(got, sorted(s.failed)) {
				t.Errorf("failed group %v, want %v", got, sorted(s.failed))
			}
			if got, _ := s.hsmSrv.Group(fake.UpgradingLabel); len(got) != 0 {
				t.Errorf("upgrading group left with %v", got)
			}
			if v := s.watch.violations(); len(v) > 0 {
				t.Errorf("the upgrading group changed while BOS could read it: %v", v)
			}
			if m := s.world.MaxOut(); m > step {
				t.Errorf("%d nodes out at once, step size %d", m, step)
			}
			if v := s.world.Violations(); len(v) > 0 {
				t.Errorf("violations: %v", v)
			}
			steps := nodes / step
			if tc.v1 {
				if n := len(s.bosSrv.V1Sessions()); n != steps {
					t.Errorf("%d BOS v1 sessions for %d steps", n, steps)
				}
			} else if n := len(s.bosSrv.Sessions()); n != steps {
				t.Errorf("%d BOS sessions for %d steps: %v", n, steps, s.bosSrv.Sessions())
			}
			t.Logf("HSM requests %v", s.hsmSrv.Requests())
			t.Logf("BOS requests %v", s.bosSrv.Requests())
		})
	}
}

func sorted(s []string) []string {
	out := slices.Clone(s)
	slices.Sort(out)
	return out
}

// TestGroupWatch checks the full-stack test's watch: a change of the
// upgrading group while a BOS session is pending is caught.
func TestGroupWatch(t *testing.T) {
	s := newStack(t, 8, false)
	ctx := t.Context()
	x := s.world.XNames()
	if err := s.groups.AddMembers(ctx, fake.UpgradingLabel, x[:1]); err != nil {
		t.Fatal(err)
	}
	if v := s.watch.violations(); len(v) != 0 {
		t.Fatalf("no session yet, but %v", v)
	}
	if err := s.boot.Reboot(ctx, bos.Request{Name: "w1", Template: fake.Template, Limit: []string{fake.UpgradingLabel}}); err != nil {
		t.Fatal(err)
	}
	if err := s.groups.AddMembers(ctx, fake.UpgradingLabel, x[1:2]); err != nil {
		t.Fatal(err)
	}
	if v := s.watch.violations(); len(v) != 1 {
		t.Errorf("a change while the session is pending: %v; want it caught", v)
	}
	s.world.Advance(time.Minute)
	if st, err := s.boot.Status(ctx, "w1", nil); err != nil || st.Phase != bos.PhaseRunning {
		t.Fatalf("Status = %+v, %v", st, err)
	}
	if err := s.groups.RemoveMembers(ctx, fake.UpgradingLabel, x[:2]); err != nil {
		t.Fatal(err)
	}
	if v := s.watch.violations(); len(v) != 1 {
		t.Errorf("a change once the session runs was caught: %v", v)
	}
}
