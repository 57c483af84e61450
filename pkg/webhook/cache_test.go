package webhook

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"path/filepath"
	"reflect"
	"slices"
	"sort"
	"sync"
	"testing"
	"time"

	"gomodules.xyz/jsonpatch/v2"
	admissionv1 "k8s.io/api/admission/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/intstr"
	"sigs.k8s.io/controller-runtime/pkg/webhook/admission"

	"github.com/rollguard/rollguard/pkg/config"
	"github.com/rollguard/rollguard/pkg/manifest"
	"github.com/rollguard/rollguard/pkg/model"
)

// referenceHandle is Handle as it was before the cache: Mutate on a
// Mutator without one, the result marshalled whole and diffed.
func referenceHandle(t *testing.T, m *Mutator, req admission.Request) admission.Response {
	t.Helper()
	if m.CacheSize >= 0 {
		t.Fatal("the reference must not cache")
	}
	var pod corev1.Pod
	if err := decodeStrict(req.Object.Raw, &pod); err != nil {
		return admission.Errored(400, err)
	}
	out, warnings, err := m.Mutate(&pod, req.Namespace)
	if err != nil {
		return admission.Errored(500, err)
	}
	if out == nil {
		resp := admission.Allowed("")
		resp.Warnings = warnings
		return resp
	}
	raw, err := json.Marshal(out)
	if err != nil {
		t.Fatal(err)
	}
	resp := admission.PatchResponseFromRaw(req.Object.Raw, raw)
	resp.Warnings = warnings
	return resp
}

// sameResponse compares two responses: the patch as a set of operations
// (jsonpatch orders an object's keys as Go maps iterate), all else as is.
func sameResponse(a, b admission.Response) error {
	ops := func(r admission.Response) []string {
		var s []string
		for _, p := range r.Patches {
			s = append(s, p.Json())
		}
		sort.Strings(s)
		return s
	}
	if !slices.Equal(ops(a), ops(b)) {
		return fmt.Errorf("patches differ:\n%q\n%q", ops(a), ops(b))
	}
	a.Patches, b.Patches = nil, nil
	if !reflect.DeepEqual(a, b) {
		return fmt.Errorf("responses differ:\n%+v\n%+v", a, b)
	}
	return nil
}

// fixture is a served pod of a rule fixture and the file's Services.
type fixture struct {
	name string
	pod  *corev1.Pod
	svcs []*corev1.Service
}

// fixtures are the pods of the workloads of pkg/rules/testdata/RG1*/ and
// RG2*/ (the Case 1 and Case 2 rules'), as the integration test makes
// them, each with a kube-api-access volume as the API server adds.
func fixtures(t *testing.T) []fixture {
	t.Helper()
	var files []string
	for _, g := range []string{"RG1*/*.yaml", "RG2*/*.yaml"} {
		f, err := filepath.Glob(filepath.Join("..", "rules", "testdata", g))
		if err != nil {
			t.Fatal(err)
		}
		files = append(files, f...)
	}
	if len(files) < 20 {
		t.Fatalf("only %d fixture files", len(files))
	}
	var out []fixture
	for _, path := range files {
		res := manifest.Load([]string{path}, manifest.Options{})
		if len(res.Errors) > 0 {
			continue
		}
		md := model.Build(res.Objects, model.Options{Namespace: "shop"})
		var svcs []*corev1.Service
		for _, o := range res.Objects {
			if s, ok := o.Value.(*corev1.Service); ok {
				c := s.DeepCopy()
				c.Namespace = "shop"
				svcs = append(svcs, c)
			}
		}
		for _, w := range md.Workloads {
			if w.Template == nil || w.Batch {
				continue
			}
			pod := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{GenerateName: w.Name + "-", Namespace: "shop",
				Labels: w.Template.Labels, Annotations: w.Template.Annotations}, Spec: *w.Template.Spec.DeepCopy()}
			withToken(pod, "abcde")
			out = append(out, fixture{name: path + " " + w.Name, pod: pod, svcs: svcs})
		}
	}
	return out
}

