package verify

import (
	"errors"
	"fmt"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
)

// InputError is an error in what verify was asked to do, or in the
// cluster's state before the rollout: the run proves nothing, so the
// command exits 2, not 1.
type InputError struct{ Err error }

func (e *InputError) Error() string { return e.Err.Error() }
func (e *InputError) Unwrap() error { return e.Err }

// RoleFile is where the permissions verify needs are written down.
const RoleFile = "deploy/rbac/rollguard-verify.yaml"

// apiError explains an API error of a call (for example "create pods"):
// a denial names the permission and the role that grants it.
func apiError(err error, call, ns string) error {
	where := "in namespace " + ns
	if ns == "" {
		where = "(cluster-wide)"
	}
	if apierrors.IsForbidden(err) {
		// Not only RBAC: admission (PodSecurity, a quota, a webhook)
		// answers 403 too, and its message says which.
		return &InputError{fmt.Errorf("%s %s: %w (if it is a permission: bind the roles in %s, see docs/verify.md)", call, where, err, RoleFile)}
	}
	var se *apierrors.StatusError
	if errors.As(err, &se) {
		return fmt.Errorf("%s %s: %w", call, where, err)
	}
	return fmt.Errorf("%s %s: %w (is the cluster reachable? check --kubeconfig and --context)", call, where, err)
}
