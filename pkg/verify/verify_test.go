package verify

import (
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/intstr"

	"github.com/rollguard/rollguard/pkg/diagnose"
	"github.com/rollguard/rollguard/pkg/timeline"
	"github.com/rollguard/rollguard/pkg/traffic"
)

func TestParseTarget(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		in   string
		kind Kind
		name string
		err  string
	}{
		{"deployment/orders", Deployment, "orders", ""},
		{"deploy/orders", Deployment, "orders", ""},
		{"Deployments.apps/orders", Deployment, "orders", ""},
		{"sts/db", StatefulSet, "db", ""},
		{"daemonset/agent", DaemonSet, "agent", ""},
		{"orders", "", "", "want KIND/NAME"},
		{"deployment/", "", "", "want KIND/NAME"},
		{"pod/web", "", "", "not \"pod\""},
		{"deployment/a/b", "", "", "want KIND/NAME"},
	} {
		k, n, err := ParseTarget(c.in)
		if c.err != "" {
			if err == nil || !strings.Contains(err.Error(), c.err) {
				t.Errorf("%s: error %v, want %q", c.in, err, c.err)
			}
			continue
		}
		if err != nil || k != c.kind || n != c.name {
			t.Errorf("%s: %s %s %v", c.in, k, n, err)
		}
	}
}

func TestServicePort(t *testing.T) {
	t.Parallel()
	svc := &corev1.Service{ObjectMeta: metav1.ObjectMeta{Name: "web"}, Spec: corev1.ServiceSpec{Ports: []corev1.ServicePort{
		{Name: "http", Port: 80}, {Name: "dns", Port: 53, Protocol: corev1.ProtocolUDP}, {Name: "admin", Port: 9000, Protocol: corev1.ProtocolTCP}}}}
	if p, err := servicePort(svc, "admin"); err != nil || p.Port != 9000 {
		t.Errorf("by name: %v %v", p, err)
	}
	if p, err := servicePort(svc, "80"); err != nil || p.Name != "http" {
		t.Errorf("by number: %v %v", p, err)
	}
	if _, err := servicePort(svc, ""); err == nil || !strings.Contains(err.Error(), "2 TCP ports (80 (http), 9000 (admin)): pick one with --port") {
		t.Errorf("two TCP ports: %v", err)
	}
	if _, err := servicePort(svc, "dns"); err == nil || !strings.Contains(err.Error(), "no TCP port dns") {
		t.Errorf("a UDP port: %v", err)
	}
	one := &corev1.Service{Spec: corev1.ServiceSpec{Ports: []corev1.ServicePort{{Port: 53, Protocol: corev1.ProtocolUDP}, {Port: 8080}}}}
	if p, err := servicePort(one, ""); err != nil || p.Port != 8080 {
		t.Errorf("the only TCP port: %v %v", p, err)
	}
}

func TestSelects(t *testing.T) {
	t.Parallel()
	pods := map[string]string{"app": "web", "tier": "front"}
	for _, c := range []struct {
		sel  map[string]string
		want bool
	}{{map[string]string{"app": "web"}, true}, {map[string]string{"app": "web", "tier": "front"}, true},
		{map[string]string{"app": "db"}, false}, {nil, false}, {map[string]string{"app": "web", "x": "y"}, false}} {
		if got := selects(&corev1.Service{Spec: corev1.ServiceSpec{Selector: c.sel}}, pods); got != c.want {
			t.Errorf("%v: %v", c.sel, got)
		}
	}
}

