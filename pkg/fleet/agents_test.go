package fleet

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
	"sync/atomic"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/kubernetes/fake"
	"k8s.io/client-go/rest"
	k8stesting "k8s.io/client-go/testing"
)

func TestRestricted(t *testing.T) {
	t.Parallel()
	pod, c := Restricted()
	// What PodSecurity's restricted level checks.
	if pod.RunAsNonRoot == nil || !*pod.RunAsNonRoot {
		t.Error("pod: runAsNonRoot is not true")
	}
	if pod.RunAsUser == nil || *pod.RunAsUser == 0 {
		t.Errorf("pod: runAsUser = %v, want a non-root uid", pod.RunAsUser)
	}
	if pod.SeccompProfile == nil || pod.SeccompProfile.Type != corev1.SeccompProfileTypeRuntimeDefault {
		t.Errorf("pod: seccompProfile = %v, want RuntimeDefault", pod.SeccompProfile)
	}
	if c.AllowPrivilegeEscalation == nil || *c.AllowPrivilegeEscalation {
		t.Error("container: allowPrivilegeEscalation is not false")
	}
	if c.ReadOnlyRootFilesystem == nil || !*c.ReadOnlyRootFilesystem {
		t.Error("container: readOnlyRootFilesystem is not true")
	}
	if c.Capabilities == nil || !slices.Equal(c.Capabilities.Drop, []corev1.Capability{"ALL"}) || len(c.Capabilities.Add) != 0 {
		t.Errorf("container: capabilities = %v, want ALL dropped, none added", c.Capabilities)
	}
	if c.Privileged != nil && *c.Privileged {
		t.Error("container: privileged")
	}
	// Each call is its own: a caller that changes one (a privileged agent)
	// changes no other pod.
	pod2, c2 := Restricted()
	*pod2.RunAsNonRoot, *pod2.RunAsUser = false, 0
	*c2.AllowPrivilegeEscalation, *c2.ReadOnlyRootFilesystem = true, false
	c2.Capabilities.Drop[0] = "NET_RAW"
	if !*pod.RunAsNonRoot || *pod.RunAsUser == 0 || *c.AllowPrivilegeEscalation || !*c.ReadOnlyRootFilesystem || c.Capabilities.Drop[0] != "ALL" {
		t.Error("two calls share their security contexts")
	}
	if pod3, c3 := Restricted(); !*pod3.RunAsNonRoot || *c3.AllowPrivilegeEscalation || c3.Capabilities.Drop[0] != "ALL" {
		t.Error("a change to one call's security context shows in the next")
	}
}

func TestGuaranteed(t *testing.T) {
	t.Parallel()
	tests := []struct{ cpu, mem string }{{"250m", "256Mi"}, {"1", "1Gi"}, {"100m", "64Mi"}}
	for _, tt := range tests {
		r := Guaranteed(tt.cpu, tt.mem)
		want := corev1.ResourceList{corev1.ResourceCPU: resource.MustParse(tt.cpu), corev1.ResourceMemory: resource.MustParse(tt.mem)}
		for _, l := range []corev1.ResourceList{r.Requests, r.Limits} {
			if len(l) != 2 || l.Cpu().Cmp(want[corev1.ResourceCPU]) != 0 || l.Memory().Cmp(want[corev1.ResourceMemory]) != 0 {
				t.Errorf("Guaranteed(%s, %s) = requests %v limits %v, want both %v", tt.cpu, tt.mem, r.Requests, r.Limits, want)
			}
		}
		// Requests and limits are two lists: raising one does not raise
		// the other.
		r.Limits[corev1.ResourceCPU] = resource.MustParse("8")
		if r.Requests.Cpu().Cmp(want[corev1.ResourceCPU]) != 0 {
			t.Errorf("Guaranteed(%s, %s): requests and limits are one map", tt.cpu, tt.mem)
		}
	}
}

func TestGuaranteedPanicsOnBadQuantity(t *testing.T) {
	t.Parallel()
	defer func() {
		if recover() == nil {
			t.Error("Guaranteed of a malformed quantity did not panic")
		}
	}()
	Guaranteed("lots", "256Mi")
}

