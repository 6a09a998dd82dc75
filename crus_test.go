package crus_test

import (
	"context"
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/crus-go/crus"
	"github.com/crus-go/crus/internal/fake"
	"github.com/crus-go/crus/internal/text"
	"github.com/crus-go/crus/wlm"
)

func validSpec() crus.Spec {
	return crus.Spec{
		StartingLabel: "nodes-to-upgrade", UpgradingLabel: "nodes-upgrading", FailedLabel: "nodes-failed",
		StepSize: 30, TemplateID: "cos-2.5", WorkloadManagerType: "slurm",
	}
}

func TestSpecValidate(t *testing.T) {
	tests := []struct {
		name   string
		mutate func(*crus.Spec)
		fields []string // fields reported, in order
		has    string
	}{
		{name: "valid", mutate: func(*crus.Spec) {}},
		{name: "valid with extensions", mutate: func(s *crus.Spec) {
			s.BootLimit, s.BootTimeout, s.ReturnTimeout, s.ClearFailed = crus.LimitLabel, crus.Duration(time.Hour), crus.Duration(time.Minute), true
		}},
		{name: "labels with every allowed character", mutate: func(s *crus.Spec) { s.StartingLabel = "a-b:c.d_e0" }},
		{name: "step size zero", mutate: func(s *crus.Spec) { s.StepSize = 0 }, fields: []string{"upgrade_step_size"}, has: "at least 1, got 0"},
		{name: "step size negative", mutate: func(s *crus.Spec) { s.StepSize = -3 }, fields: []string{"upgrade_step_size"}},
		{name: "empty starting label", mutate: func(s *crus.Spec) { s.StartingLabel = "" }, fields: []string{"starting_label"}, has: "is required"},
		{name: "upper case label", mutate: func(s *crus.Spec) { s.UpgradingLabel = "Upgrading" }, fields: []string{"upgrading_label"}, has: "lower case"},
		{name: "label with a slash", mutate: func(s *crus.Spec) { s.FailedLabel = "a/b" }, fields: []string{"failed_label"}},
		{name: "label with a space", mutate: func(s *crus.Spec) { s.FailedLabel = "a b" }, fields: []string{"failed_label"}},
		{name: "starting equals upgrading", mutate: func(s *crus.Spec) { s.UpgradingLabel = s.StartingLabel }, fields: []string{"upgrading_label"}, has: "same group as starting_label"},
		{name: "all three equal", mutate: func(s *crus.Spec) { s.UpgradingLabel, s.FailedLabel = s.StartingLabel, s.StartingLabel }, fields: []string{"upgrading_label", "failed_label", "failed_label"}},
		{name: "no template", mutate: func(s *crus.Spec) { s.TemplateID = "" }, fields: []string{"upgrade_template_id"}},
		{name: "no workload manager", mutate: func(s *crus.Spec) { s.WorkloadManagerType = "" }, fields: []string{"workload_manager_type"}},
		{name: "workload manager with spaces", mutate: func(s *crus.Spec) { s.WorkloadManagerType = "slurm 22" }, fields: []string{"workload_manager_type"}},
		{name: "bad boot limit", mutate: func(s *crus.Spec) { s.BootLimit = "all" }, fields: []string{"boot_limit"}},
		{name: "negative timeout", mutate: func(s *crus.Spec) { s.ReturnTimeout = -1 }, fields: []string{"return_timeout"}},
		{name: "everything wrong at once", mutate: func(s *crus.Spec) { *s = crus.Spec{} },
			fields: []string{"starting_label", "upgrading_label", "failed_label", "upgrade_step_size", "upgrade_template_id", "workload_manager_type"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s := validSpec()
			tc.mutate(&s)
			err := s.Validate()
			if len(tc.fields) == 0 {
				require.NoError(t, err)
				return
			}
			require.Error(t, err)
			assert.ErrorIs(t, err, crus.ErrInvalidSpec)
			var got []string
			for _, e := range unwrapAll(err) {
				var fe *crus.FieldError
				if errors.As(e, &fe) {
					got = append(got, fe.Field)
				}
			}
			assert.Equal(t, tc.fields, got)
			assert.Contains(t, err.Error(), tc.has)
			assert.True(t, strings.HasPrefix(err.Error(), "invalid session spec: "), err.Error())
		})
	}
}

func unwrapAll(err error) []error {
	if j, ok := err.(interface{ WrappedErrors() []error }); ok {
		return j.WrappedErrors()
	}
	return []error{err}
}