func TestPodPortAndReadiness(t *testing.T) {
	t.Parallel()
	spec := &corev1.PodSpec{Containers: []corev1.Container{
		{Name: "sidecar", Ports: []corev1.ContainerPort{{Name: "metrics", ContainerPort: 9090}}},
		{Name: "app", Ports: []corev1.ContainerPort{{Name: "http", ContainerPort: 8080}},
			ReadinessProbe: &corev1.Probe{ProbeHandler: corev1.ProbeHandler{HTTPGet: &corev1.HTTPGetAction{Port: intstr.FromString("http")}}}},
	}}
	port, c := podPort(spec, intstr.FromString("http"), 80)
	if port != 8080 || c == nil || c.Name != "app" || !probesPort(c, port) {
		t.Errorf("named: %d %v", port, c)
	}
	if port, c := podPort(spec, intstr.FromInt32(9090), 80); port != 9090 || c.Name != "sidecar" || probesPort(c, port) {
		t.Errorf("numbered: %d %v", port, c)
	}
	if port, c := podPort(spec, intstr.IntOrString{}, 8080); port != 8080 || c.Name != "app" {
		t.Errorf("targetPort defaults to port: %d %v", port, c)
	}
	if port, c := podPort(spec, intstr.FromString("nope"), 80); port != 0 || c != nil {
		t.Errorf("unknown name: %d %v", port, c)
	}
	other := &corev1.Container{Ports: []corev1.ContainerPort{{Name: "http", ContainerPort: 8080}, {Name: "health", ContainerPort: 8081}},
		ReadinessProbe: &corev1.Probe{ProbeHandler: corev1.ProbeHandler{TCPSocket: &corev1.TCPSocketAction{Port: intstr.FromString("health")}}}}
	if probesPort(other, 8080) {
		t.Error("a probe on another port does not show the served port listens")
	}
	exec := &corev1.Container{ReadinessProbe: &corev1.Probe{ProbeHandler: corev1.ProbeHandler{Exec: &corev1.ExecAction{Command: []string{"true"}}}}}
	if probesPort(exec, 8080) || probesPort(&corev1.Container{}, 8080) {
		t.Error("an exec probe, or none, proves nothing")
	}
}

// TestWatcherEvents feeds Pod and EndpointSlice states to the watcher as
// a rollout shows them and checks the events and probe targets.
func TestWatcherEvents(t *testing.T) {
	t.Parallel()
	tl := &timeline.Timeline{}
	at := time.Unix(1000, 0)
	w := newWatcher(nil, "default", "app=web", "web", corev1.ServicePort{Port: 80, TargetPort: intstr.FromString("http")}, discoveryv1.AddressTypeIPv4, nil, tl)
	w.now = func() time.Time { at = at.Add(time.Second); return at }
	sleep := &corev1.LifecycleHandler{Sleep: &corev1.SleepAction{Seconds: 7}}
	pod := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "web-1", UID: "uid-one"}, Spec: corev1.PodSpec{NodeName: "n1", Containers: []corev1.Container{{
		Name: "web", Ports: []corev1.ContainerPort{{Name: "http", ContainerPort: 8080}}, Lifecycle: &corev1.Lifecycle{PreStop: sleep}}}}}
	w.pod(pod.DeepCopy(), false) // created, no address yet
	pod.Status.PodIP = "10.0.0.5"
	pod.Status.PodIPs = []corev1.PodIP{{IP: "fd00::5"}, {IP: "10.0.0.5"}} // dual-stack, IPv6 first: the Service's family wins
	pod.Status.ContainerStatuses = []corev1.ContainerStatus{{Name: "web", State: corev1.ContainerState{Running: &corev1.ContainerStateRunning{}}}}
	pod.Status.Conditions = []corev1.PodCondition{{Type: corev1.PodReady, Status: corev1.ConditionTrue}}
	w.pod(pod.DeepCopy(), false)
	w.pod(pod.DeepCopy(), false) // the same state again: no event
	if ts := w.targets(); len(ts) != 1 || ts[0].Addr != "10.0.0.5:8080" || ts[0].Pod != "web-1" || w.terminating() != 0 {
		t.Errorf("targets %v", ts)
	}
	yes, no := true, false
	slice := func(ready, serving, terminating *bool) *discoveryv1.EndpointSlice {
		return &discoveryv1.EndpointSlice{ObjectMeta: metav1.ObjectMeta{Name: "web-abc"}, AddressType: discoveryv1.AddressTypeIPv4, Endpoints: []discoveryv1.Endpoint{{
			TargetRef: &corev1.ObjectReference{Kind: "Pod", Name: "web-1", UID: "uid-one"}, Conditions: discoveryv1.EndpointConditions{Ready: ready, Serving: serving, Terminating: terminating}}}}
	}
	w.slice(slice(&no, &no, &no), false) // a new pod not ready yet: not news
	v6 := slice(&no, &no, &yes)
	v6.Name, v6.AddressType = "web-v6", discoveryv1.AddressTypeIPv6
	w.slice(v6, false) // the other family's slice: kube-proxy does not read it for this Service
	w.slice(slice(&yes, &yes, &no), false)
	now := metav1.Now()
	pod.DeletionTimestamp = &now
	w.pod(pod.DeepCopy(), false)
	w.slice(slice(&no, &yes, &yes), false)
	w.slice(slice(&no, &no, &yes), false)
	pod.Status.ContainerStatuses[0].State = corev1.ContainerState{Terminated: &corev1.ContainerStateTerminated{}}
	w.pod(pod.DeepCopy(), false)
	w.slice(slice(&no, &no, &yes), true)
	if ts := w.targets(); len(ts) != 0 {
		t.Errorf("an exited pod is no target: %v", ts)
	}
	var kinds []string
	for _, e := range tl.Events() {
		kinds = append(kinds, string(e.Kind))
		if e.Kind == timeline.PodCreated && (e.PreStop != 7*time.Second || e.Readiness) {
			t.Errorf("created: preStop %s readiness %v, want 7s and false", e.PreStop, e.Readiness)
		}
	}
	want := "pod-created pod-started pod-ready endpoint-added pod-deleted endpoint-terminating endpoint-not-serving pod-exited endpoint-removed"
	if got := strings.Join(kinds, " "); got != want {
		t.Errorf("events:\n got  %s\n want %s", got, want)
	}
	if w.nodeOf("web-1") != "n1" {
		t.Error("node of the pod")
	}
	// A StatefulSet's pod recreated with the same name is another pod in
	// the timeline; a bookmark-like object without a name changes nothing.
	again := pod.DeepCopy()
	again.UID, again.DeletionTimestamp = "uid-two", nil
	again.Status = corev1.PodStatus{PodIPs: []corev1.PodIP{{IP: "10.0.0.9"}}}
	w.pod(again, false)
	if ts := w.targets(); len(ts) != 1 || ts[0].Pod != "web-1@uid-t" || ts[0].Addr != "10.0.0.9:8080" {
		t.Errorf("the recreated pod: %v", ts)
	}
	if got := w.podAt("10.0.0.5:8080", at); got != "web-1" {
		t.Errorf("podAt the first pod's address: %s", got)
	}
	if got := w.podAt("10.0.0.9:8080", at); got != "web-1@uid-t" {
		t.Errorf("podAt the recreated pod's address: %s", got)
	}
	if got := w.podAt("10.9.9.9:80", at); got != "10.9.9.9:80" {
		t.Errorf("an address no pod held: %s", got)
	}
	w.forgetPods(map[types.UID]bool{}) // a fresh list holds neither
	if ts := w.targets(); len(ts) != 0 || w.terminating() != 0 {
		t.Errorf("a pod a fresh list lacks is gone: %v", ts)
	}
}

