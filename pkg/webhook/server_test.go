package webhook

import (
	"context"
	"errors"
	"testing"

	"github.com/prometheus/client_golang/prometheus/testutil"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/webhook/admission"
)

// answer is a handler that gives one response.
type answer admission.Response

func (a answer) Handle(context.Context, admission.Request) admission.Response {
	return admission.Response(a)
}

// TestCountedOutcomes: each response is counted once per rule it names,
// under the outcome an operator reads it as. Not parallel: the counters
// are the process's.
func TestCountedOutcomes(t *testing.T) {
	patched := admission.Allowed("")
	patched.Patches = admission.PatchResponseFromRaw([]byte(`{}`), []byte(`{"a":1}`)).Patches
	patchedWarned := patched
	patchedWarned.Warnings = []string{"rollguard: RG104 prestop-exec-needs-binary (case1) not fixed at admission: x"}
	warned := admission.Allowed("")
	warned.Warnings = []string{"Deployment shop/web: RG201 readiness-missing (case2): x", "Deployment shop/web: RG101 prestop-missing (case1): y", "RG201 again"}
	denied := admission.Denied("Deployment shop/web: RG201 readiness-missing (case2): x; fix: add a readinessProbe")
	failed := failOpen(errors.New("decoding the Pod of shop/: no object in the request"))
	for _, tc := range []struct {
		name    string
		handler string
		resp    admission.Response
		want    map[[2]string]float64 // outcome, rule: increase
	}{
		{"a patch", "mutate", patched, map[[2]string]float64{{"mutated", ""}: 1}},
		{"a patch with a warning", "mutate", patchedWarned, map[[2]string]float64{{"mutated", "RG104"}: 1, {"mutated", ""}: 0}},
		{"nothing to change", "mutate", admission.Allowed(""), map[[2]string]float64{{"unchanged", ""}: 1}},
		{"nothing found", "validate", admission.Allowed(""), map[[2]string]float64{{"allowed", ""}: 1, {"unchanged", ""}: 0}},
		{"warnings, one per rule", "validate", warned, map[[2]string]float64{{"warned", "RG201"}: 1, {"warned", "RG101"}: 1, {"warned", ""}: 0}},
		{"a denial", "validate", denied, map[[2]string]float64{{"denied", "RG201"}: 1}},
		{"the handler's own failure", "mutate", failed, map[[2]string]float64{{"error", ""}: 1, {"allowed", ""}: 0}},
	} {
		before := map[[2]string]float64{}
		for k := range tc.want {
			before[k] = testutil.ToFloat64(admissions.WithLabelValues(tc.handler, k[0], k[1]))
		}
		if got := (counted{tc.handler, answer(tc.resp)}).Handle(context.Background(), admission.Request{}); got.Allowed != tc.resp.Allowed {
			t.Errorf("%s: the response changed", tc.name)
		}
		for k, inc := range tc.want {
			if got := testutil.ToFloat64(admissions.WithLabelValues(tc.handler, k[0], k[1])) - before[k]; got != inc {
				t.Errorf("%s: %s{outcome=%q, rule=%q} rose by %v, want %v", tc.name, tc.handler, k[0], k[1], got, inc)
			}
		}
	}
}

func TestRuleOf(t *testing.T) {
	t.Parallel()
	for s, want := range map[string]string{
		"Deployment a/b: RG201 readiness-missing": "RG201",
		"RG101":                             "RG101",
		"ends with RG10":                    "",
		"RGX01 is none":                     "",
		"no rule here":                      "",
		"rollguard could not check this: x": "",
	} {
		if got := ruleOf(s); got != want {
			t.Errorf("ruleOf(%q) = %q, want %q", s, got, want)
		}
	}
}

func TestStripManagedFields(t *testing.T) {
	t.Parallel()
	s := web("shop")
	s.ManagedFields = []metav1.ManagedFieldsEntry{{Manager: "kubectl", Operation: metav1.ManagedFieldsOperationApply}}
	s.Annotations = map[string]string{"a": "b"}
	out, err := stripManagedFields(s)
	if err != nil || out.(*corev1.Service).ManagedFields != nil || out.(*corev1.Service).Annotations["a"] != "b" {
		t.Errorf("stripManagedFields: %+v, %v", out, err)
	}
}
