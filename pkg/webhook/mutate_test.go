package webhook

import (
	"bytes"
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	jsonpatch "gopkg.in/evanphx/json-patch.v4"
	admissionv1 "k8s.io/api/admission/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/intstr"
	"sigs.k8s.io/controller-runtime/pkg/webhook/admission"

	"github.com/rollguard/rollguard/pkg/config"
	"github.com/rollguard/rollguard/pkg/manifest"
	"github.com/rollguard/rollguard/pkg/rules"
)

// services is a Lister over a fixed set.
type services map[string][]*corev1.Service

func (s services) Services(ns string) ([]*corev1.Service, error) { return s[ns], nil }
func (s services) Others(string) ([]*manifest.Object, error)     { return nil, nil }

func web(ns string) *corev1.Service {
	return &corev1.Service{ObjectMeta: metav1.ObjectMeta{Name: "web", Namespace: ns},
		Spec: corev1.ServiceSpec{Selector: map[string]string{"app": "web"},
			Ports: []corev1.ServicePort{{Port: 80, TargetPort: intstr.FromString("http")}}}}
}

// lossyPod is the pod the seed's lossy Deployment makes: no probe, no
// preStop, the API server's defaults.
func lossyPod() *corev1.Pod {
	grace := int64(30)
	return &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{GenerateName: "web-7d4b9c-", Namespace: "shop", Labels: map[string]string{"app": "web", "pod-template-hash": "7d4b9c"}},
		Spec: corev1.PodSpec{TerminationGracePeriodSeconds: &grace, RestartPolicy: corev1.RestartPolicyAlways, DNSPolicy: corev1.DNSClusterFirst,
			Containers: []corev1.Container{{Name: "app", Image: "example.com/web:1", ImagePullPolicy: corev1.PullIfNotPresent,
				TerminationMessagePath: "/dev/termination-log", TerminationMessagePolicy: corev1.TerminationMessageReadFile,
				Ports: []corev1.ContainerPort{{Name: "http", ContainerPort: 8080, Protocol: corev1.ProtocolTCP}}}}},
	}
}

func mutator(svcs services) *Mutator {
	return &Mutator{Registry: rules.Default(), Lister: svcs, Settings: &Current{}, Namespace: "rollguard-system"}
}

func request(t *testing.T, pod *corev1.Pod, ns string) admission.Request {
	t.Helper()
	raw, err := json.Marshal(pod)
	if err != nil {
		t.Fatal(err)
	}
	return admission.Request{AdmissionRequest: admissionv1.AdmissionRequest{UID: "1", Namespace: ns, Operation: admissionv1.Create,
		Kind: metav1.GroupVersionKind{Version: "v1", Kind: "Pod"}, Object: runtime.RawExtension{Raw: raw}}}
}

// TestMutateLossyPod: the lossy pod gets a native preStop sleep of the
// budget, a grace period covering it and the drain allowance, and a
// readinessProbe on the port the Service targets; the annotation says so;
// the mutated pod, mutated again, is left alone.
func TestMutateLossyPod(t *testing.T) {
	t.Parallel()
	m := mutator(services{"shop": {web("shop")}})
	out, warnings, err := m.Mutate(lossyPod(), "shop")
	if err != nil || out == nil {
		t.Fatalf("Mutate: %v, %v", out, err)
	}
	c := out.Spec.Containers[0]
	if c.Lifecycle == nil || c.Lifecycle.PreStop == nil || c.Lifecycle.PreStop.Sleep == nil || c.Lifecycle.PreStop.Sleep.Seconds != 5 {
		t.Errorf("preStop: %+v", c.Lifecycle)
	}
	if c.ReadinessProbe == nil || c.ReadinessProbe.TCPSocket == nil && c.ReadinessProbe.HTTPGet == nil {
		t.Errorf("readinessProbe: %+v", c.ReadinessProbe)
	}
	ann := out.Annotations[MutatedAnnotation]
	for _, want := range []string{"lifecycle.preStop", "readinessProbe", "RG101", "RG201"} {
		if !strings.Contains(ann, want) {
			t.Errorf("annotation %q lacks %q", ann, want)
		}
	}
	t.Logf("annotation: %s; warnings %q", ann, warnings)
	again, _, err := m.Mutate(out, "shop")
	if err != nil || again != nil {
		t.Errorf("reinvocation changed the pod again: %v (%v)", again, err)
	}
}

