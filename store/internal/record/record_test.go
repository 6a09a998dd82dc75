package record

import (
	"bytes"
	"compress/flate"
	"errors"
	"fmt"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/crus-go/crus"
	"github.com/crus-go/crus/store/storetest"
)

// TestDeltaRoundTrip: deltas applied in turn, each compressed against the
// header of the one before, give the session they were made from; and a
// delta follows the header before it, cheaply.
func TestDeltaRoundTrip(t *testing.T) {
	s := storetest.Session("s", 50)
	stored := s.Clone()
	var last []byte
	var sizes, alone []int
	for i := range 30 {
		s.Progress.Step = i
		s.Progress.Nodes[i].Phase = crus.PhaseBooting
		s.Progress.Nodes[i].Boot = fmt.Sprintf("boot-%d", i)
		s.AddMessages(fmt.Sprintf("message %d", i))
		d, err := MakeDelta(s, []int{i, i}, stored.MessagesTotal())
		require.NoError(t, err)
		require.Len(t, d.Nodes, 1, "positions are deduplicated")
		b, err := EncodeDelta(d, last)
		require.NoError(t, err)
		sizes = append(sizes, len(b))
		b0, err := EncodeDelta(d, nil)
		require.NoError(t, err)
		alone = append(alone, len(b0))
		got, err := DecodeDelta(b, 1<<20, last)
		require.NoError(t, err)
		require.NoError(t, got.Apply(stored))
		last = got.Header
		assert.Equal(t, s.Progress, stored.Progress, "write %d", i)
		assert.Equal(t, s.Messages, stored.Messages, "write %d", i)
	}
	for i := 1; i < len(sizes); i++ {
		assert.Less(t, sizes[i], alone[i], "a delta following another costs less: %v, alone %v", sizes, alone)
	}

	// A delta that follows another cannot be read without it.
	d, err := MakeDelta(s, nil, s.MessagesTotal())
	require.NoError(t, err)
	b, err := EncodeDelta(d, last)
	require.NoError(t, err)
	_, err = DecodeDelta(b, 1<<20, nil)
	assert.Error(t, err)
}

// TestApplyChecks: a delta that does not fit the session is refused, and
// the session is left as it was.
func TestApplyChecks(t *testing.T) {
	s := storetest.Session("s", 5)
	before := s.Clone()
	d, err := MakeDelta(s, []int{1}, s.MessagesTotal())
	require.NoError(t, err)
	d.Nodes[0].I = 9
	assert.ErrorContains(t, d.Apply(s), "out of range")
	other := storetest.Session("t", 5)
	d, err = MakeDelta(other, nil, 0)
	require.NoError(t, err)
	assert.ErrorContains(t, d.Apply(s), `header of session "t"`)
	assert.Equal(t, before, s)
}

// TestInflateBounded: a value that inflates past its limit is refused
// before it is all inflated.
func TestInflateBounded(t *testing.T) {
	var buf bytes.Buffer
	buf.WriteByte(codecFlate)
	w, _ := flate.NewWriter(&buf, flate.BestCompression)
	_, _ = w.Write(make([]byte, 10<<20))
	_ = w.Close()
	_, err := Inflate(buf.Bytes(), 1<<20)
	assert.True(t, errors.Is(err, ErrTooLarge), "%v", err)
	_, err = Inflate([]byte("q{}"), 10)
	assert.ErrorContains(t, err, "unknown codec")
	_, err = Inflate(nil, 10)
	assert.Error(t, err)
	j, err := Inflate([]byte(`j{"a":1}`), 10)
	require.NoError(t, err)
	assert.Equal(t, `{"a":1}`, string(j))
}
