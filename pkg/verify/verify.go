// Package verify implements `rollguard verify`: roll a real workload while
// agents on the cluster's nodes send traffic to its Service through
// kube-proxy, record every request, watch the workload's Pods and the
// Service's EndpointSlices, and attribute each failure to Case 1, Case 2
// or other with the diagnosis the lab uses.
package verify

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"

	"github.com/rollguard/rollguard/pkg/agent"
	"github.com/rollguard/rollguard/pkg/timeline"
	"github.com/rollguard/rollguard/pkg/traffic"
)

// Labels on everything verify creates.
const (
	RunLabel       = "rollguard.io/verify-run"
	ManagedByLabel = "app.kubernetes.io/managed-by"
	ManagedBy      = "rollguard-verify"
	// AgentPort is the port agents serve their control API on.
	AgentPort = agent.DefaultPort
)

// Options describe a run.
type Options struct {
	Config    *rest.Config
	Namespace string
	Kind      Kind
	Name      string
	// Service and Port pick the traffic's target when the workload's pods
	// are behind more than one Service or port.
	Service, Port string
	// Rate is the total request rate over all agents.
	Rate float64
	// Nodes to run agents on; empty means every ready node.
	Nodes []string
	Image string
	Mode  traffic.Mode
	// Trigger: "restart", "none" (wait for someone else's rollout), or
	// "image=CONTAINER=IMAGE".
	Trigger string
	// Warmup is how long traffic must run without a failure before the
	// rollout; Settle how long it goes on after the rollout completes;
	// Timeout bounds the rollout (and, with --trigger none, the wait for
	// it).
	Warmup, Settle, Timeout time.Duration
	// AgentTimeout bounds the agents' start (image pull included).
	AgentTimeout time.Duration
	// Budget is the propagation window the diagnosis assumes; ProbePeriod
	// how often each agent dials each pod.
	Budget, ProbePeriod time.Duration
	// PrivilegedAgents puts the agents on their nodes' network with
	// NET_ADMIN, so they read from conntrack which pod each request went
	// to, and the diagnosis is exact.
	PrivilegedAgents bool
	// Progress, when set, receives a line at each step.
	Progress func(format string, args ...any)
}

func (o *Options) progress(format string, args ...any) {
	if o.Progress != nil {
		o.Progress(format, args...)
	}
}

// run is one verify run's state.
type run struct {
	opts    Options
	cs      kubernetes.Interface
	http    *http.Client
	id      string
	w       *workload
	svc     *corev1.Service
	port    corev1.ServicePort
	agents  []*agentPod
	tl      *timeline.Timeline
	watcher *watcher
	rep     *Report
	// warnings found before the report exists
	warnings []string
}

type agentPod struct {
	index  int
	node   string
	pod    string
	client *agent.Client
	offset time.Duration // the agent's clock minus verify's
	bound  time.Duration
}

// Run verifies one rollout. The report is returned whenever traffic ran,
// also with an error (a stuck rollout, an interrupted run: Partial is
// set). Everything the run created is removed before it returns.
func Run(ctx context.Context, opts Options) (rep *Report, err error) {
	if err := opts.validate(); err != nil {
		return nil, &InputError{err}
	}
	// The preflight's access reviews and the rollout's polls are a few
	// dozen requests in a second: above client-go's default 5 a second.
	cfg := rest.CopyConfig(opts.Config)
	cfg.QPS, cfg.Burst = 50, 100
	opts.Config = cfg
	cs, err := kubernetes.NewForConfig(opts.Config)
	if err != nil {
		return nil, err
	}
	hc, err := rest.HTTPClientFor(opts.Config)
	if err != nil {
		return nil, err
	}
	r := &run{opts: opts, cs: cs, http: hc, id: newRunID(), tl: &timeline.Timeline{}}
	if err := Preflight(ctx, cs, opts.Namespace, opts.Kind); err != nil {
		return nil, err
	}
	if r.w, err = getWorkload(ctx, cs, opts.Kind, opts.Namespace, opts.Name); err != nil {
		return nil, err
	}
	if r.svc, err = findService(ctx, cs, r.w, opts.Service); err != nil {
		return nil, err
	}
	if r.svc.Spec.ClusterIP == "" || r.svc.Spec.ClusterIP == corev1.ClusterIPNone {
		return nil, &InputError{fmt.Errorf("service %s is headless: callers reach pods through DNS, not kube-proxy; verify needs a ClusterIP Service", r.svc.Name)}
	}
	if r.port, err = servicePort(r.svc, opts.Port); err != nil {
		return nil, err
	}
	nodes, err := r.nodes(ctx)
	if err != nil {
		return nil, err
	}
	if per, maxRun := opts.Rate/float64(len(nodes)), opts.maxRun(); per*maxRun.Seconds() > agent.MaxRecords {
		return nil, &InputError{fmt.Errorf("%g requests/s from each of %d agents for up to %s is more than the %d records an agent keeps: lower --rate or --timeout",
			per, len(nodes), maxRun, agent.MaxRecords)}
	}
	// From here on, objects exist in the cluster: remove them whatever
	// happens, also after Ctrl-C (ctx is done then, so a fresh one).
	defer func() {
		cctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
		defer cancel()
		if cerr := Cleanup(cctx, cs, opts.Namespace, r.id); cerr != nil {
			err = errors.Join(err, fmt.Errorf("removing the agents: %w (rollguard verify --cleanup -n %s removes what is left)", cerr, opts.Namespace))
		}
	}()
	if err := r.startAgents(ctx, nodes); err != nil {
		return nil, err
	}
	return r.roll(ctx)
}