// TestMutateLeavesAlone: no Service, an opted-out pod, a system
// namespace, the webhook's own.
func TestMutateLeavesAlone(t *testing.T) {
	t.Parallel()
	all := services{}
	for _, ns := range []string{"shop", "kube-system", "kube-public", "kube-node-lease", "rollguard-system"} {
		all[ns] = []*corev1.Service{web(ns)}
	}
	m := mutator(all)
	optOut := lossyPod()
	optOut.Annotations = map[string]string{InjectAnnotation: "disabled"}
	other := lossyPod()
	other.Labels = map[string]string{"app": "db"}
	for _, tc := range []struct {
		name string
		pod  *corev1.Pod
		ns   string
	}{
		{"no Service selects it", other, "shop"},
		{"opted out", optOut, "shop"},
		{"kube-system", lossyPod(), "kube-system"},
		{"kube-public", lossyPod(), "kube-public"},
		{"kube-node-lease", lossyPod(), "kube-node-lease"},
		{"its own namespace", lossyPod(), "rollguard-system"},
	} {
		out, _, err := m.Mutate(tc.pod, tc.ns)
		if out != nil || err != nil {
			t.Errorf("%s: mutated (%v)", tc.name, err)
		}
		resp := m.Handle(context.Background(), request(t, tc.pod, tc.ns))
		if !resp.Allowed || len(resp.Patches) > 0 {
			t.Errorf("%s: %+v", tc.name, resp)
		}
	}
}

func TestHandlePatches(t *testing.T) {
	t.Parallel()
	m := mutator(services{"shop": {web("shop")}})
	resp := m.Handle(context.Background(), request(t, lossyPod(), "shop"))
	if !resp.Allowed || len(resp.Patches) == 0 {
		t.Fatalf("%+v", resp)
	}
	var paths []string
	for _, p := range resp.Patches {
		paths = append(paths, p.Operation+" "+p.Path)
	}
	t.Logf("patch: %v", paths)
	bad := request(t, lossyPod(), "shop")
	bad.Object.Raw = []byte(`{"spec": 1}`)
	// The handler's own failure never refuses a pod: allowed, unpatched,
	// with a warning and the error prefix the metrics count.
	if r := m.Handle(context.Background(), bad); !r.Allowed || len(r.Patches) > 0 || r.Result == nil ||
		!strings.HasPrefix(r.Result.Message, ErrorPrefix) || len(r.Warnings) != 1 {
		t.Errorf("undecodable pod: %+v", r)
	}
}

// servedPod is lossyPod as the API server sends it to a webhook: with the
// ServiceAccount admission plugin's kube-api-access volume, whose name
// has a random suffix per pod.
func servedPod(suffix string) *corev1.Pod {
	p := lossyPod()
	name := "kube-api-access-" + suffix
	mode, expiry := int32(420), int64(3607)
	p.Spec.Volumes = []corev1.Volume{{Name: name, VolumeSource: corev1.VolumeSource{Projected: &corev1.ProjectedVolumeSource{
		DefaultMode: &mode, Sources: []corev1.VolumeProjection{
			{ServiceAccountToken: &corev1.ServiceAccountTokenProjection{ExpirationSeconds: &expiry, Path: "token"}},
			{ConfigMap: &corev1.ConfigMapProjection{LocalObjectReference: corev1.LocalObjectReference{Name: "kube-root-ca.crt"},
				Items: []corev1.KeyToPath{{Key: "ca.crt", Path: "ca.crt"}}}},
		}}}}}
	p.Spec.Containers[0].VolumeMounts = []corev1.VolumeMount{{Name: name, ReadOnly: true, MountPath: "/var/run/secrets/kubernetes.io/serviceaccount"}}
	return p
}

// BenchmarkHandle: one pod of a ReplicaSet after another, each with its
// own kube-api-access volume name, as at a rollout.
func BenchmarkHandle(b *testing.B) {
	m := mutator(services{"shop": {web("shop")}})
	const chars = "bcdfghjklmnpqrstvwxz2456789"
	var reqs []admission.Request
	for i := range 64 {
		s := []byte{chars[i%27], chars[(i/27)%27], 'x', 'y', 'z'}
		reqs = append(reqs, mustRequest(servedPod(string(s)), "shop"))
	}
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; b.Loop(); i++ {
		if resp := m.Handle(context.Background(), reqs[i%len(reqs)]); !resp.Allowed || len(resp.Patches) == 0 {
			b.Fatalf("%+v", resp)
		}
	}
}

