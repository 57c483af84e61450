package fleet

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/kubernetes/fake"
	k8stesting "k8s.io/client-go/testing"
)

// testRoles is what every error naming a permission must point to.
var testRoles = Roles{File: "deploy/rbac/x.yaml", Doc: "docs/x.md"}

// testCtx bounds a test that talks to a client: none may hang.
func testCtx(t *testing.T) context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func forbidden(resource, name string) error {
	return apierrors.NewForbidden(schema.GroupResource{Resource: resource}, name, errors.New("RBAC: access denied"))
}

// failWith makes every verb on resource answer err.
func failWith(err error) k8stesting.ReactionFunc {
	return func(k8stesting.Action) (bool, runtime.Object, error) { return true, nil, err }
}

// wantForbidden checks that err is an *InputError that still is the
// API's 403 and names the call, the role file and its page.
func wantForbidden(t *testing.T, err error, call string) {
	t.Helper()
	var ie *InputError
	if !errors.As(err, &ie) {
		t.Fatalf("err = %v (%T), want an *InputError", err, err)
	}
	if !apierrors.IsForbidden(err) {
		t.Errorf("err = %v: the 403 is lost", err)
	}
	for _, s := range []string{call, testRoles.File, testRoles.Doc} {
		if !strings.Contains(err.Error(), s) {
			t.Errorf("err = %q, want it to name %q", err, s)
		}
	}
}

func TestAPIError(t *testing.T) {
	t.Parallel()
	plain := errors.New("dial tcp 10.0.0.1:6443: connect: connection refused")
	tests := []struct {
		name      string
		err       error
		ns        string
		input     bool     // an *InputError: the command exits 2
		want      []string // in the message
		wantNot   []string
		wantIsErr error // still errors.Is the cause
	}{
		{name: "forbidden in a namespace", err: forbidden("pods", "p"), ns: "shop", input: true,
			want:    []string{"create pods in namespace shop: ", "RBAC: access denied", "bind the roles in deploy/rbac/x.yaml, see docs/x.md"},
			wantNot: []string{"reachable"}},
		{name: "forbidden cluster-wide", err: forbidden("nodes", ""), ns: "", input: true,
			want: []string{"create pods (cluster-wide): ", "deploy/rbac/x.yaml", "docs/x.md"}, wantNot: []string{"in namespace"}},
		// An answer of the API server: it is reachable, and no role helps.
		{name: "other status", err: apierrors.NewNotFound(schema.GroupResource{Resource: "pods"}, "p"), ns: "shop",
			want: []string{"create pods in namespace shop: ", "not found"}, wantNot: []string{"reachable", "x.yaml"}},
		{name: "internal status", err: apierrors.NewInternalError(errors.New("etcd down")), ns: "shop",
			want: []string{"create pods in namespace shop: ", "etcd down"}, wantNot: []string{"reachable", "x.yaml"}},
		// No answer at all: the likely cause is where the client points.
		{name: "not a status", err: plain, ns: "shop", wantIsErr: plain,
			want:    []string{"create pods in namespace shop: dial tcp", "(is the cluster reachable? check --kubeconfig and --context"},
			wantNot: []string{"x.yaml"}},
		{name: "wrapped not a status", err: fmt.Errorf("a: %w", plain), ns: "", wantIsErr: plain,
			want: []string{"create pods (cluster-wide): a: ", "reachable"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			err := testRoles.APIError(tt.err, "create pods", tt.ns)
			if err == nil {
				t.Fatal("nil error")
			}
			var ie *InputError
			if got := errors.As(err, &ie); got != tt.input {
				t.Errorf("is an *InputError = %v, want %v (%v)", got, tt.input, err)
			}
			if !errors.Is(err, tt.err) {
				t.Errorf("err = %v does not wrap the API's error", err)
			}
			if tt.wantIsErr != nil && !errors.Is(err, tt.wantIsErr) {
				t.Errorf("err = %v does not wrap %v", err, tt.wantIsErr)
			}
			msg := err.Error()
			for _, s := range tt.want {
				if !strings.Contains(msg, s) {
					t.Errorf("err = %q, want it to contain %q", msg, s)
				}
			}
			for _, s := range tt.wantNot {
				if strings.Contains(msg, s) {
					t.Errorf("err = %q, should not contain %q", msg, s)
				}
			}
		})
	}
}

