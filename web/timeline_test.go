package web_test

import (
	"bytes"
	"context"
	"encoding/xml"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/crus-go/crus"
	"github.com/crus-go/crus/internal/fake"
	"github.com/crus-go/crus/web"
)

// TestTimeline draws a finished session: well-formed SVG with one bar per
// step, the cap line, and an area of nodes out of service never above it.
func TestTimeline(t *testing.T) {
	world := fake.NewCluster(fake.ClusterOptions{Nodes: 30, Busy: 0.6, MaxJob: time.Hour})
	world.SetFaults(fake.XName(4), fake.NodeFaults{BootFails: true})
	ex, err := crus.NewExecutor(world.HSM(), world.WLM(), world.BOS(), crus.Config{Clock: world})
	if err != nil {
		t.Fatal(err)
	}
	s, err := ex.Create(context.Background(), crus.Spec{
		StartingLabel: fake.StartingLabel, UpgradingLabel: fake.UpgradingLabel, FailedLabel: fake.FailedLabel,
		StepSize: 7, TemplateID: fake.Template, WorkloadManagerType: "slurm",
	})
	if err != nil {
		t.Fatal(err)
	}
	final, err := ex.Run(context.Background(), s.UpgradeID)
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	if err := web.Timeline(&buf, final, web.TimelineOptions{}); err != nil {
		t.Fatal(err)
	}
	steps, caps, failed := 0, 0, 0
	var outPath string
	dec := xml.NewDecoder(bytes.NewReader(buf.Bytes()))
	for {
		tok, err := dec.Token()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatalf("not well-formed SVG: %v\n%s", err, buf.String())
		}
		el, ok := tok.(xml.StartElement)
		if !ok {
			continue
		}
		for _, a := range el.Attr {
			switch {
			case a.Name.Local == "class" && a.Value == "step":
				steps++
			case a.Name.Local == "class" && a.Value == "cap":
				caps++
			case a.Name.Local == "fill" && a.Value == "#d03030" && el.Name.Local == "circle":
				failed++
			}
		}
		if el.Name.Local == "path" {
			for _, a := range el.Attr {
				if a.Name.Local == "d" {
					outPath = a.Value
				}
			}
		}
	}
	if steps != final.Progress.Steps || steps != 5 {
		t.Errorf("%d step bars; the session had %d steps", steps, final.Progress.Steps)
	}
	if caps != 1 {
		t.Errorf("%d cap lines", caps)
	}
	if failed < 2 { // the legend's and the failing step's
		t.Errorf("no failed-node marker")
	}
	if !strings.HasPrefix(outPath, "M") || strings.Count(outPath, "L") < 100 {
		t.Errorf("the out-of-service area is missing: %.80s", outPath)
	}
	if !strings.Contains(buf.String(), "most out at once: 7") {
		t.Errorf("the picture does not say the most out was the cap (7): %s", buf.String()[max(0, buf.Len()-300):])
	}
}
