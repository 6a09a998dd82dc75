package web_test

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/crus-go/crus"
	"github.com/crus-go/crus/web"
)

// TestLongTimelineIDNotEchoed: the picture of a session that does not
// exist is refused with a few hundred bytes of its id, not the whole of
// a path as long as a client likes.
func TestLongTimelineIDNotEchoed(t *testing.T) {
	h := web.Handler(web.Config{Sessions: crus.NewMemoryStore()})
	w := httptest.NewRecorder()
	h.ServeHTTP(w, httptest.NewRequest("GET", "/timeline/"+strings.Repeat("a", 200<<10)+".svg", nil))
	if w.Code != http.StatusNotFound || w.Body.Len() > 1024 {
		t.Errorf("the picture of an unknown session of a 200 KB id: %d, %d bytes; want 404, a few hundred bytes", w.Code, w.Body.Len())
	}
}
