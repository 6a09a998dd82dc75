package web_test

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/crus-go/crus/internal/demo"
)

// chromium returns the path of Debian's chromium. Without it the browser
// tests skip, except in CI (CI set), where they fail: .ci/setup.d
// installs it.
func chromium(t *testing.T) string {
	t.Helper()
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	if os.Getenv("CI") != "" {
		t.Fatal("chromium is not installed (.ci/setup.d/40-chromium.sh installs it); the page cannot be tested")
	}
	t.Skip("chromium is not installed: apt-get install chromium")
	return ""
}

// serveDemo runs a demo on a loopback port for the test.
func serveDemo(t *testing.T, opts demo.Options) (*demo.Demo, string) {
	t.Helper()
	d, err := demo.New(opts)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	if _, err := d.Start(ctx); err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: d.Handler}
	srv.RegisterOnShutdown(d.Handler.Close)
	var wg sync.WaitGroup
	wg.Add(2)
	go func() { defer wg.Done(); _ = srv.Serve(ln) }()
	go func() { defer wg.Done(); _ = d.Run(ctx, time.Hour) }()
	t.Cleanup(func() {
		cancel()
		sctx, scancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer scancel()
		_ = srv.Shutdown(sctx)
		wg.Wait()
	})
	return d, "http://" + ln.Addr().String()
}

// browser starts headless chromium for the test and collects every
// console error, uncaught exception and error log entry of the page.
func browser(t *testing.T) (context.Context, func() []string) {
	t.Helper()
	path := chromium(t)
	opts := []chromedp.ExecAllocatorOption{
		chromedp.ExecPath(path),
		chromedp.Headless, chromedp.NoSandbox, chromedp.DisableGPU, chromedp.NoFirstRun,
		chromedp.Flag("disable-quic", true),
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.UserDataDir(t.TempDir()),
		chromedp.WindowSize(1280, 1500),
	}
	actx, acancel := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancel := chromedp.NewContext(actx)
	t.Cleanup(func() { cancel(); acancel() })
	if err := chromedp.Do(ctx); err != nil { // start the browser
		t.Fatalf("starting chromium: %v", err)
	}
	var mu sync.Mutex
	var problems []string
	messages := chromedp.Console(ctx)
	go func() {
		for m, err := range messages {
			if err != nil {
				return
			}
			if m.Type == chromedp.ConsoleError || m.IsException() {
				mu.Lock()
				problems = append(problems, fmt.Sprintf("%s %s:%d %s", m.Type, m.URL, m.Line+1, m.Text))
				mu.Unlock()
			}
		}
	}()
	return ctx, func() []string {
		mu.Lock()
		defer mu.Unlock()
		return append([]string(nil), problems...)
	}
}

// countOf reads a count tile (redrawn at every update: read it in one
// evaluation rather than through a DOM node that may be gone).
func countOf(ctx context.Context, key string) (int, error) {
	text, err := chromedp.Run(ctx, chromedp.Evaluate[string](`document.querySelector('[data-count="`+key+`"]').textContent`))
	if err != nil {
		return 0, err
	}
	return strconv.Atoi(strings.TrimSpace(text))
}

