// Package measure implements `rollguard measure`: how long a cluster's
// nodes take to apply an endpoint change, measured rather than guessed,
// and the preStop delay that covers it.
//
// It deploys, in a namespace of its own, a canary Deployment behind a
// Service and one prober agent per node. Each prober sends new
// connections to the Service's ClusterIP through its node's kube-proxy,
// each request naming its node. measure deletes one canary pod at a time:
// the canary's preStop hook (an httpGet to itself) notes when it began
// and keeps the pod serving, so the last request from each node after it,
// minus its start, is how long that node took to stop routing to a pod
// whose preStop has begun: the delay a preStop must cover. The ReplicaSet
// replaces the pod; from the new pod's first readiness answer to the first
// request from each node is how long that node took to route to a new
// pod. Both differences are read in one pod's clock.
package measure

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"sort"
	"strconv"
	"strings"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"

	"github.com/rollguard/rollguard/pkg/agent"
	"github.com/rollguard/rollguard/pkg/fleet"
	"github.com/rollguard/rollguard/pkg/traffic"
)

// Labels on everything measure creates.
const (
	RunLabel       = "rollguard.io/measure-run"
	RoleLabel      = "rollguard.io/measure-role"
	ManagedByLabel = "app.kubernetes.io/managed-by"
	ManagedBy      = "rollguard-measure"
	// ServiceName is the canaries' Service; the Deployment is
	// ServiceName-RUN.
	ServiceName = "rollguard-canary"
)

// Options describe a run.
type Options struct {
	Config    *rest.Config
	Namespace string
	// KeepNamespace uses Namespace, which must exist, and leaves it in
	// place; without it, measure creates Namespace, which must not exist,
	// and deletes it at the end. Only a namespace measure created carries
	// its labels, so only such a one is ever deleted.
	KeepNamespace bool
	Image         string
	// Nodes to probe from; empty means every ready node.
	Nodes []string
	// Samples is how many canary pods are deleted, one at a time.
	Samples int
	// Rate is requests per second from each node.
	Rate float64
	// Canaries is the canary Deployment's replicas: at least 2, so a
	// deleted canary is never the Service's last ready endpoint (kube-proxy
	// then falls back to terminating ones).
	Canaries int
	// Hold is the longest propagation measurable: how long a deleted
	// canary keeps serving, waiting for every node to stop.
	Hold time.Duration
	// Jitter: before each deletion measure waits a random time up to it,
	// so deletions fall at every phase of kube-proxy's sync loop.
	Jitter time.Duration
	// Timeout bounds the whole run; AgentTimeout the pods' start.
	Timeout, AgentTimeout time.Duration
	// Rand draws the jitter; a random source when nil.
	Rand *rand.Rand
	// Progress, when set, receives a line at each step.
	Progress func(format string, args ...any)
}

func (o *Options) progress(format string, args ...any) {
	if o.Progress != nil {
		o.Progress(format, args...)
	}
}

func (o *Options) validate() error {
	switch {
	case o.Namespace == "":
		return errors.New("no namespace: pass -n")
	case o.Image == "":
		return errors.New("--image is empty")
	case o.Samples < 1 || o.Samples > 1000:
		return fmt.Errorf("--samples %d: want 1 to 1000", o.Samples)
	case o.Rate < 10 || o.Rate > traffic.MaxRate:
		return fmt.Errorf("--rate %g: want 10 to %g requests per second from each node (the rate sets the resolution)", o.Rate, traffic.MaxRate)
	case o.Canaries < 2 || o.Canaries > 20:
		return fmt.Errorf("--canaries %d: want 2 to 20 (with one, a deleted canary is the last endpoint, and kube-proxy keeps using it)", o.Canaries)
	case o.Hold < 5*time.Second || o.Hold > 10*time.Minute:
		return fmt.Errorf("--max-propagation %s: want 5s to 10m", o.Hold)
	case o.Jitter < 0:
		return fmt.Errorf("--jitter %s: want 0 or more", o.Jitter)
	case o.Timeout <= 0 || o.Timeout+time.Minute > traffic.MaxDuration:
		return fmt.Errorf("--timeout %s: want more than 0 and at most %s", o.Timeout, traffic.MaxDuration-time.Minute)
	case o.Rate*(o.Timeout+time.Minute).Seconds() > agent.MaxRecords:
		return fmt.Errorf("%g requests/s from each node for up to %s is more than the %d records an agent keeps: lower --rate or --timeout", o.Rate, o.Timeout, agent.MaxRecords)
	}
	if o.AgentTimeout <= 0 {
		o.AgentTimeout = 2 * time.Minute
	}
	if o.Rand == nil {
		o.Rand = rand.New(rand.NewPCG(rand.Uint64(), rand.Uint64()))
	}
	return nil
}