// TestMutateLeavesNonRolledPods: a Job's pod, a pod that is not restarted
// and a static pod's mirror keep their spec, whatever selects them.
func TestMutateLeavesNonRolledPods(t *testing.T) {
	t.Parallel()
	m := mutator(services{"shop": {web("shop")}})
	job := lossyPod()
	job.OwnerReferences = []metav1.OwnerReference{{APIVersion: "batch/v1", Kind: "Job", Name: "train", UID: "u"}}
	never := lossyPod()
	never.Spec.RestartPolicy = corev1.RestartPolicyNever
	onFailure := lossyPod()
	onFailure.Spec.RestartPolicy = corev1.RestartPolicyOnFailure
	mirror := lossyPod()
	mirror.Annotations = map[string]string{corev1.MirrorPodAnnotationKey: "abc"}
	rs := lossyPod()
	rs.OwnerReferences = []metav1.OwnerReference{{APIVersion: "apps/v1", Kind: "ReplicaSet", Name: "web-7d4b9c", UID: "u"}}
	for name, p := range map[string]*corev1.Pod{"job": job, "Never": never, "OnFailure": onFailure, "mirror": mirror} {
		if out, _, err := m.Mutate(p, "shop"); out != nil || err != nil {
			t.Errorf("%s: mutated (%v)", name, err)
		}
	}
	if out, _, err := m.Mutate(rs, "shop"); out == nil || err != nil {
		t.Errorf("a ReplicaSet's pod was not mutated (%v)", err)
	}
}

// TestMutateOldKubelets: where the oldest kubelet has no native sleep
// action, an image that usually ships coreutils gets an exec sleep, and a
// minimal one gets no hook (an exec that fails at once is no fix) but its
// readinessProbe, with a warning that names what was left.
func TestMutateOldKubelets(t *testing.T) {
	t.Parallel()
	m := mutator(services{"shop": {web("shop")}})
	m.Settings.Store(FromConfig(nil, 29))
	out, warnings, err := m.Mutate(lossyPod(), "shop")
	if err != nil || out == nil {
		t.Fatalf("Mutate: %v, %v", out, err)
	}
	if l := out.Spec.Containers[0].Lifecycle; l == nil || l.PreStop == nil || l.PreStop.Exec == nil ||
		strings.Join(l.PreStop.Exec.Command, " ") != "sleep 5" {
		t.Errorf("example.com/web: want an exec sleep 5, got %+v (warnings %q)", l, warnings)
	}

	minimal := lossyPod()
	minimal.Spec.Containers[0].Image = "gcr.io/distroless/static-debian12:nonroot"
	out, warnings, err = m.Mutate(minimal, "shop")
	if err != nil || out == nil {
		t.Fatalf("Mutate: %v, %v", out, err)
	}
	c := out.Spec.Containers[0]
	if c.Lifecycle != nil {
		t.Errorf("distroless: want no preStop hook, got %+v", c.Lifecycle)
	}
	if c.ReadinessProbe == nil {
		t.Error("distroless: the readinessProbe was not added")
	}
	if ann := out.Annotations[MutatedAnnotation]; strings.Contains(ann, "preStop") {
		t.Errorf("distroless: the annotation claims a preStop: %q", ann)
	}
	found := false
	for _, w := range warnings {
		if strings.Contains(w, "RG101") && strings.Contains(w, "not fixed at admission") && strings.Contains(w, "no sleep binary") {
			found = true
		}
	}
	if !found {
		t.Errorf("distroless: no RG101 warning naming the missing sleep binary: %q", warnings)
	}
}

// TestHandleKeepsUnknownFields: a field corev1.Pod does not know, as a
// newer API server may send, is left in place by the patch; only the
// mutation's own paths are touched.
func TestHandleKeepsUnknownFields(t *testing.T) {
	t.Parallel()
	m := mutator(services{"shop": {web("shop")}})
	req := request(t, lossyPod(), "shop")
	var obj map[string]any
	if err := json.Unmarshal(req.Object.Raw, &obj); err != nil {
		t.Fatal(err)
	}
	spec := obj["spec"].(map[string]any)
	spec["futurePodField"] = map[string]any{"mode": "new"}
	spec["containers"].([]any)[0].(map[string]any)["futureContainerField"] = true
	raw, err := json.Marshal(obj)
	if err != nil {
		t.Fatal(err)
	}
	req.Object.Raw = raw
	resp := m.Handle(context.Background(), req)
	if !resp.Allowed || len(resp.Patches) == 0 || resp.Result != nil && resp.Result.Message != "" {
		t.Fatalf("%+v", resp)
	}
	for _, op := range resp.Patches {
		for _, want := range []string{"/spec/containers/0/lifecycle", "/spec/containers/0/readinessProbe", "/metadata/annotations"} {
			if strings.HasPrefix(op.Path, want) {
				goto ok
			}
		}
		t.Errorf("an operation outside the mutation: %s %s", op.Operation, op.Path)
	ok:
	}
	patched := applyPatch(t, raw, resp)
	var got map[string]any
	if err := json.Unmarshal(patched, &got); err != nil {
		t.Fatal(err)
	}
	gs := got["spec"].(map[string]any)
	gc := gs["containers"].([]any)[0].(map[string]any)
	if gs["futurePodField"] == nil || gc["futureContainerField"] != true {
		t.Errorf("the patch dropped fields it does not know: %s", patched)
	}
	if gc["lifecycle"] == nil || gc["readinessProbe"] == nil {
		t.Errorf("the patch did not mutate: %s", patched)
	}
}

