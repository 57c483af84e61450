package cli_test

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/rollguard/rollguard/internal/cli"
)

func TestLabBadFlagsNameTheFlag(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"lab", "--replicas", "0"}, "--replicas 0"},
		{[]string{"lab", "--max-surge", "0", "--max-unavailable", "0"}, "both 0"},
		{[]string{"lab", "--max-surge", "lots"}, "--max-surge"},
		{[]string{"lab", "--rate", "100000"}, "--rate"},
		{[]string{"lab", "--max-duration", "2h"}, "--max-duration"},
		{[]string{"lab", "--listen-delay", "-1s"}, "--listen-delay"},
		{[]string{"lab", "--drain", "soon"}, "invalid argument \"soon\" for \"--drain\""},
		{[]string{"lab", "--propagation", "1s..0s"}, "--propagation"},
		{[]string{"lab", "--propagation", "fast"}, "--propagation"},
		{[]string{"lab", "--sweep", "prestop=0s..100s/1s"}, "--sweep"},
		{[]string{"lab", "--sweep", "replicas=1..3"}, "--sweep"},
		{[]string{"lab", "--mode", "udp"}, "--mode"},
		{[]string{"lab", "-o", "yaml"}, "--output"},
		{[]string{"lab", "--observe", "ebpf"}, "--observe"},
		{[]string{"lab", "--probe-period", "1ms"}, "--probe-period"},
		{[]string{"lab", "--budget", "-1s"}, "--budget"},
	} {
		_, stderr, code := rollguard(t, "", tc.args...)
		if code != cli.ExitUsage || !strings.Contains(stderr, tc.want) {
			t.Errorf("%v: exit %d, stderr %q; want %d and %q", tc.args, code, stderr, cli.ExitUsage, tc.want)
		}
	}
}

// TestLabJSONAndReport runs the four scenarios with short timings through
// the CLI.
func TestLabJSONAndReport(t *testing.T) {
	t.Parallel()
	report := filepath.Join(t.TempDir(), "lab.html")
	out, stderr, code := rollguard(t, "", "lab", "-o", "json", "--report", report,
		"--container-start", "300ms", "--listen-delay", "300ms", "--propagation", "50ms,150ms", "--prestop", "500ms",
		"--readiness-period", "100ms", "--drain", "100ms", "--rate", "200", "--observe", "conntrack")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	var r struct {
		SchemaVersion string `json:"schemaVersion"`
		Scenarios     []struct {
			Name      string         `json:"name"`
			Requests  int            `json:"requests"`
			Failed    int            `json:"failed"`
			Causes    map[string]int `json:"causes"`
			Lossless  bool           `json:"lossless"`
			Agreement float64        `json:"groundTruthAgreement"`
			Observers string         `json:"observers"`
			Failures  []struct {
				Cause, Certainty, Rule string
				Truth                  string `json:"groundTruth"`
			} `json:"failures"`
		} `json:"scenarios"`
	}
	if err := json.Unmarshal([]byte(out), &r); err != nil {
		t.Fatalf("not JSON: %v", err)
	}
	if r.SchemaVersion != "rollguard.io/lab/v2" || len(r.Scenarios) != 4 {
		t.Fatalf("schema %q, %d scenarios", r.SchemaVersion, len(r.Scenarios))
	}
	if r.Scenarios[0].Failed == 0 || !r.Scenarios[3].Lossless {
		t.Errorf("first scenario failed %d, last lossless %v", r.Scenarios[0].Failed, r.Scenarios[3].Lossless)
	}
	for _, s := range r.Scenarios {
		if s.Failed != len(s.Failures) {
			t.Errorf("%s: %d failed, %d failures listed", s.Name, s.Failed, len(s.Failures))
		}
		if !strings.Contains(s.Observers, "conntrack") {
			t.Errorf("%s: observers %q, want conntrack named", s.Name, s.Observers)
		}
		for _, f := range s.Failures {
			if f.Certainty != "exact" || f.Cause != f.Truth {
				t.Errorf("%s: with conntrack, a failure %s (%s) against ground truth %s", s.Name, f.Cause, f.Certainty, f.Truth)
			}
		}
	}
	if data, err := os.ReadFile(report); err != nil || !strings.Contains(string(data), "rollguard lab") {
		t.Errorf("report not written: %v", err)
	}
}

// TestLabInterrupted: cancelling a run (what Ctrl-C does) prints what was
// measured, marked partial, and exits 130.
func TestLabInterrupted(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	var out, errOut bytes.Buffer
	code := cli.MainContext(ctx, []string{"lab"}, cli.Streams{In: strings.NewReader(""), Out: &out, ErrOut: &errOut})
	if code != cli.ExitInterrupted || !strings.Contains(out.String(), "partial") || !strings.Contains(out.String(), "Interrupted") {
		t.Errorf("exit %d, stdout:\n%s\nstderr %s", code, out.String(), errOut.String())
	}
}