func (o *Options) validate() error {
	switch {
	case o.Rate <= 0 || o.Rate > traffic.MaxRate:
		return fmt.Errorf("--rate %g: want more than 0 and at most %g requests per second", o.Rate, traffic.MaxRate)
	case o.Timeout <= 0:
		return fmt.Errorf("--timeout must be positive")
	case o.Warmup < time.Second:
		return fmt.Errorf("--warmup %s: want at least 1s of traffic without a failure before the rollout", o.Warmup)
	case o.Settle < 0:
		return fmt.Errorf("--settle must not be negative")
	case o.Warmup+o.Timeout+o.Settle+time.Minute > traffic.MaxDuration:
		return fmt.Errorf("--warmup, --timeout and --settle add up to more than the %s an agent sends for (with a minute to spare)", traffic.MaxDuration)
	case o.Image == "":
		return fmt.Errorf("--image is empty")
	case o.Trigger != "restart" && o.Trigger != "none" && !strings.HasPrefix(o.Trigger, "image="):
		return fmt.Errorf("--trigger %q: want restart, none or image=CONTAINER=IMAGE", o.Trigger)
	}
	if strings.HasPrefix(o.Trigger, "image=") {
		if c, img, ok := strings.Cut(strings.TrimPrefix(o.Trigger, "image="), "="); !ok || c == "" || img == "" {
			return fmt.Errorf("--trigger %q: want image=CONTAINER=IMAGE", o.Trigger)
		}
	}
	switch o.Mode {
	case traffic.ModeHTTP, traffic.ModeKeepAlive, traffic.ModeConnect:
	default:
		return fmt.Errorf("--mode %q: want http, http-keepalive or connect", o.Mode)
	}
	if o.PrivilegedAgents && o.Mode == traffic.ModeKeepAlive {
		return fmt.Errorf("--privileged-agents matches each new connection to its pod; with --mode %s a connection carries many requests: use http or connect", o.Mode)
	}
	if o.ProbePeriod <= 0 {
		o.ProbePeriod = agent.DefaultProbePeriod
	}
	if o.ProbePeriod < agent.MinProbePeriod || o.ProbePeriod > agent.MaxProbePeriod {
		return fmt.Errorf("--probe-period %s: want %s to %s", o.ProbePeriod, agent.MinProbePeriod, agent.MaxProbePeriod)
	}
	if o.AgentTimeout <= 0 {
		o.AgentTimeout = 2 * time.Minute
	}
	return nil
}

// maxRun is how long an agent may send: the whole run, with a minute to
// spare.
func (o *Options) maxRun() time.Duration { return o.Warmup + o.Timeout + o.Settle + time.Minute }

