package fleet

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	authorizationv1 "k8s.io/api/authorization/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/kubernetes/fake"
	"k8s.io/client-go/rest"
	k8stesting "k8s.io/client-go/testing"
)

var (
	createPods   = Permission{Resource: "pods", Verb: "create", For: "agents"}
	proxyPods    = Permission{Resource: "pods", Subresource: "proxy", Verb: "create", For: "clocks"}
	patchDeploys = Permission{Group: "apps", Resource: "deployments", Verb: "patch", For: "the rollout"}
	listNodes    = Permission{Resource: "nodes", Verb: "list", Cluster: true, For: "nodes"}
	scaleDeploys = Permission{Group: "apps", Resource: "deployments", Subresource: "scale", Verb: "update", Cluster: true}
)

func TestPermissionName(t *testing.T) {
	t.Parallel()
	tests := []struct {
		p    Permission
		want string
	}{
		{createPods, "create pods in namespace shop"},
		{proxyPods, "create pods/proxy in namespace shop"},
		{patchDeploys, "patch deployments.apps in namespace shop"},
		{listNodes, "list nodes (cluster-wide)"},
		{scaleDeploys, "update deployments.apps/scale (cluster-wide)"},
	}
	for _, tt := range tests {
		if got := tt.p.Name("shop"); got != tt.want {
			t.Errorf("Name = %q, want %q", got, tt.want)
		}
	}
}

func TestPermissionError(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		e    PermissionError
		want string
	}{
		{name: "one", e: PermissionError{Tool: "verify", Roles: testRoles, Namespace: "shop", Missing: []Permission{createPods}, Undecided: []string{""}},
			want: "verify lacks 1 permission:\n  create pods in namespace shop\nbind the roles in deploy/rbac/x.yaml (see docs/x.md)"},
		{name: "several, one undecided", e: PermissionError{Tool: "measure", Roles: testRoles, Namespace: "shop",
			Missing: []Permission{proxyPods, listNodes}, Undecided: []string{"", "webhook timed out"}},
			want: "measure lacks 2 permissions:\n  create pods/proxy in namespace shop\n" +
				"  list nodes (cluster-wide) (the authorizer could not decide: webhook timed out)\n" +
				"bind the roles in deploy/rbac/x.yaml (see docs/x.md)"},
		// Undecided may be shorter than Missing (or nil) when built by hand.
		{name: "fewer reasons than permissions", e: PermissionError{Tool: "verify", Roles: testRoles, Namespace: "ns",
			Missing: []Permission{createPods, patchDeploys}, Undecided: []string{"x"}},
			want: "verify lacks 2 permissions:\n  create pods in namespace ns (the authorizer could not decide: x)\n" +
				"  patch deployments.apps in namespace ns\nbind the roles in deploy/rbac/x.yaml (see docs/x.md)"},
		{name: "no reasons", e: PermissionError{Tool: "verify", Roles: testRoles, Namespace: "ns", Missing: []Permission{listNodes}},
			want: "verify lacks 1 permission:\n  list nodes (cluster-wide)\nbind the roles in deploy/rbac/x.yaml (see docs/x.md)"},
	}
	for _, tt := range tests {
		if got := tt.e.Error(); got != tt.want {
			t.Errorf("%s:\n got %q\nwant %q", tt.name, got, tt.want)
		}
	}
}

// decision is what the authorizer answers for one permission.
type decision struct {
	allowed bool
	why     string // its evaluation error
}

// authorizer answers SelfSubjectAccessReviews from a table keyed by the
// review's attributes, and records them; what it does not list is denied.
type authorizer struct {
	mu    sync.Mutex
	table map[authorizationv1.ResourceAttributes]decision
	asked []authorizationv1.ResourceAttributes
}

func (a *authorizer) react(action k8stesting.Action) (bool, runtime.Object, error) {
	r := action.(k8stesting.CreateAction).GetObject().(*authorizationv1.SelfSubjectAccessReview)
	attrs := *r.Spec.ResourceAttributes
	a.mu.Lock()
	defer a.mu.Unlock()
	a.asked = append(a.asked, attrs)
	d := a.table[attrs]
	out := r.DeepCopy()
	out.Status = authorizationv1.SubjectAccessReviewStatus{Allowed: d.allowed, EvaluationError: d.why}
	return true, out, nil
}