// withToken gives a pod the ServiceAccount token volume, kube-api-access-
// and suffix, mounted in every container.
func withToken(pod *corev1.Pod, suffix string) {
	name := "kube-api-access-" + suffix
	mode, expiry := int32(420), int64(3607)
	pod.Spec.Volumes = append(pod.Spec.Volumes, corev1.Volume{Name: name, VolumeSource: corev1.VolumeSource{Projected: &corev1.ProjectedVolumeSource{
		DefaultMode: &mode, Sources: []corev1.VolumeProjection{{ServiceAccountToken: &corev1.ServiceAccountTokenProjection{ExpirationSeconds: &expiry, Path: "token"}}}}}})
	for i := range pod.Spec.Containers {
		pod.Spec.Containers[i].VolumeMounts = append(pod.Spec.Containers[i].VolumeMounts,
			corev1.VolumeMount{Name: name, ReadOnly: true, MountPath: "/var/run/secrets/kubernetes.io/serviceaccount"})
	}
}

// renamed is the pod with its token volume's suffix replaced.
func renamed(pod *corev1.Pod, suffix string) *corev1.Pod {
	old := tokenVolume(&pod.Spec)
	p := pod.DeepCopy()
	if old == "" {
		return p
	}
	name := "kube-api-access-" + suffix
	for i := range p.Spec.Volumes {
		if p.Spec.Volumes[i].Name == old {
			p.Spec.Volumes[i].Name = name
		}
	}
	for i := range p.Spec.Containers {
		for j := range p.Spec.Containers[i].VolumeMounts {
			if p.Spec.Containers[i].VolumeMounts[j].Name == old {
				p.Spec.Containers[i].VolumeMounts[j].Name = name
			}
		}
	}
	return p
}

// mustRequest is request without a test.
func mustRequest(pod *corev1.Pod, ns string) admission.Request {
	raw, err := json.Marshal(pod)
	if err != nil {
		panic(err)
	}
	return admission.Request{AdmissionRequest: admissionv1.AdmissionRequest{UID: "1", Namespace: ns, Operation: admissionv1.Create,
		Kind: metav1.GroupVersionKind{Version: "v1", Kind: "Pod"}, Object: runtime.RawExtension{Raw: raw}}}
}

// TestCacheDifferential: over the Case 1 and Case 2 rule fixtures, the
// cached handler answers as the handler before the cache did, at the first
// request (a miss), at a second pod of the same ReplicaSet with another
// token volume name (a hit), and under Mutate; and it hits.
func TestCacheDifferential(t *testing.T) {
	t.Parallel()
	var mutated, hits int
	for _, f := range fixtures(t) {
		lister := services{"shop": f.svcs}
		ref := mutator(lister)
		ref.CacheSize = -1
		cached := mutator(lister)
		for i, suffix := range []string{"abcde", "x7k2p", "x7k2p", "99999"} {
			pod := renamed(f.pod, suffix)
			req := mustRequest(pod, "shop")
			want := referenceHandle(t, ref, req)
			got := cached.Handle(context.Background(), req)
			if err := sameResponse(want, got); err != nil {
				t.Errorf("%s, request %d: %v", f.name, i, err)
			}
			if i == 0 && len(want.Patches) > 0 {
				mutated++
			}
			wantPod, wantW, wantErr := ref.Mutate(pod.DeepCopy(), "shop")
			gotPod, gotW, gotErr := cached.Mutate(pod.DeepCopy(), "shop")
			if !reflect.DeepEqual(wantPod, gotPod) || !slices.Equal(wantW, gotW) || (wantErr == nil) != (gotErr == nil) {
				t.Errorf("%s, Mutate %d: %v %q %v, want %v %q %v", f.name, i, gotPod, gotW, gotErr, wantPod, wantW, wantErr)
			}
		}
		h, _, _, _ := cached.CacheStats()
		hits += int(h)
	}
	t.Logf("%d fixture pods mutated; %d cache hits", mutated, hits)
	if mutated < 20 {
		t.Errorf("only %d fixture pods mutated", mutated)
	}
	if hits < 3*mutated {
		t.Errorf("only %d hits", hits)
	}
}

// informerService is web as an informer holds it, at a resourceVersion.
func informerService(rv string, targetPort intstr.IntOrString) *corev1.Service {
	s := web("shop")
	s.UID, s.ResourceVersion = "0b7e4d1c-1111-4e6a-9c71-3a5b7c9d1e00", rv
	s.Spec.Ports[0].TargetPort = targetPort
	return s
}

// probePort is the port of the mutated pod's readinessProbe.
func probePort(t *testing.T, m *Mutator, pod *corev1.Pod) string {
	t.Helper()
	out, _, err := m.Mutate(pod.DeepCopy(), "shop")
	if err != nil || out == nil {
		t.Fatalf("Mutate: %v, %v", out, err)
	}
	p := out.Spec.Containers[0].ReadinessProbe
	switch {
	case p == nil:
		return "none"
	case p.TCPSocket != nil:
		return p.TCPSocket.Port.String()
	case p.HTTPGet != nil:
		return p.HTTPGet.Port.String()
	}
	return "other"
}