func newRunID() string {
	b := make([]byte, 4)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// nodes lists the nodes to run agents on: the ones named, or every ready
// node.
func (r *run) nodes(ctx context.Context) ([]string, error) {
	list, err := r.cs.CoreV1().Nodes().List(ctx, metav1.ListOptions{})
	if err != nil {
		return nil, apiError(err, "list nodes", "")
	}
	ready := map[string]bool{}
	var all []string
	for _, n := range list.Items {
		if os := n.Labels[corev1.LabelOSStable]; os != "" && os != "linux" {
			continue // the agent image is Linux's
		}
		for _, c := range n.Status.Conditions {
			if c.Type == corev1.NodeReady && c.Status == corev1.ConditionTrue && !n.Spec.Unschedulable {
				ready[n.Name] = true
				all = append(all, n.Name)
			}
		}
	}
	sort.Strings(all)
	if len(r.opts.Nodes) == 0 {
		if len(all) == 0 {
			return nil, &InputError{errors.New("no Linux node is ready and schedulable: agents have nowhere to run")}
		}
		return all, nil
	}
	for _, n := range r.opts.Nodes {
		if !ready[n] {
			return nil, &InputError{fmt.Errorf("--from: node %q is not a ready, schedulable Linux node (those: %s)", n, strings.Join(all, ", "))}
		}
	}
	return r.opts.Nodes, nil
}

// agentSpec is one agent pod: pinned to its node, bounded in time even if
// verify is killed (activeDeadlineSeconds, and the agent's own --max-run).
func (r *run) agentSpec(i int, node string) *corev1.Pod {
	bound := r.opts.AgentTimeout + r.opts.Warmup + r.opts.Timeout + r.opts.Settle + 5*time.Minute
	deadline := int64(bound.Seconds())
	grace := int64(5)
	no := false
	yes, uid := true, int64(65532)
	// Small and Guaranteed: quota'd namespaces demand limits, and a
	// BestEffort agent is throttled and evicted first.
	res := corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("250m"), corev1.ResourceMemory: resource.MustParse("256Mi")}
	pod := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{
			Name:      fmt.Sprintf("rollguard-verify-%s-%d", r.id, i),
			Namespace: r.opts.Namespace,
			Labels:    map[string]string{RunLabel: r.id, ManagedByLabel: ManagedBy},
		},
		Spec: corev1.PodSpec{
			NodeName:                      node,
			RestartPolicy:                 corev1.RestartPolicyNever,
			ActiveDeadlineSeconds:         &deadline,
			TerminationGracePeriodSeconds: &grace,
			AutomountServiceAccountToken:  &no,
			Tolerations:                   []corev1.Toleration{{Operator: corev1.TolerationOpExists}},
			// What PodSecurity's restricted level asks of a pod.
			SecurityContext: &corev1.PodSecurityContext{RunAsNonRoot: &yes, RunAsUser: &uid,
				SeccompProfile: &corev1.SeccompProfile{Type: corev1.SeccompProfileTypeRuntimeDefault}},
			Containers: []corev1.Container{{
				SecurityContext: &corev1.SecurityContext{AllowPrivilegeEscalation: &no, ReadOnlyRootFilesystem: &yes,
					Capabilities: &corev1.Capabilities{Drop: []corev1.Capability{"ALL"}}},
				Resources:       corev1.ResourceRequirements{Requests: res, Limits: res},
				Name:            "agent",
				Image:           r.opts.Image,
				ImagePullPolicy: corev1.PullIfNotPresent,
				Args:            []string{"agent", "--listen", ":" + strconv.Itoa(AgentPort), "--max-run", bound.String()},
				Ports:           []corev1.ContainerPort{{Name: "agent", ContainerPort: AgentPort}},
				ReadinessProbe: &corev1.Probe{ProbeHandler: corev1.ProbeHandler{HTTPGet: &corev1.HTTPGetAction{
					Path: "/healthz", Port: intOrString(AgentPort)}}, PeriodSeconds: 1},
			}},
		},
	}
	if r.opts.PrivilegedAgents {
		// The node's network, where kube-proxy's translations are tracked,
		// and NET_ADMIN to read them: root, with that one capability.
		root, notNonRoot := int64(0), false
		pod.Spec.HostNetwork = true
		pod.Spec.DNSPolicy = corev1.DNSClusterFirstWithHostNet
		pod.Spec.SecurityContext.RunAsUser, pod.Spec.SecurityContext.RunAsNonRoot = &root, &notNonRoot
		pod.Spec.Containers[0].SecurityContext.Capabilities.Add = []corev1.Capability{"NET_ADMIN"}
	}
	return pod
}

