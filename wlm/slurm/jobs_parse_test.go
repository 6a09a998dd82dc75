package slurm

import (
	"testing"
	"time"
)

func TestParseJobs(t *testing.T) {
	jobs, err := parseJobs([]byte("12|ann|RUNNING|1795977040|1795984240|nid[000001-000002]\n13|bob|COMPLETED|1795977000|1795977060|nid000003\n14|cid|PENDING|0|0|\n"))
	if err != nil {
		t.Fatal(err)
	}
	if len(jobs) != 3 {
		t.Fatalf("%+v", jobs)
	}
	r, d := jobs[0], jobs[1]
	if r.ID != "12" || r.User != "ann" || len(r.Nodes) != 2 || !r.Start.Equal(time.Unix(1795977040, 0)) || !r.Limit.Equal(time.Unix(1795984240, 0)) || !r.End.IsZero() {
		t.Errorf("running: %+v", r)
	}
	if d.User != "bob" || !d.End.Equal(time.Unix(1795977060, 0)) || !d.Limit.IsZero() || d.Nodes[0] != "nid000003" {
		t.Errorf("ended: %+v", d)
	}
	for _, bad := range []string{"12|ann|RUNNING|x|1|n1\n", "12|ann|RUNNING|1|2\n", "12|ann|RUNNING|1|2|n[1-\n"} {
		if _, err := parseJobs([]byte(bad)); err == nil {
			t.Errorf("%q: no error", bad)
		}
	}
}