// TestPageInBrowser loads the page of a running demo session in headless
// Chromium: it loads with no console error, lists the session, draws every
// node, and its counts move as the session progresses. A screenshot is
// kept in the test's artifact directory (go test -artifacts).
func TestPageInBrowser(t *testing.T) {
	ctx, problems := browser(t)
	d, url := serveDemo(t, demo.Options{Nodes: 600, Step: 40, Speed: 900, Seed: 2})
	id := d.Session()

	// The list of sessions.
	deadline, cancel := context.WithTimeout(ctx, 60*time.Second)
	defer cancel()
	if err := chromedp.Do(deadline, chromedp.Navigate(url+"/"), chromedp.WaitVisible(`#sessions tbody tr`)); err != nil {
		t.Fatalf("the list: %v (problems: %v)", err, problems())
	}
	listed, err := chromedp.Run(deadline, chromedp.Text(`#sessions tbody`))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(listed, id) {
		t.Errorf("the list does not show session %s: %q", id, listed)
	}
	// Strategies that number their batches as they take them show the
	// batch, not "7 of 7".
	for _, c := range []struct{ session, want string }{
		{`{strategy: "classic", step: 3, steps: 10}`, "3 of 10"},
		{`{strategy: "rolling", step: 7, steps: 7}`, "batch 7"},
		{`{strategy: "scheduled", step: 7, steps: 7}`, "batch 7"},
	} {
		got, err := chromedp.Run(deadline, chromedp.Evaluate[string](`stepText(`+c.session+`)`))
		if err != nil || got != c.want {
			t.Errorf("the step of %s reads %q (%v); want %q", c.session, got, err, c.want)
		}
	}

	// One session: the grid holds a cell per node, and the counts move.
	if err := chromedp.Do(deadline,
		chromedp.Click(`#sessions tbody tr[data-id="`+id+`"]`),
		chromedp.WaitVisible(`#grid`),
		chromedp.WaitVisible(`[data-count="upgraded"]`),
	); err != nil {
		t.Fatalf("the session: %v (problems: %v)", err, problems())
	}
	cells, err := chromedp.Run(deadline, chromedp.Poll[int](`state.nodes && state.nodes.codes.length`, chromedp.WithPollingTimeout(30*time.Second)))
	if err != nil {
		t.Fatalf("the grid: %v (problems: %v)", err, problems())
	}
	if cells != 600 {
		t.Errorf("the grid has %d nodes; want 600", cells)
	}
	first, err := countOf(deadline, "upgraded")
	if err != nil {
		t.Fatal(err)
	}
	moved := false
	for !moved {
		select {
		case <-deadline.Done():
			t.Fatalf("the upgraded count stayed at %d for a minute (problems: %v)", first, problems())
		case <-time.After(250 * time.Millisecond):
		}
		n, err := countOf(deadline, "upgraded")
		if err != nil {
			t.Fatal(err)
		}
		moved = n > first
		if moved {
			t.Logf("upgraded %d, then %d", first, n)
		}
	}
	// What holds a session back is in its head.
	head, err := chromedp.Run(deadline, chromedp.Evaluate[string](`renderHead(Object.assign({}, state.sessions.get(state.current), {counts: {nodes: 1, in_flight: 0}, conditions: [{kind: "bookings_unreadable", since: "2026-01-05T08:00:00Z", message: "reading reservations: refused"}]})), document.querySelector("#head").textContent`))
	if err != nil || !strings.Contains(head, "bookings unreadable: reading reservations: refused") {
		t.Errorf("the head with a condition reads %q (%v)", head, err)
	}
	// The timeline image loaded.
	if w, err := chromedp.Run(deadline, chromedp.Poll[int](`document.querySelector("#timeline").naturalWidth`, chromedp.WithPollingTimeout(20*time.Second))); err != nil || w == 0 {
		t.Errorf("the timeline image did not load: %v", err)
	}

	png, err := chromedp.Run(deadline, chromedp.FullScreenshot(100))
	if err != nil {
		t.Fatal(err)
	}
	shot := filepath.Join(t.ArtifactDir(), "page.png")
	if err := os.WriteFile(shot, png, 0o644); err != nil {
		t.Fatal(err)
	}
	t.Logf("screenshot: %s", shot)
	if p := problems(); len(p) > 0 {
		t.Errorf("the page logged errors:\n%s", strings.Join(p, "\n"))
	}
}

// TestPageTenThousandNodes: a 10,000-node session is drawn whole, and a
// redraw of its grid takes well under a second.
func TestPageTenThousandNodes(t *testing.T) {
	ctx, problems := browser(t)
	d, url := serveDemo(t, demo.Options{Nodes: 10000, Step: 500, Speed: 300, Seed: 3})
	deadline, cancel := context.WithTimeout(ctx, 90*time.Second)
	defer cancel()
	if err := chromedp.Do(deadline, chromedp.Navigate(url+"/#/s/"+d.Session()), chromedp.WaitVisible(`#grid`)); err != nil {
		t.Fatalf("%v (problems: %v)", err, problems())
	}
	cells, err := chromedp.Run(deadline, chromedp.Poll[int](`state.nodes && state.nodes.codes.length`, chromedp.WithPollingTimeout(60*time.Second)))
	if err != nil {
		t.Fatalf("%v (problems: %v)", err, problems())
	}
	drawMS, err := chromedp.Run(deadline, chromedp.Evaluate[float64](`(() => { const t0 = performance.now(); for (let i = 0; i < 5; i++) drawGrid(); return (performance.now() - t0) / 5; })()`))
	if err != nil {
		t.Fatal(err)
	}
	if cells != 10000 {
		t.Errorf("the grid has %d nodes; want 10000", cells)
	}
	box, err := chromedp.Run(deadline, chromedp.Evaluate[[]float64](`(() => { const c = document.querySelector("#grid"); return [c.clientWidth, c.clientHeight, state.cols, state.cell]; })()`))
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("10,000 nodes: grid %vx%v px (%v columns of %v px cells), one redraw %.1f ms", box[0], box[1], box[2], box[3], drawMS)
	if box[2]*box[3] > box[0]+1 || box[3] < 4 {
		t.Errorf("the grid does not fit its cells: %v", box)
	}
	if drawMS > 500 {
		t.Errorf("a redraw of 10,000 nodes takes %.0f ms", drawMS)
	}
	if png, err := chromedp.Run(deadline, chromedp.FullScreenshot(100)); err == nil {
		shot := filepath.Join(t.ArtifactDir(), "page-10000.png")
		if os.WriteFile(shot, png, 0o644) == nil {
			t.Logf("screenshot: %s", shot)
		}
	}
	if p := problems(); len(p) > 0 {
		t.Errorf("the page logged errors:\n%s", strings.Join(p, "\n"))
	}
}