// startAgents creates one agent per node and waits until each is ready
// and its clock offset is known.
func (r *run) startAgents(ctx context.Context, nodes []string) error {
	for i, n := range nodes {
		p, err := r.cs.CoreV1().Pods(r.opts.Namespace).Create(ctx, r.agentSpec(i, n), metav1.CreateOptions{})
		if err != nil {
			return apiError(err, "create pods", r.opts.Namespace)
		}
		base, err := agent.ProxyBase(r.opts.Config, r.opts.Namespace, p.Name, AgentPort)
		if err != nil {
			return err
		}
		r.agents = append(r.agents, &agentPod{index: i, node: n, pod: p.Name, client: &agent.Client{Base: base, HTTP: r.http, Name: p.Name}})
	}
	r.opts.progress("started %d agents (%s); waiting for them to be ready", len(nodes), strings.Join(nodes, ", "))
	// One list a poll for every agent, not a wait per agent: a large
	// cluster's agents start together.
	deadline := time.Now().Add(r.opts.AgentTimeout)
	pending := map[string]*agentPod{}
	for _, a := range r.agents {
		pending[a.pod] = a
	}
	var dropped []string
	for len(pending) > 0 {
		l, err := r.cs.CoreV1().Pods(r.opts.Namespace).List(ctx, metav1.ListOptions{LabelSelector: RunLabel + "=" + r.id})
		if err != nil {
			return apiError(err, "list pods", r.opts.Namespace)
		}
		for i := range l.Items {
			p := &l.Items[i]
			a := pending[p.Name]
			if a == nil {
				continue
			}
			if podReady(p) {
				delete(pending, p.Name)
				continue
			}
			why := podStuck(p)
			if why == "" && time.Now().After(deadline) {
				why = fmt.Sprintf("not ready after %s (phase %s; raise --agent-timeout)", r.opts.AgentTimeout, p.Status.Phase)
			}
			if why == "" {
				continue
			}
			// With every node asked for, one node that cannot run an agent
			// (full, or failing its pulls) costs that node only.
			if len(r.opts.Nodes) > 0 {
				return &InputError{fmt.Errorf("agent %s on node %s cannot start: %s (is --image %s right and pullable from the node?)", a.pod, a.node, why, r.opts.Image)}
			}
			delete(pending, p.Name)
			dropped = append(dropped, a.pod)
			r.warnings = append(r.warnings, fmt.Sprintf("no agent on node %s: %s", a.node, why))
		}
		if len(pending) == 0 {
			break
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(300 * time.Millisecond):
		}
	}
	kept := r.agents[:0]
	for _, a := range r.agents {
		if !contains(dropped, a.pod) {
			a.index = len(kept)
			kept = append(kept, a)
		}
	}
	r.agents = kept
	if len(r.agents) == 0 {
		return &InputError{fmt.Errorf("no agent could start on any node (%s): is --image %s right and pullable from the nodes?", strings.Join(r.warnings, "; "), r.opts.Image)}
	}
	var wg sync.WaitGroup
	errs := make([]error, len(r.agents))
	for i, a := range r.agents {
		wg.Go(func() {
			off, bound, err := a.client.Clock(ctx)
			if err != nil {
				errs[i] = fmt.Errorf("reading an agent's clock through the API server's pod proxy: %w (a NetworkPolicy or a firewall between the control plane and the nodes' pods may block the proxy)", err)
			}
			a.offset, a.bound = off, bound
		})
	}
	wg.Wait()
	return errors.Join(errs...)
}

func podReady(p *corev1.Pod) bool {
	for _, c := range p.Status.Conditions {
		if c.Type == corev1.PodReady && c.Status == corev1.ConditionTrue {
			return true
		}
	}
	return false
}

// podStuck says why a pod will not start, when it will not.
func podStuck(p *corev1.Pod) string {
	if p.Status.Phase == corev1.PodFailed || p.Status.Phase == corev1.PodSucceeded {
		return "it ended (" + string(p.Status.Phase) + ")"
	}
	for _, cs := range p.Status.ContainerStatuses {
		if w := cs.State.Waiting; w != nil {
			switch w.Reason {
			case "ErrImagePull", "ImagePullBackOff", "ErrImageNeverPull", "InvalidImageName", "CrashLoopBackOff", "CreateContainerError", "CreateContainerConfigError":
				return w.Reason + ": " + w.Message
			}
		}
		if t := cs.State.Terminated; t != nil {
			return fmt.Sprintf("its container exited (%s, code %d)", t.Reason, t.ExitCode)
		}
	}
	return ""
}

