package verify

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"

	authorizationv1 "k8s.io/api/authorization/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"

	"github.com/rollguard/rollguard/pkg/fleet/fleettest"
)

// permKey names a permission with its scope, for comparing sets.
func permKey(p Permission) string { return fleettest.Key(p) }

// TestPermissionsMatchRoleFile: every rule of the two ClusterRoles is an
// entry of Permissions, with the right scope, and every entry is granted
// by a rule, in the same order; no rule is wider than its entries
// (wildcards, resource names, non-resource URLs).
func TestPermissionsMatchRoleFile(t *testing.T) {
	t.Parallel()
	fleettest.MatchRoleFile(t, "../../"+RoleFile, map[string]bool{"rollguard-verify": false, "rollguard-verify-nodes": true},
		[]string{"rollguard-verify", "rollguard-verify-nodes"}, Permissions())
}

// TestPermissionsLeastPrivilege pins verify's permissions to the calls its
// code makes (verify.go, watch.go, target.go, and the pod proxy through
// pkg/agent's Client), so that the role file and Permissions cannot widen
// together unnoticed. A new call adds its entry here, in both, and in the
// role file's comments.
func TestPermissionsLeastPrivilege(t *testing.T) {
	t.Parallel()
	want := []string{
		"get deployments.apps in namespace NS", // getWorkload, then rolloutState polls it
		"patch deployments.apps in namespace NS",
		"get statefulsets.apps in namespace NS",
		"patch statefulsets.apps in namespace NS",
		"get daemonsets.apps in namespace NS",
		"patch daemonsets.apps in namespace NS",
		"get pods in namespace NS",  // startAgents waits for each agent
		"list pods in namespace NS", // the pod watch's list, unready, Cleanup's wait
		"watch pods in namespace NS",
		"create pods in namespace NS",
		"deletecollection pods in namespace NS", // Cleanup; no single delete
		"get pods/proxy in namespace NS",        // Clock, Progress, Records
		"create pods/proxy in namespace NS",     // Start, Probe, Stop
		"get services in namespace NS",          // --service
		"list services in namespace NS",         // findService
		"list endpointslices.discovery.k8s.io in namespace NS",
		"watch endpointslices.discovery.k8s.io in namespace NS",
		"list nodes (cluster-wide)", // run.nodes, with or without --from
	}
	var got []string
	for _, p := range Permissions() {
		got = append(got, permKey(p))
	}
	if !slices.Equal(got, want) {
		t.Errorf("Permissions:\n%q\nwant\n%q", got, want)
	}
}

func TestPermissionName(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		p    Permission
		want string
	}{
		{Permission{Resource: "pods", Subresource: "proxy", Verb: "create"}, "create pods/proxy in namespace shop"},
		{Permission{Resource: "pods", Verb: "deletecollection"}, "deletecollection pods in namespace shop"},
		{Permission{Group: "apps", Resource: "deployments", Verb: "patch"}, "patch deployments.apps in namespace shop"},
		{Permission{Group: "discovery.k8s.io", Resource: "endpointslices", Verb: "watch"}, "watch endpointslices.discovery.k8s.io in namespace shop"},
		{Permission{Group: "apps", Resource: "deployments", Subresource: "scale", Verb: "get"}, "get deployments.apps/scale in namespace shop"},
		{Permission{Resource: "nodes", Verb: "list", Cluster: true}, "list nodes (cluster-wide)"},
	} {
		if got := tc.p.Name("shop"); got != tc.want {
			t.Errorf("%+v: %q, want %q", tc.p, got, tc.want)
		}
	}
}

// reviewer is a fake API server that answers SelfSubjectAccessReviews.
type reviewer struct {
	decide func(authorizationv1.ResourceAttributes) (status int, allowed bool, evaluationError string)

	mu   sync.Mutex
	seen []authorizationv1.ResourceAttributes
}