// run is one measure run's state.
type run struct {
	opts   Options
	cs     kubernetes.Interface
	http   *http.Client
	id     string
	sel    string // selects everything of this run
	svc    *corev1.Service
	agents []*fleet.Agent
	rep    *Report
	nodes  []string // the probing nodes, by agent index
	// warmup is each prober's progress when the warm-up ended.
	warmup map[string]agent.Progress
}

// Run measures. The report is returned whenever a prober ran, also with
// an error (an interrupted or timed-out run: Partial is set). Everything
// the run created is removed before it returns.
func Run(ctx context.Context, opts Options) (rep *Report, err error) {
	if err := opts.validate(); err != nil {
		return nil, &InputError{Err: err}
	}
	cfg := rest.CopyConfig(opts.Config)
	cfg.QPS, cfg.Burst = 50, 100 // a poll of every canary each 200ms, and the preflight's reviews
	opts.Config = cfg
	cs, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		return nil, err
	}
	hc, err := rest.HTTPClientFor(cfg)
	if err != nil {
		return nil, err
	}
	r := &run{opts: opts, cs: cs, http: hc, id: newRunID()}
	r.sel = RunLabel + "=" + r.id
	ctx, cancel := context.WithTimeoutCause(ctx, opts.Timeout, errTimeout)
	defer cancel()
	if err := Preflight(ctx, cs, opts.Namespace, opts.KeepNamespace); err != nil {
		return nil, err
	}
	nodes, err := roles.ReadyNodes(ctx, cs, opts.Nodes)
	if err != nil {
		return nil, err
	}
	created, err := r.namespace(ctx)
	if err != nil {
		return nil, err
	}
	defer func() {
		cctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
		defer cancel()
		if cerr := r.cleanup(cctx, created); cerr != nil {
			err = errors.Join(err, fmt.Errorf("removing what measure created: %w (rollguard measure --cleanup -n %s removes what is left)", cerr, opts.Namespace))
		}
	}()
	r.rep = &Report{Schema: SchemaVersion, Namespace: opts.Namespace, Rate: opts.Rate, Canaries: opts.Canaries,
		Requested: opts.Samples, Hold: opts.Hold, Start: time.Now()}
	if err := r.deploy(ctx, nodes); err != nil {
		return nil, timedOut(ctx, err)
	}
	err = r.sample(ctx)
	r.stop()
	r.rep.finish()
	if err != nil || ctx.Err() != nil {
		r.rep.Partial = true
		return r.rep, timedOut(ctx, err)
	}
	return r.rep, nil
}

// errTimeout is the cause of the run's context when --timeout is over.
var errTimeout = errors.New("the run took longer than --timeout")

// timedOut turns the run's own deadline into an InputError saying so; an
// interruption from outside stays context.Canceled.
func timedOut(ctx context.Context, err error) error {
	if errors.Is(context.Cause(ctx), errTimeout) {
		if err == nil || errors.Is(err, context.DeadlineExceeded) || errors.Is(err, context.Canceled) {
			return &InputError{Err: fmt.Errorf("%w: the figures are partial (raise --timeout, or lower --samples)", errTimeout)}
		}
	}
	if err == nil {
		return ctx.Err()
	}
	return err
}

func newRunID() string { return strconv.FormatUint(rand.Uint64()%(1<<32), 16) }

