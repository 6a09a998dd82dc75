package bos

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"slices"

	"github.com/crus-go/crus/internal/rest"
)

// Template is a session template as far as crus needs to know it: which
// nodes its boot sets may boot. BOS boots the union of the boot sets'
// targets that the session's limit selects.
type Template struct {
	Name     string
	BootSets []BootSet // sorted by name
}

// BootSet says which nodes a boot set targets: the nodes of NodeList, the
// members of the HSM groups of NodeGroups, and the nodes whose HSM role is
// in NodeRoles (node_roles_groups).
type BootSet struct {
	Name       string
	NodeList   []string
	NodeGroups []string
	NodeRoles  []string
}

// TemplateReader is implemented by an Orchestrator that can read a session
// template's boot sets. crus uses it before a session starts, to refuse a
// template whose boot sets cannot boot the session's nodes (a template
// that boots nothing would otherwise drain every node for nothing). Both
// clients of this package implement it.
type TemplateReader interface {
	// Template returns the named template, or ErrTemplateNotFound.
	Template(ctx context.Context, name string) (Template, error)
}

var (
	_ TemplateReader = (*Client)(nil)
	_ TemplateReader = (*V1Client)(nil)
)

// Template implements TemplateReader: GET /v2/sessiontemplates/{name}.
func (c *Client) Template(ctx context.Context, name string) (Template, error) {
	return readTemplate(ctx, c.rc, "/v2/sessiontemplates/", name)
}

// Template implements TemplateReader: GET /v1/sessiontemplate/{name}.
func (c *V1Client) Template(ctx context.Context, name string) (Template, error) {
	return readTemplate(ctx, c.rc, "/v1/sessiontemplate/", name)
}

// templateJSON is the part of a v1 or v2 session template crus reads; both
// versions spell these fields the same way.
type templateJSON struct {
	Name     string `json:"name"`
	BootSets map[string]struct {
		NodeList        []string `json:"node_list"`
		NodeGroups      []string `json:"node_groups"`
		NodeRolesGroups []string `json:"node_roles_groups"`
	} `json:"boot_sets"`
}

func readTemplate(ctx context.Context, rc *rest.Client, path, name string) (Template, error) {
	if err := ctx.Err(); err != nil {
		return Template{}, err
	}
	if !nameRE.MatchString(name) {
		return Template{}, fmt.Errorf("%w: %q is not a valid template name", ErrTemplateNotFound, name)
	}
	op := fmt.Sprintf("read session template %q", name)
	var tj templateJSON
	resp, err := rc.Do(ctx, rest.Request{Method: http.MethodGet, Path: path + url.PathEscape(name), Out: &tj, Safe: true})
	switch {
	case err != nil:
		return Template{}, callError(op, err)
	case resp.Status == http.StatusNotFound:
		return Template{}, statusError(op, resp, ErrTemplateNotFound)
	case resp.Status != http.StatusOK:
		return Template{}, unexpected(op, resp)
	}
	t := Template{Name: name}
	for _, bsName := range sortedNames(tj.BootSets) {
		bs := tj.BootSets[bsName]
		t.BootSets = append(t.BootSets, BootSet{
			Name: bsName, NodeList: bs.NodeList, NodeGroups: bs.NodeGroups, NodeRoles: bs.NodeRolesGroups,
		})
	}
	return t, nil
}

func sortedNames[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}

// Uncovered returns the nodes (xnames) among nodes that no boot set of t can
// boot, given the members of the HSM groups its boot sets name (members;
// a group crus fills itself, such as the upgrading group, can be given
// with every node as its members). A template with a role-based boot set
// may boot any node (roles are not known here): it leaves none out.
func (t Template) Uncovered(nodes []string, members map[string][]string) []string {
	cover := map[string]bool{}
	for _, bs := range t.BootSets {
		if len(bs.NodeRoles) > 0 {
			return nil
		}
		for _, x := range bs.NodeList {
			cover[x] = true
		}
		for _, g := range bs.NodeGroups {
			for _, x := range members[g] {
				cover[x] = true
			}
		}
	}
	var out []string
	for _, x := range nodes {
		if !cover[x] {
			out = append(out, x)
		}
	}
	return out
}

// Groups returns the HSM groups the template's boot sets name, sorted.
func (t Template) Groups() []string {
	var out []string
	for _, bs := range t.BootSets {
		out = append(out, bs.NodeGroups...)
	}
	slices.Sort(out)
	return slices.Compact(out)
}
