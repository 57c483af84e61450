package verify

import (
	"context"
	"fmt"
	"net"
	"sort"
	"strconv"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/kubernetes"

	"github.com/rollguard/rollguard/pkg/agent"
	"github.com/rollguard/rollguard/pkg/model"
	"github.com/rollguard/rollguard/pkg/timeline"
)

// watcher turns Pod and EndpointSlice watches into timeline events,
// stamped with verify's clock when observed, and keeps the set of pod
// addresses the agents' probers look at.
type watcher struct {
	cs       kubernetes.Interface
	ns       string
	selector string // the workload's pods
	service  string
	target   corev1.ServicePort
	// annotations of the workload, which may declare the app's shutdown
	// delay (rollguard.io/shutdown-delay).
	annotations map[string]string
	now         func() time.Time
	tl          *timeline.Timeline

	mu        sync.Mutex
	pods      map[string]*podState
	endpoints map[string]map[string]epState // slice name -> pod -> conditions
	epSeen    map[string]epState            // pod -> its endpoint's last state across slices
	changed   chan struct{}                 // the probe targets changed
	names     map[string]string             // pod -> node it runs on
}

type podState struct {
	created, started, ready, deleted, exited bool
	ip                                       string
	port                                     int32
}

type epState struct {
	present, ready, serving, terminating bool
}

func newWatcher(cs kubernetes.Interface, ns, selector, service string, target corev1.ServicePort, annotations map[string]string, tl *timeline.Timeline) *watcher {
	return &watcher{cs: cs, ns: ns, selector: selector, service: service, target: target, annotations: annotations, now: time.Now, tl: tl,
		pods: map[string]*podState{}, endpoints: map[string]map[string]epState{}, epSeen: map[string]epState{},
		changed: make(chan struct{}, 1), names: map[string]string{}}
}

func (w *watcher) emit(kind timeline.Kind, pod string, at time.Time, mod func(*timeline.Event)) {
	e := timeline.Event{At: at, Kind: kind, Pod: pod, Node: -1}
	if mod != nil {
		mod(&e)
	}
	w.tl.Add(e)
}

// run watches until ctx ends. A watch that closes is resumed from a fresh
// list, which the state comparison makes harmless.
func (w *watcher) run(ctx context.Context, errs chan<- error) {
	var wg sync.WaitGroup
	wg.Add(2)
	go func() {
		defer wg.Done()
		w.loop(ctx, errs, "pods", func(ctx context.Context) (string, error) {
			l, err := w.cs.CoreV1().Pods(w.ns).List(ctx, metav1.ListOptions{LabelSelector: w.selector})
			if err != nil {
				return "", err
			}
			for i := range l.Items {
				w.pod(&l.Items[i], false)
			}
			return l.ResourceVersion, nil
		}, func(ctx context.Context, rv string) (watch.Interface, error) {
			return w.cs.CoreV1().Pods(w.ns).Watch(ctx, metav1.ListOptions{LabelSelector: w.selector, ResourceVersion: rv, AllowWatchBookmarks: true})
		}, func(ev watch.Event) {
			if p, ok := ev.Object.(*corev1.Pod); ok {
				w.pod(p, ev.Type == watch.Deleted)
			}
		})
	}()
	go func() {
		defer wg.Done()
		sel := discoveryv1.LabelServiceName + "=" + w.service
		w.loop(ctx, errs, "endpointslices", func(ctx context.Context) (string, error) {
			l, err := w.cs.DiscoveryV1().EndpointSlices(w.ns).List(ctx, metav1.ListOptions{LabelSelector: sel})
			if err != nil {
				return "", err
			}
			for i := range l.Items {
				w.slice(&l.Items[i], false)
			}
			return l.ResourceVersion, nil
		}, func(ctx context.Context, rv string) (watch.Interface, error) {
			return w.cs.DiscoveryV1().EndpointSlices(w.ns).Watch(ctx, metav1.ListOptions{LabelSelector: sel, ResourceVersion: rv, AllowWatchBookmarks: true})
		}, func(ev watch.Event) {
			if s, ok := ev.Object.(*discoveryv1.EndpointSlice); ok {
				w.slice(s, ev.Type == watch.Deleted)
			}
		})
	}()
	wg.Wait()
}

// loop lists, then watches from the list's version, until ctx ends. Errors
// other than a closed watch go to errs once, and the loop retries after a
// pause.
func (w *watcher) loop(ctx context.Context, errs chan<- error, what string, list func(context.Context) (string, error),
	open func(context.Context, string) (watch.Interface, error), handle func(watch.Event)) {
	for ctx.Err() == nil {
		rv, err := list(ctx)
		if err == nil {
			var wi watch.Interface
			if wi, err = open(ctx, rv); err == nil {
				for ev := range wi.ResultChan() {
					if ev.Type == watch.Error {
						break
					}
					handle(ev)
				}
				wi.Stop()
			}
		}
		if err != nil && ctx.Err() == nil {
			select {
			case errs <- apiError(err, "watch "+what, w.ns):
			default:
			}
		}
		select {
		case <-ctx.Done():
		case <-time.After(200 * time.Millisecond):
		}
	}
}

