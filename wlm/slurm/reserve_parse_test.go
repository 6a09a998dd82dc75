package slurm

import (
	"strings"
	"testing"
	"time"

	"github.com/crus-go/crus/wlm"
)

func TestParseShowReservation(t *testing.T) {
	out := []byte(`ReservationName=crus-s1-3 StartTime=1893456000 EndTime=1893459600 Duration=01:00:00 Nodes=nid[000002-000003],nid000001 NodeCnt=3 CoreCnt=3 Features=(null) PartitionName=(null) Flags=MAINT,IGNORE_JOBS,SPEC_NODES TRES=cpu=3 Users=root Groups=(null) Accounts=(null) Licenses=(null) State=INACTIVE BurstBuffer=(null) Watts=n/a MaxStartDelay=(null)
ReservationName=lic StartTime=2030-01-01T00:00:00 EndTime=2030-01-01T01:00:00 Duration=01:00:00 Nodes=(null) NodeCnt=0 Comment=two words here Users=root
`)
	got, err := parseShowReservation(out, "")
	if err != nil {
		t.Fatal(err)
	}
	want := []wlm.Reservation{
		{Name: "crus-s1-3", Nodes: []string{"nid000001", "nid000002", "nid000003"}, Start: time.Unix(1893456000, 0), End: time.Unix(1893459600, 0)},
		{Name: "lic", Start: time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC), End: time.Date(2030, 1, 1, 1, 0, 0, 0, time.UTC)},
	}
	if len(got) != len(want) {
		t.Fatalf("got %+v", got)
	}
	for i := range want {
		if got[i].Name != want[i].Name || !got[i].Start.Equal(want[i].Start) || !got[i].End.Equal(want[i].End) || strings.Join(got[i].Nodes, ",") != strings.Join(want[i].Nodes, ",") {
			t.Errorf("reservation %d: got %+v, want %+v", i, got[i], want[i])
		}
	}
	if res, err := parseShowReservation([]byte("No reservations in the system\n"), ""); err != nil || len(res) != 0 {
		t.Errorf("no reservations: %v, %v", res, err)
	}
	for _, bad := range []string{"StartTime=1 EndTime=2\n", "ReservationName=x StartTime=soon EndTime=2\n", "ReservationName=x StartTime=1 EndTime=2 Nodes=nid[1-\n"} {
		if _, err := parseShowReservation([]byte(bad), ""); err == nil {
			t.Errorf("%q: no error", bad)
		}
	}

	// The site's reservations are not crus's to read: one crus cannot
	// read does not hide the session's own. One of the session's that
	// cannot be read is an error, and so is a line without a name.
	site := "ReservationName=site-maint StartTime=soon EndTime=later Nodes=rack[1-\n" +
		"ReservationName=crus-s1-1 StartTime=1893456000 EndTime=1893459600 Nodes=nid000004\n"
	got, err = parseShowReservation([]byte(site), "crus-s1-")
	if err != nil || len(got) != 1 || got[0].Name != "crus-s1-1" || strings.Join(got[0].Nodes, ",") != "nid000004" {
		t.Errorf("beside a site reservation crus cannot read: %+v, %v", got, err)
	}
	for _, bad := range []string{
		"ReservationName=crus-s1-2 StartTime=soon EndTime=2\n",
		"ReservationName=site StartTime=1 EndTime=2\nStartTime=1 EndTime=2\n",
	} {
		if _, err := parseShowReservation([]byte(bad), "crus-s1-"); err == nil {
			t.Errorf("%q: no error", bad)
		}
	}
}

// FuzzParseShowReservation: whatever scontrol prints, the parser returns
// an error or reservations of the prefix asked, each with its times in
// order of reading and its nodes sorted.
func FuzzParseShowReservation(f *testing.F) {
	f.Add([]byte("ReservationName=crus-s1-3 StartTime=1893456000 EndTime=1893459600 Duration=01:00:00 Nodes=nid[000002-000003],nid000001 NodeCnt=3 Flags=MAINT,IGNORE_JOBS Users=root State=INACTIVE\n"), "crus-s1-")
	f.Add([]byte("ReservationName=lic StartTime=2030-01-01T00:00:00 EndTime=2030-01-01T01:00:00 Nodes=(null) Comment=two words here\n"), "")
	f.Add([]byte("No reservations in the system\n"), "crus-")
	f.Fuzz(func(t *testing.T, out []byte, prefix string) {
		got, err := parseShowReservation(out, prefix)
		if err != nil {
			return
		}
		for _, r := range got {
			if !strings.HasPrefix(r.Name, prefix) {
				t.Fatalf("%q is not of prefix %q", r.Name, prefix)
			}
			for i := 1; i < len(r.Nodes); i++ {
				if r.Nodes[i] < r.Nodes[i-1] {
					t.Fatalf("%s: nodes not sorted: %q", r.Name, r.Nodes)
				}
			}
		}
	})
}
