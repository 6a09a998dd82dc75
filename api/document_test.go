package api_test

import (
	"go/ast"
	"go/parser"
	"go/token"
	"io/fs"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/getkin/kin-openapi/openapi3"

	"github.com/crus-go/crus"
	"github.com/crus-go/crus/api"
)

// TestDocumentHasEveryField: every object of the document served at
// /openapi.yaml lists exactly the JSON fields of the Go type the server
// writes (most are additionalProperties: false, so a field it leaves out
// is one a client checking answers against it rejects), and every enum
// lists exactly the constants of its Go type. The document fell behind
// once: the scheduled strategy, its options, conditions and booking
// actions were missing from it.
func TestDocumentHasEveryField(t *testing.T) {
	doc := extDocument(t).doc
	for name, typ := range map[string]reflect.Type{
		"Spec":          reflect.TypeFor[crus.Spec](),
		"Session":       reflect.TypeFor[crus.Session](),
		"Progress":      reflect.TypeFor[crus.Progress](),
		"NodeRecord":    reflect.TypeFor[crus.NodeRecord](),
		"Condition":     reflect.TypeFor[crus.Condition](),
		"Window":        reflect.TypeFor[crus.Window](),
		"SessionStatus": reflect.TypeFor[crus.Status](),
		"Summary":       reflect.TypeFor[api.Summary](),
		"Description":   reflect.TypeFor[api.Description](),
		"Counts":        reflect.TypeFor[api.Counts](),
		"Nodes":         reflect.TypeFor[api.Nodes](),
		"NodeReason":    reflect.TypeFor[api.NodeReason](),
		"Preview":       reflect.TypeFor[api.Preview](),
		"Decision":      reflect.TypeFor[api.Decision](),
		"Action":        reflect.TypeFor[api.Action](),
		"Change":        reflect.TypeFor[api.Change](),
		"Event":         reflect.TypeFor[api.Event](),
	} {
		t.Run(name, func(t *testing.T) {
			ref := doc.Components.Schemas[name]
			if ref == nil {
				t.Fatalf("the document has no schema %s", name)
			}
			inDoc := properties(ref.Value)
			inGo := jsonFields(typ)
			for _, f := range inGo {
				if !slices.Contains(inDoc, f) {
					t.Errorf("%s: field %q of %v is not in the document", name, f, typ)
				}
			}
			for _, f := range inDoc {
				if !slices.Contains(inGo, f) {
					t.Errorf("%s: the document lists %q, which %v does not have", name, f, typ)
				}
			}
		})
	}

	consts := constants(t)
	for _, c := range []struct {
		goType string
		schema string
		field  string // "" for the schema's own enum
	}{
		{"Strategy", "Spec", "strategy"},
		{"Strategy", "Session", "strategy"},
		{"Strategy", "Summary", "strategy"},
		{"Order", "Spec", "order"},
		{"Order", "Session", "order"},
		{"BootLimit", "Spec", "boot_limit"},
		{"BootLimit", "Session", "boot_limit"},
		{"DrainTimeoutAction", "Spec", "drain_timeout_action"},
		{"DrainTimeoutAction", "Session", "drain_timeout_action"},
		{"ActionKind", "Action", "kind"},
		{"ConditionKind", "Condition", "kind"},
		{"State", "State", ""},
		{"Stage", "Stage", ""},
		{"Phase", "Phase", ""},
		{"Outcome", "Outcome", ""},
		{"Result", "Result", ""},
	} {
		t.Run(c.goType+" in "+c.schema, func(t *testing.T) {
			ref := doc.Components.Schemas[c.schema]
			if ref == nil {
				t.Fatalf("the document has no schema %s", c.schema)
			}
			s := ref.Value
			if c.field != "" {
				s = property(s, c.field)
				if s == nil {
					t.Fatalf("%s has no %s", c.schema, c.field)
				}
			}
			var enum []string
			for _, v := range s.Enum {
				enum = append(enum, v.(string))
			}
			slices.Sort(enum)
			want := consts[c.goType]
			if len(want) == 0 {
				t.Fatalf("no constant of type %s found in the crus package", c.goType)
			}
			if !slices.Equal(enum, want) {
				t.Errorf("enum %v, want the constants of crus.%s: %v", enum, c.goType, want)
			}
		})
	}
}

// properties returns the names of a schema's properties, those of the
// parts of an allOf included.
func properties(s *openapi3.Schema) []string {
	var out []string
	for name := range s.Properties {
		out = append(out, name)
	}
	for _, part := range s.AllOf {
		out = append(out, properties(part.Value)...)
	}
	slices.Sort(out)
	return slices.Compact(out)
}

// property returns a schema's property (in an allOf part too), nil if it
// has none.
func property(s *openapi3.Schema, name string) *openapi3.Schema {
	if p := s.Properties[name]; p != nil {
		return p.Value
	}
	for _, part := range s.AllOf {
		if p := property(part.Value, name); p != nil {
			return p
		}
	}
	return nil
}

// jsonFields returns the names encoding/json gives a struct's fields,
// those of embedded structs included.
func jsonFields(t reflect.Type) []string {
	var out []string
	for i := range t.NumField() {
		f := t.Field(i)
		name, _, _ := strings.Cut(f.Tag.Get("json"), ",")
		switch {
		case name == "-" || !f.IsExported() && !f.Anonymous:
			continue
		case f.Anonymous && name == "" && f.Type.Kind() == reflect.Struct:
			out = append(out, jsonFields(f.Type)...)
			continue
		case name == "":
			name = f.Name
		}
		out = append(out, name)
	}
	slices.Sort(out)
	return out
}

// constants returns, by type name, the values of the string constants
// the crus package declares with a type (sorted; the empty one left out).
func constants(t *testing.T) map[string][]string {
	fset := token.NewFileSet()
	pkgs, err := parser.ParseDir(fset, "..", func(fi fs.FileInfo) bool {
		return !strings.HasSuffix(fi.Name(), "_test.go")
	}, 0)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string][]string{}
	for _, f := range pkgs["crus"].Files {
		for _, d := range f.Decls {
			g, ok := d.(*ast.GenDecl)
			if !ok || g.Tok != token.CONST {
				continue
			}
			for _, spec := range g.Specs {
				vs := spec.(*ast.ValueSpec)
				id, ok := vs.Type.(*ast.Ident)
				if !ok {
					continue
				}
				for _, v := range vs.Values {
					lit, ok := v.(*ast.BasicLit)
					if !ok || lit.Kind != token.STRING {
						continue
					}
					if s, err := strconv.Unquote(lit.Value); err == nil && s != "" {
						out[id.Name] = append(out[id.Name], s)
					}
				}
			}
		}
	}
	for k := range out {
		slices.Sort(out[k])
	}
	return out
}
