package verify

import (
	"context"

	"k8s.io/client-go/kubernetes"

	"github.com/rollguard/rollguard/pkg/fleet"
)

// Permission is one verb on one resource that verify uses. The roles in
// RoleFile grant exactly the permissions of Permissions; a test holds the
// two equal.
type Permission = fleet.Permission

// PermissionError lists the permissions the caller lacks.
type PermissionError = fleet.PermissionError

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
	return roles.Check(ctx, c, "verify", namespace, perms)
}
