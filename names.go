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

// mapNames maps xnames and checks that the mapping is one to one.
func mapNames(ctx context.Context, m Mapper, xnames []string) (map[string]string, error) {
	names, err := m.WLMNames(ctx, xnames)
	if err != nil {
		return names, err
	}
	byName := map[string][]string{}
	for _, x := range xnames {
		name, ok := names[x]
		if !ok || name == "" {
			return names, fmt.Errorf("name mapper returned no workload-manager name for %s", x)
		}
		byName[name] = append(byName[name], x)
	}
	for _, name := range sortedKeys(byName) {
		if xs := byName[name]; len(xs) > 1 {
			slices.Sort(xs)
			return names, fmt.Errorf("name mapper maps %d xnames to %s: %v", len(xs), name, xs)
		}
	}
	return names, nil
}
