package fleet

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"

	"github.com/rollguard/rollguard/pkg/agent"
)

// AgentPort is the port agents serve their control API on.
const AgentPort = agent.DefaultPort

// AgentSpec describes one agent pod.
type AgentSpec struct {
	Name, Namespace string
	Labels          map[string]string
	Node            string // the pod is pinned to it (no scheduler)
	Image           string
	// Life bounds the pod even if its command is killed: the agent's
	// --max-run and the pod's activeDeadlineSeconds.
	Life time.Duration
	// Privileged puts the agent on its node's network as root with
	// NET_ADMIN, to read kube-proxy's translations from conntrack.
	Privileged bool
}

// Restricted returns what PodSecurity's restricted level asks of a pod
// and of its containers, for rollguard's own unprivileged pods.
func Restricted() (*corev1.PodSecurityContext, *corev1.SecurityContext) {
	no, yes, uid := false, true, int64(65532)
	return &corev1.PodSecurityContext{RunAsNonRoot: &yes, RunAsUser: &uid,
			SeccompProfile: &corev1.SeccompProfile{Type: corev1.SeccompProfileTypeRuntimeDefault}},
		&corev1.SecurityContext{AllowPrivilegeEscalation: &no, ReadOnlyRootFilesystem: &yes,
			Capabilities: &corev1.Capabilities{Drop: []corev1.Capability{"ALL"}}}
}

// Guaranteed returns equal requests and limits: quota'd namespaces demand
// limits, and a BestEffort pod is throttled and evicted first.
func Guaranteed(cpu, memory string) corev1.ResourceRequirements {
	res := corev1.ResourceList{corev1.ResourceCPU: resource.MustParse(cpu), corev1.ResourceMemory: resource.MustParse(memory)}
	return corev1.ResourceRequirements{Requests: res, Limits: res.DeepCopy()}
}

