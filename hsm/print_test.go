package hsm_test

import (
	"bytes"
	"fmt"
	"log/slog"
	"strings"
	"testing"

	"github.com/crus-go/crus/auth"
	"github.com/crus-go/crus/hsm"
)

// A client holds its token source in an unexported field, where fmt
// cannot call the methods that hide a secret: the client must hide it.
func TestClientNeverShowsTheToken(t *testing.T) {
	const tok = "hsm-static-token-secret"
	c, err := hsm.New(hsm.Config{BaseURL: "https://api-gw/apis/smd/hsm/v2", Tokens: auth.StaticToken(tok)})
	if err != nil {
		t.Fatal(err)
	}
	var tb, jb bytes.Buffer
	slog.New(slog.NewTextHandler(&tb, nil)).Info("x", "client", c)
	slog.New(slog.NewJSONHandler(&jb, nil)).Info("x", "client", c)
	for _, s := range []string{fmt.Sprintf("%v", c), fmt.Sprintf("%+v", c), fmt.Sprintf("%#v", c), fmt.Sprintf("%s", c), tb.String(), jb.String()} {
		if strings.Contains(s, tok) {
			t.Errorf("the client shown as %s", s)
		}
	}
	if s := fmt.Sprint(c); !strings.Contains(s, "api-gw/apis/smd/hsm/v2") {
		t.Errorf("the client shown as %q; want its base URL", s)
	}
}