// namespace makes sure the run's namespace is there, and says whether
// measure created it (and so deletes it).
func (r *run) namespace(ctx context.Context) (created bool, err error) {
	o := r.opts
	ns, err := r.cs.CoreV1().Namespaces().Get(ctx, o.Namespace, metav1.GetOptions{})
	switch {
	case err == nil && !o.KeepNamespace && ns.Labels[ManagedByLabel] == ManagedBy:
		return false, &InputError{Err: fmt.Errorf("namespace %s is left from a measure run that did not finish: rollguard measure --cleanup -n %s removes it", o.Namespace, o.Namespace)}
	case err == nil && !o.KeepNamespace:
		return false, &InputError{Err: fmt.Errorf("namespace %s exists: measure creates a namespace of its own and deletes it at the end; name a new one with -n, or pass --keep-namespace to use this one and leave it in place", o.Namespace)}
	case err == nil:
		return false, nil
	case !apierrors.IsNotFound(err):
		return false, roles.APIError(err, "get namespaces", "")
	case o.KeepNamespace:
		return false, &InputError{Err: fmt.Errorf("namespace %s does not exist: --keep-namespace measures in an existing namespace and leaves it; create it first, or drop --keep-namespace to let measure create and delete one", o.Namespace)}
	}
	ns = &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: o.Namespace, Labels: map[string]string{ManagedByLabel: ManagedBy, RunLabel: r.id}}}
	if _, err := r.cs.CoreV1().Namespaces().Create(ctx, ns, metav1.CreateOptions{}); err != nil {
		return false, roles.APIError(err, "create namespaces", "")
	}
	return true, nil
}

func (r *run) labels(role string) map[string]string {
	return map[string]string{RunLabel: r.id, ManagedByLabel: ManagedBy, RoleLabel: role}
}

// canaryDeployment is the canaries: the rollguard image's canary server,
// ready at once, whose preStop hook holds it serving.
func (r *run) canaryDeployment() *appsv1.Deployment {
	o := r.opts
	replicas := int32(o.Canaries)
	grace := int64((o.Hold + 15*time.Second).Seconds())
	no := false
	podSC, sc := fleet.Restricted()
	port := intstr.FromInt32(CanaryPort)
	return &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Name: ServiceName + "-" + r.id, Namespace: o.Namespace, Labels: r.labels("canary")},
		Spec: appsv1.DeploymentSpec{
			Replicas: &replicas,
			Selector: &metav1.LabelSelector{MatchLabels: r.labels("canary")},
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: r.labels("canary")},
				Spec: corev1.PodSpec{
					TerminationGracePeriodSeconds: &grace,
					AutomountServiceAccountToken:  &no,
					SecurityContext:               podSC,
					Containers: []corev1.Container{{
						Name: "canary", Image: o.Image, ImagePullPolicy: corev1.PullIfNotPresent,
						Args:            []string{"canary", "--listen", ":" + strconv.Itoa(CanaryPort), "--hold", o.Hold.String()},
						Ports:           []corev1.ContainerPort{{Name: "http", ContainerPort: CanaryPort}},
						SecurityContext: sc,
						Resources:       fleet.Guaranteed("100m", "64Mi"),
						ReadinessProbe: &corev1.Probe{ProbeHandler: corev1.ProbeHandler{HTTPGet: &corev1.HTTPGetAction{Path: "/readyz", Port: port}},
							PeriodSeconds: 1, FailureThreshold: 1},
						Lifecycle: &corev1.Lifecycle{PreStop: &corev1.LifecycleHandler{HTTPGet: &corev1.HTTPGetAction{Path: "/prestop", Port: port}}},
					}},
				},
			},
		},
	}
}