func TestAgentPod(t *testing.T) {
	t.Parallel()
	for _, privileged := range []bool{false, true} {
		t.Run(fmt.Sprintf("privileged=%v", privileged), func(t *testing.T) {
			t.Parallel()
			labels := map[string]string{"run": "abc"}
			p := AgentPod(AgentSpec{Name: "agent-0", Namespace: "shop", Labels: labels, Node: "node-a",
				Image: "ghcr.io/rollguard/rollguard:v1", Life: 7*time.Minute + 30*time.Second, Privileged: privileged})
			if p.Name != "agent-0" || p.Namespace != "shop" || p.Labels["run"] != "abc" || len(p.Labels) != 1 {
				t.Errorf("meta = %s/%s %v", p.Namespace, p.Name, p.Labels)
			}
			s := p.Spec
			// Pinned: no scheduler, so one agent per node, even a tainted one.
			if s.NodeName != "node-a" {
				t.Errorf("nodeName = %q, want node-a", s.NodeName)
			}
			if len(s.Tolerations) != 1 || s.Tolerations[0].Operator != corev1.TolerationOpExists || s.Tolerations[0].Key != "" || s.Tolerations[0].Effect != "" {
				t.Errorf("tolerations = %v, want one that tolerates every taint", s.Tolerations)
			}
			// Bounded in time even if the command is killed.
			if s.ActiveDeadlineSeconds == nil || *s.ActiveDeadlineSeconds != 450 {
				t.Errorf("activeDeadlineSeconds = %v, want 450", s.ActiveDeadlineSeconds)
			}
			if s.RestartPolicy != corev1.RestartPolicyNever {
				t.Errorf("restartPolicy = %s, want Never", s.RestartPolicy)
			}
			if s.TerminationGracePeriodSeconds == nil || *s.TerminationGracePeriodSeconds != 5 {
				t.Errorf("terminationGracePeriodSeconds = %v, want 5", s.TerminationGracePeriodSeconds)
			}
			if s.AutomountServiceAccountToken == nil || *s.AutomountServiceAccountToken {
				t.Error("the service account token is mounted: the agent needs no API access")
			}
			if len(s.Containers) != 1 || len(s.InitContainers) != 0 {
				t.Fatalf("%d containers, %d init containers; want one agent", len(s.Containers), len(s.InitContainers))
			}
			c := s.Containers[0]
			if c.Name != "agent" || c.Image != "ghcr.io/rollguard/rollguard:v1" || c.ImagePullPolicy != corev1.PullIfNotPresent {
				t.Errorf("container %s image %s pull %s", c.Name, c.Image, c.ImagePullPolicy)
			}
			wantArgs := []string{"agent", "--listen", fmt.Sprintf(":%d", AgentPort), "--max-run", "7m30s"}
			if !slices.Equal(c.Args, wantArgs) {
				t.Errorf("args = %q, want %q", c.Args, wantArgs)
			}
			if len(c.Ports) != 1 || c.Ports[0].ContainerPort != AgentPort {
				t.Errorf("ports = %v, want %d", c.Ports, AgentPort)
			}
			// Ready when the agent answers: Start waits for it.
			rp := c.ReadinessProbe
			if rp == nil || rp.HTTPGet == nil || rp.HTTPGet.Path != "/healthz" || rp.HTTPGet.Port.IntValue() != AgentPort {
				t.Errorf("readinessProbe = %v, want GET /healthz on %d", rp, AgentPort)
			}
			r := c.Resources
			if len(r.Requests) != 2 || r.Requests.Cpu().Cmp(*r.Limits.Cpu()) != 0 || r.Requests.Memory().Cmp(*r.Limits.Memory()) != 0 {
				t.Errorf("resources = %v: not Guaranteed", r)
			}
			psc, sc := s.SecurityContext, c.SecurityContext
			if psc == nil || sc == nil {
				t.Fatal("no security context")
			}
			if *sc.AllowPrivilegeEscalation || !*sc.ReadOnlyRootFilesystem || !slices.Equal(sc.Capabilities.Drop, []corev1.Capability{"ALL"}) ||
				psc.SeccompProfile == nil || psc.SeccompProfile.Type != corev1.SeccompProfileTypeRuntimeDefault {
				t.Errorf("security contexts %v %v are not restricted's", psc, sc)
			}
			if !privileged {
				if s.HostNetwork || !*psc.RunAsNonRoot || *psc.RunAsUser == 0 || len(sc.Capabilities.Add) != 0 {
					t.Errorf("an unprivileged agent has hostNetwork %v, runAsNonRoot %v, uid %d, capabilities %v",
						s.HostNetwork, *psc.RunAsNonRoot, *psc.RunAsUser, sc.Capabilities.Add)
				}
				return
			}
			// Root on the node's network with NET_ADMIN, and that one
			// capability only: still no escalation, read-only root.
			if !s.HostNetwork || s.DNSPolicy != corev1.DNSClusterFirstWithHostNet {
				t.Errorf("hostNetwork %v dnsPolicy %s, want the node's network with cluster DNS", s.HostNetwork, s.DNSPolicy)
			}
			if *psc.RunAsNonRoot || *psc.RunAsUser != 0 {
				t.Errorf("runAsNonRoot %v uid %d, want root", *psc.RunAsNonRoot, *psc.RunAsUser)
			}
			if !slices.Equal(sc.Capabilities.Add, []corev1.Capability{"NET_ADMIN"}) {
				t.Errorf("capabilities added %v, want NET_ADMIN only", sc.Capabilities.Add)
			}
			if sc.Privileged != nil && *sc.Privileged {
				t.Error("privileged container: NET_ADMIN is all it needs")
			}
		})
	}
}