func (f *reviewer) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost || r.URL.Path != "/apis/authorization.k8s.io/v1/selfsubjectaccessreviews" {
		http.Error(w, "unexpected "+r.Method+" "+r.URL.Path, http.StatusNotFound)
		return
	}
	var review authorizationv1.SelfSubjectAccessReview
	if err := json.NewDecoder(r.Body).Decode(&review); err != nil || review.Spec.ResourceAttributes == nil {
		http.Error(w, "bad review", http.StatusBadRequest)
		return
	}
	attrs := *review.Spec.ResourceAttributes
	f.mu.Lock()
	f.seen = append(f.seen, attrs)
	f.mu.Unlock()
	status, allowed, evalErr := f.decide(attrs)
	w.Header().Set("Content-Type", "application/json")
	if status != http.StatusCreated {
		w.WriteHeader(status)
		_ = json.NewEncoder(w).Encode(metav1.Status{TypeMeta: metav1.TypeMeta{Kind: "Status", APIVersion: "v1"},
			Status: metav1.StatusFailure, Code: int32(status), Reason: metav1.StatusReasonInternalError, Message: "etcd is down"})
		return
	}
	review.Status = authorizationv1.SubjectAccessReviewStatus{Allowed: allowed, EvaluationError: evalErr}
	review.APIVersion, review.Kind = "authorization.k8s.io/v1", "SelfSubjectAccessReview"
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(review)
}