// deploy creates the Service, the canaries and the probers, waits for
// them, and starts the probers' traffic once every canary is ready.
func (r *run) deploy(ctx context.Context, nodes []string) error {
	o := r.opts
	svc := &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Name: ServiceName, Namespace: o.Namespace, Labels: r.labels("canary")},
		Spec: corev1.ServiceSpec{Selector: r.labels("canary"),
			Ports: []corev1.ServicePort{{Name: "http", Port: 80, TargetPort: intstr.FromString("http")}}},
	}
	var err error
	if r.svc, err = r.cs.CoreV1().Services(o.Namespace).Create(ctx, svc, metav1.CreateOptions{}); err != nil {
		return roles.APIError(err, "create services", o.Namespace)
	}
	if r.svc.Spec.ClusterIP == "" || r.svc.Spec.ClusterIP == corev1.ClusterIPNone {
		return fmt.Errorf("service %s got no ClusterIP", ServiceName)
	}
	if _, err := r.cs.AppsV1().Deployments(o.Namespace).Create(ctx, r.canaryDeployment(), metav1.CreateOptions{}); err != nil {
		return roles.APIError(err, "create deployments", o.Namespace)
	}
	pods := make([]*corev1.Pod, len(nodes))
	for i, n := range nodes {
		pods[i] = fleet.AgentPod(fleet.AgentSpec{Name: fmt.Sprintf("rollguard-measure-%s-%d", r.id, i), Namespace: o.Namespace,
			Labels: r.labels("prober"), Node: n, Image: o.Image, Life: o.AgentTimeout + o.Timeout + 2*time.Minute})
	}
	st := &fleet.Starter{Roles: roles, CS: r.cs, Config: o.Config, HTTP: r.http, Namespace: o.Namespace,
		Selector: r.sel + "," + RoleLabel + "=prober", Strict: len(o.Nodes) > 0, Timeout: o.AgentTimeout, Image: o.Image, Progress: o.Progress}
	agents, warnings, err := st.Start(ctx, pods)
	r.agents = agents
	r.rep.Warnings = append(r.rep.Warnings, warnings...)
	if err != nil {
		return r.explainRejection(ctx, err)
	}
	for _, a := range agents {
		r.nodes = append(r.nodes, a.Node)
	}
	r.rep.Nodes = r.nodes
	o.progress("probers ready on %s; waiting for %d canaries", strings.Join(r.nodes, ", "), o.Canaries)
	if _, err := r.waitCanaries(ctx, nil, o.Canaries, o.AgentTimeout); err != nil {
		return err
	}
	target := net.JoinHostPort(r.svc.Spec.ClusterIP, "80")
	r.rep.Target = target
	for _, a := range agents {
		err := a.Client.Start(ctx, agent.StartConfig{Target: target, Mode: traffic.ModeHTTP, Rate: o.Rate,
			MaxDuration: o.Timeout + time.Minute, Node: a.Index, Host: ServiceName, Path: "/m/" + a.Node})
		if err != nil {
			return fmt.Errorf("starting the probers: %w", err)
		}
	}
	o.progress("probing %s from %d nodes at %g requests/s each", target, len(agents), o.Rate)
	return nil
}

// explainRejection adds, to an admission denial of rollguard's pods, the
// namespace's LimitRanges and PodSecurity labels: the usual reasons.
func (r *run) explainRejection(ctx context.Context, err error) error {
	if !apierrors.IsForbidden(err) {
		return err
	}
	return &InputError{Err: fmt.Errorf("%w%s", err, r.namespaceRules(ctx))}
}

// namespaceRules names what in the namespace may reject pods: its
// LimitRanges and its PodSecurity level.
func (r *run) namespaceRules(ctx context.Context) string {
	var parts []string
	if l, err := r.cs.CoreV1().LimitRanges(r.opts.Namespace).List(ctx, metav1.ListOptions{}); err == nil {
		for _, lr := range l.Items {
			parts = append(parts, "LimitRange "+lr.Name)
		}
	}
	if ns, err := r.cs.CoreV1().Namespaces().Get(ctx, r.opts.Namespace, metav1.GetOptions{}); err == nil {
		if lvl := ns.Labels["pod-security.kubernetes.io/enforce"]; lvl != "" {
			parts = append(parts, "PodSecurity level "+lvl+" (label pod-security.kubernetes.io/enforce)")
		}
	}
	if len(parts) == 0 {
		return ""
	}
	return fmt.Sprintf("; namespace %s has %s: measure's pods ask for 100m-250m CPU and 64Mi-256Mi memory and meet PodSecurity restricted", r.opts.Namespace, strings.Join(parts, ", "))
}

// canaryPod is a canary and the client of its API.
type canaryPod struct {
	name    string
	created time.Time
	base    string
}

// waitCanaries waits until want canaries not in skip are ready and not
// deleted, and returns them, oldest first. It fails, naming the pod and
// its reason, when a canary cannot start or the ReplicaSet cannot create
// one.
func (r *run) waitCanaries(ctx context.Context, skip map[string]bool, want int, timeout time.Duration) ([]*canaryPod, error) {
	deadline := time.Now().Add(timeout)
	for {
		l, err := r.cs.CoreV1().Pods(r.opts.Namespace).List(ctx, metav1.ListOptions{LabelSelector: r.sel + "," + RoleLabel + "=canary"})
		if err != nil {
			return nil, roles.APIError(err, "list pods", r.opts.Namespace)
		}
		var ready []*canaryPod
		for i := range l.Items {
			p := &l.Items[i]
			if skip[p.Name] || p.DeletionTimestamp != nil {
				continue
			}
			if why := fleet.PodStuck(p); why != "" {
				return nil, &InputError{Err: fmt.Errorf("canary pod %s cannot start: %s (is --image %s right and pullable from the nodes?)", p.Name, why, r.opts.Image)}
			}
			if fleet.PodReady(p) {
				base, err := agent.ProxyBase(r.opts.Config, r.opts.Namespace, p.Name, CanaryPort)
				if err != nil {
					return nil, err
				}
				ready = append(ready, &canaryPod{name: p.Name, created: p.CreationTimestamp.Time, base: base})
			}
		}
		if len(ready) >= want {
			sort.Slice(ready, func(i, j int) bool { return ready[i].created.Before(ready[j].created) })
			return ready, nil
		}
		if why := r.replicaFailure(ctx); why != "" {
			return nil, &InputError{Err: fmt.Errorf("the canary Deployment cannot create pods: %s%s", why, r.namespaceRules(ctx))}
		}
		if time.Now().After(deadline) {
			return nil, &InputError{Err: fmt.Errorf("%d of %d canaries ready after %s (raise --agent-timeout; kubectl describe pods -n %s -l %s says why)",
				len(ready), want, timeout, r.opts.Namespace, r.sel)}
		}
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(300 * time.Millisecond):
		}
	}
}

