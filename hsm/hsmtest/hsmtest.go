// Package hsmtest is the conformance suite every hsm.GroupStore must pass:
// the in-memory one of crus's tests, the HTTP client against HSM, and
// yours. It also covers the optional capabilities hsm.GroupCreator and
// hsm.NIDResolver when the store has them.
//
// It checks membership reads (sorted, unknown group), idempotent writes
// (adding a member twice, removing a non-member, concurrent adds of one
// member), the error contract (an unknown group fails the whole call with
// hsm.ErrGroupNotFound and changes nothing; a malformed or unknown xname is
// a *batch.NodeError naming it while the other nodes are still applied;
// a cancelled context changes nothing), and node ID lookups (unknown ids,
// which HSM leaves out of its answers silently, are reported per node). A
// store that passes needs no further unit tests of these semantics.
//
// Use it from a test of your store's package:
//
//	func TestConformance(t *testing.T) {
//		hsmtest.RunConformanceTests(t, func(ctx context.Context, t *testing.T) (hsmtest.Harness, error) {
//			return newHarness(ctx, t) // your HSM, or a fake of it
//		})
//	}
package hsmtest

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/crus-go/crus/batch"
	"github.com/crus-go/crus/hsm"
	"github.com/crus-go/crus/internal/conformance"
)

// Node is a component the suite may put into groups.
type Node struct {
	XName string
	NID   int
}

// Harness gives the suite a store and a backdoor to set up its groups.
type Harness interface {
	// Store returns the GroupStore under test.
	Store() hsm.GroupStore
	// Nodes returns at least 4 node components HSM knows, with their NIDs.
	Nodes() []Node
	// UnknownNode returns a well-formed node xname that is no component.
	UnknownNode() string
	// MakeGroup creates (or replaces) a group with these members, without
	// going through Store (the suite uses it to set up, not to test).
	MakeGroup(ctx context.Context, label string, members ...string) error
	// Close releases the harness.
	Close(ctx context.Context) error
}

// HarnessMaker makes a new Harness for one subtest.
type HarnessMaker func(ctx context.Context, t *testing.T) (Harness, error)

// Labels the suite uses. They are HSM-valid and unlikely to exist.
const (
	labelA       = "crus-hsmtest-a"
	labelB       = "crus-hsmtest-b"
	labelMissing = "crus-hsmtest-no-such-group"
	labelNew     = "crus-hsmtest-new"
)

const malformed = "x3000c0s19b1n0-not-an-xname"

// RunConformanceTests runs the suite.
func RunConformanceTests(t *testing.T, newHarness HarnessMaker) {
	t.Helper()
	tests := []struct {
		name string
		f    func(*suite)
	}{
		{"MembersSorted", (*suite).membersSorted},
		{"MembersEmptyGroup", (*suite).membersEmpty},
		{"MembersUnknownGroup", (*suite).membersUnknownGroup},
		{"AddMembers", (*suite).add},
		{"AddIdempotent", (*suite).addIdempotent},
		{"AddUnknownGroup", (*suite).addUnknownGroup},
		{"AddMalformedInBatch", (*suite).addMalformed},
		{"AddUnknownComponentInBatch", (*suite).addUnknownComponent},
		{"AddConcurrent", (*suite).addConcurrent},
		{"AddLeavesOtherGroups", (*suite).addLeavesOtherGroups},
		{"RemoveMembers", (*suite).remove},
		{"RemoveIdempotent", (*suite).removeIdempotent},
		{"RemoveUnknownGroup", (*suite).removeUnknownGroup},
		{"RemoveMalformedInBatch", (*suite).removeMalformed},
		{"EmptyBatches", (*suite).emptyBatches},
		{"CanceledContext", (*suite).canceled},
		{"CreateGroup", (*suite).createGroup},
		{"NIDs", (*suite).nids},
		{"NIDsUnknownInBatch", (*suite).nidsUnknown},
		{"NIDsMalformedInBatch", (*suite).nidsMalformed},
		{"NIDsEmpty", (*suite).nidsEmpty},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			ctx := t.Context()
			h := conformance.Open(t, newHarness)
			nodes := h.Nodes()
			if len(nodes) < 4 {
				t.Fatalf("harness gives %d nodes, the suite needs at least 4", len(nodes))
			}
			xs := make([]string, len(nodes))
			for i, n := range nodes {
				xs[i] = n.XName
			}
			tc.f(&suite{t: t, ctx: ctx, h: h, s: h.Store(), nodes: nodes, x: xs, unknown: h.UnknownNode()})
		})
	}
}

