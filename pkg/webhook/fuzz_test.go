package webhook

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"testing"

	admissionv1 "k8s.io/api/admission/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	ctrlwebhook "sigs.k8s.io/controller-runtime/pkg/webhook"
	"sigs.k8s.io/controller-runtime/pkg/webhook/admission"
)

// seedPods are the fuzz targets' seeds: the lossy pod, as the API server
// sends it and bare, a pod the rules leave alone, an opted-out one, and
// one already mutated.
func seedPods(t testing.TB) [][]byte {
	m := mutator(services{"shop": {web("shop")}})
	m.CacheSize = -1
	mutated, _, err := m.Mutate(servedPod("abcde"), "shop")
	if err != nil || mutated == nil {
		t.Fatalf("Mutate: %v", err)
	}
	other := lossyPod()
	other.Labels = map[string]string{"app": "db"}
	optOut := lossyPod()
	optOut.Annotations = map[string]string{InjectAnnotation: "disabled"}
	var out [][]byte
	for _, p := range []*corev1.Pod{lossyPod(), servedPod("abcde"), other, optOut, mutated} {
		b, err := json.Marshal(p)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, b)
	}
	return append(out, []byte(`{}`), []byte(`{"spec":{"containers":[{"name":"a","ports":[{"containerPort":80}]}]}}`), []byte(`null`))
}

// FuzzMutate feeds arbitrary bytes as the Pod of a CREATE through Handle,
// with the result cache and without: neither may panic, and both must
// answer alike.
func FuzzMutate(f *testing.F) {
	for _, b := range seedPods(f) {
		f.Add(b)
	}
	lister := services{"shop": {web("shop")}}
	cached := mutator(lister)
	cached.CacheSize = 8
	ref := mutator(lister)
	ref.CacheSize = -1
	f.Fuzz(func(t *testing.T, raw []byte) {
		req := admission.Request{AdmissionRequest: admissionv1.AdmissionRequest{UID: "1", Namespace: "shop", Operation: admissionv1.Create,
			Kind: metav1.GroupVersionKind{Version: "v1", Kind: "Pod"}, Object: runtime.RawExtension{Raw: raw}}}
		want := ref.Handle(context.Background(), req)
		for range 2 { // a miss, then a hit
			if err := sameResponse(want, cached.Handle(context.Background(), req)); err != nil {
				t.Fatal(err)
			}
		}
	})
}

// FuzzAdmissionReview feeds arbitrary bytes as the body of a request to
// controller-runtime's webhook.Admission serving the Mutator, panics not
// recovered: no panic, and an AdmissionReview as the answer.
func FuzzAdmissionReview(f *testing.F) {
	for _, pod := range seedPods(f) {
		for _, ns := range []string{"shop", ""} {
			b, err := json.Marshal(admissionv1.AdmissionReview{TypeMeta: metav1.TypeMeta{APIVersion: "admission.k8s.io/v1", Kind: "AdmissionReview"},
				Request: &admissionv1.AdmissionRequest{UID: "7d2c", Namespace: ns, Operation: admissionv1.Create,
					Kind: metav1.GroupVersionKind{Version: "v1", Kind: "Pod"}, Resource: metav1.GroupVersionResource{Version: "v1", Resource: "pods"},
					Object: runtime.RawExtension{Raw: pod}}})
			if err != nil {
				f.Fatal(err)
			}
			f.Add(b)
		}
	}
	f.Add([]byte(`{"apiVersion":"admission.k8s.io/v1beta1","kind":"AdmissionReview","request":{"uid":"1","operation":"CREATE","kind":{"version":"v1","kind":"Pod"},"object":{}}}`))
	f.Add([]byte(`{"kind":"AdmissionReview","request":{"operation":"UPDATE","kind":{"kind":"Pod"}}}`))
	f.Add([]byte(`{}`))
	wh := (&ctrlwebhook.Admission{Handler: &Mutator{Registry: mutator(nil).Registry, Lister: services{"shop": {web("shop")}},
		Settings: &Current{}, Namespace: "rollguard-system", CacheSize: 8}}).WithRecoverPanic(false)
	f.Fuzz(func(t *testing.T, body []byte) {
		r := httptest.NewRequest(http.MethodPost, MutatePath, bytes.NewReader(body))
		r.Header.Set("Content-Type", "application/json")
		w := httptest.NewRecorder()
		wh.ServeHTTP(w, r)
		var review admissionv1.AdmissionReview
		if err := json.Unmarshal(w.Body.Bytes(), &review); err != nil || review.Response == nil {
			t.Fatalf("answer %d %q: %v", w.Code, w.Body.Bytes(), err)
		}
	})
}
