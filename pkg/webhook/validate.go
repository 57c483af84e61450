package webhook

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"unicode/utf8"

	admissionv1 "k8s.io/api/admission/v1"
	"sigs.k8s.io/controller-runtime/pkg/webhook/admission"

	"github.com/rollguard/rollguard/pkg/manifest"
	"github.com/rollguard/rollguard/pkg/model"
	"github.com/rollguard/rollguard/pkg/rules"
)

// maxWarning is the longest warning the API server passes on whole: past
// 4 KiB in all it cuts each one to 256 runes.
const maxWarning = 256

// workloadKinds are the kinds the validating handler reads, by API group.
var workloadKinds = map[string][]string{
	"apps":        {"Deployment", "StatefulSet", "DaemonSet"},
	"argoproj.io": {"Rollout"},
}

// Validator is the validating handler for workloads.
type Validator struct {
	Registry *rules.Registry
	Lister   Lister
	Settings *Current
	// Namespace is the webhook's own, never judged.
	Namespace string
	// Mutating says the mutating handler runs too: findings it fixes on
	// the pods say so.
	Mutating bool
}

// Handle judges a workload at CREATE, or at an UPDATE of its spec: its
// findings (warning and error severity) are admission warnings; a finding
// of a rule configured to deny refuses it, with the rule's fix. A workload
// being deleted, or an update of its metadata or scale only, is let
// through untouched; so is anything the handler fails on (failOpen).
func (v *Validator) Handle(_ context.Context, req admission.Request) admission.Response {
	if req.Operation != admissionv1.Create && req.Operation != admissionv1.Update || req.SubResource != "" {
		return admission.Allowed("")
	}
	kinds, ok := workloadKinds[req.Kind.Group]
	if !ok || !contains(kinds, req.Kind.Kind) {
		return admission.Allowed("")
	}
	if Excluded(req.Namespace, v.Namespace) {
		return admission.Allowed("")
	}
	if req.Operation == admissionv1.Update && !specChanged(req.OldObject.Raw, req.Object.Raw) {
		// Labels, annotations, a scale, finalizers (the garbage collector's
		// patch during a foreground deletion): nothing the rules read, and
		// nothing a denial may block.
		return admission.Allowed("")
	}
	name := fmt.Sprintf("%s %s/%s", req.Kind.Kind, req.Namespace, req.Name)
	res := &manifest.Result{}
	manifest.Decode(name, req.Object.Raw, res)
	if len(res.Errors) > 0 || len(res.Objects) != 1 {
		return failOpen(fmt.Errorf("decoding %s: %v", name, res.Errors))
	}
	obj := res.Objects[0]
	if obj.Namespace == "" {
		obj.Namespace = req.Namespace
	}
	warnings, denials, err := v.Judge(obj)
	if err != nil {
		return failOpen(err)
	}
	if len(denials) > 0 {
		resp := admission.Denied(strings.Join(denials, "; "))
		resp.Warnings = warnings
		return resp
	}
	resp := admission.Allowed("")
	resp.Warnings = warnings
	return resp
}

// Judge runs the rules over a workload with its namespace's Services,
// PDBs and HPAs, and returns the warnings and the denials for its
// findings. An opted-out workload (the annotation on it or on its pod
// template) gets none.
func (v *Validator) Judge(obj *manifest.Object) (warnings, denials []string, err error) {
	st := v.Settings.Load()
	ns := obj.Namespace
	m := model.Build([]*manifest.Object{obj}, model.Options{Namespace: ns})
	if len(m.Workloads) == 1 {
		w := m.Workloads[0]
		if w.Meta.Annotations[InjectAnnotation] == "disabled" || w.Template.Annotations[InjectAnnotation] == "disabled" {
			return nil, nil, nil
		}
	}
	objs := []*manifest.Object{obj}
	svcs, err := v.Lister.Services(ns)
	if err != nil {
		return nil, nil, fmt.Errorf("rollguard: listing the Services of namespace %s from the cache: %w", ns, err)
	}
	for _, s := range svcs {
		objs = append(objs, &manifest.Object{APIVersion: "v1", Kind: "Service", Namespace: s.Namespace, Name: s.Name, Value: s})
	}
	others, err := v.Lister.Others(ns)
	if err != nil {
		return nil, nil, fmt.Errorf("rollguard: listing the PDBs and HPAs of namespace %s from the cache: %w", ns, err)
	}
	objs = append(objs, others...)
	mopts := st.Model
	mopts.Namespace = ns
	rep := v.Registry.Run(model.Build(objs, mopts), st.Rules)
	fixed := caseRules(v.Registry)
	for _, f := range rep.Findings {
		if f.Object != obj || f.Severity < rules.Warning {
			continue
		}
		head := fmt.Sprintf("%s %s/%s: %s %s (%s): ", obj.Kind, ns, obj.Name, f.Rule.ID, f.Rule.Name, f.Rule.Case)
		if st.Deny[f.Rule] {
			denials = append(denials, head+f.Message+"; fix: "+f.Fix)
			continue
		}
		tail := ""
		if v.Mutating && fixed[f.Rule] && f.Rule.NoFix == "" {
			tail = " (fixed on its pods at admission)"
		}
		warnings = append(warnings, clip(head+f.Message, maxWarning-len(tail))+tail)
	}
	return warnings, denials, nil
}

// specChanged reports whether an update changes the object's spec (a
// replica count aside) and leaves it not being deleted: only such an
// update is judged. An object that cannot be read counts as changed.
func specChanged(oldRaw, newRaw []byte) bool {
	var o, n struct {
		Metadata struct {
			DeletionTimestamp *string `json:"deletionTimestamp"`
		} `json:"metadata"`
		Spec map[string]json.RawMessage `json:"spec"`
	}
	if json.Unmarshal(oldRaw, &o) != nil || json.Unmarshal(newRaw, &n) != nil {
		return true
	}
	if n.Metadata.DeletionTimestamp != nil {
		return false
	}
	delete(o.Spec, "replicas")
	delete(n.Spec, "replicas")
	if len(o.Spec) != len(n.Spec) {
		return true
	}
	for k, v := range n.Spec {
		if !bytes.Equal(bytes.TrimSpace(o.Spec[k]), bytes.TrimSpace(v)) {
			return true
		}
	}
	return false
}

// clip cuts s to n runes, ending it with "...".
func clip(s string, n int) string {
	if utf8.RuneCountInString(s) <= n {
		return s
	}
	r := []rune(s)
	return string(r[:n-3]) + "..."
}

func contains(s []string, v string) bool {
	for _, x := range s {
		if x == v {
			return true
		}
	}
	return false
}
