// Package fleet implements what rollguard's in-cluster commands (verify
// and measure) share to run their own pods on a user's cluster: which
// nodes can take a pod, the agent pod and starting one per node, why a
// pod will not start, checking access before anything is created, and
// removing pods by label.
package fleet

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sort"
	"strings"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
)

// InputError is an error in what a command was asked to do, or in the
// cluster's state before it began (no node, no permission, a pod that
// cannot start): the run proves nothing, so the command exits 2.
type InputError struct{ Err error }

func (e *InputError) Error() string { return e.Err.Error() }
func (e *InputError) Unwrap() error { return e.Err }

// Roles names, for error messages, the file that grants a command's
// permissions and the page that explains it: "deploy/rbac/rollguard-verify.yaml",
// "docs/verify.md".
type Roles struct {
	File, Doc string
}

// APIError explains an API error of a call (for example "create pods"): a
// denial names the permission's role file.
func (r Roles) APIError(err error, call, ns string) error {
	where := "in namespace " + ns
	if ns == "" {
		where = "(cluster-wide)"
	}
	if apierrors.IsForbidden(err) {
		// Not only RBAC: admission (PodSecurity, a LimitRange, a quota, a
		// webhook) answers 403 too, and its message says which.
		return &InputError{fmt.Errorf("%s %s: %w (if it is a permission: bind the roles in %s, see %s)", call, where, err, r.File, r.Doc)}
	}
	var se *apierrors.StatusError
	if errors.As(err, &se) {
		return fmt.Errorf("%s %s: %w", call, where, err)
	}
	return fmt.Errorf("%s %s: %w (is the cluster reachable? check --kubeconfig and --context)", call, where, err)
}

// ReadyNodes lists the nodes to run a pod on each of: the ones named,
// which must be ready, schedulable Linux nodes (each once, in the order
// given), or with none named every such node, sorted.
func (r Roles) ReadyNodes(ctx context.Context, cs kubernetes.Interface, named []string) ([]string, error) {
	list, err := cs.CoreV1().Nodes().List(ctx, metav1.ListOptions{})
	if err != nil {
		return nil, r.APIError(err, "list nodes", "")
	}
	ready := map[string]bool{}
	var all []string
	for _, n := range list.Items {
		if os := n.Labels[corev1.LabelOSStable]; os != "" && os != "linux" {
			continue // the rollguard image is Linux's
		}
		for _, c := range n.Status.Conditions {
			if c.Type == corev1.NodeReady && c.Status == corev1.ConditionTrue && !n.Spec.Unschedulable {
				ready[n.Name] = true
				all = append(all, n.Name)
			}
		}
	}
	sort.Strings(all)
	if len(named) == 0 {
		if len(all) == 0 {
			return nil, &InputError{errors.New("no Linux node is ready and schedulable: rollguard's pods have nowhere to run")}
		}
		return all, nil
	}
	var out []string
	for _, n := range named {
		if !ready[n] {
			return nil, &InputError{fmt.Errorf("--from: node %q is not a ready, schedulable Linux node (those: %s)", n, strings.Join(all, ", "))}
		}
		if !slices.Contains(out, n) { // one pod a node, however often named
			out = append(out, n)
		}
	}
	return out, nil
}

// PodReady reports whether a pod's Ready condition is true.
func PodReady(p *corev1.Pod) bool {
	for _, c := range p.Status.Conditions {
		if c.Type == corev1.PodReady && c.Status == corev1.ConditionTrue {
			return true
		}
	}
	return false
}

// PodStuck says why a pod will not start, when it will not: it ended, its
// image cannot be pulled, its container crashes or cannot be created.
func PodStuck(p *corev1.Pod) string {
	if p.Status.Phase == corev1.PodFailed || p.Status.Phase == corev1.PodSucceeded {
		return "it ended (" + string(p.Status.Phase) + ")"
	}
	for _, cs := range p.Status.ContainerStatuses {
		if w := cs.State.Waiting; w != nil {
			switch w.Reason {
			case "ErrImagePull", "ImagePullBackOff", "ErrImageNeverPull", "InvalidImageName", "CrashLoopBackOff", "CreateContainerError", "CreateContainerConfigError":
				return w.Reason + ": " + w.Message
			}
		}
		if t := cs.State.Terminated; t != nil {
			return fmt.Sprintf("its container exited (%s, code %d)", t.Reason, t.ExitCode)
		}
	}
	for _, c := range p.Status.Conditions {
		// The scheduler's verdict, for a pod it could not place.
		if c.Type == corev1.PodScheduled && c.Status == corev1.ConditionFalse && c.Reason == corev1.PodReasonUnschedulable {
			return "unschedulable: " + c.Message
		}
	}
	return ""
}
