package sim

import (
	"context"
	"errors"
	"math"
	"testing"
	"time"

	"github.com/crus-go/crus/internal/fake"
)

// TestRunSnapshot: from a snapshot of 40 nodes, some busy until known
// ends and two out of service, every strategy upgrades the nodes in
// service within its cap, skips the others, and none finishes before the
// longest job it must wait for.
func TestRunSnapshot(t *testing.T) {
	now := time.Date(2026, 3, 2, 9, 0, 0, 0, time.UTC)
	snap := Snapshot{Now: now}
	for i := range 40 {
		n := SnapshotNode{XName: fake.XName(i), InService: true}
		switch {
		case i == 7 || i == 21:
			n.InService, n.Reason = false, "drain (admin)"
		case i%3 == 0:
			n.JobEnd = now.Add(time.Duration(i) * 5 * time.Minute)
		}
		snap.Nodes = append(snap.Nodes, n)
	}
	longest := 39 * 5 * time.Minute
	for _, st := range Strategies(time.Hour) {
		p, err := RunSnapshot(context.Background(), snap, SnapshotConfig{Step: 5, Seed: 1}, st)
		if err != nil {
			t.Fatalf("%s: %v", st.Name, err)
		}
		if p.Upgraded != 38 || p.Skipped != 2 || p.Failed != 0 {
			t.Errorf("%s: %d upgraded, %d skipped, %d failed; want 38, 2, 0", st.Name, p.Upgraded, p.Skipped, p.Failed)
		}
		if st.Name != "reboot-asap" && p.MaxOut > 5 {
			t.Errorf("%s: %d out at once, cap 5", st.Name, p.MaxOut)
		}
		if p.Makespan < longest {
			t.Errorf("%s: done in %s, before the longest job (%s) ended", st.Name, p.Makespan, longest)
		}
		if len(p.Out) == 0 || p.Floor != 38*10*time.Minute {
			t.Errorf("%s: out %v, floor %s", st.Name, p.Out, p.Floor)
		}
		t.Logf("%-24s makespan %6s lost %6.1f node-h max out %d", st.Name, p.Makespan.Round(time.Minute), p.Lost.Hours(), p.MaxOut)
	}
}

// TestRunSnapshotTooLong: a node whose job runs for a year (slurm shows
// an unlimited job as ending a year after its start) stops each crus
// strategy's simulation at MaxDuration with ErrTooLong, and invalid
// settings are refused before any simulation.
func TestRunSnapshotTooLong(t *testing.T) {
	now := time.Date(2026, 3, 2, 9, 0, 0, 0, time.UTC)
	snap := Snapshot{Now: now, Nodes: []SnapshotNode{
		{XName: fake.XName(0), InService: true, JobEnd: now.Add(365 * 24 * time.Hour)},
		{XName: fake.XName(1), InService: true},
	}}
	for _, st := range Strategies(time.Hour) {
		if st.RebootASAP {
			continue
		}
		_, err := RunSnapshot(context.Background(), snap, SnapshotConfig{Step: 1, MaxDuration: 24 * time.Hour}, st)
		if !errors.Is(err, ErrTooLong) {
			t.Errorf("%s: %v, want ErrTooLong", st.Name, err)
		}
	}
	for _, bad := range []SnapshotConfig{
		{Step: 1, Load: 2}, {Step: 1, Load: math.NaN()}, {Step: 1, RebootTime: -time.Minute},
		{Step: 1, RebootTime: 2 * time.Minute, RebootJitter: 2 * time.Minute}, {Step: 1, MaxDuration: -1},
		{Step: 1, RebootJitter: 15 * time.Minute}, // longer than the default reboot time
	} {
		if _, err := RunSnapshot(context.Background(), snap, bad, Strategies(time.Hour)[0]); err == nil {
			t.Errorf("%+v: no error", bad)
		}
	}
}