// roll runs the traffic, the rollout and the diagnosis.
func (r *run) roll(ctx context.Context) (*Report, error) {
	o := r.opts
	start := time.Now()
	r.rep = &Report{Schema: SchemaVersion, Workload: r.w.String(), Namespace: o.Namespace, Service: r.svc.Name,
		Target: net.JoinHostPort(r.svc.Spec.ClusterIP, strconv.Itoa(int(r.port.Port))), Mode: o.Mode, Rate: o.Rate,
		Budget: o.Budget, ProbePeriod: o.ProbePeriod, Start: start}
	r.rep.Warnings = append(r.rep.Warnings, r.warnings...)
	for _, a := range r.agents {
		r.rep.Agents = append(r.rep.Agents, AgentInfo{Index: a.index, Node: a.node, Pod: a.pod, ClockOffset: a.offset, ClockBound: a.bound})
		if a.bound > o.ProbePeriod/2 {
			r.rep.Warnings = append(r.rep.Warnings, fmt.Sprintf("the clock of the agent on %s is known within %s only, more than half the probe period (%s): the order of its looks and of nearby failures is uncertain",
				a.node, a.bound.Round(time.Microsecond), o.ProbePeriod))
		}
	}
	// Watches first, so the pods' state before the rollout is known.
	wctx, stopWatch := context.WithCancel(ctx)
	r.watcher = newWatcher(r.cs, o.Namespace, r.w.selector.String(), r.svc.Name, r.port, ipFamily(r.svc.Spec.ClusterIP), r.w.annotations, r.tl)
	watchErrs := make(chan error, 16)
	var wg sync.WaitGroup
	wg.Add(2)
	go func() { defer wg.Done(); r.watcher.run(wctx, watchErrs) }()
	go func() { defer wg.Done(); r.pushTargets(wctx) }()
	// Stop the watches before waiting for them, on every path.
	defer func() { stopWatch(); wg.Wait() }()

	maxRun := o.maxRun()
	per := o.Rate / float64(len(r.agents))
	for _, a := range r.agents {
		err := a.client.Start(ctx, agent.StartConfig{Target: r.rep.Target, Mode: o.Mode, Rate: per, MaxDuration: maxRun,
			Node: a.index, Host: r.svc.Name, Path: "/", ProbePeriod: o.ProbePeriod, Conntrack: o.PrivilegedAgents})
		if err != nil {
			return nil, fmt.Errorf("starting traffic: %w", err)
		}
	}
	r.opts.progress("traffic: %g requests/s to %s (%s) from %d nodes; warming up for %s", o.Rate, r.rep.Target, r.svc.Name, len(r.agents), o.Warmup)
	if err := r.warm(ctx); err != nil {
		_ = r.collect(context.Background())
		return nil, err
	}
	rollErr := r.trigger(ctx)
	if rollErr == nil {
		r.opts.progress("rolled out in %s", r.rep.RolledOut.Sub(r.rep.Triggered).Round(100*time.Millisecond))
		r.waitOldPods(ctx, r.rep.Triggered.Add(o.Timeout))
		r.opts.progress("settling for %s", o.Settle)
		select {
		case <-ctx.Done():
		case <-time.After(o.Settle):
		}
	}
	r.opts.progress("stopping traffic and collecting every record")
	if err := r.collect(context.Background()); err != nil && rollErr == nil {
		rollErr = err
	}
	stopWatch()
	wg.Wait()
	close(watchErrs)
	seen := map[string]bool{}
	for err := range watchErrs {
		if !seen[err.Error()] {
			seen[err.Error()] = true
			r.rep.Warnings = append(r.rep.Warnings, "the timeline may have gaps: "+err.Error())
		}
	}
	r.rep.Partial = ctx.Err() != nil || rollErr != nil
	r.diagnose()
	if ctx.Err() != nil {
		return r.rep, ctx.Err()
	}
	return r.rep, rollErr
}

// waitOldPods waits until every pod the watch saw deleted has exited: a
// workload counts as rolled out while its old pods still terminate, and
// Case 1 happens as they stop listening. It gives up at the deadline,
// saying so in the report.
func (r *run) waitOldPods(ctx context.Context, deadline time.Time) {
	for {
		n := r.watcher.terminating()
		if n == 0 {
			return
		}
		if time.Now().After(deadline) {
			r.rep.Warnings = append(r.rep.Warnings, fmt.Sprintf("%d old pods were still terminating when traffic stopped (--timeout): failures after that are not counted", n))
			return
		}
		r.opts.progress("waiting for %d old pods to exit", n)
		select {
		case <-ctx.Done():
			return
		case <-time.After(500 * time.Millisecond):
		}
	}
}

// pushTargets keeps the agents' probers looking at every pod's address.
func (r *run) pushTargets(ctx context.Context) {
	for {
		select {
		case <-ctx.Done():
			return
		case <-r.watcher.changed:
		}
		ts := r.watcher.targets()
		var wg sync.WaitGroup
		for _, a := range r.agents {
			wg.Go(func() {
				pctx, cancel := context.WithTimeout(ctx, 5*time.Second)
				_ = a.client.Probe(pctx, ts) // a lost update is made good by the next one
				cancel()
			})
		}
		wg.Wait()
	}
}

