// Package record encodes session records for the durable stores
// (store/filestore, store/etcdstore): whole records (snapshots), node
// records in chunks, and deltas — what one write changed — that a store
// writes instead of the whole record (crus.NodeUpdater).
//
// Every value is JSON compressed with DEFLATE and a preset dictionary of
// the words a record is made of, behind one byte naming the codec: a
// delta of one node record and a header takes some 300 bytes instead of
// 1.3 KB of JSON. Decoding never trusts its input: it inflates at most a
// given number of bytes, and checks what it applies.
package record

import (
	"bytes"
	"compress/flate"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"slices"
	"sync"

	"github.com/crus-go/crus"
)

// Codecs: the first byte of an encoded value.
const (
	codecJSON  byte = 'j' // JSON as it is (read, never written)
	codecFlate byte = 'z' // JSON compressed with DEFLATE and dict1
	// codecFollow: a delta compressed with DEFLATE and, as dictionary,
	// dict1 followed by the header of the delta before it (its "h" as
	// written), which the reader has just decoded: a header differs from
	// the one before in a few fields, and costs tens of bytes instead of
	// hundreds.
	codecFollow byte = 'y'
)

// dict1 is the preset dictionary of codecFlate. It must never change:
// values written with it are decoded with it. A new dictionary is a new
// codec byte.
const dict1 = `"outcome":"skipped","reason":"not in service at session start: ` +
	`"reason":"did not return to the workload manager within ` +
	`"outcome":"failed","reason":"boot session ` +
	`"outcome":"untouched","reason":"session cancelled before this node's step began` +
	`{"upgrade_id":"","kind":"ComputeUpgradeSession","api_version":"1.0.0","state":"UPDATING","completed":false,` +
	`"messages":null,"starting_label":"","upgrading_label":"","failed_label":"","upgrade_step_size":50,` +
	`"upgrade_template_id":"","workload_manager_type":"slurm","boot_limit":"nodes","boot_timeout":"1h0m0s",` +
	`"return_timeout":"30m0s","strategy":"rolling","order":"job_end","lookahead":1000,"boot_batch_size":` +
	`"progress":{"stage":"quiescing","stage_since":"2026-01-05T08:00:00Z","step":1,"steps":200,` +
	`"created_at":"2026-01-05T08:00:00Z","started_at":"2026-01-05T08:00:00Z","boots":1,"nodes":null}}` +
	`"messages":["Session created: 10000 nodes to upgrade in 200 steps of at most 50","Session started",` +
	`"Boot session crus--1 created for 1 drained nodes","Boot sessions complete: 1 booted, 0 failed; waiting for the workload manager",` +
	`"Step 1 of 200: quiescing 50 nodes","Step 1: all 50 nodes quiesced; boot session crus--1 created",` +
	`"Step 1: boot session complete: 50 booted, 0 failed; waiting for the workload manager",` +
	`"Step 1 of 200 complete: 50 upgraded, 0 failed, 0 skipped, 0 untouched"],"messages_dropped":1` +
	`{"i":1,"r":{"xname":"x1000c0s0b0n0","wlm_name":"nid000001","step":1,"phase":"pending","since":"2026-01-05T08:00:00Z"}}` +
	`{"xname":"x1000c0s0b0n1","wlm_name":"nid000002","step":1,"phase":"returning","grouped":true,` +
	`"boot":"crus--1","since":"2026-01-05T08:00:00.001Z","drain_requested":"2026-01-05T08:00:00Z",` +
	`"drained":"2026-01-05T08:00:00Z","reboot_requested":"2026-01-05T08:00:00Z","booted":"2026-01-05T08:00:00Z",` +
	`"returned":"2026-01-05T08:00:00Z","finished":"2026-01-05T08:00:00Z"},` +
	`{"xname":"x1000c0s0b1n0","wlm_name":"nid000003","step":1,"phase":"quiesced","grouped":true,"since":"2026-01-05T08:00:00Z","drain_requested":"2026-01-05T08:00:00Z","drained":"2026-01-05T08:00:00Z"},` +
	`{"xname":"x1000c0s0b1n1","wlm_name":"nid000004","step":1,"phase":"booting","grouped":true,"boot":"crus--1","since":"2026-01-05T08:00:00Z","drain_requested":"2026-01-05T08:00:00Z","drained":"2026-01-05T08:00:00Z","reboot_requested":"2026-01-05T08:00:00Z"},` +
	`{"xname":"x1000c0s1b0n0","wlm_name":"nid000005","step":1,"phase":"done","outcome":"upgraded","reason":"rebooted and back in service",` +
	`"boot":"crus--1","since":"2026-01-05T08:00:00Z","drain_requested":"2026-01-05T08:00:00Z","drained":"2026-01-05T08:00:00Z",` +
	`"reboot_requested":"2026-01-05T08:00:00Z","booted":"2026-01-05T08:00:00Z","returned":"2026-01-05T08:00:00Z","finished":"2026-01-05T08:00:00Z"}`