// replicaFailure is the message of the canary Deployment's
// ReplicaFailure condition (a LimitRange, a quota or PodSecurity refused
// its pods), if it has one.
func (r *run) replicaFailure(ctx context.Context) string {
	d, err := r.cs.AppsV1().Deployments(r.opts.Namespace).Get(ctx, ServiceName+"-"+r.id, metav1.GetOptions{})
	if err != nil {
		return ""
	}
	for _, c := range d.Status.Conditions {
		if c.Type == appsv1.DeploymentReplicaFailure && c.Status == corev1.ConditionTrue {
			return c.Message
		}
	}
	return ""
}

// state reads a canary's state through the API server's pod proxy.
func (r *run) state(ctx context.Context, c *canaryPod) (CanaryState, error) {
	var st CanaryState
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	resp, err := r.call(ctx, http.MethodGet, c.base+"/state")
	if err != nil {
		return st, fmt.Errorf("canary %s: %w", c.name, err)
	}
	defer resp.Body.Close()
	if err := json.NewDecoder(io.LimitReader(resp.Body, 4<<20)).Decode(&st); err != nil {
		return st, fmt.Errorf("canary %s: GET /state: %w (is the image the same version as this rollguard?)", c.name, err)
	}
	return st, nil
}

// release ends a canary's preStop hold.
func (r *run) release(ctx context.Context, c *canaryPod) error {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	resp, err := r.call(ctx, http.MethodPost, c.base+"/release")
	if err != nil {
		return fmt.Errorf("canary %s: %w", c.name, err)
	}
	return resp.Body.Close()
}

func (r *run) call(ctx context.Context, method, url string) (*http.Response, error) {
	req, err := http.NewRequestWithContext(ctx, method, url, nil)
	if err != nil {
		return nil, err
	}
	resp, err := r.http.Do(req)
	if err != nil {
		return nil, err
	}
	if resp.StatusCode/100 != 2 {
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 2<<10))
		resp.Body.Close()
		return nil, fmt.Errorf("%s %s: %s: %s", method, url[strings.LastIndex(url, "/"):], resp.Status, strings.TrimSpace(string(b)))
	}
	return resp, nil
}

// stop ends the probers' traffic and records their counts.
func (r *run) stop() {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for _, a := range r.agents {
		if err := a.Client.Stop(ctx); err != nil && !agent.IsConflict(err) {
			r.rep.Warnings = append(r.rep.Warnings, fmt.Sprintf("stopping the prober on %s: %v", a.Node, err))
			continue
		}
		p, err := a.Client.Progress(ctx)
		if err != nil {
			r.rep.Warnings = append(r.rep.Warnings, fmt.Sprintf("reading the prober on %s: %v", a.Node, err))
			continue
		}
		w := r.warmup[a.Node]
		r.rep.Sent += p.Sent - w.Sent
		r.rep.Failed += p.Failed - w.Failed
		r.rep.WarmupFailed += w.Failed
		if f := p.Failed - w.Failed; f > 0 {
			var why []string
			for c, n := range p.ByClass {
				if n -= w.ByClass[c]; c != traffic.OK && n > 0 {
					why = append(why, fmt.Sprintf("%d %s", n, c))
				}
			}
			sort.Strings(why)
			r.rep.Warnings = append(r.rep.Warnings, fmt.Sprintf("%d of %d probe requests from %s failed while canaries were deleted (%s): the canaries serve through their whole preStop, so these are not the propagation measured; measure again if they are many",
				f, p.Sent-w.Sent, a.Node, strings.Join(why, ", ")))
		}
		if w.Failed > 0 {
			r.rep.Warnings = append(r.rep.Warnings, fmt.Sprintf("%d probe requests from %s failed during the warm-up, before any deletion (the node's kube-proxy not yet routing to the new Service): not counted above", w.Failed, a.Node))
		}
	}
}