func TestInputErrorUnwraps(t *testing.T) {
	t.Parallel()
	inner := errors.New("inner")
	var err error = &InputError{fmt.Errorf("outer: %w", inner)}
	if err.Error() != "outer: inner" || !errors.Is(err, inner) {
		t.Errorf("InputError %q does not show or wrap its error", err)
	}
}

// node is a node with the given Ready status; schedulable unless cordoned.
func node(name, os string, ready corev1.ConditionStatus, cordoned bool) *corev1.Node {
	n := &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: name, Labels: map[string]string{}},
		Spec: corev1.NodeSpec{Unschedulable: cordoned},
		Status: corev1.NodeStatus{Conditions: []corev1.NodeCondition{
			{Type: corev1.NodeMemoryPressure, Status: corev1.ConditionTrue}, // true, but not Ready's
			{Type: corev1.NodeReady, Status: ready},
		}}}
	if os != "" {
		n.Labels[corev1.LabelOSStable] = os
	}
	return n
}

// nodesInOrder lists the nodes in the order given: the fake's tracker
// sorts them by name, the API server promises no order.
func nodesInOrder(objects []runtime.Object) *fake.Clientset {
	cs := fake.NewClientset(objects...)
	list := &corev1.NodeList{}
	for _, o := range objects {
		list.Items = append(list.Items, *o.(*corev1.Node))
	}
	cs.PrependReactor("list", "nodes", func(k8stesting.Action) (bool, runtime.Object, error) { return true, list, nil })
	return cs
}

func TestReadyNodes(t *testing.T) {
	t.Parallel()
	// Listed out of order: the result is sorted.
	cluster := []runtime.Object{
		node("zeta", "linux", corev1.ConditionTrue, false),
		node("alpha", "", corev1.ConditionTrue, false), // no os label: taken as Linux
		node("win", "windows", corev1.ConditionTrue, false),
		node("down", "linux", corev1.ConditionFalse, false),
		node("unknown", "linux", corev1.ConditionUnknown, false),
		node("cordoned", "linux", corev1.ConditionTrue, true),
		node("mid", "linux", corev1.ConditionTrue, false),
		&corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: "new"}}, // no Ready condition yet
	}
	tests := []struct {
		name    string
		objects []runtime.Object
		named   []string
		want    []string
		wantErr []string // in the *InputError's message
	}{
		{name: "every ready linux node, sorted", objects: cluster, want: []string{"alpha", "mid", "zeta"}},
		{name: "named, as given", objects: cluster, named: []string{"zeta", "alpha"}, want: []string{"zeta", "alpha"}},
		{name: "one named", objects: cluster, named: []string{"mid"}, want: []string{"mid"}},
		{name: "named twice, once", objects: cluster, named: []string{"zeta", "alpha", "zeta"}, want: []string{"zeta", "alpha"}},
		{name: "named not ready", objects: cluster, named: []string{"alpha", "down"},
			wantErr: []string{`--from: node "down" is not a ready, schedulable Linux node (those: alpha, mid, zeta)`}},
		{name: "named cordoned", objects: cluster, named: []string{"cordoned"}, wantErr: []string{`node "cordoned"`, "(those: alpha, mid, zeta)"}},
		{name: "named windows", objects: cluster, named: []string{"win"}, wantErr: []string{`node "win"`}},
		{name: "named absent", objects: cluster, named: []string{"ghost"}, wantErr: []string{`node "ghost"`}},
		{name: "no node", wantErr: []string{"no Linux node is ready and schedulable"}},
		{name: "none ready", objects: []runtime.Object{node("down", "linux", corev1.ConditionFalse, false), node("c", "", corev1.ConditionTrue, true)},
			wantErr: []string{"no Linux node is ready and schedulable"}},
		{name: "named, none ready", objects: []runtime.Object{node("down", "linux", corev1.ConditionFalse, false)}, named: []string{"down"},
			wantErr: []string{`node "down"`, "(those: )"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got, err := testRoles.ReadyNodes(testCtx(t), nodesInOrder(tt.objects), tt.named)
			if tt.wantErr != nil {
				var ie *InputError
				if !errors.As(err, &ie) {
					t.Fatalf("ReadyNodes = %v, %v; want an *InputError", got, err)
				}
				if got != nil {
					t.Errorf("nodes = %v along with the error", got)
				}
				for _, s := range tt.wantErr {
					if !strings.Contains(err.Error(), s) {
						t.Errorf("err = %q, want it to contain %q", err, s)
					}
				}
				return
			}
			if err != nil || !slices.Equal(got, tt.want) {
				t.Errorf("ReadyNodes = %v, %v; want %v", got, err, tt.want)
			}
		})
	}
}

