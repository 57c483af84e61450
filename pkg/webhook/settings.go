// Package webhook implements rollguard's admission webhook. The mutating
// handler gives every Pod that a Service in its namespace selects the
// fixes of the Case 1 and Case 2 rules at CREATE (the rules' own
// remediations, applied by pkg/fix to the pod's spec), and annotates it
// with what changed; the validating handler returns the audit's findings
// on Deployments, StatefulSets, DaemonSets and Argo Rollouts as admission
// warnings, or denials for the rules configured to deny. Both act only in
// namespaces labelled rollguard.io/inject=enabled (the webhook
// configurations' selectors say so), never in kube-system, kube-public,
// kube-node-lease or the webhook's own (the selectors exclude them by
// name, and the handlers check again).
package webhook

import (
	"slices"
	"strings"
	"sync/atomic"

	corev1 "k8s.io/api/core/v1"
	"sigs.k8s.io/controller-runtime/pkg/webhook/admission"

	"github.com/rollguard/rollguard/pkg/config"
	"github.com/rollguard/rollguard/pkg/model"
	"github.com/rollguard/rollguard/pkg/rules"
)

// Labels and annotations the webhook reads and writes.
const (
	// InjectLabel on a namespace, with the value "enabled", opts it in.
	InjectLabel = "rollguard.io/inject"
	// InjectAnnotation on a pod (or a workload's pod template), with the
	// value "disabled", opts it out.
	InjectAnnotation = "rollguard.io/inject"
	// MutatedAnnotation lists what the webhook changed on a pod, and why.
	MutatedAnnotation = "rollguard.io/mutated"
)

// systemNamespaces are never touched, whatever their labels.
var systemNamespaces = []string{"kube-system", "kube-public", "kube-node-lease"}

// Excluded reports whether a namespace is out of the webhook's reach: a
// system namespace, or the webhook's own (own; empty for none).
func Excluded(namespace, own string) bool {
	return slices.Contains(systemNamespaces, namespace) || (own != "" && namespace == own)
}

// ErrorPrefix starts the message of a response given after the handler's
// own failure: the request is allowed (never refused for rollguard's
// sake, whatever the failurePolicy), with a warning, and counted as an
// error.
const ErrorPrefix = "rollguard could not check this: "

// failOpen allows a request the handler could not process, saying why.
func failOpen(err error) admission.Response {
	r := admission.Allowed(ErrorPrefix + err.Error())
	r.Warnings = []string{clip(ErrorPrefix+err.Error(), maxWarning)}
	return r
}

// notRolled reports whether a pod is none that a rollout replaces behind a
// Service: a Job's pod (a readinessProbe on the Service's port would keep
// the workers that do not listen out of its endpoints), a pod that is not
// restarted (restartPolicy Never or OnFailure), or a static pod's mirror.
func notRolled(pod *corev1.Pod) bool {
	for _, o := range pod.OwnerReferences {
		if o.Kind == "Job" && strings.HasPrefix(o.APIVersion, "batch/") {
			return true
		}
	}
	if p := pod.Spec.RestartPolicy; p != "" && p != corev1.RestartPolicyAlways {
		return true
	}
	_, mirror := pod.Annotations[corev1.MirrorPodAnnotationKey]
	return mirror
}

// Settings are what the handlers measure and decide with: the rule
// settings (budget, drain allowance), severities and disabled rules of
// the configuration file, the rules that deny, and the API server's minor
// version (below 30 there is no native preStop sleep).
type Settings struct {
	Rules     rules.Options
	Model     model.Options
	Deny      map[*rules.Rule]bool
	KubeMinor int
}

// FromConfig makes Settings from a configuration file's content (nil for
// none): the file's values over the defaults. kubeMinor is the oldest
// kubelet's minor version as guessed from the API server's; the file's
// k8sVersion replaces it.
func FromConfig(cfg *config.Config, kubeMinor int) *Settings {
	s := &Settings{Rules: rules.Options{Settings: rules.DefaultSettings()}, KubeMinor: kubeMinor, Deny: map[*rules.Rule]bool{}}
	if cfg == nil {
		return s
	}
	if cfg.PropagationBudget > 0 {
		s.Rules.Settings.PropagationBudget = cfg.PropagationBudget
	}
	if cfg.DrainAllowance > 0 {
		s.Rules.Settings.DrainAllowance = cfg.DrainAllowance
	}
	if cfg.KubeMinor > 0 {
		// The operator knows the oldest kubelet: it wins over the guess
		// from the API server's version and the skew policy.
		s.KubeMinor = cfg.KubeMinor
	}
	s.Rules.Disabled, s.Rules.Severity = cfg.Disabled, cfg.Severity
	s.Model.TelemetryPorts = cfg.TelemetryPorts
	for r := range cfg.Deny {
		s.Deny[r] = true
	}
	return s
}

// Current holds the Settings in force; a reload swaps them whole, so a
// request sees one configuration from start to end.
type Current struct{ p atomic.Pointer[Settings] }

// Load returns the settings in force (the defaults before any Store).
func (c *Current) Load() *Settings {
	if s := c.p.Load(); s != nil {
		return s
	}
	return FromConfig(nil, 0)
}

// Store puts new settings in force.
func (c *Current) Store(s *Settings) { c.p.Store(s) }
