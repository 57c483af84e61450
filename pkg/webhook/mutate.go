package webhook

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"slices"
	"sort"
	"strings"
	"sync"

	jsonpatch "gopkg.in/evanphx/json-patch.v4"
	admissionv1 "k8s.io/api/admission/v1"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"sigs.k8s.io/controller-runtime/pkg/webhook/admission"
	"sigs.k8s.io/yaml"

	"github.com/rollguard/rollguard/pkg/fix"
	"github.com/rollguard/rollguard/pkg/manifest"
	"github.com/rollguard/rollguard/pkg/rules"
)

// Lister reads the objects of a namespace from the webhook's cache.
type Lister interface {
	Services(namespace string) ([]*corev1.Service, error)
	// Others returns the namespace's PodDisruptionBudgets and
	// HorizontalPodAutoscalers, which the validating handler's rules read.
	Others(namespace string) ([]*manifest.Object, error)
}

// Mutator is the mutating handler for Pods.
type Mutator struct {
	Registry *rules.Registry
	Lister   Lister
	Settings *Current
	// Namespace is the webhook's own, never mutated.
	Namespace string
	// CacheSize bounds the results the handler keeps for pods like those
	// it has seen (see cache.go): 0 for DefaultCacheSize, negative for no
	// cache. It is read once, at the first request.
	CacheSize int

	cacheOnce sync.Once
	cache     *resultCache // what the rules made of pods
	responses *resultCache // the responses to requests
}

// Handle mutates a Pod at CREATE: see Mutate.
func (m *Mutator) Handle(_ context.Context, req admission.Request) admission.Response {
	if req.Operation != admissionv1.Create || req.Kind.Group != "" || req.Kind.Kind != "Pod" || req.SubResource != "" {
		return admission.Allowed("rollguard mutates Pods at CREATE only")
	}
	stored := m.stored()
	ns := req.Namespace
	// The response of a request whose object is, byte for byte, one seen
	// before (but for the token volume's name), in a namespace whose
	// Services are as they were: see cache.go.
	var (
		svcs    []*corev1.Service
		listed  bool
		rk      cacheKey
		rtoken  string
		keyed   bool
		answers = m.responseCache()
	)
	if answers != nil && ns != "" && !Excluded(ns, m.Namespace) {
		if list, err := m.Lister.Services(ns); err == nil {
			svcs, listed = sortedServices(list), true
			if rk, rtoken, keyed = m.rawKey(req.Object.Raw, ns, svcs, stored); keyed {
				if r := answers.lookup(rk); r != nil {
					return r.(*cachedResponse).response(rtoken)
				}
			}
		}
	}
	var pod corev1.Pod
	if err := decodeStrict(req.Object.Raw, &pod); err != nil {
		return failOpen(fmt.Errorf("decoding the Pod of %s/%s: %w", req.Namespace, req.Name, err))
	}
	if ns == "" {
		ns = pod.Namespace
	}
	mu, err := m.mutation(&pod, ns, svcs, listed, stored)
	if err != nil {
		return failOpen(err)
	}
	if mu == nil || !mu.changed {
		resp := admission.Allowed("")
		if mu != nil {
			resp.Warnings = mu.warnings
		}
		if keyed {
			answers.store(rk, newCachedResponse(&pod, ns, m, rtoken, resp, false))
		}
		return resp
	}
	resp, err := mu.patch(&pod, req.Object.Raw)
	if err != nil {
		r := failOpen(fmt.Errorf("patching the Pod of %s/%s: %w", req.Namespace, req.Name, err))
		r.Warnings = append(r.Warnings, mu.warnings...)
		return r
	}
	resp.Warnings = mu.warnings
	if keyed && resp.Result == nil {
		answers.store(rk, newCachedResponse(&pod, ns, m, rtoken, resp, true))
	}
	return resp
}