// AgentPod is one agent pod: pinned to its node, bounded in time even if
// the command that made it is killed (activeDeadlineSeconds, and the
// agent's own --max-run).
func AgentPod(s AgentSpec) *corev1.Pod {
	deadline := int64(s.Life.Seconds())
	grace := int64(5)
	no := false
	podSC, sc := Restricted()
	pod := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: s.Name, Namespace: s.Namespace, Labels: s.Labels},
		Spec: corev1.PodSpec{
			NodeName:                      s.Node,
			RestartPolicy:                 corev1.RestartPolicyNever,
			ActiveDeadlineSeconds:         &deadline,
			TerminationGracePeriodSeconds: &grace,
			AutomountServiceAccountToken:  &no,
			Tolerations:                   []corev1.Toleration{{Operator: corev1.TolerationOpExists}},
			SecurityContext:               podSC,
			Containers: []corev1.Container{{
				SecurityContext: sc,
				Resources:       Guaranteed("250m", "256Mi"),
				Name:            "agent",
				Image:           s.Image,
				ImagePullPolicy: corev1.PullIfNotPresent,
				Args:            []string{"agent", "--listen", ":" + strconv.Itoa(AgentPort), "--max-run", s.Life.String()},
				Ports:           []corev1.ContainerPort{{Name: "agent", ContainerPort: AgentPort}},
				ReadinessProbe: &corev1.Probe{ProbeHandler: corev1.ProbeHandler{HTTPGet: &corev1.HTTPGetAction{
					Path: "/healthz", Port: intstr.FromInt32(AgentPort)}}, PeriodSeconds: 1},
			}},
		},
	}
	if s.Privileged {
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

// Agent is one started agent.
type Agent struct {
	Index  int // its place among the agents that started, from 0
	Node   string
	Pod    string
	Client *agent.Client
	// Offset is the agent's clock minus this machine's, known within
	// Bound.
	Offset, Bound time.Duration
}

// Starter starts one agent per node and waits for them.
type Starter struct {
	Roles     Roles
	CS        kubernetes.Interface
	Config    *rest.Config
	HTTP      *http.Client // rest.HTTPClientFor(Config)
	Namespace string
	// Selector selects the pods of this run (a label selector).
	Selector string
	// Strict makes one node that cannot run an agent an error; otherwise
	// that node is left out with a warning.
	Strict  bool
	Timeout time.Duration // for the agents to be ready, image pull included
	Image   string        // for messages
	// Progress, when set, receives a line at each step.
	Progress func(format string, args ...any)
}

// Start creates the pods (one agent each, pinned to its node), waits
// until each is ready, and reads each agent's clock offset. Nodes whose
// agent cannot start are left out, each with a warning, unless Strict.
func (s *Starter) Start(ctx context.Context, pods []*corev1.Pod) (agents []*Agent, warnings []string, err error) {
	for i, spec := range pods {
		p, err := s.CS.CoreV1().Pods(s.Namespace).Create(ctx, spec, metav1.CreateOptions{})
		if err != nil {
			return nil, nil, s.Roles.APIError(err, "create pods", s.Namespace)
		}
		base, err := agent.ProxyBase(s.Config, s.Namespace, p.Name, AgentPort)
		if err != nil {
			return nil, nil, err
		}
		agents = append(agents, &Agent{Index: i, Node: spec.Spec.NodeName, Pod: p.Name, Client: &agent.Client{Base: base, HTTP: s.HTTP, Name: p.Name}})
	}
	if s.Progress != nil {
		nodes := make([]string, len(agents))
		for i, a := range agents {
			nodes[i] = a.Node
		}
		s.Progress("started %d agents (%s); waiting for them to be ready", len(agents), strings.Join(nodes, ", "))
	}
	// One list a poll for every agent, not a wait per agent: a large
	// cluster's agents start together.
	deadline := time.Now().Add(s.Timeout)
	pending := map[string]*Agent{}
	for _, a := range agents {
		pending[a.Pod] = a
	}
	var dropped []string
	for len(pending) > 0 {
		l, err := s.CS.CoreV1().Pods(s.Namespace).List(ctx, metav1.ListOptions{LabelSelector: s.Selector})
		if err != nil {
			return nil, nil, s.Roles.APIError(err, "list pods", s.Namespace)
		}
		listed := map[string]*corev1.Pod{}
		for i := range l.Items {
			listed[l.Items[i].Name] = &l.Items[i]
		}
		// In the order the agents were made, so that warnings are too.
		for _, a := range agents {
			if pending[a.Pod] == nil {
				continue
			}
			p := listed[a.Pod]
			var why string
			switch {
			case p == nil:
				// A list after the create sees the pod while it exists.
				why = "its pod is gone (deleted, or with its node)"
			case PodReady(p):
				delete(pending, a.Pod)
				continue
			default:
				why = PodStuck(p)
				if why == "" && time.Now().After(deadline) {
					why = fmt.Sprintf("not ready after %s (phase %s; raise --agent-timeout)", s.Timeout, p.Status.Phase)
				}
			}
			if why == "" {
				continue
			}
			if s.Strict {
				return nil, nil, &InputError{fmt.Errorf("agent %s on node %s cannot start: %s (is --image %s right and pullable from the node?)", a.Pod, a.Node, why, s.Image)}
			}
			delete(pending, a.Pod)
			dropped = append(dropped, a.Pod)
			warnings = append(warnings, fmt.Sprintf("no agent on node %s: %s", a.Node, why))
		}
		if len(pending) == 0 {
			break
		}
		select {
		case <-ctx.Done():
			return nil, nil, ctx.Err()
		case <-time.After(300 * time.Millisecond):
		}
	}
	kept := agents[:0]
	for _, a := range agents {
		if !slices.Contains(dropped, a.Pod) {
			a.Index = len(kept)
			kept = append(kept, a)
		}
	}
	agents = kept
	if len(agents) == 0 {
		return nil, warnings, &InputError{fmt.Errorf("no agent could start on any node (%s): is --image %s right and pullable from the nodes?", strings.Join(warnings, "; "), s.Image)}
	}
	var wg sync.WaitGroup
	errs := make([]error, len(agents))
	for i, a := range agents {
		wg.Go(func() {
			off, bound, err := a.Client.Clock(ctx)
			if err != nil {
				errs[i] = fmt.Errorf("reading an agent's clock through the API server's pod proxy: %w (a NetworkPolicy or a firewall between the control plane and the nodes' pods may block the proxy)", err)
			}
			a.Offset, a.Bound = off, bound
		})
	}
	wg.Wait()
	return agents, warnings, errors.Join(errs...)
}

// DeletePods deletes the pods a label selector selects in a namespace and
// waits until they are gone. It uses the pods' own grace period, not a
// forced delete: that would drop the API object while the container
// still ran.
func (r Roles) DeletePods(ctx context.Context, cs kubernetes.Interface, ns, selector string) error {
	pods := cs.CoreV1().Pods(ns)
	err := pods.DeleteCollection(ctx, metav1.DeleteOptions{}, metav1.ListOptions{LabelSelector: selector})
	if err != nil && !apierrors.IsNotFound(err) {
		return r.APIError(err, "deletecollection pods", ns)
	}
	for {
		l, err := pods.List(ctx, metav1.ListOptions{LabelSelector: selector})
		if err != nil {
			return r.APIError(err, "list pods", ns)
		}
		if len(l.Items) == 0 {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("%d pods still present in namespace %s: %w", len(l.Items), ns, ctx.Err())
		case <-time.After(250 * time.Millisecond):
		}
	}
}