type suite struct {
	t       *testing.T
	ctx     context.Context
	h       Harness
	s       hsm.GroupStore
	nodes   []Node
	x       []string
	unknown string
}

func (s *suite) must(what string, err error) {
	s.t.Helper()
	if err != nil {
		s.t.Fatalf("%s: %v", what, err)
	}
}

func (s *suite) group(label string, members ...string) {
	s.t.Helper()
	s.must("MakeGroup", s.h.MakeGroup(s.ctx, label, members...))
}

// members reads a group through the store under test.
func (s *suite) members(label string) []string {
	s.t.Helper()
	m, err := s.s.Members(s.ctx, label)
	if err != nil {
		s.t.Fatalf("Members(%q): %v", label, err)
	}
	return m
}

func (s *suite) wantMembers(label string, want ...string) {
	s.t.Helper()
	want = slices.Clone(want)
	slices.Sort(want)
	if got := s.members(label); !slices.Equal(got, want) && !(len(got) == 0 && len(want) == 0) {
		s.t.Errorf("group %q has members %v, want %v", label, got, want)
	}
}

// perNode checks that err reports exactly the named node, per node, with
// the given sentinel (any of them), and names it in its message.
func (s *suite) perNode(call string, err error, node string, kinds ...error) {
	s.t.Helper()
	if err == nil {
		s.t.Fatalf("%s: no error; want one for %q", call, node)
	}
	perNode, rest := batch.Split(err)
	nerr, ok := perNode[node]
	if !ok || rest != nil {
		s.t.Fatalf("%s: error %v is not a *batch.NodeError for %q alone (per node %v, rest %v)", call, err, node, perNode, rest)
	}
	for n := range perNode {
		if n != node {
			s.t.Errorf("%s: node %s reported failed too: %v", call, n, perNode[n])
		}
	}
	matched := false
	for _, k := range kinds {
		matched = matched || errors.Is(nerr, k)
	}
	if !matched {
		s.t.Errorf("%s: error for %s is %v, want one matching %v", call, node, nerr, kinds)
	}
	if !strings.Contains(err.Error(), node) {
		s.t.Errorf("%s: error %q does not name %q", call, err, node)
	}
}

func (s *suite) groupNotFound(call string, err error) {
	s.t.Helper()
	if !errors.Is(err, hsm.ErrGroupNotFound) {
		s.t.Fatalf("%s on an unknown group: error %v, want hsm.ErrGroupNotFound", call, err)
	}
	if !errors.Is(err, batch.ErrPermanent) {
		s.t.Errorf("%s: error %v does not match batch.ErrPermanent", call, err)
	}
	if !strings.Contains(err.Error(), labelMissing) {
		s.t.Errorf("%s: error %q does not name the group %q", call, err, labelMissing)
	}
	if perNode, _ := batch.Split(err); len(perNode) > 0 {
		s.t.Errorf("%s: a missing group is a failure of the whole call, not of nodes %v", call, perNode)
	}
}

func (s *suite) membersSorted() {
	rev := slices.Clone(s.x)
	slices.Reverse(rev)
	s.group(labelA, rev...)
	got := s.members(labelA)
	if !slices.IsSorted(got) {
		s.t.Errorf("Members = %v, not sorted", got)
	}
	s.wantMembers(labelA, s.x...)
}

func (s *suite) membersEmpty() {
	s.group(labelA)
	if got := s.members(labelA); len(got) != 0 {
		s.t.Errorf("Members of an empty group = %v", got)
	}
}

func (s *suite) membersUnknownGroup() {
	_, err := s.s.Members(s.ctx, labelMissing)
	s.groupNotFound("Members", err)
}

func (s *suite) add() {
	s.group(labelA, s.x[0])
	s.must("AddMembers", s.s.AddMembers(s.ctx, labelA, []string{s.x[1], s.x[2]}))
	s.wantMembers(labelA, s.x[0], s.x[1], s.x[2])
}

