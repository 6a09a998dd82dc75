package api

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/crus-go/crus"
)

// Event is the JSON form of a crus.Event in the event streams.
type Event struct {
	Time    time.Time      `json:"time"`
	Session string         `json:"session"`
	Kind    crus.EventKind `json:"kind"`
	Step    int            `json:"step,omitzero"`
	Steps   int            `json:"steps,omitzero"`
	Stage   crus.Stage     `json:"stage,omitzero"`
	Node    string         `json:"node,omitzero"`
	Outcome crus.Outcome   `json:"outcome,omitzero"`
	Phase   crus.Phase     `json:"phase,omitzero"`
	Reason  string         `json:"reason,omitzero"`
	Message string         `json:"message,omitzero"`
	Nodes   int            `json:"nodes,omitzero"`
	Error   string         `json:"error,omitzero"`
}

// EventOf converts a crus.Event.
func EventOf(ev crus.Event) Event {
	e := Event{
		Time: ev.Time, Session: ev.Session, Kind: ev.Kind, Step: ev.Step, Steps: ev.Steps,
		Stage: ev.Stage, Node: ev.Node, Outcome: ev.Outcome, Phase: ev.Phase, Reason: ev.Reason,
		Message: ev.Message, Nodes: ev.Nodes,
	}
	if ev.Err != nil {
		e.Error = ev.Err.Error()
	}
	return e
}

// Hub fans the executor's events out to the event streams. Give its
// Publish method to crus.Config.OnEvent. Publish never blocks: a watcher
// that falls behind loses events and is told so (a "lagged" event), then
// gets the summary of each session that moved since its last one (the
// others' are still current), which is always up to date.
//
// A Hub sees the events of its own executor only: on several replicas
// sharing an etcd store, the streams also read each watched session's
// record whenever its revision moves (Config.WatchPoll), so a watcher of a
// session that another replica drives still sees it progress.
type Hub struct {
	mu   sync.Mutex
	subs map[*subscriber]struct{}
}

type subscriber struct {
	session string // empty: every session
	ch      chan Event
	lagged  bool // guarded by Hub.mu
}

// NewHub returns a Hub with no watchers.
func NewHub() *Hub { return &Hub{subs: map[*subscriber]struct{}{}} }

// subscriberBuffer is how many events a watcher may fall behind by before
// it loses some.
const subscriberBuffer = 1024

// Publish hands ev to every watcher of its session. It is safe to call
// from crus.Config.OnEvent.
func (h *Hub) Publish(ev crus.Event) {
	e := EventOf(ev)
	h.mu.Lock()
	defer h.mu.Unlock()
	for s := range h.subs {
		if s.session != "" && s.session != ev.Session {
			continue
		}
		select {
		case s.ch <- e:
		default:
			s.lagged = true
		}
	}
}

func (h *Hub) subscribe(session string) *subscriber {
	s := &subscriber{session: session, ch: make(chan Event, subscriberBuffer)}
	h.mu.Lock()
	h.subs[s] = struct{}{}
	h.mu.Unlock()
	return s
}

func (h *Hub) unsubscribe(s *subscriber) {
	h.mu.Lock()
	delete(h.subs, s)
	h.mu.Unlock()
}

// takeLagged reports whether s lost events since it last asked.
func (h *Hub) takeLagged(s *subscriber) bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	l := s.lagged
	s.lagged = false
	return l
}

// sseWriter writes Server-Sent Events.
type sseWriter struct {
	w       http.ResponseWriter
	rc      *http.ResponseController
	id      int
	timeout time.Duration // each write's deadline
}

// deadline gives the next write timeout to complete: a client that stops
// reading makes the write fail then, and its stream end. A writer without
// deadlines (ErrNotSupported) is written to without one.
func (s *sseWriter) deadline() error {
	err := s.rc.SetWriteDeadline(time.Now().Add(s.timeout))
	if errors.Is(err, http.ErrNotSupported) {
		return nil
	}
	return err
}

func (s *sseWriter) send(event string, v any) error {
	data, err := json.Marshal(v)
	if err != nil {
		return err
	}
	if err := s.deadline(); err != nil {
		return err
	}
	s.id++
	if _, err := fmt.Fprintf(s.w, "id: %d\nevent: %s\ndata: %s\n\n", s.id, event, data); err != nil {
		return err
	}
	return s.rc.Flush()
}

func (s *sseWriter) comment(text string) error {
	if err := s.deadline(); err != nil {
		return err
	}
	if _, err := fmt.Fprintf(s.w, ": %s\n\n", text); err != nil {
		return err
	}
	return s.rc.Flush()
}

