package etcdstore

import (
	"encoding/json"
	"errors"
	"testing"

	"github.com/crus-go/crus"
	"github.com/crus-go/crus/store/internal/record"
	"github.com/crus-go/crus/store/storetest"
	"go.etcd.io/etcd/api/v3/mvccpb"
)

// FuzzRecord feeds the decoding of a session's keys — its head, its
// snapshot's header and chunk, a delta — with arbitrary values: it must
// never panic nor allocate for what a value merely announces, and must
// either give a session or report the damage as crus.ErrCorruptSession
// or ErrUnknownSchema.
func FuzzRecord(f *testing.F) {
	st := &Store{cfg: Config{}.withDefaults(), cache: map[string]*cached{}, ratio: compactRatio, min: compactMin}
	s := storetest.Session("s", 5)
	w, err := st.snapshot(s)
	if err != nil {
		f.Fatal(err)
	}
	c := &cached{head: w.head, nodes: s.Progress.Nodes, messages: s.Messages}
	hv, err := json.Marshal(w.head)
	if err != nil {
		f.Fatal(err)
	}
	s.Progress.Nodes[2].LastError = "x"
	s.AddMessages("m")
	d, err := st.delta(s, c, []int{2})
	if err != nil || d == nil {
		f.Fatal(err)
	}
	f.Add(hv, w.puts[0].ValueBytes(), w.puts[1].ValueBytes(), d.puts[0].ValueBytes())
	f.Add([]byte(`{"schema":2,"gen":"0123456789abcdef","c":1,"n":4194304}`), []byte("z"), []byte("j[]"), []byte(""))
	f.Fuzz(func(t *testing.T, headV, snapV, chunkV, deltaV []byte) {
		h, err := st.decodeHead("s", headV)
		if err != nil {
			if !errors.Is(err, crus.ErrCorruptSession) && !errors.Is(err, ErrUnknownSchema) {
				t.Fatalf("head: an error of another kind: %v", err)
			}
			return
		}
		p := st.genPrefix("s", h.Gen)
		vals := map[string]*mvccpb.KeyValue{}
		for i, v := range [][]byte{snapV, chunkV, deltaV} {
			k := []string{snapHeaderKey(p), chunkKey(p, 0), deltaKey(p, 1)}[i]
			vals[k] = &mvccpb.KeyValue{Key: []byte(k), Value: v, ModRevision: int64(2 + i)}
		}
		got, _, err := st.build("s", h, 2, vals)
		if err != nil {
			if !errors.Is(err, crus.ErrCorruptSession) {
				t.Fatalf("records: an error of another kind: %v", err)
			}
			return
		}
		if got.UpgradeID != "s" || len(got.Progress.Nodes) != h.Nodes {
			t.Fatalf("decoded session %q with %d nodes, the head says %d", got.UpgradeID, len(got.Progress.Nodes), h.Nodes)
		}
	})
}

// FuzzReservation: a reservation value is decoded with a bound, and
// damage is reported, never a panic.
func FuzzReservation(f *testing.F) {
	v, err := record.Encode(crus.Reservation{Session: "a", Nodes: []string{"x1"}, Names: []string{"n1"}, Labels: []string{"u"}})
	if err != nil {
		f.Fatal(err)
	}
	f.Add(v)
	f.Add([]byte("z\x00"))
	st := &Store{cfg: Config{}.withDefaults()}
	f.Fuzz(func(t *testing.T, v []byte) {
		_, err := st.decodeActive([]*mvccpb.KeyValue{{Key: []byte("/crus/active/a"), Value: v}})
		if err != nil && !errors.Is(err, crus.ErrCorruptSession) {
			t.Fatalf("an error of another kind: %v", err)
		}
	})
}