func attrs(p Permission, ns string) authorizationv1.ResourceAttributes {
	return authorizationv1.ResourceAttributes{Namespace: ns, Verb: p.Verb, Group: p.Group, Resource: p.Resource, Subresource: p.Subresource}
}

func TestCheck(t *testing.T) {
	t.Parallel()
	perms := []Permission{createPods, proxyPods, patchDeploys, listNodes}
	tests := []struct {
		name        string
		table       map[authorizationv1.ResourceAttributes]decision
		wantMissing []Permission
		wantWhy     []string
	}{
		{name: "all allowed", table: map[authorizationv1.ResourceAttributes]decision{
			attrs(createPods, "shop"): {allowed: true}, attrs(proxyPods, "shop"): {allowed: true},
			attrs(patchDeploys, "shop"): {allowed: true}, attrs(listNodes, ""): {allowed: true},
		}},
		// Listed in the order asked, each with the authorizer's reason.
		{name: "some missing", table: map[authorizationv1.ResourceAttributes]decision{
			attrs(createPods, "shop"): {allowed: true}, attrs(proxyPods, "shop"): {why: "webhook: timeout"},
			attrs(listNodes, ""): {allowed: true},
		}, wantMissing: []Permission{proxyPods, patchDeploys}, wantWhy: []string{"webhook: timeout", ""}},
		// Granted in another namespace, or cluster-wide by a namespaced
		// binding, is not granted: the review asks in the right scope.
		{name: "wrong scope", table: map[authorizationv1.ResourceAttributes]decision{
			attrs(createPods, "other"): {allowed: true}, attrs(proxyPods, ""): {allowed: true},
			attrs(patchDeploys, "shop"): {allowed: true}, attrs(listNodes, "shop"): {allowed: true},
		}, wantMissing: []Permission{createPods, proxyPods, listNodes}, wantWhy: []string{"", "", ""}},
		{name: "none", wantMissing: perms, wantWhy: []string{"", "", "", ""}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			a := &authorizer{table: tt.table}
			cs := fake.NewClientset()
			cs.PrependReactor("create", "selfsubjectaccessreviews", a.react)
			err := testRoles.Check(testCtx(t), cs, "verify", "shop", perms)
			a.mu.Lock()
			asked := a.asked
			a.mu.Unlock()
			var want []authorizationv1.ResourceAttributes
			for _, p := range perms {
				ns := "shop"
				if p.Cluster {
					ns = ""
				}
				want = append(want, attrs(p, ns))
			}
			// One review each, in any order.
			if !slices.EqualFunc(sortedAttrs(asked), sortedAttrs(want), func(a, b authorizationv1.ResourceAttributes) bool { return a == b }) {
				t.Errorf("asked %v, want %v", asked, want)
			}
			if tt.wantMissing == nil {
				if err != nil {
					t.Fatalf("Check = %v, want nil", err)
				}
				return
			}
			var ie *InputError
			var pe *PermissionError
			if !errors.As(err, &ie) || !errors.As(err, &pe) {
				t.Fatalf("Check = %v (%T), want an *InputError holding a *PermissionError", err, err)
			}
			if pe.Tool != "verify" || pe.Namespace != "shop" || pe.Roles != testRoles {
				t.Errorf("PermissionError = %+v, want verify's in shop with the roles", pe)
			}
			if !slices.Equal(pe.Missing, tt.wantMissing) || !slices.Equal(pe.Undecided, tt.wantWhy) {
				t.Errorf("missing %v %q, want %v %q", pe.Missing, pe.Undecided, tt.wantMissing, tt.wantWhy)
			}
		})
	}
}

func sortedAttrs(a []authorizationv1.ResourceAttributes) []authorizationv1.ResourceAttributes {
	return slices.SortedFunc(slices.Values(a), func(x, y authorizationv1.ResourceAttributes) int {
		return strings.Compare(x.String(), y.String())
	})
}