// cleanup releases every canary, then deletes what the run created: its
// namespace if it made it, else its Deployment, Service and pods, and
// waits until they are gone.
func (r *run) cleanup(ctx context.Context, namespace bool) error {
	o := r.opts
	l, err := r.cs.CoreV1().Pods(o.Namespace).List(ctx, metav1.ListOptions{LabelSelector: r.sel + "," + RoleLabel + "=canary"})
	if err == nil {
		for _, p := range l.Items {
			if base, err := agent.ProxyBase(o.Config, o.Namespace, p.Name, CanaryPort); err == nil && p.Status.PodIP != "" {
				_ = r.release(ctx, &canaryPod{name: p.Name, base: base}) // its SIGTERM then comes at once
			}
		}
	}
	return Cleanup(ctx, r.cs, o.Namespace, r.id, namespace)
}

// Cleanup removes what measure runs created in a namespace: the run's, or
// with an empty id every run's (`rollguard measure --cleanup`), and waits
// until it is gone. With namespace set it deletes the namespace itself,
// when measure created it (it carries measure's label).
func Cleanup(ctx context.Context, cs kubernetes.Interface, ns, id string, namespace bool) error {
	sel := ManagedByLabel + "=" + ManagedBy
	if id != "" {
		sel += "," + RunLabel + "=" + id
	}
	if namespace {
		n, err := cs.CoreV1().Namespaces().Get(ctx, ns, metav1.GetOptions{})
		switch {
		case apierrors.IsNotFound(err):
			return nil
		case err != nil:
			return roles.APIError(err, "get namespaces", "")
		}
		if n.Labels[ManagedByLabel] == ManagedBy && (id == "" || n.Labels[RunLabel] == id) {
			if err := cs.CoreV1().Namespaces().Delete(ctx, ns, metav1.DeleteOptions{}); err != nil && !apierrors.IsNotFound(err) {
				return roles.APIError(err, "delete namespaces", "")
			}
			for {
				if _, err := cs.CoreV1().Namespaces().Get(ctx, ns, metav1.GetOptions{}); apierrors.IsNotFound(err) {
					return nil
				}
				select {
				case <-ctx.Done():
					return fmt.Errorf("namespace %s is still being deleted: %w", ns, ctx.Err())
				case <-time.After(500 * time.Millisecond):
				}
			}
		}
	}
	// Foreground: the ReplicaSets go first, so none recreates a canary
	// that DeletePods has just deleted.
	fg := metav1.DeletePropagationForeground
	if err := cs.AppsV1().Deployments(ns).DeleteCollection(ctx, metav1.DeleteOptions{PropagationPolicy: &fg}, metav1.ListOptions{LabelSelector: sel}); err != nil && !apierrors.IsNotFound(err) {
		return roles.APIError(err, "deletecollection deployments", ns)
	}
	svcs, err := cs.CoreV1().Services(ns).List(ctx, metav1.ListOptions{LabelSelector: sel})
	if err != nil {
		return roles.APIError(err, "list services", ns)
	}
	for _, s := range svcs.Items {
		if err := cs.CoreV1().Services(ns).Delete(ctx, s.Name, metav1.DeleteOptions{}); err != nil && !apierrors.IsNotFound(err) {
			return roles.APIError(err, "delete services", ns)
		}
	}
	if err := roles.DeletePods(ctx, cs, ns, sel); err != nil {
		return err
	}
	// A foreground deletion keeps the Deployment until its ReplicaSets
	// are gone: wait for that too, so nothing is left when measure ends.
	for {
		l, err := cs.AppsV1().Deployments(ns).List(ctx, metav1.ListOptions{LabelSelector: sel})
		if err != nil {
			return roles.APIError(err, "list deployments", ns)
		}
		if len(l.Items) == 0 {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("deployment %s is still being deleted: %w", l.Items[0].Name, ctx.Err())
		case <-time.After(250 * time.Millisecond):
		}
	}
}
