package lab

import (
	"testing"
	"time"

	"github.com/rollguard/rollguard/pkg/diagnose"
)

// TestRuleForComesFromTheRegistry: the rule a failure names is the one the
// registry fires on the pod's spec, for the failure's case.
func TestRuleForComesFromTheRegistry(t *testing.T) {
	t.Parallel()
	sc := Base()
	sc.Propagation = []time.Duration{time.Second} // budget 1.1s
	rule := ruleFor(sc)
	for _, tc := range []struct {
		cause diagnose.Cause
		spec  diagnose.PodSpec
		want  string
	}{
		{diagnose.Case1, diagnose.PodSpec{}, "RG101"},
		{diagnose.Case1, diagnose.PodSpec{PreStop: time.Second}, "RG102"},
		{diagnose.Case1, diagnose.PodSpec{PreStop: 3 * time.Second}, ""},
		{diagnose.Case2, diagnose.PodSpec{}, "RG201"},
		{diagnose.Case2, diagnose.PodSpec{Readiness: true}, ""},
	} {
		if got := rule(tc.cause, tc.spec); got != tc.want {
			t.Errorf("%s on %+v: %q, want %q", tc.cause, tc.spec, got, tc.want)
		}
	}
}