// A privileged agent changes its own security context only.
func TestAgentPodPrivilegedSharesNothing(t *testing.T) {
	t.Parallel()
	priv := AgentPod(AgentSpec{Name: "p", Node: "n", Life: time.Minute, Privileged: true})
	plain := AgentPod(AgentSpec{Name: "q", Node: "n", Life: time.Minute})
	if !*plain.Spec.SecurityContext.RunAsNonRoot || *plain.Spec.SecurityContext.RunAsUser == 0 || len(plain.Spec.Containers[0].SecurityContext.Capabilities.Add) != 0 {
		t.Error("an unprivileged pod built after a privileged one runs as root or with NET_ADMIN")
	}
	if *priv.Spec.SecurityContext.RunAsUser != 0 {
		t.Error("the privileged pod lost its root")
	}
}

func TestAgentPodDeadline(t *testing.T) {
	t.Parallel()
	tests := []struct {
		life     time.Duration
		deadline int64
		maxRun   string
	}{
		{time.Minute, 60, "1m0s"},
		{2 * time.Hour, 7200, "2h0m0s"},
		{90*time.Second + 500*time.Millisecond, 90, "1m30.5s"}, // whole seconds, down
	}
	for _, tt := range tests {
		p := AgentPod(AgentSpec{Name: "a", Life: tt.life})
		if got := *p.Spec.ActiveDeadlineSeconds; got != tt.deadline {
			t.Errorf("Life %s: activeDeadlineSeconds = %d, want %d", tt.life, got, tt.deadline)
		}
		if args := p.Spec.Containers[0].Args; args[len(args)-1] != tt.maxRun {
			t.Errorf("Life %s: args %q, want --max-run %s", tt.life, args, tt.maxRun)
		}
	}
}

// agentServer is the API server's pod proxy to the agents: it answers
// /clock with its own time shifted by offset, or fails for the pods in
// fail, and records the paths asked.
type agentServer struct {
	offset time.Duration
	fail   map[string]bool // pod names
	mu     sync.Mutex
	paths  []string
}

func (a *agentServer) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	a.mu.Lock()
	a.paths = append(a.paths, r.URL.Path)
	a.mu.Unlock()
	pod, ok := strings.CutPrefix(r.URL.Path, "/api/v1/namespaces/shop/pods/")
	pod, ok2 := strings.CutSuffix(pod, fmt.Sprintf(":%d/proxy/clock", AgentPort))
	if !ok || !ok2 || r.Method != http.MethodGet {
		http.Error(w, "unexpected "+r.Method+" "+r.URL.Path, http.StatusNotFound)
		return
	}
	if a.fail[pod] {
		http.Error(w, "error trying to reach service: dial tcp: i/o timeout", http.StatusServiceUnavailable)
		return
	}
	_ = json.NewEncoder(w).Encode(map[string]int64{"now": time.Now().Add(a.offset).UnixNano()})
}

func (a *agentServer) asked() []string {
	a.mu.Lock()
	defer a.mu.Unlock()
	return slices.Clone(a.paths)
}

