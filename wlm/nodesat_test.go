package wlm_test

import (
	"context"
	"errors"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/crus-go/crus/batch"
	"github.com/crus-go/crus/wlm"
)

// answering is a Manager whose Nodes gives a set answer, in its order.
type answering struct {
	wlm.Manager // (only Nodes is called)
	nodes       []wlm.Node
	err         error
}

func (a answering) Nodes(context.Context, []string) ([]wlm.Node, error) { return a.nodes, a.err }

// filling is answering as a NodesFiller that fills every place with one
// node.
type filling struct {
	answering
	fill wlm.Node
}

func (f filling) NodesInto(_ context.Context, _ []string, out []wlm.Node) error {
	for k := range out {
		out[k] = f.fill
	}
	return f.err
}

// TestNodesAt: the nodes by position from any Manager, whatever the order
// of its answer, with the nodes it left out zero; from NodesInto where the
// Manager has it.
func TestNodesAt(t *testing.T) {
	ctx := context.Background()
	a, b, c := wlm.Node{Name: "a", State: wlm.StateIdle}, wlm.Node{Name: "b", State: wlm.StateAllocated}, wlm.Node{Name: "c", Drain: true}
	notFound := batch.Nodes([]string{"b"}, wlm.ErrNodeNotFound)
	for _, tc := range []struct {
		name   string
		answer []wlm.Node
		err    error
		want   []wlm.Node
	}{
		{"in order", []wlm.Node{a, b, c}, nil, []wlm.Node{a, b, c}},
		{"another order", []wlm.Node{c, a, b}, nil, []wlm.Node{a, b, c}},
		{"one left out", []wlm.Node{a, c}, notFound, []wlm.Node{a, {}, c}},
		{"left out, another order", []wlm.Node{c, a}, notFound, []wlm.Node{a, {}, c}},
		{"none", nil, notFound, []wlm.Node{{}, {}, {}}},
		{"a name answered twice: the first", []wlm.Node{a, c, b, {Name: "b"}}, nil, []wlm.Node{a, b, c}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			out := []wlm.Node{{Name: "stale"}, {Name: "stale"}, {Name: "stale"}}
			err := wlm.NodesAt(ctx, answering{nodes: tc.answer, err: tc.err}, []string{"a", "b", "c"}, out)
			assert.Equal(t, tc.err, err)
			assert.Equal(t, tc.want, out)
		})
	}

	out := make([]wlm.Node, 2)
	boom := errors.New("boom")
	err := wlm.NodesAt(ctx, filling{answering{err: boom}, c}, []string{"x", "y"}, out)
	require.ErrorIs(t, err, boom)
	assert.Equal(t, []wlm.Node{c, c}, out, "a NodesFiller answers by position itself")

	err = wlm.NodesAt(ctx, answering{}, []string{"a"}, out)
	require.Error(t, err, "out must be as long as the names")
}