func (s *suite) addIdempotent() {
	s.group(labelA, s.x[0])
	s.must("AddMembers of a member", s.s.AddMembers(s.ctx, labelA, []string{s.x[0]}))
	s.must("AddMembers of a member and a new node", s.s.AddMembers(s.ctx, labelA, []string{s.x[0], s.x[1]}))
	s.must("AddMembers again", s.s.AddMembers(s.ctx, labelA, []string{s.x[1], s.x[0], s.x[1]}))
	s.wantMembers(labelA, s.x[0], s.x[1])
}

func (s *suite) addUnknownGroup() {
	err := s.s.AddMembers(s.ctx, labelMissing, []string{s.x[0]})
	s.groupNotFound("AddMembers", err)
	if _, err := s.s.Members(s.ctx, labelMissing); !errors.Is(err, hsm.ErrGroupNotFound) {
		s.t.Errorf("after AddMembers to an unknown group, Members: %v; want the group still missing", err)
	}
}

func (s *suite) addMalformed() {
	s.group(labelA)
	err := s.s.AddMembers(s.ctx, labelA, []string{s.x[0], malformed, s.x[1]})
	s.perNode("AddMembers", err, malformed, hsm.ErrInvalidXName)
	s.wantMembers(labelA, s.x[0], s.x[1])
}

func (s *suite) addUnknownComponent() {
	s.group(labelA)
	err := s.s.AddMembers(s.ctx, labelA, []string{s.x[0], s.unknown})
	s.perNode("AddMembers", err, s.unknown, hsm.ErrComponentNotFound)
	s.wantMembers(labelA, s.x[0])
}

func (s *suite) addConcurrent() {
	s.group(labelA)
	var wg sync.WaitGroup
	errs := make([]error, 8)
	for i := range errs {
		wg.Go(func() { errs[i] = s.s.AddMembers(s.ctx, labelA, []string{s.x[0], s.x[1]}) })
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			s.t.Errorf("concurrent AddMembers #%d: %v", i, err)
		}
	}
	s.wantMembers(labelA, s.x[0], s.x[1])
}

func (s *suite) addLeavesOtherGroups() {
	s.group(labelA, s.x[0])
	s.group(labelB, s.x[2])
	s.must("AddMembers", s.s.AddMembers(s.ctx, labelA, []string{s.x[1]}))
	s.must("RemoveMembers", s.s.RemoveMembers(s.ctx, labelA, []string{s.x[0], s.x[2]}))
	s.wantMembers(labelA, s.x[1])
	s.wantMembers(labelB, s.x[2])
}

func (s *suite) remove() {
	s.group(labelA, s.x[0], s.x[1], s.x[2])
	s.must("RemoveMembers", s.s.RemoveMembers(s.ctx, labelA, []string{s.x[0], s.x[2]}))
	s.wantMembers(labelA, s.x[1])
}

func (s *suite) removeIdempotent() {
	s.group(labelA, s.x[0], s.x[1])
	s.must("RemoveMembers of a non-member", s.s.RemoveMembers(s.ctx, labelA, []string{s.x[2]}))
	s.must("RemoveMembers of a member and a non-member", s.s.RemoveMembers(s.ctx, labelA, []string{s.x[0], s.x[3]}))
	s.must("RemoveMembers again", s.s.RemoveMembers(s.ctx, labelA, []string{s.x[0]}))
	s.must("RemoveMembers of an unknown component", s.s.RemoveMembers(s.ctx, labelA, []string{s.unknown}))
	s.wantMembers(labelA, s.x[1])
}

func (s *suite) removeUnknownGroup() {
	err := s.s.RemoveMembers(s.ctx, labelMissing, []string{s.x[0]})
	s.groupNotFound("RemoveMembers", err)
}

// removeMalformed: a malformed xname cannot be a member. Stores may report
// it per node (hsm.ErrInvalidXName) or ignore it as a non-member; either
// way the other nodes are removed.
func (s *suite) removeMalformed() {
	s.group(labelA, s.x[0], s.x[1])
	err := s.s.RemoveMembers(s.ctx, labelA, []string{s.x[0], malformed})
	if err != nil {
		s.perNode("RemoveMembers", err, malformed, hsm.ErrInvalidXName)
	}
	s.wantMembers(labelA, s.x[1])
}