// agentPods are the pods for nodes, labelled run=test, each with the status
// status gives it (the fake keeps a created pod's status).
func agentPods(nodes []string, status func(node string) corev1.PodStatus) []*corev1.Pod {
	pods := make([]*corev1.Pod, len(nodes))
	for i, n := range nodes {
		pods[i] = AgentPod(AgentSpec{Name: fmt.Sprintf("agent-%d", i), Namespace: "shop", Labels: map[string]string{"run": "test"},
			Node: n, Image: "img:1", Life: time.Minute})
		pods[i].Status = status(n)
	}
	return pods
}

var (
	readyStatus   = corev1.PodStatus{Phase: corev1.PodRunning, Conditions: []corev1.PodCondition{{Type: corev1.PodReady, Status: corev1.ConditionTrue}}}
	pendingStatus = corev1.PodStatus{Phase: corev1.PodPending}
	pullingStatus = corev1.PodStatus{Phase: corev1.PodPending, ContainerStatuses: []corev1.ContainerStatus{waiting("ImagePullBackOff", "Back-off pulling image")}}
)

func starter(t *testing.T, cs *fake.Clientset, a *agentServer) *Starter {
	t.Helper()
	srv := httptest.NewServer(a)
	t.Cleanup(srv.Close)
	return &Starter{Roles: testRoles, CS: cs, Config: &rest.Config{Host: srv.URL}, HTTP: srv.Client(),
		Namespace: "shop", Selector: "run=test", Timeout: time.Minute, Image: "img:1"}
}

func agentNodes(agents []*Agent) (nodes []string) {
	for i, a := range agents {
		nodes = append(nodes, fmt.Sprintf("%d:%s:%s", a.Index, a.Node, a.Pod))
		if a.Index != i {
			nodes[i] += "(index out of place)"
		}
	}
	return nodes
}

func TestStart(t *testing.T) {
	t.Parallel()
	cs := fake.NewClientset()
	a := &agentServer{offset: time.Hour}
	st := starter(t, cs, a)
	var progress []string
	st.Progress = func(format string, args ...any) { progress = append(progress, fmt.Sprintf(format, args...)) }
	agents, warnings, err := st.Start(testCtx(t), agentPods([]string{"n1", "n2"}, func(string) corev1.PodStatus { return readyStatus }))
	if err != nil || len(warnings) != 0 {
		t.Fatalf("Start = %v, %v", warnings, err)
	}
	if got, want := agentNodes(agents), []string{"0:n1:agent-0", "1:n2:agent-1"}; !slices.Equal(got, want) {
		t.Errorf("agents %v, want %v", got, want)
	}
	for _, ag := range agents {
		// Its clock, read through the pod proxy, is the agent's.
		if d := ag.Offset - time.Hour; d < -time.Second || d > time.Second || ag.Bound < 0 || ag.Bound > time.Second {
			t.Errorf("agent %s: offset %s ± %s, want 1h", ag.Pod, ag.Offset, ag.Bound)
		}
		if want := st.Config.Host + "/api/v1/namespaces/shop/pods/" + ag.Pod + ":8642/proxy"; ag.Client.Base != want || ag.Client.Name != ag.Pod {
			t.Errorf("client %+v, want base %s", ag.Client, want)
		}
	}
	if n := len(a.asked()); n == 0 {
		t.Error("no clock read")
	}
	// The pods made are the ones given.
	l, err := cs.CoreV1().Pods("shop").List(testCtx(t), metav1.ListOptions{})
	if err != nil || len(l.Items) != 2 || l.Items[0].Spec.NodeName != "n1" || l.Items[1].Spec.NodeName != "n2" {
		t.Errorf("pods in shop: %v, %v", l, err)
	}
	if want := []string{"started 2 agents (n1, n2); waiting for them to be ready"}; !slices.Equal(progress, want) {
		t.Errorf("progress %q, want %q", progress, want)
	}
}