func TestIntervals(t *testing.T) {
	t.Parallel()
	t0 := time.Unix(2000, 0)
	a := func(node int, ms int, cause diagnose.Cause, pod, rule string) diagnose.Attribution {
		return diagnose.Attribution{Node: node, At: t0.Add(time.Duration(ms) * time.Millisecond), Class: traffic.Refused, Cause: cause,
			Pods: []string{pod}, Rule: rule, Evidence: "ev " + pod}
	}
	got := intervals([]diagnose.Attribution{
		a(0, 0, diagnose.Case1, "old-1", "RG101"), a(0, 400, diagnose.Case1, "old-1", "RG101"), a(0, 1300, diagnose.Case1, "old-1", "RG101"),
		a(0, 2400, diagnose.Case2, "new-1", "RG201"), // more than a second later: a new interval
		a(1, 100, diagnose.Case1, "old-2", "RG101"),
	}, map[int]string{0: "n1", 1: "n2"})
	if len(got) != 3 {
		t.Fatalf("%d intervals: %+v", len(got), got)
	}
	if got[0].Node != "n1" || got[0].Failed != 3 || got[0].ByCause["case1"] != 3 || got[0].To.Sub(got[0].From) != 1300*time.Millisecond ||
		got[0].Rules[0] != "RG101" || got[0].Evidence != "ev old-1" {
		t.Errorf("first: %+v", got[0])
	}
	if got[1].Node != "n2" || got[2].Pods[0] != "new-1" || got[2].Rules[0] != "RG201" {
		t.Errorf("order or content: %+v", got)
	}
}

