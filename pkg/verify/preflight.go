package verify

import (
	"context"
	"fmt"
	"strings"
	"sync"

	authorizationv1 "k8s.io/api/authorization/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
)

// Permission is one verb on one resource that verify uses. The roles in
// RoleFile grant exactly the permissions of Permissions; a test holds the
// two equal.
type Permission struct {
	Group       string // API group; "" is the core group
	Resource    string // plural, as in an RBAC rule
	Subresource string // "proxy" for pods/proxy; empty for the resource itself
	Verb        string
	// Cluster is set for a cluster-scoped resource (nodes), granted by a
	// ClusterRoleBinding; the others are asked in the workload's namespace
	// and granted by a RoleBinding there.
	Cluster bool
	// For is the verify step that uses it, for people.
	For string
}

// Name is the permission as kubectl names it (kubectl auth can-i), in a
// namespace unless it is cluster-wide: "create pods/proxy in namespace
// shop", "patch deployments.apps in namespace shop", "list nodes
// (cluster-wide)".
func (p Permission) Name(namespace string) string {
	r := p.Resource
	if p.Group != "" {
		r += "." + p.Group
	}
	if p.Subresource != "" {
		r += "/" + p.Subresource
	}
	if p.Cluster {
		return p.Verb + " " + r + " (cluster-wide)"
	}
	return p.Verb + " " + r + " in namespace " + namespace
}

// What each workload permission is for; the three kinds share them. The
// rollout is followed by polling the workload (as kubectl rollout status
// reads it), so neither list nor watch is needed.
const (
	forWorkloadGet   = "read the workload named on the command line (its selector, pod template and strategy), then follow the rollout to its end: updated, ready and available replicas"
	forWorkloadPatch = "start the rollout as kubectl rollout restart does (an annotation on the pod template), or set an image with --trigger image="
)

// Permissions lists what verify needs, namespaced ones first, in the order
// of RoleFile. Each call returns a new slice. Each entry is a call the
// code makes; nothing is granted "just in case".
func Permissions() []Permission {
	return []Permission{
		{Group: "apps", Resource: "deployments", Verb: "get", For: forWorkloadGet},
		{Group: "apps", Resource: "deployments", Verb: "patch", For: forWorkloadPatch},
		{Group: "apps", Resource: "statefulsets", Verb: "get", For: forWorkloadGet},
		{Group: "apps", Resource: "statefulsets", Verb: "patch", For: forWorkloadPatch},
		{Group: "apps", Resource: "daemonsets", Verb: "get", For: forWorkloadGet},
		{Group: "apps", Resource: "daemonsets", Verb: "patch", For: forWorkloadPatch},
		{Resource: "pods", Verb: "get", For: "wait for each agent to be ready, reading its pod's state"},
		{Resource: "pods", Verb: "list", For: "start the pod watch (a watch begins with a list), name the pods not ready when a rollout is stuck, and wait until the removed agents are gone"},
		{Resource: "pods", Verb: "watch", For: "record the workload's pods (created, ready, deleted, exited) in the timeline"},
		{Resource: "pods", Verb: "create", For: "start the traffic agents"},
		{Resource: "pods", Verb: "deletecollection", For: "remove every agent of the run, by label, when verify ends or is interrupted (with --cleanup, every run's)"},
		{Resource: "pods", Subresource: "proxy", Verb: "get", For: "read an agent's clock, progress and results through the API server (no port needs to be open to you)"},
		{Resource: "pods", Subresource: "proxy", Verb: "create", For: "send an agent its traffic plan and the pods to probe, and stop it, through the API server (POSTs)"},
		{Resource: "services", Verb: "get", For: "read the Service named with --service"},
		{Resource: "services", Verb: "list", For: "find the Service that selects the workload's pods"},
		{Group: "discovery.k8s.io", Resource: "endpointslices", Verb: "list", For: "start the endpoint watch (a watch begins with a list)"},
		{Group: "discovery.k8s.io", Resource: "endpointslices", Verb: "watch", For: "record the Service's endpoints (added, terminating, removed) in the timeline"},
		{Resource: "nodes", Verb: "list", Cluster: true, For: "place one agent per ready, schedulable node (--from all-nodes), or check the nodes named with --from"},
	}
}