// Start polls until the agents are ready, and only ours count: a pod of
// the same labels that Start did not make is not waited on or blamed.
func TestStartWaitsForReady(t *testing.T) {
	t.Parallel()
	stranger := agentPods([]string{"nx"}, func(string) corev1.PodStatus { return pullingStatus })[0]
	stranger.Name = "stranger"
	cs := fake.NewClientset(stranger)
	var lists atomic.Int32
	cs.PrependReactor("list", "pods", func(k8stesting.Action) (bool, runtime.Object, error) {
		if lists.Add(1) == 2 {
			// Ready from the second look on.
			for _, name := range []string{"agent-0", "agent-1"} {
				p, err := cs.Tracker().Get(corev1.SchemeGroupVersion.WithResource("pods"), "shop", name)
				if err != nil {
					return true, nil, err
				}
				pod := p.(*corev1.Pod)
				pod.Status = readyStatus
				if err := cs.Tracker().Update(corev1.SchemeGroupVersion.WithResource("pods"), pod, "shop"); err != nil {
					return true, nil, err
				}
			}
		}
		return false, nil, nil
	})
	st := starter(t, cs, &agentServer{})
	agents, warnings, err := st.Start(testCtx(t), agentPods([]string{"n1", "n2"}, func(string) corev1.PodStatus { return pendingStatus }))
	if err != nil || len(warnings) != 0 || len(agents) != 2 {
		t.Fatalf("Start = %v, %v, %v", agentNodes(agents), warnings, err)
	}
	if n := lists.Load(); n != 2 {
		t.Errorf("%d lists, want 2", n)
	}
	for _, act := range cs.Actions() {
		if l, ok := act.(k8stesting.ListAction); ok && act.GetResource().Resource == "pods" {
			if sel := l.GetListRestrictions().Labels; sel.String() != "run=test" || act.GetNamespace() != "shop" {
				t.Errorf("listed pods in %q with %q, want shop and the run's selector", act.GetNamespace(), sel)
			}
		}
	}
}

func TestStartLeavesOutStuckNodes(t *testing.T) {
	t.Parallel()
	status := map[string]corev1.PodStatus{
		"n1": readyStatus,
		"n2": pullingStatus,
		"n3": {Phase: corev1.PodFailed},
		"n4": readyStatus,
		"n5": pendingStatus, // never ready: the timeout's
	}
	cs := fake.NewClientset()
	st := starter(t, cs, &agentServer{})
	st.Timeout = time.Millisecond
	start := time.Now()
	agents, warnings, err := st.Start(testCtx(t), agentPods([]string{"n1", "n2", "n3", "n4", "n5"}, func(n string) corev1.PodStatus { return status[n] }))
	if err != nil {
		t.Fatalf("Start = %v", err)
	}
	// The agents left are numbered again, from 0.
	if got, want := agentNodes(agents), []string{"0:n1:agent-0", "1:n4:agent-3"}; !slices.Equal(got, want) {
		t.Errorf("agents %v, want %v", got, want)
	}
	slices.Sort(warnings)
	want := []string{
		"no agent on node n2: ImagePullBackOff: Back-off pulling image",
		"no agent on node n3: it ended (Failed)",
		"no agent on node n5: not ready after 1ms (phase Pending; raise --agent-timeout)",
	}
	if !slices.Equal(warnings, want) {
		t.Errorf("warnings\n%q\nwant\n%q", warnings, want)
	}
	if took := time.Since(start); took > 5*time.Second {
		t.Errorf("took %s for a timeout of 1ms", took)
	}
}

func TestStartStrict(t *testing.T) {
	t.Parallel()
	cs := fake.NewClientset()
	st := starter(t, cs, &agentServer{})
	st.Strict = true
	agents, warnings, err := st.Start(testCtx(t), agentPods([]string{"n1", "n2"}, func(n string) corev1.PodStatus {
		if n == "n2" {
			return pullingStatus
		}
		return readyStatus
	}))
	var ie *InputError
	if !errors.As(err, &ie) || agents != nil || warnings != nil {
		t.Fatalf("Start = %v, %v, %v; want an *InputError alone", agents, warnings, err)
	}
	want := "agent agent-1 on node n2 cannot start: ImagePullBackOff: Back-off pulling image (is --image img:1 right and pullable from the node?)"
	if err.Error() != want {
		t.Errorf("err = %q, want %q", err, want)
	}
}

func TestStartStrictTimeout(t *testing.T) {
	t.Parallel()
	st := starter(t, fake.NewClientset(), &agentServer{})
	st.Strict, st.Timeout = true, time.Millisecond
	_, _, err := st.Start(testCtx(t), agentPods([]string{"n1"}, func(string) corev1.PodStatus { return pendingStatus }))
	var ie *InputError
	if !errors.As(err, &ie) || !strings.Contains(err.Error(), "agent agent-0 on node n1 cannot start: not ready after 1ms") {
		t.Errorf("Start = %v, want the timeout as an *InputError", err)
	}
}