// TestCacheServiceChange: a changed Service changes the outcome, whether
// it is an informer's (a new resourceVersion) or a fixed object (its
// content); so does a Service that stops selecting the pod.
func TestCacheServiceChange(t *testing.T) {
	t.Parallel()
	pod := lossyPod()
	pod.Spec.Containers[0].Ports = append(pod.Spec.Containers[0].Ports, corev1.ContainerPort{Name: "admin", ContainerPort: 9090, Protocol: corev1.ProtocolTCP})
	withToken(pod, "abcde")
	lister := services{"shop": {informerService("1", intstr.FromString("http"))}}
	m := mutator(lister)
	if got := probePort(t, m, pod); got != "http" && got != "8080" {
		t.Fatalf("probe on %s, want http", got)
	}
	lister["shop"] = []*corev1.Service{informerService("2", intstr.FromString("admin"))}
	if got := probePort(t, m, renamed(pod, "fghij")); got != "admin" && got != "9090" {
		t.Errorf("after the Service's change: probe on %s, want admin", got)
	}
	plain := web("shop")
	lister["shop"] = []*corev1.Service{plain}
	for _, p := range []*corev1.Pod{pod, renamed(pod, "qqqqq")} {
		if got := probePort(t, m, p); got != "http" && got != "8080" {
			t.Errorf("probe on %s, want http", got)
		}
	}
	plain.Spec.Ports[0].TargetPort = intstr.FromInt32(9090) // changed in place, no resourceVersion
	if got := probePort(t, m, pod); got != "9090" && got != "admin" {
		t.Errorf("after the fixed Service's change: probe on %s, want 9090", got)
	}
	plain.Spec.Selector = map[string]string{"app": "db"}
	if out, _, err := m.Mutate(pod.DeepCopy(), "shop"); out != nil || err != nil {
		t.Errorf("a Service that selects nothing: mutated (%v)", err)
	}
	if h, _, _, _ := m.CacheStats(); h == 0 {
		t.Error("no hits")
	}
}

// TestCacheSettingsChange: new Settings change the outcome at once, also
// from the unset defaults, and back.
func TestCacheSettingsChange(t *testing.T) {
	t.Parallel()
	m := mutator(services{"shop": {web("shop")}})
	pod := lossyPod()
	withToken(pod, "abcde")
	sleep := func() int64 {
		t.Helper()
		out, _, err := m.Mutate(renamed(pod, "zzzzz"), "shop")
		if err != nil || out == nil {
			t.Fatalf("Mutate: %v, %v", out, err)
		}
		l := out.Spec.Containers[0].Lifecycle
		if l == nil || l.PreStop == nil || l.PreStop.Sleep == nil {
			t.Fatalf("no preStop sleep: %+v", l)
		}
		return l.PreStop.Sleep.Seconds
	}
	for range 2 {
		if got := sleep(); got != 5 {
			t.Fatalf("defaults: preStop sleep %d, want 5", got)
		}
	}
	m.Settings.Store(FromConfig(&config.Config{PropagationBudget: 11 * time.Second}, 0))
	for range 2 {
		if got := sleep(); got != 11 {
			t.Errorf("budget 11s: preStop sleep %d, want 11", got)
		}
	}
	m.Settings.Store(FromConfig(nil, 0))
	if got := sleep(); got != 5 {
		t.Errorf("defaults again: preStop sleep %d, want 5", got)
	}
	if h, _, entries, _ := m.CacheStats(); h < 2 || entries != 1 {
		t.Errorf("%d hits, %d entries: want the old settings' entries dropped", h, entries)
	}
}