func TestReadyNodesAPIError(t *testing.T) {
	t.Parallel()
	t.Run("forbidden", func(t *testing.T) {
		t.Parallel()
		cs := fake.NewClientset(node("a", "linux", corev1.ConditionTrue, false))
		cs.PrependReactor("list", "nodes", failWith(forbidden("nodes", "")))
		_, err := testRoles.ReadyNodes(testCtx(t), cs, nil)
		wantForbidden(t, err, "list nodes (cluster-wide)")
	})
	t.Run("unreachable", func(t *testing.T) {
		t.Parallel()
		cs := fake.NewClientset(node("a", "linux", corev1.ConditionTrue, false))
		cause := errors.New("connection refused")
		cs.PrependReactor("list", "nodes", failWith(cause))
		_, err := testRoles.ReadyNodes(testCtx(t), cs, []string{"a"})
		var ie *InputError
		if errors.As(err, &ie) || !errors.Is(err, cause) || !strings.Contains(err.Error(), "list nodes (cluster-wide): connection refused (is the cluster reachable?") {
			t.Errorf("err = %v, want the unreachable API's error, not an *InputError", err)
		}
	})
}

func TestPodReady(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name  string
		conds []corev1.PodCondition
		want  bool
	}{
		{name: "no conditions"},
		{name: "ready", conds: []corev1.PodCondition{{Type: corev1.PodScheduled, Status: corev1.ConditionTrue}, {Type: corev1.PodReady, Status: corev1.ConditionTrue}}, want: true},
		{name: "not ready", conds: []corev1.PodCondition{{Type: corev1.PodReady, Status: corev1.ConditionFalse}}},
		{name: "unknown", conds: []corev1.PodCondition{{Type: corev1.PodReady, Status: corev1.ConditionUnknown}}},
		// Another condition true is not readiness.
		{name: "only others true", conds: []corev1.PodCondition{{Type: corev1.ContainersReady, Status: corev1.ConditionTrue}, {Type: corev1.PodScheduled, Status: corev1.ConditionTrue}}},
	}
	for _, tt := range tests {
		p := &corev1.Pod{Status: corev1.PodStatus{Conditions: tt.conds}}
		if got := PodReady(p); got != tt.want {
			t.Errorf("%s: PodReady = %v, want %v", tt.name, got, tt.want)
		}
	}
}

func waiting(reason, msg string) corev1.ContainerStatus {
	return corev1.ContainerStatus{Name: "agent", State: corev1.ContainerState{Waiting: &corev1.ContainerStateWaiting{Reason: reason, Message: msg}}}
}