func TestSpecWithDefaults(t *testing.T) {
	s := validSpec().WithDefaults()
	assert.Equal(t, crus.LimitNodes, s.BootLimit)
	assert.Equal(t, crus.Duration(crus.DefaultBootTimeout), s.BootTimeout)
	assert.Equal(t, crus.Duration(crus.DefaultReturnTimeout), s.ReturnTimeout)
	keep := validSpec()
	keep.BootTimeout = crus.Duration(time.Minute)
	assert.Equal(t, crus.Duration(time.Minute), keep.WithDefaults().BootTimeout)
}

// TestSpecJSONIsTheOriginalRequest checks a request body of the original
// CRUS API decodes into a Spec, and a Spec encodes the six fields under the
// original names.
func TestSpecJSONIsTheOriginalRequest(t *testing.T) {
	body := `{"failed_label":"nodes-that-failed","starting_label":"nodes-to-upgrade","upgrade_step_size":30,
		"upgrade_template_id":"my-bos-session-template","upgrading_label":"nodes-currently-upgrading","workload_manager_type":"slurm"}`
	var s crus.Spec
	require.NoError(t, json.Unmarshal([]byte(body), &s))
	require.NoError(t, s.Validate())
	assert.Equal(t, crus.Spec{
		StartingLabel: "nodes-to-upgrade", UpgradingLabel: "nodes-currently-upgrading", FailedLabel: "nodes-that-failed",
		StepSize: 30, TemplateID: "my-bos-session-template", WorkloadManagerType: "slurm",
	}, s)
	out, err := json.Marshal(s)
	require.NoError(t, err)
	assert.JSONEq(t, body, string(out), "no extension appears when unset")
}

func TestDurationJSON(t *testing.T) {
	var d crus.Duration
	require.NoError(t, json.Unmarshal([]byte(`"1h30m"`), &d))
	assert.Equal(t, crus.Duration(90*time.Minute), d)
	// A bare number has no unit: 3600 meant as seconds would be 3.6µs.
	err := json.Unmarshal([]byte(`3600`), &d)
	require.Error(t, err)
	assert.Contains(t, err.Error(), `"3600s"`, "the error says how to write it")
	out, _ := json.Marshal(crus.Duration(90 * time.Minute))
	assert.Equal(t, `"1h30m0s"`, string(out))
	assert.Error(t, json.Unmarshal([]byte(`"soon"`), &d))
	assert.Error(t, json.Unmarshal([]byte(`true`), &d))
}

// TestSessionStatusIsTheOriginalRecord checks the original API's
// SessionStatus: every required field present, no other field.
func TestSessionStatusIsTheOriginalRecord(t *testing.T) {
	s := &crus.Session{UpgradeID: "c926acf6-b5c6-411e-ba6c-ea0448cab2ee", Kind: crus.Kind, APIVersion: crus.APIVersion,
		State: crus.StateUpdating, Spec: validSpec().WithDefaults()}
	out, err := json.Marshal(s.Status())
	require.NoError(t, err)
	var got map[string]any
	require.NoError(t, json.Unmarshal(out, &got))
	required := []string{"api_version", "completed", "failed_label", "kind", "messages", "starting_label", "state",
		"upgrade_id", "upgrade_step_size", "upgrade_template_id", "upgrading_label", "workload_manager_type"}
	assert.ElementsMatch(t, required, keys(got))
	assert.Equal(t, []any{}, got["messages"], "messages is an array, never null")
	assert.Equal(t, "ComputeUpgradeSession", got["kind"])

	// The full record holds the same fields at the top level, plus progress.
	out, err = json.Marshal(s)
	require.NoError(t, err)
	var full map[string]any
	require.NoError(t, json.Unmarshal(out, &full))
	for _, k := range required {
		assert.Contains(t, full, k)
	}
	assert.Contains(t, full, "progress")
}

func keys(m map[string]any) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	return out
}

func TestSessionJSONRoundTrip(t *testing.T) {
	e := newEnv(t, fakeCluster(6), 2)
	s := e.run()
	out, err := json.Marshal(s)
	require.NoError(t, err)
	var back crus.Session
	require.NoError(t, json.Unmarshal(out, &back))
	back.Revision = s.Revision
	assert.Equal(t, s, &back)
}

// The core caps the reasons it builds to text.MaxReason; every adapter
// must accept wlm.MaxReason.
func TestReasonCapIsTheWorkloadManagersBound(t *testing.T) {
	assert.Equal(t, wlm.MaxReason, text.MaxReason)
}

