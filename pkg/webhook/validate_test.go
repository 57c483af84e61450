package webhook

import (
	"context"
	"strings"
	"testing"
	"unicode/utf8"

	admissionv1 "k8s.io/api/admission/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"sigs.k8s.io/controller-runtime/pkg/webhook/admission"

	"github.com/rollguard/rollguard/pkg/config"
	"github.com/rollguard/rollguard/pkg/rules"
)

const lossyDeployment = `{"apiVersion":"apps/v1","kind":"Deployment","metadata":{"name":"web","namespace":"shop"},
"spec":{"replicas":3,"selector":{"matchLabels":{"app":"web"}},"template":{"metadata":{"labels":{"app":"web"}},
"spec":{"containers":[{"name":"app","image":"example.com/web:1","ports":[{"name":"http","containerPort":8080}]}]}}}}`

func validator(deny string) *Validator {
	reg := rules.Default()
	cur := &Current{}
	if deny != "" {
		cfg, err := config.Parse([]byte("deny: ["+deny+"]\n"), reg)
		if err != nil {
			panic(err)
		}
		cur.Store(FromConfig(cfg, 0))
	}
	return &Validator{Registry: reg, Lister: services{"shop": {web("shop")}}, Settings: cur, Namespace: "rollguard-system", Mutating: true}
}

func workloadRequest(ns, raw string, op admissionv1.Operation) admission.Request {
	return admission.Request{AdmissionRequest: admissionv1.AdmissionRequest{UID: "1", Namespace: ns, Name: "web", Operation: op,
		Kind: metav1.GroupVersionKind{Group: "apps", Version: "v1", Kind: "Deployment"}, Object: runtime.RawExtension{Raw: []byte(raw)}}}
}

// TestValidateWarns: the lossy Deployment's Case 1 and Case 2 findings are
// warnings naming the workload and rule, with the note that its pods get
// the fix; a rule under deny: refuses it with the rule's fix.
func TestValidateWarns(t *testing.T) {
	t.Parallel()
	resp := validator("").Handle(context.Background(), workloadRequest("shop", lossyDeployment, admissionv1.Create))
	if !resp.Allowed {
		t.Fatalf("warn mode refused: %+v", resp.Result)
	}
	all := strings.Join(resp.Warnings, "\n")
	for _, want := range []string{"Deployment shop/web: RG101 prestop-missing (case1):", "Deployment shop/web: RG201 readiness-missing (case2):", "(fixed on its pods at admission)"} {
		if !strings.Contains(all, want) {
			t.Errorf("warnings lack %q:\n%s", want, all)
		}
	}
	for _, w := range resp.Warnings {
		if len([]rune(w)) > maxWarning {
			t.Errorf("a warning of %d runes: the API server would cut it", len([]rune(w)))
		}
	}
	resp = validator("RG201").Handle(context.Background(), workloadRequest("shop", lossyDeployment, admissionv1.Update))
	if resp.Allowed || resp.Result == nil || !strings.Contains(resp.Result.Message, "RG201") || !strings.Contains(resp.Result.Message, "fix:") {
		t.Errorf("deny mode: %+v", resp.Result)
	}
	if strings.Contains(strings.Join(resp.Warnings, "\n"), "RG201") || !strings.Contains(strings.Join(resp.Warnings, "\n"), "RG101") {
		t.Errorf("deny mode warnings: %q", resp.Warnings)
	}
}

// TestValidateLeavesAlone: system namespaces, the webhook's own, an
// opted-out workload, deletions and other kinds get nothing.
func TestValidateLeavesAlone(t *testing.T) {
	t.Parallel()
	v := validator("RG201")
	optOut := strings.Replace(lossyDeployment, `"metadata":{"name":"web","namespace":"shop"}`,
		`"metadata":{"name":"web","namespace":"shop","annotations":{"rollguard.io/inject":"disabled"}}`, 1)
	for _, tc := range []struct {
		name string
		req  admission.Request
	}{
		{"kube-system", workloadRequest("kube-system", lossyDeployment, admissionv1.Create)},
		{"its own namespace", workloadRequest("rollguard-system", lossyDeployment, admissionv1.Create)},
		{"opted out", workloadRequest("shop", optOut, admissionv1.Create)},
		{"delete", workloadRequest("shop", lossyDeployment, admissionv1.Delete)},
	} {
		resp := v.Handle(context.Background(), tc.req)
		if !resp.Allowed || len(resp.Warnings) > 0 {
			t.Errorf("%s: %+v %q", tc.name, resp.Result, resp.Warnings)
		}
	}
	other := workloadRequest("shop", lossyDeployment, admissionv1.Create)
	other.Kind.Kind = "ReplicaSet"
	if resp := v.Handle(context.Background(), other); !resp.Allowed || len(resp.Warnings) > 0 {
		t.Errorf("a ReplicaSet: %+v", resp)
	}
	bad := workloadRequest("shop", `{"apiVersion":"apps/v1","kind":"Deployment","spec":{"replicas":"x"}}`, admissionv1.Create)
	if resp := v.Handle(context.Background(), bad); !resp.Allowed || !strings.HasPrefix(resp.Result.Message, ErrorPrefix) || len(resp.Warnings) != 1 {
		t.Errorf("an undecodable Deployment must be let through with a warning: %+v", resp.Result)
	}
}

func TestClip(t *testing.T) {
	t.Parallel()
	if got := clip("héllo wörld", 8); got != "héllo..." {
		t.Errorf("clip = %q", got)
	}
	if got := clip("short", 8); got != "short" {
		t.Errorf("clip = %q", got)
	}
}