// decodeStrict decodes JSON, refusing trailing data: an AdmissionReview
// object is one value.
func decodeStrict(data []byte, v any) error {
	if len(bytes.TrimSpace(data)) == 0 {
		return errors.New("no object in the request")
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	if err := dec.Decode(v); err != nil {
		return err
	}
	if dec.More() {
		return errors.New("more than one JSON value")
	}
	return nil
}

// caseRules are the rules the mutator applies: those of Case 1 and Case 2.
func caseRules(reg *rules.Registry) map[*rules.Rule]bool {
	only := map[*rules.Rule]bool{}
	for _, r := range reg.All() {
		if r.Case == rules.Case1 || r.Case == rules.Case2 {
			only[r] = true
		}
	}
	return only
}

// Mutate returns the pod with the Case 1 and Case 2 fixes applied and an
// annotation listing them, or nil when nothing is to change: a namespace
// out of reach, an opted-out pod, a pod no Service selects, or one the
// rules find nothing on (a pod already mutated, so reinvocation changes
// nothing). The warnings name what the rules found and could not fix.
func (m *Mutator) Mutate(pod *corev1.Pod, namespace string) (*corev1.Pod, []string, error) {
	mu, err := m.mutation(pod, namespace, nil, false, m.stored())
	if err != nil || mu == nil {
		return nil, nil, err
	}
	if !mu.changed {
		return nil, mu.warnings, nil
	}
	out := pod.DeepCopy()
	if mu.spec != nil {
		out.Spec = *mu.spec
	} else {
		var spec corev1.PodSpec
		if err := json.Unmarshal(mu.specJSON, &spec); err != nil {
			return nil, nil, fmt.Errorf("rollguard: reading the fixed pod back: %w", err)
		}
		out.Spec = spec
	}
	if out.Annotations == nil {
		out.Annotations = map[string]string{}
	}
	out.Annotations[MutatedAnnotation] = mergeChanges(out.Annotations[MutatedAnnotation], mu.annotation)
	return out, mu.warnings, nil
}

// mutation is what the rules make of a pod: whether it changes, and if
// so its fixed spec (as a struct, when just computed, and as JSON) and
// the annotation listing the changes; and the warnings. The caller owns
// it, all but spec and specJSON, which it must not change.
type mutation struct {
	changed    bool
	spec       *corev1.PodSpec
	specJSON   []byte
	annotation string
	warnings   []string
}

// patch is the response that applies the mutation to the request's object.
//
// The patch is the difference between the pod as decoded and the pod
// mutated, both written from corev1.Pod, so it holds only the mutation's
// own operations: a field of the request that corev1.Pod does not know
// (one a newer API server added) is in neither and so left as it is,
// where a difference from the request's own bytes would remove it. The
// API server refuses the pod when a patch does not apply, whatever the
// failurePolicy says, so the patch is applied here first, the way the API
// server applies it: a patch that would not apply fails open instead.
func (mu *mutation) patch(pod *corev1.Pod, raw []byte) (admission.Response, error) {
	before, err := json.Marshal(pod)
	if err != nil {
		return admission.Response{}, err
	}
	after, err := mu.podJSON(pod)
	if err != nil {
		return admission.Response{}, err
	}
	resp := admission.PatchResponseFromRaw(before, after)
	if resp.Result != nil && resp.Result.Code != 0 && resp.Result.Code != 200 {
		return admission.Response{}, errors.New(resp.Result.Message)
	}
	ops, err := json.Marshal(resp.Patches)
	if err != nil {
		return admission.Response{}, err
	}
	p, err := jsonpatch.DecodePatch(ops)
	if err != nil {
		return admission.Response{}, err
	}
	if _, err := p.Apply(raw); err != nil {
		return admission.Response{}, fmt.Errorf("the patch does not apply to the request's object: %w", err)
	}
	return resp, nil
}

// podJSON is the pod as JSON with the mutation applied: byte for byte
// what json.Marshal writes of the pod with the fixed spec and the
// annotation.
func (mu *mutation) podJSON(pod *corev1.Pod) ([]byte, error) {
	spec := mu.specJSON
	if spec == nil {
		var err error
		if spec, err = json.Marshal(mu.spec); err != nil {
			return nil, err
		}
	}
	ann := make(map[string]string, len(pod.Annotations)+1)
	maps.Copy(ann, pod.Annotations)
	ann[MutatedAnnotation] = mergeChanges(pod.Annotations[MutatedAnnotation], mu.annotation)
	meta := pod.ObjectMeta
	meta.Annotations = ann
	// The fields and tags of corev1.Pod, the spec already encoded.
	return json.Marshal(struct {
		metav1.TypeMeta   `json:",inline"`
		metav1.ObjectMeta `json:"metadata,omitempty"`
		Spec              json.RawMessage  `json:"spec,omitempty"`
		Status            corev1.PodStatus `json:"status,omitempty"`
	}{pod.TypeMeta, meta, spec, pod.Status})
}

// mergeChanges is the mutated annotation of a pod that has one already,
// from an earlier call in the same admission (the API server calls the
// webhook again when a later webhook changed the pod): one entry per
// field, the newer value where both set one, sorted. An entry is
// "FIELD=VALUE (RULES)", and entries are joined by "; ", which no value
// the mutation writes holds.
func mergeChanges(had, now string) string {
	if had == "" {
		return now
	}
	byField := map[string]string{}
	for _, list := range []string{had, now} {
		for _, c := range strings.Split(list, "; ") {
			if c != "" {
				field, _, _ := strings.Cut(c, "=")
				byField[field] = c
			}
		}
	}
	return strings.Join(slices.Sorted(maps.Values(byField)), "; ")
}

// stored is the Settings in force, nil when none were stored (the
// defaults, which are always the same, are then in force).
func (m *Mutator) stored() *Settings {
	if m.Settings == nil {
		return nil
	}
	return m.Settings.p.Load()
}

// sortedServices is a copy of svcs in the order of their names: the order
// the rules read them in, whatever order the Lister gives.
func sortedServices(svcs []*corev1.Service) []*corev1.Service {
	out := slices.Clone(svcs)
	slices.SortStableFunc(out, func(a, b *corev1.Service) int { return strings.Compare(a.Name, b.Name) })
	return out
}

// mutation finds what the rules make of a pod in a namespace, through the
// cache when there is one; nil when the pod is out of reach, opted out,
// or selected by no Service. svcs are the namespace's Services when
// listed (sorted), stored the Settings in force (see stored).
func (m *Mutator) mutation(pod *corev1.Pod, namespace string, svcs []*corev1.Service, listed bool, stored *Settings) (*mutation, error) {
	if Excluded(namespace, m.Namespace) || pod.Annotations[InjectAnnotation] == "disabled" || notRolled(pod) {
		return nil, nil
	}
	if !listed {
		list, err := m.Lister.Services(namespace)
		if err != nil {
			return nil, fmt.Errorf("rollguard: listing the Services of namespace %s from the cache: %w", namespace, err)
		}
		svcs = sortedServices(list)
	}
	var selecting []*corev1.Service
	for _, s := range svcs {
		if len(s.Spec.Selector) > 0 && labels.SelectorFromSet(s.Spec.Selector).Matches(labels.Set(pod.Labels)) {
			selecting = append(selecting, s)
		}
	}
	if len(selecting) == 0 {
		return nil, nil
	}
	st := stored
	if st == nil {
		st = FromConfig(nil, 0)
	}
	c := m.resultCache()
	if c == nil {
		return m.compute(pod, namespace, selecting, st)
	}
	k, token, ok := m.keyOf(pod, namespace, selecting, stored)
	if !ok {
		return m.compute(pod, namespace, selecting, st)
	}
	if r, compute := c.get(k); r != nil {
		return r.(*cachedResult).mutation(token), nil
	} else if !compute {
		return m.compute(pod, namespace, selecting, st)
	}
	// put ends the computation whatever happens, also a panic, so that no
	// request waits for it forever.
	var r *cachedResult
	defer func() {
		if r == nil {
			c.put(k, nil)
		} else {
			c.put(k, r)
		}
	}()
	mu, err := m.compute(pod, namespace, selecting, st)
	if err != nil {
		return nil, err
	}
	if mu.changed {
		if mu.specJSON, err = json.Marshal(mu.spec); err != nil {
			return nil, err
		}
	}
	r = newCachedResult(mu, token)
	return mu, nil
}

// compute runs the rules' fixes on the pod read as a workload.
func (m *Mutator) compute(pod *corev1.Pod, namespace string, selecting []*corev1.Service, st *Settings) (*mutation, error) {
	text, err := workloadText(pod, namespace, selecting)
	if err != nil {
		return nil, err
	}
	ropts := st.Rules
	ropts.Only = caseRules(m.Registry)
	model := st.Model
	model.Namespace = namespace
	res := fix.Run([]fix.Input{{Name: "admission", Data: text}}, m.Registry,
		fix.Options{Rules: ropts, Fix: rules.FixOptions{Settings: st.Rules.Settings, KubeMinor: st.KubeMinor}, Model: model})
	if len(res.Errors) > 0 {
		return nil, fmt.Errorf("rollguard: reading the pod as a workload: %w", errors.Join(res.Errors...))
	}
	mu := &mutation{}
	for _, r := range res.Remaining {
		if r.Finding.Object == nil || r.Finding.Object.Kind != "Deployment" {
			continue // a Service's own finding is the validating handler's
		}
		mu.warnings = append(mu.warnings, fmt.Sprintf("rollguard: %s %s (%s) not fixed at admission: %s", r.Finding.Rule.ID, r.Finding.Rule.Name, r.Finding.Rule.Case, r.Why))
	}
	if len(res.Files) == 0 || !res.Files[0].Changed() {
		return mu, nil
	}
	docs := bytes.SplitN(res.Files[0].After, []byte("\n---\n"), 2)
	var d appsv1.Deployment
	if err := yaml.UnmarshalStrict(docs[0], &d); err != nil {
		return nil, fmt.Errorf("rollguard: reading the fixed pod back: %w", err)
	}
	mu.changed, mu.spec = true, &d.Spec.Template.Spec
	var changes []string
	for _, e := range res.Edits {
		ids := make([]string, len(e.Rules))
		for i, r := range e.Rules {
			ids[i] = r.ID
		}
		changes = append(changes, fmt.Sprintf("%s=%s (%s)", strings.TrimPrefix(e.Path, "spec.template."), e.ValueText(), strings.Join(ids, ",")))
	}
	sort.Strings(changes)
	mu.annotation = strings.Join(changes, "; ")
	return mu, nil
}

// workloadText is the pod as the rules read it: a Deployment whose pod
// template is the pod, then the Services that select it, as YAML.
func workloadText(pod *corev1.Pod, namespace string, svcs []*corev1.Service) ([]byte, error) {
	name := pod.Name
	if name == "" {
		name = strings.TrimSuffix(pod.GenerateName, "-")
	}
	if name == "" {
		name = "pod"
	}
	replicas := int32(2) // the case rules do not read it
	d := appsv1.Deployment{
		TypeMeta:   metav1.TypeMeta{APIVersion: "apps/v1", Kind: "Deployment"},
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: namespace},
		Spec: appsv1.DeploymentSpec{
			Replicas: &replicas,
			Selector: &metav1.LabelSelector{MatchLabels: pod.Labels},
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: pod.Labels, Annotations: pod.Annotations},
				Spec:       pod.Spec,
			},
		},
	}
	var b bytes.Buffer
	out, err := yaml.Marshal(d)
	if err != nil {
		return nil, err
	}
	b.Write(out)
	for _, s := range svcs {
		c := s.DeepCopy()
		c.TypeMeta = metav1.TypeMeta{APIVersion: "v1", Kind: "Service"}
		c.ManagedFields, c.Status = nil, corev1.ServiceStatus{}
		out, err := yaml.Marshal(c)
		if err != nil {
			return nil, err
		}
		b.WriteString("---\n")
		b.Write(out)
	}
	return b.Bytes(), nil
}
