// Package batch holds the small vocabulary shared by crus's batch-shaped
// backend calls: the per-node error that lets one node's failure be reported
// without failing the whole call, and the mark of errors that retrying
// cannot fix.
//
// Every backend interface of crus (wlm.Manager, hsm.GroupStore,
// bos.Orchestrator) takes many nodes in one call. When the call as a whole
// works but some nodes are refused, the implementation returns a
// [*NodeError] per refused node, joined with [errors.Join] or
// [github.com/hashicorp/go-multierror]. The caller splits such an error with
// [Split]: every node named there failed, every other node succeeded.
package batch

import (
	"errors"
	"slices"

	"github.com/hashicorp/go-multierror"
)

// NodeError reports that a batch call failed for one node.
type NodeError struct {
	Node string // the node's name as given to the call
	Err  error  // why; wraps the backend's sentinel (e.g. wlm.ErrNodeNotFound)
}

func (e *NodeError) Error() string { return e.Node + ": " + e.Err.Error() }

// Unwrap returns the cause, so errors.Is(err, wlm.ErrNodeNotFound) matches.
func (e *NodeError) Unwrap() error { return e.Err }

// Nodes is a convenience for implementations: it returns one *NodeError for
// each name, all with the same cause, joined. It returns nil for no names.
func Nodes(names []string, err error) error {
	var all *multierror.Error
	for _, n := range names {
		all = multierror.Append(all, &NodeError{Node: n, Err: err})
	}
	return all.ErrorOrNil()
}

// Split separates an error returned by a batch call into the failures of
// single nodes and whatever else went wrong. perNode maps each node named by
// a *NodeError to its cause (the first one, if a node is named twice); rest
// joins every other error, and is nil when all failures were per node.
//
// Split understands errors.Join trees (Unwrap() []error), go-multierror
// values and single wrapped errors. A *NodeError wrapped inside another
// error (fmt.Errorf("...: %w", nodeErr)) still counts as that node's.
func Split(err error) (perNode map[string]error, rest error) {
	if err == nil {
		return nil, nil
	}
	var others []error
	var walk func(error)
	walk = func(e error) {
		if e == nil {
			return
		}
		if m, ok := e.(*multierror.Error); ok {
			for _, w := range m.WrappedErrors() {
				walk(w)
			}
			return
		}
		if j, ok := e.(interface{ Unwrap() []error }); ok {
			for _, w := range j.Unwrap() {
				walk(w)
			}
			return
		}
		var ne *NodeError
		if errors.As(e, &ne) {
			if perNode == nil {
				perNode = make(map[string]error)
			}
			if _, seen := perNode[ne.Node]; !seen {
				perNode[ne.Node] = ne.Err
			}
			return
		}
		others = append(others, e)
	}
	walk(err)
	return perNode, errors.Join(others...)
}

// FailedNodes returns the sorted names of the nodes Split finds in err.
func FailedNodes(err error) []string {
	perNode, _ := Split(err)
	if len(perNode) == 0 {
		return nil
	}
	names := make([]string, 0, len(perNode))
	for n := range perNode {
		names = append(names, n)
	}
	slices.Sort(names)
	return names
}

// ErrPermanent is matched (errors.Is) by every error that retrying the same
// call cannot fix: an unknown node, a missing group or template, a refused
// request. Callers retry transient errors and stop at once on these.
var ErrPermanent = errors.New("permanent error")

type permanent struct{ msg string }

func (p *permanent) Error() string        { return p.msg }
func (p *permanent) Is(target error) bool { return target == ErrPermanent }

// NewPermanent returns a new sentinel error with the given text that also
// matches ErrPermanent. Packages use it to declare their sentinels:
//
//	var ErrNodeNotFound = batch.NewPermanent("wlm: node not found")
func NewPermanent(text string) error { return &permanent{msg: text} }

// IsPermanent reports whether err, or any error it wraps, matches
// ErrPermanent.
func IsPermanent(err error) bool { return errors.Is(err, ErrPermanent) }