// TestValidateUpdates: an update of metadata or scale only, or of an
// object being deleted (the garbage collector removing its finalizer), is
// never judged, so a deny rule cannot block it; an update of the pod
// template is.
func TestValidateUpdates(t *testing.T) {
	t.Parallel()
	v := validator("RG201")
	update := func(oldRaw, newRaw string) admission.Response {
		req := workloadRequest("shop", newRaw, admissionv1.Update)
		req.OldObject = runtime.RawExtension{Raw: []byte(oldRaw)}
		return v.Handle(context.Background(), req)
	}
	labelled := strings.Replace(lossyDeployment, `"namespace":"shop"}`, `"namespace":"shop","labels":{"team":"a"}}`, 1)
	scaled := strings.Replace(lossyDeployment, `"replicas":3`, `"replicas":5`, 1)
	deleting := strings.Replace(lossyDeployment, `"namespace":"shop"}`, `"namespace":"shop","deletionTimestamp":"2026-11-30T10:00:00Z","finalizers":[]}`, 1)
	image := strings.Replace(lossyDeployment, "example.com/web:1", "example.com/web:2", 1)
	for name, raw := range map[string]string{"label": labelled, "scale": scaled, "deleting": deleting} {
		if r := update(lossyDeployment, raw); !r.Allowed || len(r.Warnings) > 0 {
			t.Errorf("%s: %+v %q", name, r.Result, r.Warnings)
		}
	}
	if r := update(lossyDeployment, image); r.Allowed || !strings.Contains(r.Result.Message, "RG201") {
		t.Errorf("a new image: %+v", r.Result)
	}
	if r := update("not json", lossyDeployment); r.Allowed {
		t.Errorf("an unreadable old object counts as a change: %+v", r.Result)
	}
}

// TestValidateDetails: every denial is listed, not the first only; the
// note that pods get the fix needs the mutating webhook; a warning with
// its note stays within what the API server passes whole; a workload
// without a namespace is the request's; a request of several objects is
// let through with the error.
func TestValidateDetails(t *testing.T) {
	t.Parallel()
	resp := validator("RG201,RG101").Handle(context.Background(), workloadRequest("shop", lossyDeployment, admissionv1.Create))
	if resp.Allowed || !strings.Contains(resp.Result.Message, "RG201") || !strings.Contains(resp.Result.Message, "RG101") {
		t.Errorf("two deny rules: %+v", resp.Result)
	}

	plain := validator("")
	plain.Mutating = false
	resp = plain.Handle(context.Background(), workloadRequest("shop", lossyDeployment, admissionv1.Create))
	if len(resp.Warnings) == 0 || strings.Contains(strings.Join(resp.Warnings, "\n"), "fixed on its pods") {
		t.Errorf("without the mutating webhook: %q", resp.Warnings)
	}

	// A long name makes the message longer than the API server passes.
	long := strings.Replace(lossyDeployment, `"name":"web"`, `"name":"`+strings.Repeat("w", 200)+`"`, 1)
	resp = validator("").Handle(context.Background(), workloadRequest("shop", long, admissionv1.Create))
	noted := 0
	for _, w := range resp.Warnings {
		if n := utf8.RuneCountInString(w); n > maxWarning {
			t.Errorf("a warning of %d runes: %q", n, w)
		}
		if strings.HasSuffix(w, "(fixed on its pods at admission)") {
			noted++
		}
	}
	if noted == 0 {
		t.Errorf("the note was clipped away: %q", resp.Warnings)
	}

	bare := strings.Replace(lossyDeployment, `,"namespace":"shop"`, "", 1)
	resp = validator("").Handle(context.Background(), workloadRequest("shop", bare, admissionv1.Create))
	if len(resp.Warnings) == 0 || !strings.HasPrefix(resp.Warnings[0], "Deployment shop/web: ") {
		t.Errorf("a Deployment without a namespace: %q", resp.Warnings)
	}

	two := `{"apiVersion":"v1","kind":"List","items":[` + lossyDeployment + `,` + lossyDeployment + `]}`
	resp = validator("RG201").Handle(context.Background(), workloadRequest("shop", two, admissionv1.Create))
	if !resp.Allowed || resp.Result == nil || !strings.HasPrefix(resp.Result.Message, ErrorPrefix) {
		t.Errorf("two objects in one request: %+v", resp.Result)
	}
}

// TestValidateSeverities: a finding of warning severity is a warning; the
// same rule lowered to info (an image that usually ships a shell) is not.
func TestValidateSeverities(t *testing.T) {
	t.Parallel()
	hook := `,"lifecycle":{"preStop":{"exec":{"command":["sh","-c","sleep 5"]}}},"readinessProbe":{"tcpSocket":{"port":"http"}}}]`
	withImage := func(image string) string {
		d := strings.Replace(lossyDeployment, `"example.com/web:1"`, `"`+image+`"`, 1)
		return strings.Replace(d, `"containerPort":8080}]}]`, `"containerPort":8080}]`+hook, 1)
	}
	rg104 := func(raw string) bool {
		resp := validator("").Handle(context.Background(), workloadRequest("shop", raw, admissionv1.Create))
		return strings.Contains(strings.Join(resp.Warnings, "\n"), "RG104")
	}
	if !rg104(withImage("gcr.io/distroless/static-debian12:nonroot")) {
		t.Error("RG104 at warning severity (a distroless image) is not a warning")
	}
	if rg104(withImage("example.com/web:1")) {
		t.Error("RG104 lowered to info (an image with a shell) is a warning")
	}
}