func TestPodStuck(t *testing.T) {
	t.Parallel()
	running := corev1.ContainerStatus{Name: "agent", State: corev1.ContainerState{Running: &corev1.ContainerStateRunning{}}}
	unschedulable := corev1.PodCondition{Type: corev1.PodScheduled, Status: corev1.ConditionFalse, Reason: corev1.PodReasonUnschedulable,
		Message: "0/3 nodes are available: 3 Insufficient cpu."}
	tests := []struct {
		name   string
		status corev1.PodStatus
		want   string
	}{
		{name: "pending, nothing yet", status: corev1.PodStatus{Phase: corev1.PodPending}},
		{name: "running", status: corev1.PodStatus{Phase: corev1.PodRunning, ContainerStatuses: []corev1.ContainerStatus{running}}},
		{name: "failed", status: corev1.PodStatus{Phase: corev1.PodFailed}, want: "it ended (Failed)"},
		{name: "succeeded", status: corev1.PodStatus{Phase: corev1.PodSucceeded}, want: "it ended (Succeeded)"},
		// The phase says it first, before any container's state.
		{name: "failed with a waiting container", status: corev1.PodStatus{Phase: corev1.PodFailed,
			ContainerStatuses: []corev1.ContainerStatus{waiting("ErrImagePull", "x")}}, want: "it ended (Failed)"},
		{name: "ErrImagePull", status: corev1.PodStatus{Phase: corev1.PodPending,
			ContainerStatuses: []corev1.ContainerStatus{waiting("ErrImagePull", "not found")}}, want: "ErrImagePull: not found"},
		{name: "ImagePullBackOff", status: corev1.PodStatus{ContainerStatuses: []corev1.ContainerStatus{waiting("ImagePullBackOff", "Back-off pulling image")}},
			want: "ImagePullBackOff: Back-off pulling image"},
		{name: "ErrImageNeverPull", status: corev1.PodStatus{ContainerStatuses: []corev1.ContainerStatus{waiting("ErrImageNeverPull", "never")}},
			want: "ErrImageNeverPull: never"},
		{name: "InvalidImageName", status: corev1.PodStatus{ContainerStatuses: []corev1.ContainerStatus{waiting("InvalidImageName", "bad")}},
			want: "InvalidImageName: bad"},
		{name: "CrashLoopBackOff", status: corev1.PodStatus{Phase: corev1.PodRunning, ContainerStatuses: []corev1.ContainerStatus{waiting("CrashLoopBackOff", "back-off 10s")}},
			want: "CrashLoopBackOff: back-off 10s"},
		{name: "CreateContainerError", status: corev1.PodStatus{ContainerStatuses: []corev1.ContainerStatus{waiting("CreateContainerError", "oops")}},
			want: "CreateContainerError: oops"},
		{name: "CreateContainerConfigError", status: corev1.PodStatus{ContainerStatuses: []corev1.ContainerStatus{waiting("CreateContainerConfigError", "no secret")}},
			want: "CreateContainerConfigError: no secret"},
		// Waiting the usual way is not being stuck.
		{name: "ContainerCreating", status: corev1.PodStatus{Phase: corev1.PodPending, ContainerStatuses: []corev1.ContainerStatus{waiting("ContainerCreating", "")}}},
		{name: "PodInitializing", status: corev1.PodStatus{ContainerStatuses: []corev1.ContainerStatus{waiting("PodInitializing", "")}}},
		{name: "terminated", status: corev1.PodStatus{Phase: corev1.PodRunning, ContainerStatuses: []corev1.ContainerStatus{
			{Name: "agent", State: corev1.ContainerState{Terminated: &corev1.ContainerStateTerminated{Reason: "Error", ExitCode: 2}}}}},
			want: "its container exited (Error, code 2)"},
		// A later container's trouble is found past a healthy one.
		{name: "second container", status: corev1.PodStatus{ContainerStatuses: []corev1.ContainerStatus{running, waiting("ImagePullBackOff", "b")}},
			want: "ImagePullBackOff: b"},
		{name: "unschedulable", status: corev1.PodStatus{Phase: corev1.PodPending, Conditions: []corev1.PodCondition{unschedulable}},
			want: "unschedulable: 0/3 nodes are available: 3 Insufficient cpu."},
		{name: "unschedulable after another condition", status: corev1.PodStatus{Conditions: []corev1.PodCondition{
			{Type: corev1.PodReady, Status: corev1.ConditionFalse, Reason: corev1.PodReasonUnschedulable}, unschedulable}},
			want: "unschedulable: 0/3 nodes are available: 3 Insufficient cpu."},
		// A container's reason comes before the scheduler's.
		{name: "container before scheduler", status: corev1.PodStatus{Conditions: []corev1.PodCondition{unschedulable},
			ContainerStatuses: []corev1.ContainerStatus{waiting("ErrImagePull", "x")}}, want: "ErrImagePull: x"},
		{name: "not scheduled for another reason", status: corev1.PodStatus{Phase: corev1.PodPending, Conditions: []corev1.PodCondition{
			{Type: corev1.PodScheduled, Status: corev1.ConditionFalse, Reason: corev1.PodReasonSchedulingGated, Message: "gated"}}}},
		{name: "scheduled", status: corev1.PodStatus{Conditions: []corev1.PodCondition{
			{Type: corev1.PodScheduled, Status: corev1.ConditionTrue, Reason: corev1.PodReasonUnschedulable, Message: "stale"}}}},
		// Only PodScheduled carries the scheduler's verdict.
		{name: "unschedulable reason on another condition", status: corev1.PodStatus{Conditions: []corev1.PodCondition{
			{Type: corev1.PodReady, Status: corev1.ConditionFalse, Reason: corev1.PodReasonUnschedulable, Message: "no"}}}},
	}
	for _, tt := range tests {
		got := PodStuck(&corev1.Pod{Status: tt.status})
		if got != tt.want {
			t.Errorf("%s: PodStuck = %q, want %q", tt.name, got, tt.want)
		}
	}
}