// TestHandleFailsOpenOnPatchThatWouldNotApply: an object Go decodes but a
// JSON patch cannot address (a key in another case) gets no patch, which
// the API server would refuse the pod for, but an allowed response with
// the error.
func TestHandleFailsOpenOnPatchThatWouldNotApply(t *testing.T) {
	t.Parallel()
	m := mutator(services{"shop": {web("shop")}})
	req := request(t, lossyPod(), "shop")
	req.Object.Raw = bytes.Replace(req.Object.Raw, []byte(`"spec":`), []byte(`"Spec":`), 1)
	resp := m.Handle(context.Background(), req)
	if !resp.Allowed || len(resp.Patches) > 0 || resp.Result == nil || !strings.HasPrefix(resp.Result.Message, ErrorPrefix) ||
		!strings.Contains(resp.Result.Message, "does not apply") {
		t.Errorf("%+v", resp)
	}
}

// TestMutateMergesItsAnnotation: a pod that carries the annotation from
// an earlier call of the same admission, and needs more, lists both.
func TestMutateMergesItsAnnotation(t *testing.T) {
	t.Parallel()
	m := mutator(services{"shop": {web("shop")}})
	p := lossyPod()
	p.Annotations = map[string]string{MutatedAnnotation: "spec.containers[1].readinessProbe={tcpSocket: {port: 9000}} (RG201)"}
	out, _, err := m.Mutate(p, "shop")
	if err != nil || out == nil {
		t.Fatalf("Mutate: %v, %v", out, err)
	}
	ann := out.Annotations[MutatedAnnotation]
	for _, want := range []string{"containers[1].readinessProbe", "containers[0].readinessProbe", "containers[0].lifecycle.preStop"} {
		if !strings.Contains(ann, want) {
			t.Errorf("annotation %q lacks %q", ann, want)
		}
	}
	for _, tc := range []struct{ had, now, want string }{
		{"b=1 (X); a=1 (Y)", "a=1 (Y); c=1 (Z)", "a=1 (Y); b=1 (X); c=1 (Z)"},
		{"a=1 (Y); b=1 (X)", "a=2 (Y)", "a=2 (Y); b=1 (X)"}, // the newer value of a field
		{"", "a=1 (Y)", "a=1 (Y)"},
	} {
		if got := mergeChanges(tc.had, tc.now); got != tc.want {
			t.Errorf("mergeChanges(%q, %q) = %q, want %q", tc.had, tc.now, got, tc.want)
		}
	}
}

// applyPatch applies a response's patch to an object as the API server
// does.
func applyPatch(t *testing.T, raw []byte, resp admission.Response) []byte {
	t.Helper()
	ops, err := json.Marshal(resp.Patches)
	if err != nil {
		t.Fatal(err)
	}
	p, err := jsonpatch.DecodePatch(ops)
	if err != nil {
		t.Fatal(err)
	}
	out, err := p.Apply(raw)
	if err != nil {
		t.Fatalf("the patch does not apply: %v", err)
	}
	return out
}

// TestMutateConfiguredKubelets: the configuration's k8sVersion replaces
// the guess from the API server's version, either way.
func TestMutateConfiguredKubelets(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		guess, configured int
		exec              bool
	}{{27, 30, false}, {34, 29, true}, {27, 0, true}, {34, 0, false}} {
		m := mutator(services{"shop": {web("shop")}})
		m.Settings.Store(FromConfig(&config.Config{KubeMinor: tc.configured}, tc.guess))
		out, _, err := m.Mutate(lossyPod(), "shop")
		if err != nil || out == nil {
			t.Fatalf("Mutate: %v, %v", out, err)
		}
		ps := out.Spec.Containers[0].Lifecycle.PreStop
		if got := ps.Exec != nil; got != tc.exec || !got && ps.Sleep == nil {
			t.Errorf("API server guess 1.%d, k8sVersion 1.%d: preStop %+v, want exec %v", tc.guess, tc.configured, ps, tc.exec)
		}
	}
}