// TestSpecTimeoutsHaveAFloor: a timeout below MinTimeout would fail or
// release every node; the spec is refused, the field named.
func TestSpecTimeoutsHaveAFloor(t *testing.T) {
	for _, c := range []struct {
		field string
		set   func(*crus.Spec, crus.Duration)
	}{
		{"boot_timeout", func(s *crus.Spec, d crus.Duration) { s.BootTimeout = d }},
		{"return_timeout", func(s *crus.Spec, d crus.Duration) { s.ReturnTimeout = d }},
		{"drain_timeout", func(s *crus.Spec, d crus.Duration) { s.Rollout.DrainTimeout = d }},
	} {
		for _, d := range []crus.Duration{crus.Duration(3600), crus.Duration(59 * time.Second)} {
			s := validSpec()
			c.set(&s, d)
			err := s.Validate()
			require.ErrorIs(t, err, crus.ErrInvalidSpec, "%s %s", c.field, d)
			var fe *crus.FieldError
			require.ErrorAs(t, err, &fe)
			assert.Equal(t, c.field, fe.Field)
			assert.Contains(t, fe.Problem, "at least 1m0s")
		}
		s := validSpec()
		c.set(&s, crus.MinTimeout)
		assert.NoError(t, s.Validate(), "%s of exactly MinTimeout", c.field)
	}
}

// TestConfigPollsHaveAFloor: a poll or a first retry of a few nanoseconds
// would flood the backends; Validate (and NewExecutor) refuse it.
func TestConfigPollsHaveAFloor(t *testing.T) {
	for name, c := range map[string]crus.Config{
		"PollInterval":         {PollInterval: 1},
		"InFlightPollInterval": {InFlightPollInterval: 99 * time.Millisecond},
		"RetryInitial":         {RetryInitial: time.Microsecond},
		"CallTimeout":          {CallTimeout: 999 * time.Millisecond},
	} {
		err := c.Validate()
		require.Error(t, err, name)
		assert.Contains(t, err.Error(), "Config."+name+" must be at least", name)
	}
	assert.NoError(t, crus.Config{PollInterval: crus.MinPollInterval, InFlightPollInterval: crus.MinPollInterval, RetryInitial: crus.MinRetryInitial, CallTimeout: crus.MinCallTimeout}.Validate())
	assert.ErrorContains(t, crus.Config{CallTimeout: -time.Second}.Validate(), "Config.CallTimeout must not be negative")
	world := fake.NewCluster(fake.ClusterOptions{Nodes: 2})
	_, err := crus.NewExecutor(world.HSM(), world.WLM(), world.BOS(), crus.Config{Clock: world, PollInterval: 1})
	assert.ErrorContains(t, err, "PollInterval")
}

// TestCreateRefusesBadIDs: an id from Config.NewID that could not name
// the session's boot sessions, reservations or file is refused before
// anything is stored or touched.
func TestCreateRefusesBadIDs(t *testing.T) {
	for _, id := range []string{"", "a/b c", "-lead", "x:y", strings.Repeat("a", crus.MaxIDLength+1), "ünïcode"} {
		world := fake.NewCluster(fake.ClusterOptions{Nodes: 4})
		st := crus.NewMemoryStore()
		ex, err := crus.NewExecutor(world.HSM(), world.WLM(), world.BOS(), crus.Config{Clock: world, Store: st, NewID: func() string { return id }})
		require.NoError(t, err)
		spec := crus.Spec{StartingLabel: fake.StartingLabel, UpgradingLabel: fake.UpgradingLabel, FailedLabel: fake.FailedLabel,
			StepSize: 2, TemplateID: fake.Template, WorkloadManagerType: "slurm"}
		_, err = ex.Create(context.Background(), spec)
		require.Error(t, err, "id %q", id)
		assert.Contains(t, err.Error(), "Config.NewID", "id %q", id)
		list, err := st.List(context.Background())
		require.NoError(t, err)
		assert.Empty(t, list, "id %q: nothing stored", id)
		members, err := world.HSM().Members(context.Background(), fake.UpgradingLabel)
		require.NoError(t, err)
		assert.Empty(t, members, "id %q: no node taken", id)
		// The same executor, given a good id, still works.
		id = "good-id.1_"
		s, err := ex.Create(context.Background(), spec)
		require.NoError(t, err)
		assert.Equal(t, "good-id.1_", s.UpgradeID)
	}
	assert.NoError(t, crus.ValidateID(strings.Repeat("a", crus.MaxIDLength)))
	// A store's check takes the longer ids older records hold, and
	// nothing else.
	assert.NoError(t, crus.ValidateStoredID(strings.Repeat("a", crus.MaxStoredIDLength)))
	assert.Error(t, crus.ValidateStoredID(strings.Repeat("a", crus.MaxStoredIDLength+1)))
	for _, id := range []string{"", ".", "..", ".hidden", "-x", "a/b", `a\b`, "a b", "a\x00", "ünï"} {
		assert.Error(t, crus.ValidateStoredID(id), "id %q", id)
	}
	assert.Error(t, crus.NewMemoryStore().Create(context.Background(), &crus.Session{}), "a record without an id")
}