func TestCheckNothingToCheck(t *testing.T) {
	t.Parallel()
	cs := fake.NewClientset()
	if err := testRoles.Check(testCtx(t), cs, "verify", "shop", nil); err != nil {
		t.Errorf("Check of no permission = %v", err)
	}
	if n := len(cs.Actions()); n != 0 {
		t.Errorf("%d calls for no permission", n)
	}
}

// A review without a namespace would ask about every namespace: refused
// before asking anything.
func TestCheckNoNamespace(t *testing.T) {
	t.Parallel()
	cs := fake.NewClientset()
	err := testRoles.Check(testCtx(t), cs, "measure", "", []Permission{createPods})
	var ie *InputError
	if err == nil || errors.As(err, &ie) || !strings.Contains(err.Error(), "checking measure's permissions: no namespace given") {
		t.Errorf("Check = %v, want the no-namespace error", err)
	}
	if n := len(cs.Actions()); n != 0 {
		t.Errorf("%d calls without a namespace", n)
	}
}

// An API error is the review's, not a missing permission: returned as
// such, naming the review, even when it is a 403.
func TestCheckAPIError(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		err  error
	}{
		{name: "forbidden", err: forbidden("selfsubjectaccessreviews", "")},
		{name: "unreachable", err: errors.New("connection refused")},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			cs := fake.NewClientset()
			cs.PrependReactor("create", "selfsubjectaccessreviews", failWith(tt.err))
			err := testRoles.Check(testCtx(t), cs, "verify", "shop", []Permission{listNodes})
			var pe *PermissionError
			if !errors.Is(err, tt.err) || errors.As(err, &pe) {
				t.Fatalf("Check = %v, want the API's error", err)
			}
			want := "asking the API server whether verify may list nodes (cluster-wide) (create selfsubjectaccessreviews): "
			if !strings.Contains(err.Error(), want) {
				t.Errorf("err = %q, want it to contain %q", err, want)
			}
		})
	}
}

func TestCheckCancelled(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	cs := fake.NewClientset()
	allowAll := func(action k8stesting.Action) (bool, runtime.Object, error) {
		out := action.(k8stesting.CreateAction).GetObject().DeepCopyObject().(*authorizationv1.SelfSubjectAccessReview)
		out.Status.Allowed = true
		return true, out, nil
	}
	cs.PrependReactor("create", "selfsubjectaccessreviews", allowAll)
	// The fake ignores the context, so the answers may all be yes: a
	// cancelled check still proves nothing.
	err := testRoles.Check(ctx, cs, "verify", "shop", []Permission{createPods, listNodes})
	var ie *InputError
	if !errors.Is(err, context.Canceled) || errors.As(err, &ie) || !strings.Contains(err.Error(), "checking verify's permissions: ") {
		t.Errorf("Check = %v, want the cancellation", err)
	}
}

// reviewServer is an API server that answers SelfSubjectAccessReviews
// through answer, for the tests that need the reviews to run at once and
// see their context (the fake clientset runs one call at a time and
// ignores it).
func reviewServer(t *testing.T, answer func(ctx context.Context, a authorizationv1.ResourceAttributes) (int, bool)) kubernetes.Interface {
	t.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var rev authorizationv1.SelfSubjectAccessReview
		if r.URL.Path != "/apis/authorization.k8s.io/v1/selfsubjectaccessreviews" || json.NewDecoder(r.Body).Decode(&rev) != nil || rev.Spec.ResourceAttributes == nil {
			http.Error(w, "unexpected request", http.StatusBadRequest)
			return
		}
		code, allowed := answer(r.Context(), *rev.Spec.ResourceAttributes)
		w.Header().Set("Content-Type", "application/json")
		if code != http.StatusCreated {
			w.WriteHeader(code)
			st := apierrors.NewInternalError(errors.New("authorizer broke")).Status()
			st.Kind, st.APIVersion = "Status", "v1"
			_ = json.NewEncoder(w).Encode(st)
			return
		}
		rev.Status.Allowed = allowed
		rev.APIVersion, rev.Kind = "authorization.k8s.io/v1", "SelfSubjectAccessReview"
		w.WriteHeader(code)
		_ = json.NewEncoder(w).Encode(&rev)
	}))
	t.Cleanup(srv.Close)
	cs, err := kubernetes.NewForConfig(&rest.Config{Host: srv.URL, QPS: 1000, Burst: 1000,
		ContentConfig: rest.ContentConfig{ContentType: "application/json", AcceptContentTypes: "application/json"}})
	if err != nil {
		t.Fatal(err)
	}
	return cs
}

