package crus

import (
	"context"
	"errors"
	"fmt"
	"slices"

	"github.com/crus-go/crus/batch"
	"github.com/crus-go/crus/hsm"
)

// Mapper turns HSM xnames into the workload manager's node names. The
// executor maps every node once, when the session is created, and keeps
// both names in the session record.
type Mapper interface {
	// WLMNames returns the workload-manager name of each xname. An xname
	// it cannot map is a *batch.NodeError; the others are still mapped.
	WLMNames(ctx context.Context, xnames []string) (map[string]string, error)
}

// DefaultNIDFormat is the conventional Slurm NodeName of a node ID.
const DefaultNIDFormat = "nid%06d"

// NIDMapper maps xnames to names derived from HSM node IDs, in one lookup
// for many nodes. With an empty Format it uses DefaultNIDFormat
// ("nid%06d": NID 17 is "nid000017").
type NIDMapper struct {
	Resolver hsm.NIDResolver
	Format   string
}

// WLMNames implements Mapper.
func (m NIDMapper) WLMNames(ctx context.Context, xnames []string) (map[string]string, error) {
	format := m.Format
	if format == "" {
		format = DefaultNIDFormat
	}
	nids, err := m.Resolver.NIDs(ctx, xnames)
	out := make(map[string]string, len(nids))
	for x, nid := range nids {
		out[x] = fmt.Sprintf(format, nid)
	}
	return out, err
}

// StaticMapper maps xnames through a fixed table.
type StaticMapper map[string]string

// WLMNames implements Mapper.
func (m StaticMapper) WLMNames(_ context.Context, xnames []string) (map[string]string, error) {
	return MapperFunc(func(x string) (string, error) {
		if name, ok := m[x]; ok {
			return name, nil
		}
		return "", fmt.Errorf("no workload-manager name for %s in the static map", x)
	}).WLMNames(context.Background(), xnames)
}

// MapperFunc maps one xname at a time with a function (for example, to use
// the xname itself as the node name, or a site's naming rule).
type MapperFunc func(xname string) (string, error)

// WLMNames implements Mapper.
func (f MapperFunc) WLMNames(_ context.Context, xnames []string) (map[string]string, error) {
	out := make(map[string]string, len(xnames))
	var errs []error
	for _, x := range xnames {
		name, err := f(x)
		if err != nil {
			errs = append(errs, &batch.NodeError{Node: x, Err: err})
			continue
		}
		out[x] = name
	}
	return out, errors.Join(errs...)
}

// ErrNameMapping: the name mapper's answer cannot be used: it maps two
// xnames to one workload-manager name, or gives none for an xname. It is
// an input error, matching batch.ErrPermanent: retrying does not help.
var ErrNameMapping = batch.NewPermanent("crus: node name mapping")

// mapNames maps xnames and checks that the mapping is one to one. Errors
// for single xnames (the mapper's *batch.NodeError values) are returned as
// they are, with the names of the others; a mapping that is not one to one
// is ErrNameMapping.
func mapNames(ctx context.Context, m Mapper, xnames []string) (map[string]string, error) {
	names, err := m.WLMNames(ctx, xnames)
	perNode, rest := batch.Split(err)
	if rest != nil {
		return names, err
	}
	byName := map[string][]string{}
	var unnamed []string
	for _, x := range xnames {
		if perNode[x] != nil {
			continue
		}
		name, ok := names[x]
		if !ok || name == "" {
			unnamed = append(unnamed, x)
			continue
		}
		byName[name] = append(byName[name], x)
	}
	var errs []error
	if len(unnamed) > 0 {
		errs = append(errs, fmt.Errorf("%w: the name mapper gave no workload-manager name for %s: %s", ErrNameMapping, plural(len(unnamed), "xname"), abbreviate(unnamed, 20)))
	}
	for _, name := range sortedKeys(byName) {
		if xs := byName[name]; len(xs) > 1 {
			slices.Sort(xs)
			errs = append(errs, fmt.Errorf("%w: the name mapper maps %d xnames to %s: %s", ErrNameMapping, len(xs), name, abbreviate(xs, 20)))
		}
	}
	return names, errors.Join(append([]error{err}, errs...)...)
}

// nodeNames owns the two names of a session's nodes: HSM xnames and the
// workload manager's names, fixed when the session is created. It maps
// either way and knows each node's position in the record (also fixed).
type nodeNames struct {
	wlm    []string          // workload-manager names, by position
	xnames map[string]string // workload-manager name -> xname
	at     map[string]int    // xname -> position in s.Progress.Nodes
}

func newNodeNames(s *Session) *nodeNames {
	nn := &nodeNames{wlm: make([]string, len(s.Progress.Nodes)), xnames: make(map[string]string, len(s.Progress.Nodes)), at: make(map[string]int, len(s.Progress.Nodes))}
	for i, n := range s.Progress.Nodes {
		nn.wlm[i] = n.Name
		nn.xnames[n.Name] = n.XName
		nn.at[n.XName] = i
	}
	return nn
}

// name returns the workload-manager name of the node with this xname ("" if
// it is not one of the session's).
func (nn *nodeNames) name(xname string) string {
	if i, ok := nn.at[xname]; ok {
		return nn.wlm[i]
	}
	return ""
}

// names returns the workload-manager names of xnames, in order.
func (nn *nodeNames) names(xnames []string) []string {
	out := make([]string, len(xnames))
	for i, x := range xnames {
		out[i] = nn.name(x)
	}
	return out
}

// namesAt returns the names of the records at positions want, and where
// each is among the positions pos (-1 if not there): both sorted, as a
// scope's are. It reads the names by position, sparing a look-up in the
// session-wide map for each and a comparison of xnames (thousands a
// decision for the scheduled strategy's lookahead). It fills names and
// at, reusing their arrays when they are large enough (they were a tenth
// of what a 100,000-node simulated upgrade allocated).
func (nn *nodeNames) namesAt(want, pos []int, names []string, at []int) ([]string, []int) {
	names, at = resize(names, len(want)), resize(at, len(want))
	k := 0
	for i, w := range want {
		names[i], at[i] = nn.wlm[w], -1
		for k < len(pos) && pos[k] < w {
			k++
		}
		if k < len(pos) && pos[k] == w {
			at[i] = k
		}
	}
	return names, at
}

// xname returns the xname of a workload-manager name, and whether the name
// is one of the session's.
func (nn *nodeNames) xname(name string) (string, bool) {
	x, ok := nn.xnames[name]
	return x, ok
}

// byXName rekeys the per-node errors of a workload-manager call by xname.
// An error for a node the session does not have is joined to err.
func (nn *nodeNames) byXName(perNode map[string]error, err error) (map[string]error, error) {
	out := make(map[string]error, len(perNode))
	for _, name := range sortedKeys(perNode) {
		x, ok := nn.xnames[name]
		if !ok {
			err = errors.Join(err, fmt.Errorf("error for node %s, which the call did not name: %w", name, perNode[name]))
			continue
		}
		out[x] = perNode[name]
	}
	return out, err
}

// positions returns the indices of the changed nodes of a decision.
func (nn *nodeNames) positions(changes []Change) []int {
	out := make([]int, 0, len(changes))
	for _, c := range changes {
		if i, ok := nn.at[c.XName]; ok {
			out = append(out, i)
		}
	}
	return out
}
