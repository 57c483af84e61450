package verify

import "github.com/rollguard/rollguard/pkg/fleet"

// InputError is an error in what verify was asked to do, or in the
// cluster's state before the rollout: the run proves nothing, so the
// command exits 2, not 1.
type InputError = fleet.InputError

// RoleFile is where the permissions verify needs are written down.
const RoleFile = "deploy/rbac/rollguard-verify.yaml"

var roles = fleet.Roles{File: RoleFile, Doc: "docs/verify.md"}

// apiError explains an API error of a call (for example "create pods"):
// a denial names the permission and the role that grants it.
func apiError(err error, call, ns string) error { return roles.APIError(err, call, ns) }