func TestLatency(t *testing.T) {
	t.Parallel()
	var ds []time.Duration
	for i := 1; i <= 100; i++ {
		ds = append(ds, time.Duration(101-i)*time.Millisecond)
	}
	l := latency(ds)
	if l.P50 != 51*time.Millisecond || l.P99 != 100*time.Millisecond || l.Max != 100*time.Millisecond {
		t.Errorf("%+v", l)
	}
	if latency(nil) != (Latency{}) {
		t.Error("no requests")
	}
}

func TestLaneEventsAndHTML(t *testing.T) {
	t.Parallel()
	t0 := time.Unix(3000, 0)
	at := func(s float64) time.Time { return t0.Add(time.Duration(s * float64(time.Second))) }
	ev := []timeline.Event{
		{At: at(1), Kind: timeline.PodCreated, Pod: "web-new"},
		{At: at(2), Kind: timeline.PodReady, Pod: "web-new"},
		{At: at(2.1), Kind: timeline.EndpointAdded, Pod: "web-new"},
		{At: at(2.5), Kind: timeline.PodRefusing, Pod: "web-new", Node: 0},
		{At: at(4), Kind: timeline.PodAccepting, Pod: "web-new", Node: 1},
		{At: at(4.1), Kind: timeline.PodAccepting, Pod: "web-new", Node: 0}, // the second agent's look: no new lane event
		{At: at(6), Kind: timeline.PodDeleted, Pod: "web-new"},
		{At: at(6.2), Kind: timeline.PodRefusing, Pod: "web-new", Node: 0},
		{At: at(7), Kind: timeline.ConnTracked, Pod: "web-new", Seq: 3},
	}
	var kinds []string
	for _, e := range laneEvents(ev) {
		kinds = append(kinds, string(e.Kind))
	}
	want := "pod-created pod-ready node-endpoint-added pod-listening pod-deleted pod-closed"
	if got := strings.Join(kinds, " "); got != want {
		t.Errorf("lane events:\n got  %s\n want %s", got, want)
	}
	rep := &Report{Workload: "deployment/web", Namespace: "shop", Service: "web", Start: t0, Requests: 10, Failed: 1,
		Agents:   []AgentInfo{{Index: 0, Node: "node-a"}, {Index: 1, Node: "node-b"}},
		Timeline: ev, Failures: []traffic.Record{{Seq: 3, Node: 1, Start: at(3), Class: traffic.Refused}},
		Diagnosis: diagnose.Result{Counts: map[diagnose.Cause]int{diagnose.Case2: 1},
			Attributions: []diagnose.Attribution{{Seq: 3, At: at(3), Node: 1, Class: traffic.Refused, Cause: diagnose.Case2, Evidence: "not yet accepting"}}}}
	var b strings.Builder
	if err := rep.WriteHTML(&b); err != nil {
		t.Fatal(err)
	}
	for _, s := range []string{"<title>rollguard verify report</title>", `"name":"deployment/web"`, `"verdict":"LOSSY"`, `"nodes":["node-a","node-b"]`,
		`"pod":"web-new"`, `"state":"ready-not-listening"`, `"state":"serving"`, `"cause":"case2"`, "verdict: 1 of 10 requests failed"} {
		if !strings.Contains(b.String(), s) {
			t.Errorf("the report lacks %s", s)
		}
	}
}

func TestPodPortNativeSidecarAndProtocol(t *testing.T) {
	t.Parallel()
	always := corev1.ContainerRestartPolicyAlways
	spec := &corev1.PodSpec{
		InitContainers: []corev1.Container{
			{Name: "setup", Ports: []corev1.ContainerPort{{Name: "http", ContainerPort: 1}}}, // runs once: not a server
			{Name: "proxy", RestartPolicy: &always, Ports: []corev1.ContainerPort{{Name: "http", ContainerPort: 15001}}},
		},
		Containers: []corev1.Container{{Name: "app", Ports: []corev1.ContainerPort{{Name: "http", ContainerPort: 53, Protocol: corev1.ProtocolUDP}}}},
	}
	if port, c := podPort(spec, intstr.FromString("http"), 80); port != 15001 || c == nil || c.Name != "proxy" {
		t.Errorf("got %d %v: want the native sidecar's TCP port", port, c)
	}
}