func TestStartNoAgent(t *testing.T) {
	t.Parallel()
	a := &agentServer{}
	st := starter(t, fake.NewClientset(), a)
	agents, warnings, err := st.Start(testCtx(t), agentPods([]string{"n1", "n2"}, func(string) corev1.PodStatus { return pullingStatus }))
	var ie *InputError
	if !errors.As(err, &ie) || agents != nil || len(warnings) != 2 {
		t.Fatalf("Start = %v, %v, %v; want an *InputError with the warnings", agents, warnings, err)
	}
	for _, s := range []string{"no agent could start on any node (no agent on node n", "; no agent on node n", "is --image img:1 right"} {
		if !strings.Contains(err.Error(), s) {
			t.Errorf("err = %q, want it to contain %q", err, s)
		}
	}
	if n := len(a.asked()); n != 0 {
		t.Errorf("%d clock reads with no agent", n)
	}
}

// No pod to start is no agent, found without a call.
func TestStartNoPods(t *testing.T) {
	t.Parallel()
	cs := fake.NewClientset()
	agents, warnings, err := starter(t, cs, &agentServer{}).Start(testCtx(t), nil)
	var ie *InputError
	if !errors.As(err, &ie) || agents != nil || warnings != nil {
		t.Errorf("Start = %v, %v, %v; want an *InputError alone", agents, warnings, err)
	}
	if n := len(cs.Actions()); n != 0 {
		t.Errorf("%d calls for no pod", n)
	}
}

// A clock that cannot be read fails Start, but the agents are returned
// for the caller to clean up and report.
func TestStartClockError(t *testing.T) {
	t.Parallel()
	st := starter(t, fake.NewClientset(), &agentServer{fail: map[string]bool{"agent-1": true}})
	agents, _, err := st.Start(testCtx(t), agentPods([]string{"n1", "n2"}, func(string) corev1.PodStatus { return readyStatus }))
	if err == nil || len(agents) != 2 {
		t.Fatalf("Start = %v, %v; want both agents and an error", agentNodes(agents), err)
	}
	for _, s := range []string{"reading an agent's clock through the API server's pod proxy: agent agent-1", "503", "NetworkPolicy"} {
		if !strings.Contains(err.Error(), s) {
			t.Errorf("err = %q, want it to contain %q", err, s)
		}
	}
	if strings.Contains(err.Error(), "agent agent-0") {
		t.Errorf("err = %q blames agent-0", err)
	}
}

func TestStartAPIErrors(t *testing.T) {
	t.Parallel()
	t.Run("create forbidden", func(t *testing.T) {
		t.Parallel()
		cs := fake.NewClientset()
		var creates atomic.Int32
		cs.PrependReactor("create", "pods", func(k8stesting.Action) (bool, runtime.Object, error) {
			if creates.Add(1) == 2 {
				return true, nil, forbidden("pods", "agent-1")
			}
			return false, nil, nil
		})
		agents, warnings, err := starter(t, cs, &agentServer{}).Start(testCtx(t), agentPods([]string{"n1", "n2"}, func(string) corev1.PodStatus { return readyStatus }))
		if agents != nil || warnings != nil {
			t.Errorf("Start = %v, %v along with the error", agents, warnings)
		}
		wantForbidden(t, err, "create pods in namespace shop")
	})
	t.Run("list unreachable", func(t *testing.T) {
		t.Parallel()
		cs := fake.NewClientset()
		cause := errors.New("connection reset by peer")
		cs.PrependReactor("list", "pods", failWith(cause))
		agents, _, err := starter(t, cs, &agentServer{}).Start(testCtx(t), agentPods([]string{"n1"}, func(string) corev1.PodStatus { return readyStatus }))
		var ie *InputError
		if agents != nil || errors.As(err, &ie) || !errors.Is(err, cause) || !strings.Contains(err.Error(), "list pods in namespace shop: ") {
			t.Errorf("Start = %v, %v; want the list's error", agents, err)
		}
	})
	t.Run("list forbidden", func(t *testing.T) {
		t.Parallel()
		cs := fake.NewClientset()
		cs.PrependReactor("list", "pods", failWith(forbidden("pods", "")))
		_, _, err := starter(t, cs, &agentServer{}).Start(testCtx(t), agentPods([]string{"n1"}, func(string) corev1.PodStatus { return readyStatus }))
		wantForbidden(t, err, "list pods in namespace shop")
	})
	t.Run("bad API server address", func(t *testing.T) {
		t.Parallel()
		st := starter(t, fake.NewClientset(), &agentServer{})
		st.Config = &rest.Config{Host: "http://[::1"}
		agents, _, err := st.Start(testCtx(t), agentPods([]string{"n1"}, func(string) corev1.PodStatus { return readyStatus }))
		if agents != nil || err == nil || !strings.Contains(err.Error(), "the API server's address") {
			t.Errorf("Start = %v, %v; want the address's error", agents, err)
		}
	})
}