// ErrTooLarge: a value inflates past the limit its reader allows.
var ErrTooLarge = errors.New("record: value inflates past its limit")

// compressionLevel is DEFLATE's level: levels below 2 ignore the
// dictionary.
const compressionLevel = 5

var writers = sync.Pool{New: func() any {
	w, _ := flate.NewWriterDict(nil, compressionLevel, []byte(dict1))
	return w
}}

// EncodeDelta encodes a delta. prev is the header of the delta written
// just before it (nil after a snapshot, or if unknown): DecodeDelta must
// be given the same.
func EncodeDelta(d *Delta, prev []byte) ([]byte, error) {
	if len(prev) == 0 {
		return Encode(d)
	}
	j, err := json.Marshal(d)
	if err != nil {
		return nil, err
	}
	var buf bytes.Buffer
	buf.Grow(len(j)/4 + 16)
	buf.WriteByte(codecFollow)
	w, err := flate.NewWriterDict(&buf, compressionLevel, followDict(prev))
	if err != nil {
		return nil, err
	}
	_, _ = w.Write(j)
	_ = w.Close()
	return buf.Bytes(), nil
}

// DecodeDelta decodes a delta written by EncodeDelta with the same prev,
// inflating at most limit bytes of JSON.
func DecodeDelta(b []byte, limit int, prev []byte) (*Delta, error) {
	var d Delta
	if len(b) > 0 && b[0] == codecFollow {
		if len(prev) == 0 {
			return nil, errors.New("record: a delta that follows another, without one before it")
		}
		j, err := inflate(b[1:], limit, followDict(prev))
		if err != nil {
			return nil, err
		}
		if err := json.Unmarshal(j, &d); err != nil {
			return nil, fmt.Errorf("record: %w", err)
		}
		return &d, nil
	}
	if err := Decode(b, limit, &d); err != nil {
		return nil, err
	}
	return &d, nil
}

func followDict(prev []byte) []byte {
	d := make([]byte, 0, len(dict1)+len(prev))
	return append(append(d, dict1...), prev...)
}

// Encode returns v as JSON compressed with the current codec.
func Encode(v any) ([]byte, error) {
	j, err := json.Marshal(v)
	if err != nil {
		return nil, err
	}
	return Compress(j), nil
}

// Compress compresses JSON text j with the current codec.
func Compress(j []byte) []byte {
	var buf bytes.Buffer
	buf.Grow(len(j)/4 + 16)
	buf.WriteByte(codecFlate)
	w := writers.Get().(*flate.Writer)
	w.Reset(&buf)
	_, _ = w.Write(j) // a bytes.Buffer does not fail
	_ = w.Close()
	writers.Put(w)
	return buf.Bytes()
}

// Decode decodes a value written by Encode into v, inflating at most
// limit bytes of JSON.
func Decode(b []byte, limit int, v any) error {
	j, err := Inflate(b, limit)
	if err != nil {
		return err
	}
	if err := json.Unmarshal(j, v); err != nil {
		return fmt.Errorf("record: %w", err)
	}
	return nil
}