// warm lets traffic run for the warm-up and requires it to be clean: a
// target that fails before the rollout proves nothing about the rollout.
func (r *run) warm(ctx context.Context) error {
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-time.After(r.opts.Warmup):
	}
	for _, a := range r.agents {
		p, err := a.client.Progress(ctx)
		if err != nil {
			return fmt.Errorf("reading the warm-up's progress: %w", err)
		}
		if p.Failed > 0 || p.Sent == 0 {
			return &InputError{fmt.Errorf("the Service fails before the rollout: from node %s, %d of %d requests to %s failed (%s) during the %s warm-up; fix the Service (or pick the right --port) first",
				a.node, p.Failed, p.Sent, r.rep.Target, classes(p.ByClass), r.opts.Warmup)}
		}
	}
	return nil
}

func classes[K ~string](m map[K]int) string {
	var parts []string
	for c, n := range m {
		if string(c) != string(traffic.OK) && n > 0 {
			parts = append(parts, fmt.Sprintf("%d %s", n, c))
		}
	}
	sort.Strings(parts)
	if len(parts) == 0 {
		return "none failed"
	}
	return strings.Join(parts, ", ")
}

// trigger starts the rollout (or waits for one) and waits for it to
// complete, judged as `kubectl rollout status` judges it.
func (r *run) trigger(ctx context.Context) error {
	o := r.opts
	st, err := r.rolloutState(ctx)
	if err != nil {
		return err
	}
	if st.unrollable != "" {
		return &InputError{fmt.Errorf("%s %s", r.w, st.unrollable)}
	}
	var patch string
	switch {
	case o.Trigger == "restart":
		patch = fmt.Sprintf(`{"spec":{"template":{"metadata":{"annotations":{"kubectl.kubernetes.io/restartedAt":%q}}}}}`, time.Now().Format(time.RFC3339))
	case strings.HasPrefix(o.Trigger, "image="):
		c, img, _ := strings.Cut(strings.TrimPrefix(o.Trigger, "image="), "=")
		found := false
		for _, k := range r.w.template.Spec.Containers {
			found = found || k.Name == c
		}
		if !found {
			return &InputError{fmt.Errorf("--trigger: %s has no container %q", r.w, c)}
		}
		patch = fmt.Sprintf(`{"spec":{"template":{"spec":{"containers":[{"name":%q,"image":%q}]}}}}`, c, img)
	}
	began := time.Now()
	deadline := began.Add(o.Timeout)
	started := false
	switch {
	case patch != "":
		if _, err := r.patch(ctx, patch); err != nil {
			return err
		}
		started = true
		r.rep.Triggered = began
		r.opts.progress("triggered: %s %s", o.Trigger, r.w)
	case !st.done:
		// kubectl apply came first: the rollout is already going.
		started = true
		r.rep.Triggered = began
		r.opts.progress("a rollout of %s is in progress: following it", r.w)
	default:
		r.opts.progress("waiting up to %s for the next rollout of %s", o.Timeout, r.w)
	}
	template := st.template
	for {
		st, err := r.rolloutState(ctx)
		if err != nil {
			return err
		}
		// Only a new pod template is a rollout: a scale or a label on
		// the workload itself moves its generation too.
		if !started && st.template != template {
			started = true
			r.rep.Triggered = time.Now()
			r.opts.progress("a rollout of %s began", r.w)
		}
		switch {
		case started && st.done:
			r.rep.RolledOut = time.Now()
			return nil
		case started && st.stuck != "":
			return &StuckError{fmt.Errorf("%s is not rolling out: %s", r.w, st.stuck)}
		case time.Now().After(deadline) && !started:
			return &InputError{fmt.Errorf("no rollout of %s began within --timeout %s", r.w, o.Timeout)}
		case time.Now().After(deadline):
			return &StuckError{fmt.Errorf("%s did not finish rolling out within --timeout %s: %s%s", r.w, o.Timeout, st.why, r.unready(ctx))}
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(250 * time.Millisecond):
		}
	}
}

// StuckError is a rollout that did not complete in time.
type StuckError struct{ Err error }

func (e *StuckError) Error() string { return e.Err.Error() }
func (e *StuckError) Unwrap() error { return e.Err }