// Waiting stops with the context, however long the timeout.
func TestStartCancelled(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(testCtx(t), 100*time.Millisecond)
	defer cancel()
	st := starter(t, fake.NewClientset(), &agentServer{})
	st.Timeout = time.Hour
	agents, _, err := st.Start(ctx, agentPods([]string{"n1"}, func(string) corev1.PodStatus { return pendingStatus }))
	if agents != nil || !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("Start = %v, %v; want the context's error", agents, err)
	}
}

// podsGone removes, on a delete-collection, the pods its selector picks,
// after polls lists (the pods' grace period), and records the options.
type podsGone struct {
	cs    *fake.Clientset
	after int32
	mu    sync.Mutex
	sel   labels.Selector
	opts  *metav1.DeleteOptions
	lists atomic.Int32
}

func (g *podsGone) deleteCollection(action k8stesting.Action) (bool, runtime.Object, error) {
	d := action.(k8stesting.DeleteCollectionActionImpl)
	g.mu.Lock()
	g.sel, g.opts = d.GetListRestrictions().Labels, &d.DeleteOptions
	g.mu.Unlock()
	return true, nil, nil
}

func (g *podsGone) list(action k8stesting.Action) (bool, runtime.Object, error) {
	if g.lists.Add(1) != g.after {
		return false, nil, nil
	}
	g.mu.Lock()
	sel := g.sel
	g.mu.Unlock()
	gvr := corev1.SchemeGroupVersion.WithResource("pods")
	l, err := g.cs.Tracker().List(gvr, corev1.SchemeGroupVersion.WithKind("Pod"), action.GetNamespace())
	if err != nil {
		return true, nil, err
	}
	for _, p := range l.(*corev1.PodList).Items {
		if sel != nil && sel.Matches(labels.Set(p.Labels)) {
			if err := g.cs.Tracker().Delete(gvr, p.Namespace, p.Name); err != nil {
				return true, nil, err
			}
		}
	}
	return false, nil, nil
}

func labelled(ns, name string, l map[string]string) *corev1.Pod {
	return &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name, Labels: l}}
}