// TestCacheTokenElsewhere: a token volume name that also stands elsewhere
// in the pod is not replaced by the mark, and the answers stay right.
func TestCacheTokenElsewhere(t *testing.T) {
	t.Parallel()
	lister := services{"shop": {web("shop")}}
	ref := mutator(lister)
	ref.CacheSize = -1
	m := mutator(lister)
	for i, suffix := range []string{"abcde", "fghij", "abcde"} {
		pod := lossyPod()
		withToken(pod, suffix)
		pod.Labels["token"] = "kube-api-access-" + suffix
		pod.Spec.Containers[0].Env = []corev1.EnvVar{{Name: "X", Value: "a kube-api-access-" + suffix}}
		req := mustRequest(pod, "shop")
		if err := sameResponse(referenceHandle(t, ref, req), m.Handle(context.Background(), req)); err != nil {
			t.Errorf("request %d: %v", i, err)
		}
	}
	if h, misses, _, _ := m.CacheStats(); h != 1 || misses != 2 {
		t.Errorf("%d hits, %d misses; want the third request only to hit", h, misses)
	}
	if tokenVolume(&corev1.PodSpec{Volumes: []corev1.Volume{{Name: "kube-api-access-ABCDE", VolumeSource: corev1.VolumeSource{Projected: &corev1.ProjectedVolumeSource{}}}}}) != "" {
		t.Error("upper case suffix taken for a token volume")
	}
	if !wholeValues([]byte(`{"a":"x","b":["x"],"x":1}`), "x") || wholeValues([]byte(`{"a":"xy"}`), "x") || wholeValues([]byte(`{"a":"y\"x"}`), "x") {
		t.Error("wholeValues")
	}
}

// TestCacheBounded: the cache holds at most its size in entries, and at
// most its bytes.
func TestCacheBounded(t *testing.T) {
	t.Parallel()
	m := mutator(services{"shop": {web("shop")}})
	m.CacheSize = 3
	for i := range 10 {
		pod := lossyPod()
		pod.Spec.Containers[0].Image = fmt.Sprintf("example.com/web:%d", i)
		if out, _, err := m.Mutate(pod, "shop"); out == nil || err != nil {
			t.Fatalf("Mutate: %v", err)
		}
	}
	if _, misses, entries, _ := m.CacheStats(); entries != 3 || misses != 10 {
		t.Errorf("%d entries, %d misses", entries, misses)
	}
	c := newResultCache(100, 16*1000)
	for i := range 50 {
		k := cacheKey{sum: [32]byte{byte(i)}}
		if r, compute := c.get(k); r != nil || !compute {
			t.Fatal("a new key found")
		}
		c.put(k, &cachedResult{size: 900})
	}
	if entries, bytes := c.len(); bytes > 16*1000 || entries != 17 {
		t.Errorf("%d entries of %d bytes", entries, bytes)
	}
	big := cacheKey{sum: [32]byte{200}}
	c.get(big)
	c.put(big, &cachedResult{size: 1001})
	if r, compute := c.get(big); r != nil || !compute {
		t.Error("an entry over a sixteenth of the bytes was kept")
	}
	c.put(big, nil)
}

// TestCacheInflight: requests for a key being computed wait for it; a
// computation that ends without a result (an error, a panic: the caller's
// deferred put) lets the waiters compute alone, and the next request
// computes again.
func TestCacheInflight(t *testing.T) {
	t.Parallel()
	c := newResultCache(10, 1<<20)
	k := cacheKey{sum: [32]byte{1}}
	if _, compute := c.get(k); !compute {
		t.Fatal("first get must compute")
	}
	got := make(chan cacheValue)
	go func() {
		r, _ := c.get(k)
		got <- r
	}()
	time.Sleep(10 * time.Millisecond)
	func() {
		defer func() { _ = recover() }()
		defer c.put(k, nil)
		panic("in the rules")
	}()
	if r := <-got; r != nil {
		t.Errorf("waiter got %v", r)
	}
	if _, compute := c.get(k); !compute {
		t.Fatal("after a failed computation, the next must compute")
	}
	want := &cachedResult{annotation: "x"}
	go func() {
		r, _ := c.get(k)
		got <- r
	}()
	time.Sleep(10 * time.Millisecond)
	c.put(k, want)
	if r := <-got; r != want {
		t.Errorf("waiter got %v", r)
	}
}

