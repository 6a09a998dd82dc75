package bos_test

import (
	"bytes"
	"fmt"
	"log/slog"
	"strings"
	"testing"

	"github.com/crus-go/crus/auth"
	"github.com/crus-go/crus/bos"
)

// A client holds its token source in an unexported field, where fmt
// cannot call the methods that hide a secret: the client must hide it.
func TestClientsNeverShowTheToken(t *testing.T) {
	const tok = "bos-static-token-secret"
	cfg := bos.Config{BaseURL: "https://api-gw/apis/bos", Tokens: auth.StaticToken(tok)}
	v2, err := bos.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	v1, err := bos.NewV1(bos.V1Config{Config: cfg})
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []any{v2, v1, cfg} {
		var tb, jb bytes.Buffer
		slog.New(slog.NewTextHandler(&tb, nil)).Info("x", "client", c)
		slog.New(slog.NewJSONHandler(&jb, nil)).Info("x", "client", c)
		for _, s := range []string{fmt.Sprintf("%v", c), fmt.Sprintf("%+v", c), fmt.Sprintf("%#v", c), tb.String(), jb.String()} {
			if strings.Contains(s, tok) {
				t.Errorf("%T shown as %s", c, s)
			}
		}
	}
}
