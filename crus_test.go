package crus_test

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/crus-go/crus"
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
	require.NoError(t, json.Unmarshal([]byte(`60000000000`), &d))
	assert.Equal(t, crus.Duration(time.Minute), d)
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
