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
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"

	"github.com/rollguard/rollguard/pkg/agent"
	"github.com/rollguard/rollguard/pkg/fleet"
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
	agents  []*fleet.Agent
	tl      *timeline.Timeline
	watcher *watcher
	rep     *Report
	// warnings found before the report exists
	warnings []string
}

// Run verifies one rollout. The report is returned whenever traffic ran,
// also with an error (a stuck rollout, an interrupted run: Partial is
// set). Everything the run created is removed before it returns.
func Run(ctx context.Context, opts Options) (rep *Report, err error) {
	if err := opts.validate(); err != nil {
		return nil, &InputError{Err: err}
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
		return nil, &InputError{Err: fmt.Errorf("service %s is headless: callers reach pods through DNS, not kube-proxy; verify needs a ClusterIP Service", r.svc.Name)}
	}
	if r.port, err = servicePort(r.svc, opts.Port); err != nil {
		return nil, err
	}
	nodes, err := roles.ReadyNodes(ctx, cs, opts.Nodes)
	if err != nil {
		return nil, err
	}
	if per, maxRun := opts.Rate/float64(len(nodes)), opts.maxRun(); per*maxRun.Seconds() > agent.MaxRecords {
		return nil, &InputError{Err: fmt.Errorf("%g requests/s from each of %d agents for up to %s is more than the %d records an agent keeps: lower --rate or --timeout",
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

// agentSpec is the agent pod for one node. It lives as long as the
// whole run can take, with minutes to spare.
func (r *run) agentSpec(i int, node string) *corev1.Pod {
	return fleet.AgentPod(fleet.AgentSpec{
		Name:      fmt.Sprintf("rollguard-verify-%s-%d", r.id, i),
		Namespace: r.opts.Namespace,
		Labels:    map[string]string{RunLabel: r.id, ManagedByLabel: ManagedBy},
		Node:      node, Image: r.opts.Image, Privileged: r.opts.PrivilegedAgents,
		Life: r.opts.AgentTimeout + r.opts.Warmup + r.opts.Timeout + r.opts.Settle + 5*time.Minute,
	})
}

// startAgents creates one agent per node and waits until each is ready
// and its clock offset is known.
func (r *run) startAgents(ctx context.Context, nodes []string) error {
	pods := make([]*corev1.Pod, len(nodes))
	for i, n := range nodes {
		pods[i] = r.agentSpec(i, n)
	}
	st := &fleet.Starter{Roles: roles, CS: r.cs, Config: r.opts.Config, HTTP: r.http, Namespace: r.opts.Namespace,
		Selector: RunLabel + "=" + r.id, Strict: len(r.opts.Nodes) > 0, Timeout: r.opts.AgentTimeout, Image: r.opts.Image,
		Progress: r.opts.Progress}
	agents, warnings, err := st.Start(ctx, pods)
	r.agents = agents
	r.warnings = append(r.warnings, warnings...)
	return err
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
		r.rep.Agents = append(r.rep.Agents, AgentInfo{Index: a.Index, Node: a.Node, Pod: a.Pod, ClockOffset: a.Offset, ClockBound: a.Bound})
		if a.Bound > o.ProbePeriod/2 {
			r.rep.Warnings = append(r.rep.Warnings, fmt.Sprintf("the clock of the agent on %s is known within %s only, more than half the probe period (%s): the order of its looks and of nearby failures is uncertain",
				a.Node, a.Bound.Round(time.Microsecond), o.ProbePeriod))
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
		err := a.Client.Start(ctx, agent.StartConfig{Target: r.rep.Target, Mode: o.Mode, Rate: per, MaxDuration: maxRun,
			Node: a.Index, Host: r.svc.Name, Path: "/", ProbePeriod: o.ProbePeriod, Conntrack: o.PrivilegedAgents})
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
				_ = a.Client.Probe(pctx, ts) // a lost update is made good by the next one
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
		p, err := a.Client.Progress(ctx)
		if err != nil {
			return fmt.Errorf("reading the warm-up's progress: %w", err)
		}
		if p.Failed > 0 || p.Sent == 0 {
			return &InputError{Err: fmt.Errorf("the Service fails before the rollout: from node %s, %d of %d requests to %s failed (%s) during the %s warm-up; fix the Service (or pick the right --port) first",
				a.Node, p.Failed, p.Sent, r.rep.Target, classes(p.ByClass), r.opts.Warmup)}
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
		return &InputError{Err: fmt.Errorf("%s %s", r.w, st.unrollable)}
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
			return &InputError{Err: fmt.Errorf("--trigger: %s has no container %q", r.w, c)}
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
			return &InputError{Err: fmt.Errorf("no rollout of %s began within --timeout %s", r.w, o.Timeout)}
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
		if fleet.PodReady(&p) || p.DeletionTimestamp != nil {
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
		if err := a.Client.Stop(ctx); err != nil {
			errs = append(errs, fmt.Errorf("stopping traffic: %w", err))
			continue
		}
		recs, evs, err := a.Client.Records(ctx)
		if err != nil {
			errs = append(errs, fmt.Errorf("collecting records: %w", err))
			continue
		}
		// Each agent numbers its own requests: interleave the numbers so
		// that a request's number names it across agents.
		global := func(seq int64) int64 { return seq*int64(len(r.agents)) + int64(a.Index) }
		for _, rec := range recs {
			rec.Intended = rec.Intended.Add(-a.Offset)
			rec.Start = rec.Start.Add(-a.Offset)
			rec.Node = a.Index
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
			e.At = e.At.Add(-a.Offset)
			if !e.Since.IsZero() {
				e.Since = e.Since.Add(-a.Offset)
			}
			e.Node = a.Index
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
				a.Node, len(recs), failed, a.Pod))
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
	return roles.DeletePods(ctx, cs, ns, sel)
}