// stream serves an event stream of one session (id) or of all (id == "").
// It sends the summary of each watched session first, then the executor's
// events as they come, a fresh summary whenever a session's revision
// moves (checked every WatchPoll), and a comment every KeepAlive.
func (h *Handler) stream(w http.ResponseWriter, r *http.Request, id string) {
	ctx := r.Context()
	if n := h.streams.Add(1); n > int64(h.cfg.MaxStreams) {
		h.streams.Add(-1)
		w.Header().Set("Retry-After", "30")
		h.fail(w, r, problemf(http.StatusServiceUnavailable, "%d event streams are open, as many as this server serves: try again later", h.cfg.MaxStreams))
		return
	}
	defer h.streams.Add(-1)
	var sub *subscriber
	if h.cfg.Events != nil {
		sub = h.cfg.Events.subscribe(id)
		defer h.cfg.Events.unsubscribe(sub)
	}
	sw := &watch{h: h, id: id, revs: map[string]int64{}}
	first, gone, err := sw.read(ctx, true)
	if err != nil {
		if id != "" || gone {
			h.fail(w, r, sessionProblem(err, id))
		} else {
			h.fail(w, r, backendProblem(err))
		}
		return
	}
	rc := http.NewResponseController(w)
	w.Header().Set("Content-Type", "text/event-stream")
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("X-Accel-Buffering", "no") // no buffering in nginx-like gateways
	sse := &sseWriter{w: w, rc: rc, timeout: h.cfg.StreamWriteTimeout}
	// The connection may serve another request after the stream: not
	// with the stream's deadline.
	defer func() { _ = rc.SetWriteDeadline(time.Time{}) }()
	w.WriteHeader(http.StatusOK)
	// The answer's head goes now, whatever follows: a stream of every
	// session when there is none has no summary to send, and its client
	// (an EventSource, crus watch) waited for the first keep-alive,
	// KeepAlive later, to learn that the stream was open.
	if sse.deadline() != nil || rc.Flush() != nil {
		return
	}
	if sw.send(sse, first) != nil {
		return
	}
	poll := time.NewTicker(h.cfg.WatchPoll)
	defer poll.Stop()
	alive := time.NewTicker(h.cfg.KeepAlive)
	defer alive.Stop()
	var events <-chan Event
	if sub != nil {
		events = sub.ch
	}
	for {
		select {
		case <-ctx.Done():
			return
		case <-h.closing:
			return
		case ev := <-events:
			sw.noticed(ev.Session)
			if err := sse.send(string(ev.Kind), ev); err != nil {
				return
			}
			if h.cfg.Events.takeLagged(sub) {
				if sse.send("lagged", map[string]string{"detail": "events were lost; the summaries that follow are current"}) != nil {
					return
				}
				// Only the sessions that moved since their last summary:
				// the others' summaries are current. Reading every
				// record again copied them all at each burst of events
				// a watcher could not keep up with (a step of 500 nodes
				// makes thousands).
				if _, err := sw.summaries(ctx, sse, false); err != nil {
					return
				}
			}
		case <-poll.C:
			gone, err := sw.summaries(ctx, sse, false)
			if gone {
				_ = sse.send("gone", map[string]string{"session": id})
				return
			}
			if err != nil {
				_ = sse.comment("reading sessions failed: " + err.Error())
			}
		case <-alive.C:
			if sse.comment("keep-alive") != nil {
				return
			}
		}
	}
}

// watch is what an event stream knows of the sessions it watches: one
// (id), or all (id == "").
//
// A poll reads the revision of each session watched, and the record of
// those that moved only: a poll of a 160,000-node session that did not
// move copied its 50 MB of node records. A stream of all sessions lists
// them (to find new ones) only every listEvery polls, or at the next poll
// after an event of a session it does not know; that list reads the
// sessions' revisions (Executor.Revisions) and the records of those that
// moved or are new only, where the store can list revisions: the list of
// records it read otherwise decoded every node record on the file and
// etcd stores.
type watch struct {
	h    *Handler
	id   string
	revs map[string]int64 // the revision of each summary sent
	// polls counts the polls since the last list; listNext asks for a
	// list at the next poll.
	polls    int
	listNext bool
}

// listEvery is how often, in polls (Config.WatchPoll), a stream of every
// session lists them to find new ones.
const listEvery = 5

// noticed is told of each event's session: one the stream does not know
// is listed at the next poll.
func (sw *watch) noticed(session string) {
	if _, ok := sw.revs[session]; !ok && sw.id == "" {
		sw.listNext = true
	}
}

// summaries sends the summary of every watched session whose revision
// moved (of every one, if force); for one session, gone is true if it is
// no more.
func (sw *watch) summaries(ctx context.Context, sse *sseWriter, force bool) (gone bool, err error) {
	list, gone, err := sw.read(ctx, force)
	if err != nil {
		return gone, err
	}
	return false, sw.send(sse, list)
}