// Check asks in parallel, never more than reviewWorkers at once.
func TestCheckBoundsReviewsInFlight(t *testing.T) {
	t.Parallel()
	var (
		mu             sync.Mutex
		inFlight, most int
		full           bool
		release        = make(chan struct{}) // closed a while after reviewWorkers are in flight
		giveUp         = make(chan struct{}) // closed when they never are
	)
	timer := time.AfterFunc(2*time.Second, func() { close(giveUp) })
	defer timer.Stop()
	perms := make([]Permission, 3*reviewWorkers)
	for i := range perms {
		perms[i] = Permission{Resource: "r" + string(rune('a'+i)), Verb: "get"}
	}
	cs := reviewServer(t, func(ctx context.Context, _ authorizationv1.ResourceAttributes) (int, bool) {
		mu.Lock()
		inFlight++
		most = max(most, inFlight)
		if inFlight == reviewWorkers && !full {
			// Held a little longer: room for one too many to show.
			full = true
			time.AfterFunc(100*time.Millisecond, func() { close(release) })
		}
		mu.Unlock()
		select {
		case <-release:
		case <-giveUp:
		case <-ctx.Done():
		}
		mu.Lock()
		inFlight--
		mu.Unlock()
		return http.StatusCreated, true
	})
	if err := testRoles.Check(testCtx(t), cs, "verify", "shop", perms); err != nil {
		t.Fatalf("Check = %v", err)
	}
	mu.Lock()
	defer mu.Unlock()
	if most != reviewWorkers {
		t.Errorf("at most %d reviews in flight, want %d", most, reviewWorkers)
	}
}

// The first API error stops the reviews still in flight: Check does not
// wait for a slow authorizer to answer questions whose answers no longer
// matter, and reports that error, not the cancellations it caused.
func TestCheckFirstErrorCancelsTheRest(t *testing.T) {
	t.Parallel()
	var (
		mu             sync.Mutex
		slowIn, hungUp int
		allIn          = make(chan struct{})
		giveUp         = time.After(2 * time.Second)
		slow           = []Permission{{Resource: "a", Verb: "get"}, {Resource: "b", Verb: "get"}, {Resource: "c", Verb: "get"}}
	)
	cs := reviewServer(t, func(ctx context.Context, a authorizationv1.ResourceAttributes) (int, bool) {
		if a.Resource == "pods" {
			// Fails once the slow ones are asked, so that they are in flight.
			select {
			case <-allIn:
			case <-giveUp:
			}
			return http.StatusInternalServerError, false
		}
		mu.Lock()
		if slowIn++; slowIn == len(slow) {
			close(allIn)
		}
		mu.Unlock()
		select {
		case <-ctx.Done(): // the client hung up
			mu.Lock()
			hungUp++
			mu.Unlock()
		case <-time.After(5 * time.Second):
		}
		return http.StatusCreated, true
	})
	start := time.Now()
	err := testRoles.Check(testCtx(t), cs, "verify", "shop", append(slices.Clone(slow), createPods))
	if took := time.Since(start); took > 4*time.Second {
		t.Errorf("Check took %s: it waited for the slow reviews", took)
	}
	if !apierrors.IsInternalError(err) || errors.Is(err, context.Canceled) ||
		!strings.Contains(err.Error(), "whether verify may create pods in namespace shop") {
		t.Errorf("Check = %v, want the failed review's error", err)
	}
	// The server sees the hang-ups a little after the client.
	deadline := time.Now().Add(2 * time.Second)
	for {
		mu.Lock()
		n := hungUp
		mu.Unlock()
		if n == len(slow) {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d of %d slow reviews cancelled", n, len(slow))
		}
		time.Sleep(10 * time.Millisecond)
	}
}
