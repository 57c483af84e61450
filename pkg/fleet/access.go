package fleet

import (
	"context"
	"fmt"
	"strings"
	"sync"

	authorizationv1 "k8s.io/api/authorization/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
)

// Permission is one verb on one resource that a command uses.
type Permission struct {
	Group       string // API group; "" is the core group
	Resource    string // plural, as in an RBAC rule
	Subresource string // "proxy" for pods/proxy; empty for the resource itself
	Verb        string
	// Cluster is set for a cluster-scoped resource (nodes, namespaces),
	// granted by a ClusterRoleBinding; the others are asked in the
	// command's namespace and granted by a RoleBinding there.
	Cluster bool
	// For is the step that uses it, for people.
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

// PermissionError lists the permissions the API server says the caller
// lacks. Check returns it inside an *InputError: without them the run
// would stop half-way, having proven nothing.
type PermissionError struct {
	Tool      string // "verify", "measure"
	Roles     Roles
	Namespace string
	Missing   []Permission
	// Undecided holds, per missing permission (same index), why the
	// authorizer could not decide, when it says so; usually empty.
	Undecided []string
}

func (e *PermissionError) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s lacks %d permission", e.Tool, len(e.Missing))
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
	fmt.Fprintf(&b, "bind the roles in %s (see %s)", e.Roles.File, e.Roles.Doc)
	return b.String()
}

// reviewWorkers bounds the access reviews in flight.
const reviewWorkers = 8

// Check asks the API server, with a SelfSubjectAccessReview per
// permission, whether the caller holds each one in namespace (or
// cluster-wide), before the command changes anything. When some are
// missing it returns an *InputError holding a *PermissionError that lists
// every one, as kubectl names them. An error of the API itself is
// returned as such, naming the review that failed.
func (r Roles) Check(ctx context.Context, c kubernetes.Interface, tool, namespace string, perms []Permission) error {
	if namespace == "" {
		// A review without a namespace asks about every namespace.
		return fmt.Errorf("checking %s's permissions: no namespace given", tool)
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
	for range min(reviewWorkers, len(perms)) {
		wg.Go(func() {
			for i := range next {
				allowed, why, err := review(ctx, c, tool, perms[i], namespace)
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
		return fmt.Errorf("checking %s's permissions: %w", tool, err)
	}
	pe := &PermissionError{Tool: tool, Roles: r, Namespace: namespace}
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
func review(ctx context.Context, c kubernetes.Interface, tool string, p Permission, namespace string) (allowed bool, why string, err error) {
	attrs := &authorizationv1.ResourceAttributes{Verb: p.Verb, Group: p.Group, Resource: p.Resource, Subresource: p.Subresource}
	if !p.Cluster {
		attrs.Namespace = namespace
	}
	r, err := c.AuthorizationV1().SelfSubjectAccessReviews().Create(ctx,
		&authorizationv1.SelfSubjectAccessReview{Spec: authorizationv1.SelfSubjectAccessReviewSpec{ResourceAttributes: attrs}},
		metav1.CreateOptions{})
	if err != nil {
		return false, "", fmt.Errorf("asking the API server whether %s may %s (create selfsubjectaccessreviews): %w", tool, p.Name(namespace), err)
	}
	return r.Status.Allowed, r.Status.EvaluationError, nil
}