// Inflate returns the JSON text of an encoded value, at most limit bytes
// of it.
func Inflate(b []byte, limit int) ([]byte, error) {
	if len(b) == 0 {
		return nil, errors.New("record: empty value")
	}
	switch b[0] {
	case codecJSON:
		if len(b)-1 > limit {
			return nil, fmt.Errorf("%w (%d bytes)", ErrTooLarge, limit)
		}
		return b[1:], nil
	case codecFlate:
		return inflate(b[1:], limit, []byte(dict1))
	}
	return nil, fmt.Errorf("record: unknown codec %q", b[0])
}

func inflate(b []byte, limit int, dict []byte) ([]byte, error) {
	r := flate.NewReaderDict(bytes.NewReader(b), dict)
	defer r.Close()
	j, err := io.ReadAll(io.LimitReader(r, int64(limit)+1))
	if err != nil {
		return nil, fmt.Errorf("record: inflating: %w", err)
	}
	if len(j) > limit {
		return nil, fmt.Errorf("%w (%d bytes)", ErrTooLarge, limit)
	}
	return j, nil
}

// Header returns the JSON of s without its node records and messages:
// what every write of a session carries.
func Header(s *crus.Session) ([]byte, error) {
	h := *s
	h.Progress.Nodes, h.Messages = nil, nil
	return json.Marshal(&h)
}

// Delta is what one write changed in a session: its header (every field
// but the node records and the messages), the messages it added (as
// crus.Session.MessagesSince tells) and the node records it changed.
type Delta struct {
	Header   json.RawMessage `json:"h"`
	Messages []string        `json:"m,omitempty"`
	Nodes    []Node          `json:"n,omitempty"`
}

// Node is one changed node record and its position.
type Node struct {
	I int             `json:"i"`
	R crus.NodeRecord `json:"r"`
}

// MakeDelta returns the delta that takes a session whose stored copy had
// msgTotal messages (crus.Session.MessagesTotal) to s, given the
// positions of the node records that changed (in range: the caller
// checked).
func MakeDelta(s *crus.Session, changed []int, msgTotal int) (*Delta, error) {
	h, err := Header(s)
	if err != nil {
		return nil, err
	}
	d := &Delta{Header: h, Messages: s.MessagesSince(msgTotal)}
	pos := slices.Clone(changed)
	slices.Sort(pos)
	pos = slices.Compact(pos)
	d.Nodes = make([]Node, len(pos))
	for k, i := range pos {
		d.Nodes[k] = Node{I: i, R: s.Progress.Nodes[i]}
	}
	return d, nil
}

// Apply makes s, the session as it was before the write, the session the
// write stored. The node records of s are changed in place. It checks
// what it applies: an error means the delta does not fit s, and s is
// then left unchanged.
func (d *Delta) Apply(s *crus.Session) error {
	for _, n := range d.Nodes {
		if n.I < 0 || n.I >= len(s.Progress.Nodes) {
			return fmt.Errorf("record: node position %d out of range (%d nodes)", n.I, len(s.Progress.Nodes))
		}
	}
	var h crus.Session
	if err := json.Unmarshal(d.Header, &h); err != nil {
		return fmt.Errorf("record: header: %w", err)
	}
	if h.UpgradeID != s.UpgradeID {
		return fmt.Errorf("record: header of session %q", h.UpgradeID)
	}
	if h.MessagesDropped < s.MessagesDropped || len(h.Progress.Nodes) != 0 || len(h.Messages) != 0 {
		return errors.New("record: header does not follow the record")
	}
	dropped := h.MessagesDropped
	h.Progress.Nodes, h.Messages, h.MessagesDropped = s.Progress.Nodes, s.Messages, s.MessagesDropped
	h.Revision = s.Revision
	h.AddMessages(d.Messages...)
	h.MessagesDropped = dropped
	for _, n := range d.Nodes {
		h.Progress.Nodes[n.I] = n.R
	}
	*s = h
	return nil
}
