package measure

import (
	"context"

	"k8s.io/client-go/kubernetes"

	"github.com/rollguard/rollguard/pkg/fleet"
)

// InputError is an error in what measure was asked to do, or in the
// cluster's state: the run measured nothing, so the command exits 2.
type InputError = fleet.InputError

// RoleFile is where the permissions measure needs are written down.
const RoleFile = "deploy/rbac/rollguard-measure.yaml"

var roles = fleet.Roles{File: RoleFile, Doc: "docs/measure.md"}

// Permissions lists what measure needs, namespaced ones first, in the
// order of RoleFile. Each entry is a call the code makes.
func Permissions() []fleet.Permission {
	return []fleet.Permission{
		{Group: "apps", Resource: "deployments", Verb: "create", For: "create the canary Deployment"},
		{Group: "apps", Resource: "deployments", Verb: "get", For: "read the canary Deployment's ReplicaFailure condition when its pods do not come"},
		{Group: "apps", Resource: "deployments", Verb: "list", For: "wait until the removed canary Deployment is gone (with --keep-namespace)"},
		{Group: "apps", Resource: "deployments", Verb: "deletecollection", For: "remove the canary Deployment, by label, when measure ends (with --keep-namespace)"},
		{Resource: "pods", Verb: "list", For: "find the ready canaries and the probers, and wait until the removed ones are gone"},
		{Resource: "pods", Verb: "create", For: "start one prober per node"},
		{Resource: "pods", Verb: "delete", For: "delete one canary at a time: each deletion is a sample"},
		{Resource: "pods", Verb: "deletecollection", For: "remove the probers, by label, when measure ends (with --keep-namespace)"},
		{Resource: "pods", Subresource: "proxy", Verb: "get", For: "read the canaries' records and the probers' clocks and counts through the API server"},
		{Resource: "pods", Subresource: "proxy", Verb: "create", For: "start and stop the probers and release a deleted canary's preStop hold (POSTs)"},
		{Resource: "services", Verb: "create", For: "create the canaries' Service"},
		{Resource: "services", Verb: "list", For: "find the run's Service to remove it (with --keep-namespace)"},
		{Resource: "services", Verb: "delete", For: "remove the canaries' Service (with --keep-namespace)"},
		{Resource: "limitranges", Verb: "list", For: "name the LimitRanges of the namespace when they reject measure's pods"},
		{Resource: "namespaces", Verb: "get", Cluster: true, For: "check that the namespace is measure's own (or exists, with --keep-namespace)"},
		{Resource: "namespaces", Verb: "create", Cluster: true, For: "create the run's own namespace"},
		{Resource: "namespaces", Verb: "delete", Cluster: true, For: "delete the run's own namespace at the end"},
		{Resource: "nodes", Verb: "list", Cluster: true, For: "place one prober per ready, schedulable node (--from all-nodes), or check the nodes named with --from"},
	}
}

// Preflight asks the API server whether the caller holds each permission
// of Permissions, before measure creates anything. With keepNamespace the
// namespace is not created or deleted, so those two are not asked.
func Preflight(ctx context.Context, c kubernetes.Interface, namespace string, keepNamespace bool) error {
	perms := Permissions()
	if keepNamespace {
		kept := perms[:0]
		for _, p := range perms {
			if p.Resource != "namespaces" || p.Verb == "get" {
				kept = append(kept, p)
			}
		}
		perms = kept
	}
	return roles.Check(ctx, c, "measure", namespace, perms)
}