func (r *run) patch(ctx context.Context, patch string) (int64, error) {
	ns, name := r.opts.Namespace, r.w.name
	var gen int64
	var err error
	switch r.w.kind {
	case Deployment:
		var d *appsv1.Deployment
		if d, err = r.cs.AppsV1().Deployments(ns).Patch(ctx, name, types.StrategicMergePatchType, []byte(patch), metav1.PatchOptions{}); err == nil {
			gen = d.Generation
		}
	case StatefulSet:
		var s *appsv1.StatefulSet
		if s, err = r.cs.AppsV1().StatefulSets(ns).Patch(ctx, name, types.StrategicMergePatchType, []byte(patch), metav1.PatchOptions{}); err == nil {
			gen = s.Generation
		}
	case DaemonSet:
		var d *appsv1.DaemonSet
		if d, err = r.cs.AppsV1().DaemonSets(ns).Patch(ctx, name, types.StrategicMergePatchType, []byte(patch), metav1.PatchOptions{}); err == nil {
			gen = d.Generation
		}
	}
	if err != nil {
		return 0, apiError(err, "patch "+string(r.w.kind)+"s", ns)
	}
	return gen, nil
}

type rolloutState struct {
	done       bool
	template   string // the pod template, as JSON: it changes exactly when a rollout begins
	why        string // what is not done yet
	stuck      string // the controller gave up (a Deployment past its progress deadline)
	unrollable string // why no rollout can be started or awaited
}

// rolloutState reads the workload's status with the logic of kubectl's
// rollout status (k8s.io/kubectl/pkg/polymorphichelpers/rollout_status.go).
func (r *run) rolloutState(ctx context.Context) (rolloutState, error) {
	ns, name := r.opts.Namespace, r.w.name
	var st rolloutState
	var err error
	var tmpl corev1.PodTemplateSpec
	switch r.w.kind {
	case Deployment:
		var d *appsv1.Deployment
		if d, err = r.cs.AppsV1().Deployments(ns).Get(ctx, name, metav1.GetOptions{}); err != nil {
			break
		}
		tmpl = d.Spec.Template
		want := int32(1)
		if d.Spec.Replicas != nil {
			want = *d.Spec.Replicas
		}
		s := d.Status
		if d.Spec.Paused {
			st.unrollable = "is paused: resume it first (kubectl rollout resume)"
		}
		st.why = fmt.Sprintf("%d of %d replicas updated, %d available, %d in all", s.UpdatedReplicas, want, s.AvailableReplicas, s.Replicas)
		if d.Generation <= s.ObservedGeneration {
			for _, c := range s.Conditions {
				if c.Type == appsv1.DeploymentProgressing && c.Reason == "ProgressDeadlineExceeded" {
					st.stuck = c.Message
				}
			}
			st.done = s.UpdatedReplicas >= want && s.Replicas <= s.UpdatedReplicas && s.AvailableReplicas >= s.UpdatedReplicas
		}
	case StatefulSet:
		var s *appsv1.StatefulSet
		if s, err = r.cs.AppsV1().StatefulSets(ns).Get(ctx, name, metav1.GetOptions{}); err != nil {
			break
		}
		tmpl = s.Spec.Template
		want := int32(1)
		if s.Spec.Replicas != nil {
			want = *s.Spec.Replicas
		}
		ss := s.Status
		if s.Spec.UpdateStrategy.Type == appsv1.OnDeleteStatefulSetStrategyType {
			st.unrollable = "uses the OnDelete update strategy: its pods change only when deleted by hand, so there is no rollout to watch"
		}
		st.why = fmt.Sprintf("%d of %d replicas updated, %d ready", ss.UpdatedReplicas, want, ss.ReadyReplicas)
		if ss.ObservedGeneration != 0 && s.Generation <= ss.ObservedGeneration && ss.ReadyReplicas >= want {
			if ru := s.Spec.UpdateStrategy.RollingUpdate; ru != nil && ru.Partition != nil && *ru.Partition > 0 {
				st.done = ss.UpdatedReplicas >= want-*ru.Partition // a partitioned rollout ends at the partition
			} else {
				st.done = ss.UpdateRevision == ss.CurrentRevision
			}
		}
	case DaemonSet:
		var d *appsv1.DaemonSet
		if d, err = r.cs.AppsV1().DaemonSets(ns).Get(ctx, name, metav1.GetOptions{}); err != nil {
			break
		}
		tmpl = d.Spec.Template
		ds := d.Status
		if d.Spec.UpdateStrategy.Type == appsv1.OnDeleteDaemonSetStrategyType {
			st.unrollable = "uses the OnDelete update strategy: its pods change only when deleted by hand, so there is no rollout to watch"
		}
		st.why = fmt.Sprintf("%d of %d pods updated, %d available", ds.UpdatedNumberScheduled, ds.DesiredNumberScheduled, ds.NumberAvailable)
		st.done = d.Generation <= ds.ObservedGeneration && ds.UpdatedNumberScheduled >= ds.DesiredNumberScheduled && ds.NumberAvailable >= ds.DesiredNumberScheduled
	}
	if err != nil {
		return st, apiError(err, "get "+string(r.w.kind)+"s", ns)
	}
	js, _ := json.Marshal(tmpl)
	st.template = string(js)
	return st, nil
}