// pod records a Pod's changes.
func (w *watcher) pod(p *corev1.Pod, gone bool) {
	now := w.now()
	w.mu.Lock()
	defer w.mu.Unlock()
	s := w.pods[p.Name]
	if s == nil {
		s = &podState{}
		w.pods[p.Name] = s
	}
	w.names[p.Name] = p.Spec.NodeName
	port, c := podPort(&p.Spec, w.target.TargetPort, w.target.Port)
	if !s.created {
		s.created = true
		var preStop time.Duration
		readiness := false
		if c != nil {
			sd := model.ContainerShutdown(c, p.Annotations, w.annotations)
			if sd.Known() {
				preStop = sd.Delay()
			}
			readiness = probesPort(c, port)
		}
		w.emit(timeline.PodCreated, p.Name, now, func(e *timeline.Event) { e.PreStop, e.Readiness = preStop, readiness })
	}
	var running, exited bool
	for _, cs := range p.Status.ContainerStatuses {
		if c != nil && cs.Name != c.Name {
			continue
		}
		running = running || cs.State.Running != nil
		exited = exited || cs.State.Terminated != nil
	}
	if running && !s.started {
		s.started = true
		w.emit(timeline.PodStarted, p.Name, now, nil)
	}
	for _, cond := range p.Status.Conditions {
		if cond.Type == corev1.PodReady && cond.Status == corev1.ConditionTrue && !s.ready {
			s.ready = true
			w.emit(timeline.PodReady, p.Name, now, nil)
		}
	}
	if (p.DeletionTimestamp != nil || gone) && !s.deleted {
		s.deleted = true
		w.emit(timeline.PodDeleted, p.Name, now, nil)
	}
	// A pod removed from the API has no container left, whether or not the
	// watch saw it terminate.
	if (exited || gone || p.Status.Phase == corev1.PodSucceeded || p.Status.Phase == corev1.PodFailed) && !s.exited {
		s.exited = true
		w.emit(timeline.PodExited, p.Name, now, nil)
	}
	ip := p.Status.PodIP
	if s.exited {
		ip = ""
	}
	if ip != s.ip || port != s.port {
		s.ip, s.port = ip, port
		select {
		case w.changed <- struct{}{}:
		default:
		}
	}
}

// slice records an EndpointSlice's changes, per pod across the Service's
// slices.
func (w *watcher) slice(s *discoveryv1.EndpointSlice, gone bool) {
	now := w.now()
	w.mu.Lock()
	defer w.mu.Unlock()
	eps := map[string]epState{}
	if !gone {
		for _, ep := range s.Endpoints {
			if ep.TargetRef == nil || ep.TargetRef.Kind != "Pod" {
				continue
			}
			c := ep.Conditions
			st := epState{present: true, ready: c.Ready == nil || *c.Ready,
				serving: c.Serving == nil || *c.Serving, terminating: c.Terminating != nil && *c.Terminating}
			if c.Serving == nil {
				st.serving = st.ready
			}
			eps[ep.TargetRef.Name] = st
		}
	}
	if gone {
		delete(w.endpoints, s.Name)
	} else {
		w.endpoints[s.Name] = eps
	}
	// The pods this slice had or has: their state across every slice.
	touched := map[string]bool{}
	for pod := range eps {
		touched[pod] = true
	}
	for pod := range w.epSeen {
		touched[pod] = true
	}
	names := make([]string, 0, len(touched))
	for pod := range touched {
		names = append(names, pod)
	}
	sort.Strings(names)
	for _, pod := range names {
		var st epState
		for _, m := range w.endpoints {
			if e, ok := m[pod]; ok {
				st = e
				if e.ready {
					break
				}
			}
		}
		prev := w.epSeen[pod]
		if st == prev {
			continue
		}
		w.epSeen[pod] = st
		switch {
		case !st.present:
			w.emit(timeline.EndpointRemoved, pod, now, nil)
		case st.ready && !prev.ready:
			w.emit(timeline.EndpointAdded, pod, now, nil)
		case !st.ready && st.terminating && st.serving && !(prev.terminating && prev.serving):
			w.emit(timeline.EndpointTerminating, pod, now, nil)
		case !st.ready && !st.serving && (prev.serving || (st.terminating && !prev.present)):
			// A new pod's endpoint that is not ready yet is not news.
			w.emit(timeline.EndpointNotServing, pod, now, nil)
		}
	}
}

// targets are the addresses the probers look at: every pod with an
// address whose container has not exited.
func (w *watcher) targets() []agent.Target {
	w.mu.Lock()
	defer w.mu.Unlock()
	var ts []agent.Target
	for name, s := range w.pods {
		if s.ip != "" && s.port > 0 {
			ts = append(ts, agent.Target{Pod: name, Addr: net.JoinHostPort(s.ip, strconv.Itoa(int(s.port)))})
		}
	}
	sort.Slice(ts, func(i, j int) bool { return ts[i].Pod < ts[j].Pod })
	return ts
}

// nodeOf is the node a pod ran on, as the watch saw it.
func (w *watcher) nodeOf(pod string) string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.names[pod]
}

func (s epState) String() string {
	return fmt.Sprintf("present=%v ready=%v serving=%v terminating=%v", s.present, s.ready, s.serving, s.terminating)
}
