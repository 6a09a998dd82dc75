package crustest

import (
	"fmt"
	"go/ast"
	"go/parser"
	"go/token"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/crus-go/crus"
)

// FailNext and Outage refuse a name that is no backend method's, listing
// the names: a typo ("wlm.Drian") used to inject nothing, and the test
// passed without testing anything.
func TestFailNextAndOutageRefuseUnknownOps(t *testing.T) {
	w := New(Options{})
	calls := map[string]func(op string){
		"FailNext": func(op string) { w.FailNext(op, 1, nil) },
		"Outage":   func(op string) { w.Outage(op, w.Now(), w.Now().Add(time.Hour), nil) },
	}
	for method, call := range calls {
		for _, op := range []string{"bos.Template", "bos.checktemplate", "wlm.Drian", "hsm.Member", "wlm.Jobs", ""} {
			msg := func() (msg string) {
				defer func() { msg = fmt.Sprint(recover()) }()
				call(op)
				return "no panic"
			}()
			want := fmt.Sprintf("crustest: World.%s: unknown operation %q; the operations are %s", method, op, strings.Join(ops, ", "))
			if msg != want {
				t.Errorf("%s(%q): %s\nwant a panic saying %q", method, op, msg, want)
			}
		}
		for _, op := range ops {
			call(op) // no panic
		}
	}
}

// The names FailNext documents are the names it takes, in one list.
func TestOpsAreTheDocumented(t *testing.T) {
	f, err := parser.ParseFile(token.NewFileSet(), "world.go", nil, parser.ParseComments)
	if err != nil {
		t.Fatal(err)
	}
	var doc string
	for _, d := range f.Decls {
		if fn, ok := d.(*ast.FuncDecl); ok && fn.Name.Name == "FailNext" {
			doc = fn.Doc.Text()
		}
	}
	var documented []string
	for _, m := range regexp.MustCompile(`"([a-z]+\.[A-Za-z]+)"`).FindAllStringSubmatch(doc, -1) {
		documented = append(documented, m[1])
	}
	if !slices.Equal(documented, ops) {
		t.Errorf("FailNext documents %v\nand takes %v", documented, ops)
	}
}

// Every backend method a session calls is one FailNext takes.
func TestOpsAreTheCalled(t *testing.T) {
	for _, st := range []crus.Strategy{crus.StrategyClassic, crus.StrategyRolling, crus.StrategyScheduled} {
		w := New(Options{Nodes: 6, Busy: 0.5, Seed: 1})
		spec := w.Spec(2)
		spec.Rollout.Strategy = st
		if st != crus.StrategyClassic {
			spec.BootLimit = crus.LimitNodes
		}
		run(t, w, spec)
		for op := range w.Calls() {
			if !slices.Contains(ops, op) {
				t.Errorf("%s: a session called %s, which FailNext does not take", st, op)
			}
		}
	}
}