// PermissionError lists the permissions the API server says the caller
// lacks. Preflight returns it inside an *InputError: without them the run
// would stop half-way, having proven nothing.
type PermissionError struct {
	Namespace string
	Missing   []Permission
	// Undecided holds, per missing permission (same index), why the
	// authorizer could not decide, when it says so; usually empty.
	Undecided []string
}

func (e *PermissionError) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "verify lacks %d permission", len(e.Missing))
	if len(e.Missing) != 1 {
		b.WriteString("s")
	}
	b.WriteString(":\n")
	for i, p := range e.Missing {
		b.WriteString("  " + p.Name(e.Namespace))
		if i < len(e.Undecided) && e.Undecided[i] != "" {
			b.WriteString(" (the authorizer could not decide: " + e.Undecided[i] + ")")
		}
		b.WriteString("\n")
	}
	fmt.Fprintf(&b, "bind the roles in %s (see docs/verify.md)", RoleFile)
	return b.String()
}

// preflightWorkers bounds the access reviews in flight.
const preflightWorkers = 8

// Preflight asks the API server, with a SelfSubjectAccessReview per entry
// of Permissions, whether the caller holds each permission verify needs
// in namespace (and cluster-wide, for nodes), before verify changes
// anything. When some are missing it returns an *InputError holding a
// *PermissionError that lists every one, as kubectl names them. An error
// of the API itself is returned as such, naming the review that failed.
//
// With kinds given, only those workload kinds' permissions are asked for:
// a user allowed to roll Deployments alone may verify a Deployment.
func Preflight(ctx context.Context, c kubernetes.Interface, namespace string, kinds ...Kind) error {
	if namespace == "" {
		// A review without a namespace asks about every namespace.
		return fmt.Errorf("checking verify's permissions: no namespace given")
	}
	perms := Permissions()
	if len(kinds) > 0 {
		want := map[string]bool{}
		for _, k := range kinds {
			want[string(k)+"s"] = true
		}
		kept := perms[:0]
		for _, p := range perms {
			if p.Group != "apps" || want[p.Resource] {
				kept = append(kept, p)
			}
		}
		perms = kept
	}
	type answer struct {
		allowed bool
		why     string
		err     error
	}
	answers := make([]answer, len(perms))
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var (
		wg       sync.WaitGroup
		mu       sync.Mutex
		firstErr error // the first API error seen; the reviews still in flight are cancelled
		next     = make(chan int)
	)
	for range min(preflightWorkers, len(perms)) {
		wg.Go(func() {
			for i := range next {
				allowed, why, err := review(ctx, c, perms[i], namespace)
				if err != nil {
					mu.Lock()
					if firstErr == nil {
						firstErr = err
						cancel()
					}
					mu.Unlock()
				}
				answers[i] = answer{allowed, why, err}
			}
		})
	}
feed:
	for i := range perms {
		select {
		case next <- i:
		case <-ctx.Done():
			break feed
		}
	}
	close(next)
	wg.Wait()
	if firstErr != nil {
		return firstErr
	}
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("checking verify's permissions: %w", err)
	}
	pe := &PermissionError{Namespace: namespace}
	for i, a := range answers {
		if !a.allowed {
			pe.Missing = append(pe.Missing, perms[i])
			pe.Undecided = append(pe.Undecided, a.why)
		}
	}
	if len(pe.Missing) == 0 {
		return nil
	}
	return &InputError{pe}
}

// review asks whether the caller holds one permission. why is the
// authorizer's evaluation error, when it could not decide.
func review(ctx context.Context, c kubernetes.Interface, p Permission, namespace string) (allowed bool, why string, err error) {
	attrs := &authorizationv1.ResourceAttributes{Verb: p.Verb, Group: p.Group, Resource: p.Resource, Subresource: p.Subresource}
	if !p.Cluster {
		attrs.Namespace = namespace
	}
	r, err := c.AuthorizationV1().SelfSubjectAccessReviews().Create(ctx,
		&authorizationv1.SelfSubjectAccessReview{Spec: authorizationv1.SelfSubjectAccessReviewSpec{ResourceAttributes: attrs}},
		metav1.CreateOptions{})
	if err != nil {
		return false, "", fmt.Errorf("asking the API server whether verify may %s (create selfsubjectaccessreviews): %w", p.Name(namespace), err)
	}
	return r.Status.Allowed, r.Status.EvaluationError, nil
}
