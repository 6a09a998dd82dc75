package crus_test

import (
	"context"
	"errors"
	"fmt"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/crus-go/crus"
	"github.com/crus-go/crus/batch"
	"github.com/crus-go/crus/hsm"
	"github.com/crus-go/crus/internal/fake"
)

func TestNIDMapper(t *testing.T) {
	w := fake.New(fake.Options{})
	w.AddNode("x3000c0s19b1n0", 17)
	w.AddNode("x3000c0s19b2n0", 123456)
	m := crus.NIDMapper{Resolver: w.HSM()}
	got, err := m.WLMNames(context.Background(), []string{"x3000c0s19b1n0", "x3000c0s19b2n0"})
	require.NoError(t, err)
	assert.Equal(t, map[string]string{"x3000c0s19b1n0": "nid000017", "x3000c0s19b2n0": "nid123456"}, got)
	assert.Equal(t, 1, w.Calls()["hsm.NIDs"], "one lookup for many nodes")

	got, err = crus.NIDMapper{Resolver: w.HSM(), Format: "node%d"}.WLMNames(context.Background(), []string{"x3000c0s19b1n0", "x9c0s0b0n0"})
	assert.Equal(t, map[string]string{"x3000c0s19b1n0": "node17"}, got)
	assert.ErrorIs(t, err, hsm.ErrComponentNotFound)
	assert.Equal(t, []string{"x9c0s0b0n0"}, batch.FailedNodes(err))
}

func TestStaticAndFuncMappers(t *testing.T) {
	ctx := context.Background()
	got, err := crus.StaticMapper{"x1c0s0b0n0": "cn01"}.WLMNames(ctx, []string{"x1c0s0b0n0", "x1c0s0b0n1"})
	assert.Equal(t, map[string]string{"x1c0s0b0n0": "cn01"}, got)
	assert.Equal(t, []string{"x1c0s0b0n1"}, batch.FailedNodes(err))

	same := crus.MapperFunc(func(x string) (string, error) { return x, nil })
	got, err = same.WLMNames(ctx, []string{"x1c0s0b0n0"})
	require.NoError(t, err)
	assert.Equal(t, map[string]string{"x1c0s0b0n0": "x1c0s0b0n0"}, got)
}

func TestMapperMustBeOneToOne(t *testing.T) {
	e := newEnv(t, fake.ClusterOptions{Nodes: 3}, 1)
	e.cfg.Mapper = crus.MapperFunc(func(string) (string, error) { return "nid000001", nil })
	e.ex = e.executor()
	_, err := e.ex.Create(context.Background(), e.spec)
	require.Error(t, err)
	assert.ErrorIs(t, err, crus.ErrPreflight)
	assert.Contains(t, err.Error(), "maps 3 xnames to nid000001")
}

func TestBatchSplit(t *testing.T) {
	errA := &batch.NodeError{Node: "a", Err: errors.New("boom")}
	errB := &batch.NodeError{Node: "b", Err: hsm.ErrComponentNotFound}
	other := errors.New("connection reset")
	tests := []struct {
		name    string
		err     error
		perNode []string
		rest    bool
	}{
		{name: "nil", err: nil},
		{name: "one node", err: errA, perNode: []string{"a"}},
		{name: "joined", err: errors.Join(errA, errB), perNode: []string{"a", "b"}},
		{name: "multierror", err: batch.Nodes([]string{"a", "b"}, hsm.ErrComponentNotFound), perNode: []string{"a", "b"}},
		{name: "wrapped node error", err: fmt.Errorf("drain: %w", errA), perNode: []string{"a"}},
		{name: "mixed", err: errors.Join(errA, other), perNode: []string{"a"}, rest: true},
		{name: "call error only", err: other, rest: true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			perNode, rest := batch.Split(tc.err)
			assert.Equal(t, tc.perNode, batch.FailedNodes(tc.err))
			assert.Len(t, perNode, len(tc.perNode))
			assert.Equal(t, tc.rest, rest != nil)
		})
	}
	assert.Nil(t, batch.Nodes(nil, other))
}

func TestPermanentSentinels(t *testing.T) {
	assert.True(t, batch.IsPermanent(hsm.ErrGroupNotFound))
	assert.True(t, batch.IsPermanent(fmt.Errorf("x: %w", hsm.ErrGroupNotFound)))
	assert.False(t, batch.IsPermanent(errors.New("timeout")))
	assert.Equal(t, "hsm: group not found", hsm.ErrGroupNotFound.Error())
	assert.NotErrorIs(t, hsm.ErrGroupNotFound, hsm.ErrComponentNotFound)
}
