package rules_test

import (
	"fmt"
	"strings"
	"testing"

	"github.com/rollguard/rollguard/pkg/rules"
)

// remedies audits a fixture and returns the remedy of each finding of id.
func remedies(t *testing.T, path, id string, o rules.FixOptions) []rules.Remedy {
	t.Helper()
	var out []rules.Remedy
	for _, f := range run(t, path).Findings {
		if f.Rule.ID == id {
			out = append(out, f.Rule.Remediate(o, f))
		}
	}
	if len(out) == 0 {
		t.Fatalf("%s: %s did not fire", path, id)
	}
	return out
}

func TestRemedies(t *testing.T) {
	t.Parallel()
	o := rules.FixOptions{Settings: rules.DefaultSettings()}
	t.Run("UDP-only container: no tcpSocket probe", func(t *testing.T) {
		t.Parallel()
		r := remedies(t, "testdata/RG201/fires-udp-only.yaml", "RG201", o)[0]
		if len(r.Ops) != 0 || !strings.Contains(r.Unfixable, "UDP") {
			t.Errorf("got %+v, want no ops and a reason naming UDP", r)
		}
	})
	t.Run("TCP container: tcpSocket probe on the served port", func(t *testing.T) {
		t.Parallel()
		r := remedies(t, "testdata/RG201/fires-no-readiness.yaml", "RG201", o)[0]
		if len(r.Ops) != 1 || !strings.HasSuffix(r.Ops[0].Path, ".readinessProbe") {
			t.Errorf("got %+v", r)
		}
	})
	t.Run("StatefulSet maxUnavailable goes into rollingUpdate", func(t *testing.T) {
		t.Parallel()
		r := remedies(t, "testdata/RG302/fires-statefulset.yaml", "RG302", o)[0]
		if len(r.Ops) != 1 || r.Ops[0].Path != "spec.updateStrategy.rollingUpdate.maxUnavailable" {
			t.Errorf("got %+v", r.Ops)
		}
	})
	t.Run("native sleep notes the 1.30 floor", func(t *testing.T) {
		t.Parallel()
		r := remedies(t, "testdata/RG101/fires-no-prestop.yaml", "RG101", o)[0]
		if !strings.Contains(r.Note, "1.30") {
			t.Errorf("note %q does not name Kubernetes 1.30", r.Note)
		}
	})
	t.Run("the app's own delay shortens the added sleep", func(t *testing.T) {
		t.Parallel()
		r := remedies(t, "testdata/RG102/fires-in-app-short.yaml", "RG102", o)[0]
		if len(r.Ops) != 1 || fmt.Sprint(r.Ops[0].Value) != "[{sleep [{seconds 2}]}]" {
			t.Errorf("got %+v, want a 2s sleep (5s budget less the app's 3s)", r.Ops)
		}
	})
	t.Run("prepend-sleep edits only the script, for the missing time", func(t *testing.T) {
		t.Parallel()
		po := o
		po.PrependSleep = true
		r := remedies(t, "testdata/RG102/fires-sleep-then-quit.yaml", "RG102", po)[0]
		if len(r.Ops) != 1 || r.Ops[0].Path != "spec.template.spec.containers[0].lifecycle.preStop.exec.command[2]" ||
			r.Ops[0].Value != "sleep 3; sleep 2 && nginx -s quit" {
			t.Errorf("got %+v", r.Ops)
		}
	})
	t.Run("a hook of unknown effect is left to a person", func(t *testing.T) {
		t.Parallel()
		for _, f := range run(t, "testdata/RG105/fires-custom-binary.yaml").Findings {
			if f.Rule.ID == "RG103" || f.Rule.ID == "RG101" || f.Rule.ID == "RG102" {
				t.Errorf("%s fired on a hook of unknown effect: %s", f.Rule.ID, f.Message)
			}
		}
	})
}