// send sends the summaries of list, and notes their revisions.
func (sw *watch) send(sse *sseWriter, list []Summary) error {
	for _, sum := range list {
		sw.revs[sum.UpgradeID] = sum.Revision
		if err := sse.send("session", sum); err != nil {
			return err
		}
	}
	return nil
}

// summary reads the summary of one session, from its record in place when
// the store can show it (Executor.View): a copy of 160,000 node records
// is 50 MB.
func (sw *watch) summary(ctx context.Context, id string) (sum Summary, err error) {
	err = sw.h.ex.View(ctx, id, func(s *crus.Session) error {
		sum = SummaryOf(s)
		return nil
	})
	return sum, err
}

// read returns the summaries of the watched sessions whose revision moved
// (of every one, if force); for one session, gone is true if it is no
// more.
func (sw *watch) read(ctx context.Context, force bool) (list []Summary, gone bool, err error) {
	h := sw.h
	if sw.id != "" {
		if !force {
			rev, err := h.ex.Revision(ctx, sw.id)
			if errors.Is(err, crus.ErrSessionNotFound) {
				return nil, true, err
			}
			if err == nil && rev == sw.revs[sw.id] {
				return nil, false, nil
			}
		}
		sum, err := sw.summary(ctx, sw.id)
		if err != nil {
			return nil, errors.Is(err, crus.ErrSessionNotFound), err
		}
		if !force && sum.Revision == sw.revs[sw.id] {
			return nil, false, nil
		}
		return []Summary{sum}, false, nil
	}
	if force || sw.listNext || sw.polls+1 >= listEvery {
		// The periodic list reads the revisions, and the records of the
		// sessions that moved or are new only, where the store can list
		// them (RevisionLister): else it decoded every node record of
		// every session on the file and etcd stores at each list.
		if !force {
			if revs, err := h.ex.Revisions(ctx); !errors.Is(err, errors.ErrUnsupported) {
				if err != nil {
					return nil, false, err
				}
				return sw.listRevisions(ctx, revs)
			}
		}
		present := map[string]bool{}
		err := h.ex.ViewAll(ctx, func(s *crus.Session) error {
			present[s.UpgradeID] = true
			if rev, ok := sw.revs[s.UpgradeID]; ok && rev == s.Revision && s.Revision != 0 && !force {
				return nil
			}
			list = append(list, SummaryOf(s))
			return nil
		})
		if err != nil {
			return nil, false, err
		}
		sw.polls, sw.listNext = 0, false
		for id := range sw.revs {
			if !present[id] {
				delete(sw.revs, id)
			}
		}
		return list, false, nil
	}
	sw.polls++
	ids := make([]string, 0, len(sw.revs))
	for id := range sw.revs {
		ids = append(ids, id)
	}
	slices.Sort(ids) // the summaries in a stable order
	for _, id := range ids {
		rev, err := h.ex.Revision(ctx, id)
		if errors.Is(err, crus.ErrSessionNotFound) {
			delete(sw.revs, id)
			continue
		}
		if err != nil {
			return list, false, err
		}
		if rev == sw.revs[id] && rev != 0 {
			continue
		}
		sum, err := sw.summary(ctx, id)
		if errors.Is(err, crus.ErrSessionNotFound) {
			delete(sw.revs, id)
			continue
		}
		if err != nil {
			return list, false, err
		}
		list = append(list, sum)
	}
	return list, false, nil
}

// listRevisions is read's list, from every session's revision (revs):
// it reads the summary of each session that moved or is new, in the
// order of a list (Executor.List), and forgets the sessions gone.
func (sw *watch) listRevisions(ctx context.Context, revs map[string]int64) (list []Summary, gone bool, err error) {
	for id, rev := range revs {
		if old, ok := sw.revs[id]; ok && old == rev && rev != 0 {
			continue
		}
		sum, err := sw.summary(ctx, id)
		if errors.Is(err, crus.ErrSessionNotFound) {
			delete(revs, id) // deleted since
			continue
		}
		if err != nil {
			return nil, false, err
		}
		list = append(list, sum)
	}
	slices.SortFunc(list, func(a, b Summary) int {
		if c := a.CreatedAt.Compare(b.CreatedAt); c != 0 {
			return c
		}
		return strings.Compare(a.UpgradeID, b.UpgradeID)
	})
	sw.polls, sw.listNext = 0, false
	for id := range sw.revs {
		if _, ok := revs[id]; !ok {
			delete(sw.revs, id)
		}
	}
	return list, false, nil
}