func (s *suite) emptyBatches() {
	s.group(labelA, s.x[0])
	s.must("AddMembers(nil)", s.s.AddMembers(s.ctx, labelA, nil))
	s.must("RemoveMembers(nil)", s.s.RemoveMembers(s.ctx, labelA, nil))
	s.wantMembers(labelA, s.x[0])
}

func (s *suite) canceled() {
	s.group(labelA, s.x[0])
	ctx, cancel := context.WithCancel(s.ctx)
	cancel()
	calls := map[string]error{}
	_, calls["Members"] = s.s.Members(ctx, labelA)
	calls["AddMembers"] = s.s.AddMembers(ctx, labelA, []string{s.x[1]})
	calls["RemoveMembers"] = s.s.RemoveMembers(ctx, labelA, []string{s.x[0]})
	for name, err := range calls {
		if !errors.Is(err, context.Canceled) {
			s.t.Errorf("%s with a canceled context: error %v, want context.Canceled", name, err)
		}
	}
	s.wantMembers(labelA, s.x[0])
}

func (s *suite) createGroup() {
	c, ok := s.s.(hsm.GroupCreator)
	if !ok {
		s.t.Skip("the store cannot create groups (hsm.GroupCreator)")
	}
	s.must("CreateGroup", c.CreateGroup(s.ctx, labelNew, "made by hsmtest"))
	s.wantMembers(labelNew)
	err := c.CreateGroup(s.ctx, labelNew, "again")
	if !errors.Is(err, hsm.ErrGroupExists) {
		s.t.Errorf("CreateGroup of an existing label: error %v, want hsm.ErrGroupExists", err)
	}
	for _, bad := range []string{"Upper-Case", "white space", ""} {
		if err := c.CreateGroup(s.ctx, bad, ""); !errors.Is(err, hsm.ErrInvalidLabel) {
			s.t.Errorf("CreateGroup(%q): error %v, want hsm.ErrInvalidLabel", bad, err)
		}
	}
	s.must("AddMembers to the new group", s.s.AddMembers(s.ctx, labelNew, []string{s.x[0]}))
	s.wantMembers(labelNew, s.x[0])
}

func (s *suite) resolver() hsm.NIDResolver {
	r, ok := s.s.(hsm.NIDResolver)
	if !ok {
		s.t.Skip("the store cannot resolve NIDs (hsm.NIDResolver)")
	}
	return r
}

func (s *suite) nids() {
	r := s.resolver()
	got, err := r.NIDs(s.ctx, s.x)
	s.must("NIDs", err)
	for _, n := range s.nodes {
		if nid, ok := got[n.XName]; !ok || nid != n.NID {
			s.t.Errorf("NIDs()[%s] = %d, %v; want %d", n.XName, nid, ok, n.NID)
		}
	}
	if len(got) != len(s.nodes) {
		s.t.Errorf("NIDs returned %d entries for %d nodes: %v", len(got), len(s.nodes), got)
	}
}

func (s *suite) nidsUnknown() {
	r := s.resolver()
	got, err := r.NIDs(s.ctx, []string{s.x[0], s.unknown, s.x[1]})
	s.perNode("NIDs", err, s.unknown, hsm.ErrComponentNotFound)
	if got[s.x[0]] != s.nodes[0].NID || got[s.x[1]] != s.nodes[1].NID {
		s.t.Errorf("NIDs with an unknown node in the batch = %v; want the known nodes' NIDs", got)
	}
	if _, ok := got[s.unknown]; ok {
		s.t.Errorf("NIDs gave a NID for the unknown node: %v", got)
	}
}

func (s *suite) nidsMalformed() {
	r := s.resolver()
	got, err := r.NIDs(s.ctx, []string{malformed, s.x[0]})
	s.perNode("NIDs", err, malformed, hsm.ErrInvalidXName, hsm.ErrComponentNotFound)
	if got[s.x[0]] != s.nodes[0].NID {
		s.t.Errorf("NIDs with a malformed xname in the batch = %v; want %s's NID %d", got, s.x[0], s.nodes[0].NID)
	}
}

func (s *suite) nidsEmpty() {
	r := s.resolver()
	got, err := r.NIDs(s.ctx, nil)
	if err != nil || len(got) != 0 {
		s.t.Errorf("NIDs(nil) = %v, %v; want nothing and no error", got, err)
	}
}

// String is for debugging.
func (n Node) String() string { return fmt.Sprintf("%s(nid %d)", n.XName, n.NID) }