// TestHandlePatchesAnnotatedPods: the patch applies to a pod that has
// annotations, one of them with the characters a JSON pointer escapes,
// and to one that carries an earlier call's annotation (replaced).
func TestHandlePatchesAnnotatedPods(t *testing.T) {
	t.Parallel()
	m := mutator(services{"shop": {web("shop")}})
	for name, ann := range map[string]map[string]string{
		"escaped keys":    {"example.com/a~b": "1", "prometheus.io/scrape": "true"},
		"an earlier call": {MutatedAnnotation: "spec.containers[1].readinessProbe={tcpSocket: {port: 9000}} (RG201)"},
	} {
		p := lossyPod()
		p.Annotations = ann
		req := request(t, p, "shop")
		resp := m.Handle(context.Background(), req)
		if !resp.Allowed || len(resp.Patches) == 0 {
			t.Fatalf("%s: %+v", name, resp)
		}
		var got corev1.Pod
		if err := json.Unmarshal(applyPatch(t, req.Object.Raw, resp), &got); err != nil {
			t.Fatal(err)
		}
		for k, v := range ann {
			if k != MutatedAnnotation && got.Annotations[k] != v {
				t.Errorf("%s: annotation %s = %q, want %q", name, k, got.Annotations[k], v)
			}
		}
		mutated := got.Annotations[MutatedAnnotation]
		if !strings.Contains(mutated, "containers[0].readinessProbe") || ann[MutatedAnnotation] != "" && !strings.Contains(mutated, ann[MutatedAnnotation]) {
			t.Errorf("%s: %s = %q", name, MutatedAnnotation, mutated)
		}
	}
}

// TestHandleOnlyPodCreations: anything but the creation of a Pod (core
// group, no subresource) is let through untouched.
func TestHandleOnlyPodCreations(t *testing.T) {
	t.Parallel()
	m := mutator(services{"shop": {web("shop")}})
	for name, change := range map[string]func(*admission.Request){
		"an update":           func(r *admission.Request) { r.Operation = admissionv1.Update },
		"another group":       func(r *admission.Request) { r.Kind.Group = "example.com" },
		"another kind":        func(r *admission.Request) { r.Kind.Kind = "PodTemplate" },
		"a subresource":       func(r *admission.Request) { r.SubResource = "ephemeralcontainers" },
		"a deletion":          func(r *admission.Request) { r.Operation = admissionv1.Delete },
		"a creation, the one": nil,
	} {
		req := request(t, lossyPod(), "shop")
		if change != nil {
			change(&req)
		}
		resp := m.Handle(context.Background(), req)
		if !resp.Allowed || (len(resp.Patches) > 0) != (change == nil) {
			t.Errorf("%s: allowed %v, %d patches", name, resp.Allowed, len(resp.Patches))
		}
	}
}

// TestMutateIgnoresSelectorlessServices: a Service without a selector
// has no endpoints the control plane manages, so it serves no pod.
func TestMutateIgnoresSelectorlessServices(t *testing.T) {
	t.Parallel()
	external := web("shop")
	external.Name, external.Spec.Selector = "external", nil
	m := mutator(services{"shop": {external}})
	if out, _, err := m.Mutate(lossyPod(), "shop"); out != nil || err != nil {
		t.Errorf("mutated for a Service without a selector (%v)", err)
	}
}

// TestSettingsDetails: a configuration without durations keeps the
// defaults; a pod owned by a Job of another API group is rolled like any.
func TestSettingsDetails(t *testing.T) {
	t.Parallel()
	def := rules.DefaultSettings()
	s := FromConfig(&config.Config{}, 0)
	if s.Rules.Settings.PropagationBudget != def.PropagationBudget || s.Rules.Settings.DrainAllowance != def.DrainAllowance {
		t.Errorf("zero durations replaced the defaults: %+v", s.Rules.Settings)
	}
	s = FromConfig(&config.Config{PropagationBudget: 7 * time.Second, DrainAllowance: 2 * time.Second}, 0)
	if s.Rules.Settings.PropagationBudget != 7*time.Second || s.Rules.Settings.DrainAllowance != 2*time.Second {
		t.Errorf("durations not taken: %+v", s.Rules.Settings)
	}
	p := lossyPod()
	p.OwnerReferences = []metav1.OwnerReference{{APIVersion: "example.com/v1", Kind: "Job", Name: "x", UID: "u"}}
	if notRolled(p) {
		t.Error("a pod of example.com's Job kind taken for a batch Job's")
	}
	p.OwnerReferences = []metav1.OwnerReference{{APIVersion: "batch/v1", Kind: "CronJob", Name: "x", UID: "u"}}
	if notRolled(p) {
		t.Error("a batch owner that is not a Job taken for one")
	}
}