// unready names the workload's pods that are not ready, and why, for a
// stuck rollout's message.
func (r *run) unready(ctx context.Context) string {
	l, err := r.cs.CoreV1().Pods(r.opts.Namespace).List(ctx, metav1.ListOptions{LabelSelector: r.w.selector.String()})
	if err != nil {
		return ""
	}
	var parts []string
	for _, p := range l.Items {
		if podReady(&p) || p.DeletionTimestamp != nil {
			continue
		}
		why := string(p.Status.Phase)
		for _, cs := range p.Status.ContainerStatuses {
			if cs.State.Waiting != nil && cs.State.Waiting.Reason != "" {
				why = cs.State.Waiting.Reason
			}
		}
		parts = append(parts, p.Name+" ("+why+")")
	}
	if len(parts) == 0 {
		return ""
	}
	sort.Strings(parts)
	return "; not ready: " + strings.Join(parts, ", ")
}

// collect stops every agent and gathers its records and prober events,
// in verify's clock.
func (r *run) collect(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, 60*time.Second)
	defer cancel()
	var errs []error
	sum := traffic.NewSummary()
	for _, a := range r.agents {
		if err := a.client.Stop(ctx); err != nil {
			errs = append(errs, fmt.Errorf("stopping traffic: %w", err))
			continue
		}
		recs, evs, err := a.client.Records(ctx)
		if err != nil {
			errs = append(errs, fmt.Errorf("collecting records: %w", err))
			continue
		}
		// Each agent numbers its own requests: interleave the numbers so
		// that a request's number names it across agents.
		global := func(seq int64) int64 { return seq*int64(len(r.agents)) + int64(a.index) }
		for _, rec := range recs {
			rec.Intended = rec.Intended.Add(-a.offset)
			rec.Start = rec.Start.Add(-a.offset)
			rec.Node = a.index
			rec.Seq = global(rec.Seq)
			sum.Add(rec)
			r.rep.latencies = append(r.rep.latencies, rec.Latency)
			if rec.Class != traffic.OK {
				r.rep.Failures = append(r.rep.Failures, rec)
			}
		}
		tracked, failed := 0, 0
		for _, rec := range recs {
			if rec.Class != traffic.OK {
				failed++
			}
		}
		for _, e := range evs {
			e.At = e.At.Add(-a.offset)
			if !e.Since.IsZero() {
				e.Since = e.Since.Add(-a.offset)
			}
			e.Node = a.index
			if e.Kind == timeline.ConnTracked {
				// The agent knows the pod's address; the watch, its name.
				tracked++
				e.Pod = r.watcher.podAt(e.Pod, e.At)
				e.Seq = global(e.Seq)
			}
			r.tl.Add(e)
		}
		if r.opts.PrivilegedAgents && tracked == 0 && len(recs) > 0 {
			r.rep.Warnings = append(r.rep.Warnings, fmt.Sprintf("the agent on %s matched none of its %d requests (%d failed) to a pod through conntrack (see its log: kubectl logs %s)",
				a.node, len(recs), failed, a.pod))
		}
	}
	r.rep.summary = sum
	return errors.Join(errs...)
}

// Cleanup removes what verify runs created in a namespace: the run's, or
// with an empty id every run's (`rollguard verify --cleanup`), and waits
// until they are gone.
func Cleanup(ctx context.Context, cs kubernetes.Interface, ns, id string) error {
	sel := ManagedByLabel + "=" + ManagedBy
	if id != "" {
		sel += "," + RunLabel + "=" + id
	}
	// The agents' own grace period, not a forced delete: that would drop
	// the API object while its container still ran.
	pods := cs.CoreV1().Pods(ns)
	err := pods.DeleteCollection(ctx, metav1.DeleteOptions{}, metav1.ListOptions{LabelSelector: sel})
	if err != nil && !apierrors.IsNotFound(err) {
		return apiError(err, "deletecollection pods", ns)
	}
	for {
		l, err := pods.List(ctx, metav1.ListOptions{LabelSelector: sel})
		if err != nil {
			return apiError(err, "list pods", ns)
		}
		if len(l.Items) == 0 {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("%d agent pods still present in namespace %s: %w", len(l.Items), ns, ctx.Err())
		case <-time.After(250 * time.Millisecond):
		}
	}
}