func fakeClient(t *testing.T, f *reviewer) kubernetes.Interface {
	t.Helper()
	srv := httptest.NewServer(f)
	t.Cleanup(srv.Close)
	c, err := kubernetes.NewForConfig(&rest.Config{Host: srv.URL, QPS: 1000, Burst: 1000,
		ContentConfig: rest.ContentConfig{ContentType: "application/json", AcceptContentTypes: "application/json"}})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func allow(authorizationv1.ResourceAttributes) (int, bool, string) {
	return http.StatusCreated, true, ""
}

func deny(authorizationv1.ResourceAttributes) (int, bool, string) {
	return http.StatusCreated, false, ""
}

func TestPreflight(t *testing.T) {
	t.Parallel()
	all := Permissions()
	names := func(ps []Permission) []string {
		var out []string
		for _, p := range ps {
			out = append(out, p.Name("shop"))
		}
		return out
	}
	for _, tc := range []struct {
		name    string
		decide  func(authorizationv1.ResourceAttributes) (int, bool, string)
		missing []string // nil: Preflight passes
		text    []string // in the error's text
	}{
		{name: "all allowed", decide: allow},
		{name: "none allowed", decide: deny, missing: names(all), text: []string{fmt.Sprintf("verify lacks %d permissions:\n", len(all)), "\n  create pods/proxy in namespace shop\n", "\n  list nodes (cluster-wide)\n"}},
		{name: "proxy and nodes denied", decide: func(a authorizationv1.ResourceAttributes) (int, bool, string) {
			return http.StatusCreated, !(a.Subresource == "proxy" && a.Verb == "create" || a.Resource == "nodes"), ""
		}, missing: []string{"create pods/proxy in namespace shop", "list nodes (cluster-wide)"},
			text: []string{"verify lacks 2 permissions:\n  create pods/proxy in namespace shop\n  list nodes (cluster-wide)\n"}},
		{name: "one denied", decide: func(a authorizationv1.ResourceAttributes) (int, bool, string) {
			return http.StatusCreated, a.Verb != "deletecollection", ""
		}, missing: []string{"deletecollection pods in namespace shop"}, text: []string{"verify lacks 1 permission:\n"}},
		{name: "undecided", decide: func(a authorizationv1.ResourceAttributes) (int, bool, string) {
			if a.Resource == "services" && a.Verb == "list" {
				return http.StatusCreated, false, "webhook authorizer timed out"
			}
			return http.StatusCreated, true, ""
		}, missing: []string{"list services in namespace shop"}, text: []string{"list services in namespace shop (the authorizer could not decide: webhook authorizer timed out)"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			f := &reviewer{decide: tc.decide}
			err := Preflight(context.Background(), fakeClient(t, f), "shop")
			if len(f.seen) != len(all) {
				t.Errorf("%d reviews, want one per permission (%d)", len(f.seen), len(all))
			}
			for _, a := range f.seen {
				if cluster := a.Resource == "nodes"; cluster != (a.Namespace == "") || !cluster && a.Namespace != "shop" {
					t.Errorf("%+v asked in namespace %q", a, a.Namespace)
				}
			}
			if tc.missing == nil {
				if err != nil {
					t.Fatalf("want no error, got %v", err)
				}
				return
			}
			var ie *InputError
			var pe *PermissionError
			if !errors.As(err, &ie) || !errors.As(err, &pe) {
				t.Fatalf("want an *InputError holding a *PermissionError, got %T %v", err, err)
			}
			if got := names(pe.Missing); !slices.Equal(got, tc.missing) {
				t.Errorf("missing %q, want %q", got, tc.missing)
			}
			msg := err.Error()
			for _, s := range append(tc.text, "\nbind the roles in deploy/rbac/rollguard-verify.yaml (see docs/verify.md)") {
				if !strings.Contains(msg, s) {
					t.Errorf("error %q does not say %q", msg, s)
				}
			}
			for _, line := range tc.missing {
				if !strings.Contains(msg, "\n  "+line) {
					t.Errorf("error %q does not list %q", msg, line)
				}
			}
		})
	}
}

// TestPreflightAPIError: a review the API server fails is an error naming
// the review, not a list of missing permissions.
func TestPreflightAPIError(t *testing.T) {
	t.Parallel()
	f := &reviewer{decide: func(a authorizationv1.ResourceAttributes) (int, bool, string) {
		if a.Resource == "services" && a.Verb == "get" {
			return http.StatusInternalServerError, false, ""
		}
		return http.StatusCreated, false, ""
	}}
	err := Preflight(context.Background(), fakeClient(t, f), "shop")
	var pe *PermissionError
	if err == nil || errors.As(err, &pe) || !apierrors.IsInternalError(err) {
		t.Fatalf("want the API's internal error, got %T %v", err, err)
	}
	for _, s := range []string{"get services in namespace shop", "create selfsubjectaccessreviews", "etcd is down"} {
		if !strings.Contains(err.Error(), s) {
			t.Errorf("error %q does not say %q", err, s)
		}
	}
}

func TestPreflightCancelled(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	err := Preflight(ctx, fakeClient(t, &reviewer{decide: allow}), "shop")
	if !errors.Is(err, context.Canceled) {
		t.Errorf("want context.Canceled, got %v", err)
	}
	if err := Preflight(context.Background(), fakeClient(t, &reviewer{decide: deny}), ""); err == nil || !strings.Contains(err.Error(), "no namespace") {
		t.Errorf("no namespace: %v", err)
	}
}

// TestPreflightOneKind: verifying a Deployment asks only about
// Deployments among the workloads, so a user allowed to roll Deployments
// alone passes.
func TestPreflightOneKind(t *testing.T) {
	t.Parallel()
	f := &reviewer{decide: func(a authorizationv1.ResourceAttributes) (int, bool, string) {
		return http.StatusCreated, a.Group != "apps" || a.Resource == "deployments", ""
	}}
	if err := Preflight(context.Background(), fakeClient(t, f), "shop", Deployment); err != nil {
		t.Errorf("a Deployment with Deployment permissions: %v", err)
	}
	for _, a := range f.seen {
		if a.Group == "apps" && a.Resource != "deployments" {
			t.Errorf("asked about %s", a.Resource)
		}
	}
	err := Preflight(context.Background(), fakeClient(t, f), "shop", StatefulSet)
	if err == nil || !strings.Contains(err.Error(), "patch statefulsets.apps in namespace shop") {
		t.Errorf("a StatefulSet without StatefulSet permissions: %v", err)
	}
}