func TestDeletePods(t *testing.T) {
	t.Parallel()
	cs := fake.NewClientset(
		labelled("shop", "a", map[string]string{"run": "x"}),
		labelled("shop", "b", map[string]string{"run": "x"}),
		labelled("shop", "keep", map[string]string{"run": "y"}), // another run's
		labelled("other", "c", map[string]string{"run": "x"}),   // another namespace's
	)
	g := &podsGone{cs: cs, after: 2}
	cs.PrependReactor("delete-collection", "pods", g.deleteCollection)
	cs.PrependReactor("list", "pods", g.list)
	if err := testRoles.DeletePods(testCtx(t), cs, "shop", "run=x"); err != nil {
		t.Fatalf("DeletePods = %v", err)
	}
	// It waited until they were gone: the first list saw them, the
	// second none.
	if n := g.lists.Load(); n != 2 {
		t.Errorf("%d lists, want 2", n)
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.sel == nil || g.sel.String() != "run=x" {
		t.Errorf("deleted with selector %v, want run=x", g.sel)
	}
	// The pods' own grace period: not a forced delete.
	if g.opts == nil || g.opts.GracePeriodSeconds != nil {
		t.Errorf("delete options %+v, want the pods' grace period", g.opts)
	}
	for _, act := range cs.Actions() {
		if act.GetResource().Resource == "pods" && act.GetNamespace() != "shop" {
			t.Errorf("%s pods in namespace %q", act.GetVerb(), act.GetNamespace())
		}
	}
}

func TestDeletePodsNoneLeft(t *testing.T) {
	t.Parallel()
	cs := fake.NewClientset(labelled("shop", "keep", map[string]string{"run": "y"}))
	if err := testRoles.DeletePods(testCtx(t), cs, "shop", "run=x"); err != nil {
		t.Errorf("DeletePods = %v", err)
	}
}

func TestDeletePodsErrors(t *testing.T) {
	t.Parallel()
	cause := errors.New("connection refused")
	tests := []struct {
		name      string
		verb      string // failing
		err       error
		forbidden string // the call an *InputError names
		want      []string
		ok        bool
	}{
		// Nothing there to delete is not an error: the wait finds none.
		{name: "deletecollection not found", verb: "delete-collection", err: apierrors.NewNotFound(corev1.Resource("pods"), ""), ok: true},
		{name: "deletecollection forbidden", verb: "delete-collection", err: forbidden("pods", ""), forbidden: "deletecollection pods in namespace shop"},
		{name: "deletecollection unreachable", verb: "delete-collection", err: cause, want: []string{"deletecollection pods in namespace shop: connection refused (is the cluster reachable?"}},
		{name: "list forbidden", verb: "list", err: forbidden("pods", ""), forbidden: "list pods in namespace shop"},
		{name: "list unreachable", verb: "list", err: cause, want: []string{"list pods in namespace shop: connection refused"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			cs := fake.NewClientset()
			cs.PrependReactor(tt.verb, "pods", failWith(tt.err))
			err := testRoles.DeletePods(testCtx(t), cs, "shop", "run=x")
			switch {
			case tt.ok:
				if err != nil {
					t.Errorf("DeletePods = %v", err)
				}
			case tt.forbidden != "":
				wantForbidden(t, err, tt.forbidden)
			default:
				var ie *InputError
				if errors.As(err, &ie) || !errors.Is(err, tt.err) {
					t.Errorf("DeletePods = %v (%T), want the API's error", err, err)
				}
				for _, s := range tt.want {
					if err == nil || !strings.Contains(err.Error(), s) {
						t.Errorf("err = %v, want it to contain %q", err, s)
					}
				}
			}
		})
	}
}

// Pods that outlive the context are counted in the error.
func TestDeletePodsTimeout(t *testing.T) {
	t.Parallel()
	cs := fake.NewClientset(labelled("shop", "a", map[string]string{"run": "x"}), labelled("shop", "b", map[string]string{"run": "x"}))
	cs.PrependReactor("delete-collection", "pods", func(k8stesting.Action) (bool, runtime.Object, error) { return true, nil, nil }) // they linger
	ctx, cancel := context.WithTimeout(testCtx(t), 100*time.Millisecond)
	defer cancel()
	err := testRoles.DeletePods(ctx, cs, "shop", "run=x")
	if !errors.Is(err, context.DeadlineExceeded) || !strings.Contains(err.Error(), "2 pods still present in namespace shop") {
		t.Errorf("DeletePods = %v, want 2 pods still present", err)
	}
}

// TestStartPodGone: an agent whose pod disappears (deleted, or collected
// with its node) is left out at once, not waited for until the context
// ends.
func TestStartPodGone(t *testing.T) {
	t.Parallel()
	cs := fake.NewClientset()
	cs.PrependReactor("create", "pods", func(a k8stesting.Action) (bool, runtime.Object, error) {
		p := a.(k8stesting.CreateAction).GetObject().(*corev1.Pod)
		if p.Spec.NodeName == "n2" {
			return true, p, nil // created, and gone before the first list
		}
		return false, nil, nil
	})
	st := starter(t, cs, &agentServer{})
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	start := time.Now()
	agents, warnings, err := st.Start(ctx, agentPods([]string{"n1", "n2"}, func(string) corev1.PodStatus { return readyStatus }))
	if err != nil {
		t.Fatalf("Start = %v", err)
	}
	if got, want := agentNodes(agents), []string{"0:n1:agent-0"}; !slices.Equal(got, want) {
		t.Errorf("agents %v, want %v", got, want)
	}
	if want := []string{"no agent on node n2: its pod is gone (deleted, or with its node)"}; !slices.Equal(warnings, want) {
		t.Errorf("warnings %q, want %q", warnings, want)
	}
	if took := time.Since(start); took > 5*time.Second {
		t.Errorf("took %s", took)
	}
}
