package hsm

import (
	"context"
	"fmt"
	"regexp"

	"github.com/crus-go/crus/batch"
)

// Sentinel errors, matched with errors.Is.
var (
	// ErrGroupNotFound: no group has this label.
	ErrGroupNotFound = batch.NewPermanent("hsm: group not found")
	// ErrComponentNotFound: HSM does not know the component (xname). Batch
	// calls report it per node in a *batch.NodeError.
	ErrComponentNotFound = batch.NewPermanent("hsm: component not found")
	// ErrInvalidXName: the string is not a node xname.
	ErrInvalidXName = batch.NewPermanent("hsm: invalid xname")
	// ErrInvalidLabel: the string is not a valid group label.
	ErrInvalidLabel = batch.NewPermanent("hsm: invalid group label")
	// ErrGroupExists: a group with this label already exists.
	ErrGroupExists = batch.NewPermanent("hsm: group already exists")
)

// GroupStore reads and edits HSM groups. All methods are safe for concurrent
// use and take xnames (e.g. "x3000c0s19b1n0").
//
// Errors: an unknown group gives ErrGroupNotFound (the whole call fails and
// nothing changes); a member the store refuses (malformed xname, component
// unknown to HSM) gives a *batch.NodeError for that node while the others are
// still applied; anything else is a failure of the whole call, retried by
// crus unless it matches batch.ErrPermanent.
type GroupStore interface {
	// Members returns the xnames in the group, sorted ascending.
	Members(ctx context.Context, label string) ([]string, error)

	// AddMembers puts the xnames in the group. Adding a node that is already
	// a member succeeds and changes nothing.
	AddMembers(ctx context.Context, label string, xnames []string) error

	// RemoveMembers takes the xnames out of the group. Removing a node that
	// is not a member succeeds and changes nothing.
	RemoveMembers(ctx context.Context, label string, xnames []string) error
}

// GroupCreator is implemented by a GroupStore that can create groups (for
// tooling and tests; crus itself never creates the session's groups).
type GroupCreator interface {
	// CreateGroup creates an empty group. It returns ErrGroupExists if the
	// label is taken.
	CreateGroup(ctx context.Context, label, description string) error
}

// NIDResolver looks up the node IDs (NIDs) of components. HSM's State
// Components carry the NID from which Slurm's NodeName is derived by
// convention ("nid%06d").
type NIDResolver interface {
	// NIDs returns the NID of each xname. An unknown or malformed xname is
	// a *batch.NodeError (ErrComponentNotFound or ErrInvalidXName).
	NIDs(ctx context.Context, xnames []string) (map[string]int, error)
}

var (
	labelRE = regexp.MustCompile(`^[-a-z0-9:._]+$`)
	xnameRE = regexp.MustCompile(`^x([0-9]{1,4})c([0-7])s([0-9]+)b([0-9]+)n([0-9]+)$`)
)

// ValidateLabel checks a group label against HSM's rule: lower case letters,
// digits and "-:._", at least one character. HSM lower-cases labels itself;
// crus refuses upper case instead, so that the label it records is the one
// HSM stores.
func ValidateLabel(label string) error {
	if labelRE.MatchString(label) {
		return nil
	}
	return fmt.Errorf("%w %q: must match %s", ErrInvalidLabel, label, labelRE)
}

// ValidateXName checks that s is a node xname in HSM's normal form
// (x<cabinet>c<chassis>s<slot>b<bmc>n<node>, lower case, such as
// "x3000c0s19b1n0").
func ValidateXName(s string) error {
	if xnameRE.MatchString(s) {
		return nil
	}
	return fmt.Errorf("%w %q: want the form x3000c0s19b1n0", ErrInvalidXName, s)
}
