package slurm_test

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/crus-go/crus/wlm"
	"github.com/crus-go/crus/wlm/slurm"
)

// A free-text field holding a newline and "NodeName=..." (a Reason= an
// operator or a health check set, an OS= the node itself reports) would
// start a record of its own: it must not stand for another node, whose
// state and boot time decide whether crus counts it upgraded. Output that
// shows a node twice is not understood: one error for the whole call.
func TestCLIShowNodeForgedRecord(t *testing.T) {
	const real1 = "NodeName=nid000001 Arch=x86_64\n   State=DOWN+DRAIN ThreadsPerCore=1\n   BootTime=1000 SlurmdStartTime=1000\n"
	for name, evil := range map[string]string{
		"reason":    "   Reason=bad dimm\nNodeName=nid000001 State=IDLE BootTime=4000000000 X= [root@1700000000]\n",
		"os":        "   OS=Linux\nNodeName=nid000001 State=IDLE BootTime=4000000000\n",
		"not found": "   Reason=bad dimm\n\nNode nid000001 not found\n",
	} {
		t.Run(name, func(t *testing.T) {
			out := real1 + "\nNodeName=nid000002 Arch=x86_64\n" + evil + "   State=IDLE+DRAIN ThreadsPerCore=1\n   BootTime=1000 SlurmdStartTime=1000\n\n"
			run := func(ctx context.Context, c slurm.Command) ([]byte, []byte, error) { return []byte(out), nil, nil }
			cli, err := slurm.NewCLI(slurm.Config{Runner: run})
			if err != nil {
				t.Fatal(err)
			}
			nodes, err := cli.Nodes(t.Context(), []string{"nid000001", "nid000002"})
			if err == nil || errors.Is(err, wlm.ErrNodeNotFound) || !strings.Contains(err.Error(), "twice") {
				t.Errorf("Nodes: %v, %v; want one error saying a node was shown twice", nodes, err)
			}
		})
	}
}
