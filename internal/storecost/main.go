// Command storecost measures what the durable stores cost: it runs whole
// sessions on the in-memory backends of internal/fake, in virtual time,
// on each store (memory, file, etcd) and each strategy (classic,
// rolling), and prints one row each: writes, bytes per write, bytes
// written in total and per node upgraded, and for etcd the revisions and
// the growth of its database (Status's DbSize).
//
//	go run ./internal/storecost                       # 10,000 nodes, steps of 50
//	go run ./internal/storecost -nodes 160000 -stores file -strategies rolling
//	go run ./internal/storecost -stores etcd -strategies rolling -repeat 10
//
// The etcd runs start their own etcd (Debian's etcd-server) with its
// defaults — no auto-compaction, 2 GB quota — on loopback, and stop it by
// its pid.
package main

import (
	"context"
	"flag"
	"fmt"
	"log"
	"os"
	"runtime"
	"strings"
	"sync/atomic"
	"text/tabwriter"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/crus-go/crus"
	"github.com/crus-go/crus/internal/etcdtest"
	"github.com/crus-go/crus/internal/fake"
	"github.com/crus-go/crus/store/etcdstore"
	"github.com/crus-go/crus/store/filestore"
)

func main() {
	nodes := flag.Int("nodes", 10000, "nodes in the simulated cluster")
	step := flag.Int("step", 50, "upgrade step size")
	stores := flag.String("stores", "memory,file,etcd", "stores to measure")
	strategies := flag.String("strategies", "classic,rolling", "strategies to measure")
	repeat := flag.Int("repeat", 1, "sessions in a row on each store (the same etcd, the same directory)")
	seed := flag.Uint64("seed", 1, "random seed of the simulated cluster")
	flag.Parse()
	log.SetFlags(0)

	var etcd *etcdtest.Server
	var client *clientv3.Client
	if strings.Contains(*stores, "etcd") {
		var err error
		if etcd, err = etcdtest.StartServer(); err != nil {
			log.Fatal(err)
		}
		defer etcd.Stop()
		if client, err = etcd.NewClient(); err != nil {
			log.Fatal(err)
		}
		defer client.Close()
	}
	tw := tabwriter.NewWriter(os.Stdout, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintf(tw, "store, strategy\tsession\twrites\tper write\twritten\tper node upgraded\tetcd revisions\tetcd DB before → after\twall\t\n")
	for _, store := range strings.Split(*stores, ",") {
		for _, strategy := range strings.Split(*strategies, ",") {
			dir, err := os.MkdirTemp("", "crus-storecost-")
			if err != nil {
				log.Fatal(err)
			}
			for i := range *repeat {
				r, err := measure(store, strategy, *nodes, *step, *seed+uint64(i), dir, client, etcd, fmt.Sprintf("/crus-%s-%s/", store, strategy))
				if err != nil {
					log.Fatalf("%s, %s: %v", store, strategy, err)
				}
				fmt.Fprintf(os.Stderr, "%s, %s, session %d: %d writes, %d bytes, %s\n", store, strategy, i+1, r.writes, r.bytes, r.wall.Round(100*time.Millisecond))
				fmt.Fprintf(tw, "%s, %s\t%d\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t\n", store, strategy, i+1, thousands(r.writes),
					r.bytesOr(r.bytes/max(r.writes, 1)), r.bytesOr(r.bytes), r.bytesOr(r.bytes/max(int64(r.upgraded), 1)),
					r.revisions(), r.dbSizes(), r.wall.Round(100*time.Millisecond))
			}
			os.RemoveAll(dir)
		}
	}
	tw.Flush()
	if status, err := os.ReadFile("/proc/self/status"); err == nil {
		for _, l := range strings.Split(string(status), "\n") {
			if strings.HasPrefix(l, "VmHWM:") {
				fmt.Printf("peak memory (resident): %s\n", strings.TrimSpace(strings.TrimPrefix(l, "VmHWM:")))
			}
		}
	}
}

type result struct {
	writes, bytes       int64
	memory              bool
	upgraded            int
	revBefore, revAfter int64
	dbBefore, dbAfter   int64
	wall                time.Duration
}

func (r result) bytesOr(n int64) string {
	if r.memory {
		return "—"
	}
	return size(n)
}

func (r result) revisions() string {
	if r.revAfter == 0 {
		return "—"
	}
	return fmt.Sprintf("%s (%.1f/node)", thousands(r.revAfter-r.revBefore), float64(r.revAfter-r.revBefore)/float64(max(r.upgraded, 1)))
}

func (r result) dbSizes() string {
	if r.dbAfter == 0 {
		return "—"
	}
	return size(r.dbBefore) + " → " + size(r.dbAfter)
}

// counting counts the writes through a store, keeping its optional
// interfaces.
type counting struct {
	st interface {
		crus.Store
		crus.RevisionReader
		crus.Reserver
		crus.NodeUpdater
	}
	writes atomic.Int64
}

func (c *counting) Create(ctx context.Context, s *crus.Session) error {
	c.writes.Add(1)
	return c.st.Create(ctx, s)
}
func (c *counting) CreateReserved(ctx context.Context, s *crus.Session) error {
	c.writes.Add(1)
	return c.st.CreateReserved(ctx, s)
}
func (c *counting) Update(ctx context.Context, s *crus.Session) error {
	c.writes.Add(1)
	return c.st.Update(ctx, s)
}
func (c *counting) UpdateNodes(ctx context.Context, s *crus.Session, changed []int) error {
	c.writes.Add(1)
	return c.st.UpdateNodes(ctx, s, changed)
}
func (c *counting) Get(ctx context.Context, id string) (*crus.Session, error) {
	return c.st.Get(ctx, id)
}
func (c *counting) List(ctx context.Context) ([]*crus.Session, error) { return c.st.List(ctx) }
func (c *counting) Delete(ctx context.Context, id string) error       { return c.st.Delete(ctx, id) }
func (c *counting) Revision(ctx context.Context, id string) (int64, error) {
	return c.st.Revision(ctx, id)
}
func (c *counting) Reservations(ctx context.Context) ([]crus.Reservation, error) {
	return c.st.Reservations(ctx)
}

func measure(store, strategy string, nodes, step int, seed uint64, dir string, client *clientv3.Client, etcd *etcdtest.Server, prefix string) (result, error) {
	ctx := context.Background()
	var r result
	var bytes func() int64
	cs := &counting{}
	switch store {
	case "memory":
		cs.st = crus.NewMemoryStore()
		r.memory = true
	case "file":
		st, err := filestore.Open(dir, filestore.Options{})
		if err != nil {
			return r, err
		}
		defer st.Close()
		cs.st, bytes = st, func() int64 { return st.Stats().Bytes }
	case "etcd":
		st, err := etcdstore.New(client, etcdstore.Config{Prefix: prefix})
		if err != nil {
			return r, err
		}
		cs.st, bytes = st, func() int64 { return st.Stats().Bytes }
		status, err := client.Status(ctx, etcd.Endpoint)
		if err != nil {
			return r, err
		}
		r.dbBefore, r.revBefore = status.DbSize, status.Header.Revision
	default:
		return r, fmt.Errorf("unknown store %q (memory, file or etcd)", store)
	}
	world := fake.NewCluster(fake.ClusterOptions{Options: fake.Options{Seed: seed}, Nodes: nodes, Busy: 0.8, MaxJob: 6 * time.Hour})
	world.KeepBusy(0.8, 6*time.Hour, 10*time.Minute, time.Time{})
	ex, err := crus.NewExecutor(world.HSM(), world.WLM(), world.BOS(), crus.Config{Clock: world, Store: cs})
	if err != nil {
		return r, err
	}
	spec := crus.Spec{
		StartingLabel: fake.StartingLabel, UpgradingLabel: fake.UpgradingLabel, FailedLabel: fake.FailedLabel,
		StepSize: step, TemplateID: fake.Template, WorkloadManagerType: "slurm",
	}
	switch strategy {
	case "classic":
	case "rolling":
		spec.Strategy = crus.StrategyRolling
	default:
		return r, fmt.Errorf("unknown strategy %q (classic or rolling)", strategy)
	}
	start := time.Now()
	var b0 int64
	if bytes != nil {
		b0 = bytes()
	}
	s, err := ex.Create(ctx, spec)
	if err != nil {
		return r, err
	}
	final, err := ex.Run(ctx, s.UpgradeID)
	if err != nil {
		return r, err
	}
	r.wall = time.Since(start)
	r.writes = cs.writes.Load()
	r.upgraded = final.Counts().Upgraded
	if bytes != nil {
		r.bytes = bytes() - b0
	}
	if store == "etcd" {
		status, err := client.Status(ctx, etcd.Endpoint)
		if err != nil {
			return r, err
		}
		r.dbAfter, r.revAfter = status.DbSize, status.Header.Revision
	}
	runtime.GC()
	return r, nil
}

func size(n int64) string {
	switch {
	case n >= 10<<30:
		return fmt.Sprintf("%.0f GB", float64(n)/1e9)
	case n >= 1e9:
		return fmt.Sprintf("%.2f GB", float64(n)/1e9)
	case n >= 10e6:
		return fmt.Sprintf("%.0f MB", float64(n)/1e6)
	case n >= 1e6:
		return fmt.Sprintf("%.1f MB", float64(n)/1e6)
	case n >= 10e3:
		return fmt.Sprintf("%.0f KB", float64(n)/1e3)
	case n >= 1e3:
		return fmt.Sprintf("%.1f KB", float64(n)/1e3)
	}
	return fmt.Sprintf("%d B", n)
}

func thousands(n int64) string {
	s := fmt.Sprint(n)
	var b strings.Builder
	for i, c := range s {
		if i > 0 && (len(s)-i)%3 == 0 {
			b.WriteByte(',')
		}
		b.WriteRune(c)
	}
	return b.String()
}