// TestCacheConcurrent: many requests at once, of a few ReplicaSets, give
// the reference's answers (run with -race).
func TestCacheConcurrent(t *testing.T) {
	t.Parallel()
	lister := services{"shop": {web("shop")}}
	ref := mutator(lister)
	ref.CacheSize = -1
	m := mutator(lister)
	m.CacheSize = 2 // smaller than the ReplicaSets: evictions too
	var reqs []admission.Request
	for i := range 4 {
		pod := lossyPod()
		pod.Spec.Containers[0].Image = fmt.Sprintf("example.com/web:%d", i)
		withToken(pod, "abcd"+string(rune('a'+i)))
		reqs = append(reqs, mustRequest(pod, "shop"))
	}
	var wants []admission.Response
	for _, r := range reqs {
		wants = append(wants, referenceHandle(t, ref, r))
	}
	var wg sync.WaitGroup
	errs := make(chan error, 64)
	for g := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 16 {
				n := (g + i) % len(reqs)
				if err := sameResponse(wants[n], m.Handle(context.Background(), reqs[n])); err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if _, _, entries, _ := m.CacheStats(); entries > 2*2 { // results and responses
		t.Errorf("%d entries", entries)
	}
}

// TestCacheResponsesInvalidate: the same request, under Services and
// Settings changing in every way TestCacheServiceChange and
// TestCacheSettingsChange change them, is answered as the handler without
// a cache answers it, each time, and the repeated request hits.
func TestCacheResponsesInvalidate(t *testing.T) {
	t.Parallel()
	pod := lossyPod()
	pod.Spec.Containers[0].Ports = append(pod.Spec.Containers[0].Ports, corev1.ContainerPort{Name: "admin", ContainerPort: 9090, Protocol: corev1.ProtocolTCP})
	withToken(pod, "abcde")
	lister := services{}
	cur := &Current{}
	ref := mutator(lister)
	ref.CacheSize, ref.Settings = -1, cur
	m := mutator(lister)
	m.Settings = cur
	plain := web("shop")
	steps := []func(){
		func() { lister["shop"] = []*corev1.Service{informerService("1", intstr.FromString("http"))} },
		func() { lister["shop"] = []*corev1.Service{informerService("2", intstr.FromString("admin"))} },
		func() { lister["shop"] = []*corev1.Service{plain} },
		func() { plain.Spec.Ports[0].TargetPort = intstr.FromInt32(9090) },
		func() { cur.Store(FromConfig(&config.Config{PropagationBudget: 11 * time.Second}, 0)) },
		func() { plain.Spec.Selector = map[string]string{"app": "db"} },
		func() { lister["shop"] = append(lister["shop"], informerService("3", intstr.FromString("http"))) },
		func() { cur.Store(FromConfig(nil, 0)) },
	}
	var patches []string
	for i, step := range steps {
		step()
		for _, suffix := range []string{"fghij", "klmno"} {
			req := mustRequest(renamed(pod, suffix), "shop")
			want := referenceHandle(t, ref, req)
			if err := sameResponse(want, m.Handle(context.Background(), req)); err != nil {
				t.Errorf("step %d: %v", i, err)
			}
			if suffix == "fghij" {
				b, _ := json.Marshal(want.Patches)
				patches = append(patches, string(b))
			}
		}
	}
	if len(slices.Compact(slices.Clone(patches))) < 5 {
		t.Errorf("the steps should change the answer: %q", patches)
	}
	if h, _, _, _ := m.CacheStats(); h < uint64(len(steps)) {
		t.Errorf("%d hits", h)
	}
}

// TestCacheByteBounds: an entry of exactly a sixteenth of the bytes is
// kept, and entries that fill the bytes exactly all stay; the bytes
// counted are the entries' own, through evictions.
func TestCacheByteBounds(t *testing.T) {
	t.Parallel()
	c := newResultCache(100, 16*1000)
	for i := range 16 {
		k := cacheKey{sum: [32]byte{byte(i)}}
		c.get(k)
		c.put(k, &cachedResult{size: 1000})
	}
	if entries, bytes := c.len(); entries != 16 || bytes != 16*1000 {
		t.Errorf("16 entries of a sixteenth: %d entries of %d bytes kept", entries, bytes)
	}
	for i := 16; i < 40; i++ {
		k := cacheKey{sum: [32]byte{byte(i)}}
		c.get(k)
		c.put(k, &cachedResult{size: 700})
	}
	// 22 of 700 bytes fit in 16,000 (15,400), 23 do not.
	if entries, bytes := c.len(); entries != 22 || bytes != 22*700 {
		t.Errorf("after evictions: %d entries of %d bytes, want 22 of %d", entries, bytes, 22*700)
	}
}

// TestCachedResultRefuses: what cannot be cached with the token volume's
// name replaced by the mark, and what an entry is counted for.
func TestCachedResultRefuses(t *testing.T) {
	t.Parallel()
	const token = "kube-api-access-abcde"
	spec := []byte(`{"volumes":[{"name":"` + token + `"}],"containers":[{"volumeMounts":[{"name":"` + token + `"}]}]}`)
	mu := func(spec []byte, ann string, warnings ...string) *mutation {
		return &mutation{changed: true, specJSON: spec, annotation: ann, warnings: warnings}
	}
	r := newCachedResult(mu(spec, "a=1 (RG101)", "w1", "w22"), token)
	if r == nil {
		t.Fatal("a plain result was not cached")
	}
	if want := entryOverhead + len(spec) + len("a=1 (RG101)") + len("w1") + len("w22"); r.size != want {
		t.Errorf("size %d, want %d", r.size, want)
	}
	if bytes.Contains(r.spec, []byte(token)) || !bytes.Contains(r.spec, []byte(tokenMark)) {
		t.Errorf("the cached spec keeps the name: %s", r.spec)
	}
	if got := r.mutation("kube-api-access-zz999").specJSON; !bytes.Contains(got, []byte(`"kube-api-access-zz999"`)) || bytes.Contains(got, []byte(tokenMark)) {
		t.Errorf("the spec made another pod's: %s", got)
	}
	for name, m := range map[string]*mutation{
		"the name in a warning":           mu(spec, "a=1", "w", "volume "+token+" is odd"),
		"the name in the annotation":      mu(spec, "volumes="+token),
		"the name inside a longer string": mu([]byte(`{"a":"`+token+`","b":"x`+token+`"}`), "a=1"),
		"the mark in the spec already":    mu([]byte(`{"a":"`+token+`","b":"`+tokenMark+`"}`), "a=1"),
	} {
		if r := newCachedResult(m, token); r != nil {
			t.Errorf("%s: cached", name)
		}
	}
	// Without a token, the spec is kept as it is.
	if r := newCachedResult(mu(spec, "a=1", "volume "+token), ""); r == nil || !bytes.Equal(r.spec, spec) {
		t.Errorf("no token: %+v", r)
	}
}

func TestWholeValues(t *testing.T) {
	t.Parallel()
	const s = "kube-api-access-abcde"
	for b, want := range map[string]bool{
		`{"name":"` + s + `"}`:                true,
		`["x","` + s + `"]`:                   true,
		`{"` + s + `":1}`:                     true,
		`{"a":"` + s + `","b":["` + s + `"]}`: true,
		`{"a":"none"}`:                        true,
		`{"a":"x` + s + `"}`:                  false, // a longer string's end
		`{"a":"` + s + `x"}`:                  false, // a longer string's start
		`{"a":"` + s + `","b":"/` + s + `"}`:  false, // the second occurrence
		`"` + s + `"`:                         false, // no room for what surrounds a value
		`{"a":` + s + `}`:                     false, // not a string
		`{"a": "` + s + `"}`:                  false, // not as json.Marshal writes it
		`{"a":"` + s + `"`:                    false, // at the very end
	} {
		if got := wholeValues([]byte(b), s); got != want {
			t.Errorf("wholeValues(%s) = %v, want %v", b, got, want)
		}
	}
}

func TestTokenVolume(t *testing.T) {
	t.Parallel()
	projected := corev1.VolumeSource{Projected: &corev1.ProjectedVolumeSource{}}
	vol := func(name string, src corev1.VolumeSource) corev1.Volume {
		return corev1.Volume{Name: name, VolumeSource: src}
	}
	for _, tc := range []struct {
		name string
		vols []corev1.Volume
		want string
	}{
		{"the API server's", []corev1.Volume{vol("data", corev1.VolumeSource{}), vol("kube-api-access-x7k2p", projected)}, "kube-api-access-x7k2p"},
		{"digits and letters", []corev1.Volume{vol("kube-api-access-a0z9b", projected)}, "kube-api-access-a0z9b"},
		{"none", []corev1.Volume{vol("data", corev1.VolumeSource{})}, ""},
		{"not projected", []corev1.Volume{vol("kube-api-access-x7k2p", corev1.VolumeSource{EmptyDir: &corev1.EmptyDirVolumeSource{}})}, ""},
		{"too long", []corev1.Volume{vol("kube-api-access-x7k2pq", projected)}, ""},
		{"too short", []corev1.Volume{vol("kube-api-access-x7k2", projected)}, ""},
		{"another prefix", []corev1.Volume{vol("kube-api-accesz-x7k2p", projected)}, ""},
		{"upper case", []corev1.Volume{vol("kube-api-access-X7k2p", projected)}, ""},
		{"a character before 0", []corev1.Volume{vol("kube-api-access-x7k/p", projected)}, ""},
		{"a character after z", []corev1.Volume{vol("kube-api-access-x7k~p", projected)}, ""},
		{"a character between 9 and a", []corev1.Volume{vol("kube-api-access-x7k:p", projected)}, ""},
		{"two", []corev1.Volume{vol("kube-api-access-x7k2p", projected), vol("kube-api-access-abcde", projected)}, ""},
	} {
		if got := tokenVolume(&corev1.PodSpec{Volumes: tc.vols}); got != tc.want {
			t.Errorf("%s: %q, want %q", tc.name, got, tc.want)
		}
	}
}

// TestCachedResponseRefuses: the response cache's counterpart of
// TestCachedResultRefuses, and the token volume names keyOf leaves as they
// are because they stand elsewhere too.
func TestCachedResponseRefuses(t *testing.T) {
	t.Parallel()
	m := mutator(services{"shop": {web("shop")}})
	pod := servedPod("x7k2p")
	const token = "kube-api-access-x7k2p"
	if got := m.tokenOf(pod, "shop"); got != token {
		t.Fatalf("tokenOf = %q", got)
	}
	patched := admission.Allowed("")
	patched.Patches = []jsonpatch.JsonPatchOperation{{Operation: "add", Path: "/spec/volumes/0/name", Value: token}}
	patched.Warnings = []string{"w1", "w22"}
	r, ok := newCachedResponse(pod, "shop", m, token, patched, true).(*cachedResponse)
	if !ok || r == nil {
		t.Fatal("a plain response was not cached")
	}
	if want := entryOverhead + len(r.patch) + len("w1") + len("w22"); r.size != want || !bytes.Contains(r.patch, []byte(tokenMark)) || bytes.Contains(r.patch, []byte(token)) {
		t.Errorf("size %d (want %d), patch %s", r.size, want, r.patch)
	}
	if got := r.response("kube-api-access-zz999"); len(got.Patches) != 1 || got.Patches[0].Value != "kube-api-access-zz999" || !slices.Equal(got.Warnings, patched.Warnings) {
		t.Errorf("made another pod's: %+v", got)
	}
	unpatched := admission.Allowed("")
	unpatched.Warnings = []string{"w"}
	if r, ok := newCachedResponse(pod, "shop", m, token, unpatched, false).(*cachedResponse); !ok || r == nil || r.patch != nil || r.size != entryOverhead+1 {
		t.Errorf("an unpatched response: %+v", r)
	}
	inWarning := patched
	inWarning.Warnings = []string{"volume " + token}
	longer := admission.Allowed("")
	longer.Patches = []jsonpatch.JsonPatchOperation{{Operation: "add", Path: "/x", Value: "/" + token}}
	marked := admission.Allowed("")
	marked.Patches = []jsonpatch.JsonPatchOperation{{Operation: "add", Path: "/x", Value: tokenMark}}
	for name, tc := range map[string]struct {
		token string
		resp  admission.Response
	}{
		"the name in a warning":       {token, inWarning},
		"the name in a longer string": {token, longer},
		"the mark in the patch":       {token, marked},
		"another pod's token":         {"kube-api-access-abcde", patched},
	} {
		if r := newCachedResponse(pod, "shop", m, tc.token, tc.resp, true); r != nil {
			t.Errorf("%s: cached", name)
		}
	}

	// keyOf: a name that also stands in the pod's metadata, or in a
	// namespace, keys as it is.
	for name, tc := range map[string]struct {
		pod       func() *corev1.Pod
		namespace string
		own       string
	}{
		"in a label":                 {func() *corev1.Pod { p := servedPod("x7k2p"); p.Labels["v"] = token; return p }, "shop", "rollguard-system"},
		"in the name":                {func() *corev1.Pod { p := servedPod("x7k2p"); p.GenerateName = token + "-"; return p }, "shop", "rollguard-system"},
		"in the namespace":           {func() *corev1.Pod { return servedPod("x7k2p") }, "ns-" + token, "rollguard-system"},
		"in the webhook's namespace": {func() *corev1.Pod { return servedPod("x7k2p") }, "shop", "rg-" + token},
	} {
		mm := mutator(services{})
		mm.Namespace = tc.own
		if got := mm.tokenOf(tc.pod(), tc.namespace); got != "" {
			t.Errorf("%s: token %q, want none", name, got)
		}
	}
}

func TestRawToken(t *testing.T) {
	t.Parallel()
	const tok = "kube-api-access-x7k2p"
	for raw, want := range map[string]string{
		`{"volumes":[{"name":"` + tok + `"}],"mounts":[{"name":"` + tok + `"}]}`: tok,
		`{"volumes":[{"name":"data"}]}`:                                          "",
		`{"volumes":[{"name":"` + tok + `x"}]}`:                                  "", // longer
		`{"volumes":[{"name":"kube-api-access-x7k2"}]}`:                          "", // shorter
		`{"volumes":[{"name":"kube-api-access-X7k2p"}]}`:                         "", // upper case
		`{"volumes":[{"name":"kube-api-access-x7k:p"}]}`:                         "",
		`{"volumes":[{"name":"kube-api-access-x7k/p"}]}`:                         "",
		`{"volumes":[{"name":"kube-api-access-x7k~p"}]}`:                         "",
		`{"volumes":[{"name":"kube-api-access-x7k` + "`" + `p"}]}`:               "", // just before a
		`{"volumes":[{"name":"kube-api-access-x7k{p"}]}`:                         "", // just after z
		`{"volumes":[{"name":"kube-api-access-az09a"}]}`:                         "kube-api-access-az09a",
		`{"volumes":[{"name":"` + tok + `"}],"env":"kube-api-access-other"}`:     "", // the prefix elsewhere
		`{"name":"` + tok:       "", // cut short
		`{"name":"` + tok + `"`: tok,
	} {
		if got := rawToken([]byte(raw)); got != want {
			t.Errorf("rawToken(%s) = %q, want %q", raw, got, want)
		}
	}
}

// TestKeyFields: the key's fields are length-prefixed, so moving bytes
// from one to the next gives another key.
func TestKeyFields(t *testing.T) {
	t.Parallel()
	m := mutator(services{})
	raw := []byte(`{"a":1}`)
	m.Namespace = "ab"
	k1, _, ok1 := m.rawKey(raw, "c", nil, nil)
	m.Namespace = "a"
	k2, _, ok2 := m.rawKey(raw, "bc", nil, nil)
	if !ok1 || !ok2 || k1 == k2 {
		t.Errorf("(ab, c) and (a, bc) give one key")
	}
	k3, _, _ := m.rawKey(raw, "bc", nil, nil)
	if k2 != k3 {
		t.Error("the same inputs give two keys")
	}
}

// TestCacheStats: the entries and bytes of both caches, the hits of both.
func TestCacheStats(t *testing.T) {
	t.Parallel()
	m := mutator(services{"shop": {informerService("7", intstr.FromString("http"))}})
	if h, mi, e, b := m.CacheStats(); h != 0 || mi != 0 || e != 0 || b != 0 {
		t.Errorf("before any request: %d %d %d %d", h, mi, e, b)
	}
	m.Handle(context.Background(), mustRequest(servedPod("abcde"), "shop"))
	m.Handle(context.Background(), mustRequest(servedPod("abcde"), "shop"))
	h, mi, e, b := m.CacheStats()
	e1, b1 := m.resultCache().len()
	e2, b2 := m.responseCache().len()
	if h != 1 || mi != 1 || e != 2 || e != e1+e2 || b != b1+b2 || b1 == 0 || b2 == 0 {
		t.Errorf("hits %d, misses %d, entries %d (%d+%d), bytes %d (%d+%d)", h, mi, e, e1, e2, b, b1, b2)
	}
}

// TestKeyServices: every Service is in the key: an informer's by its UID
// and resourceVersion, another by its content.
func TestKeyServices(t *testing.T) {
	t.Parallel()
	m := mutator(services{})
	raw := []byte(`{"a":1}`)
	a, b := informerService("1", intstr.FromString("http")), informerService("1", intstr.FromString("http"))
	b.Name, b.UID = "web2", "0b7e4d1c-2222-4e6a-9c71-3a5b7c9d1e00"
	b2 := b.DeepCopy()
	b2.ResourceVersion = "2"
	k1, _, _ := m.rawKey(raw, "shop", []*corev1.Service{a, b}, nil)
	k2, _, _ := m.rawKey(raw, "shop", []*corev1.Service{a, b2}, nil)
	if k1 == k2 {
		t.Error("the second informer Service's new resourceVersion gave the same key")
	}
	// A Service with a UID but no resourceVersion is keyed by content.
	c := web("shop")
	c.UID = "u"
	c2 := c.DeepCopy()
	c2.Spec.Ports[0].TargetPort = intstr.FromInt32(9000)
	k3, _, _ := m.rawKey(raw, "shop", []*corev1.Service{c}, nil)
	k4, _, _ := m.rawKey(raw, "shop", []*corev1.Service{c2}, nil)
	if k3 == k4 {
		t.Error("a Service without a resourceVersion keyed by its UID alone")
	}
}
