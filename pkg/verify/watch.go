package verify

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"sort"
	"strconv"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
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

	// family is the Service's ClusterIP family: kube-proxy routes it to
	// the endpoints of the slices of that address type only.
	family discoveryv1.AddressType

	mu        sync.Mutex
	pods      map[types.UID]*podState
	endpoints map[string]map[string]epState // slice name -> pod (timeline name) -> conditions
	epSeen    map[string]epState            // pod -> its endpoint's last state across slices
	changed   chan struct{}                 // the probe targets changed
	names     map[string]string             // pod (timeline name) -> node it runs on
	// incarnation names a pod in the timeline: its name, or for a pod that
	// reuses the name of an earlier one (a StatefulSet's web-0 recreated),
	// its name and the start of its UID, so the two are never one pod.
	incarnation map[types.UID]string
	byName      map[string]types.UID // the first UID seen with a name
	// addrs is who held each pod address, and from when, for conntrack's
	// answers, which name addresses.
	addrs map[string][]addrUse
}

type addrUse struct {
	pod  string
	from time.Time
}

type podState struct {
	name                                     string // in the timeline
	created, started, ready, deleted, exited bool
	ip                                       string
	port                                     int32
}

type epState struct {
	present, ready, serving, terminating bool
}

func newWatcher(cs kubernetes.Interface, ns, selector, service string, target corev1.ServicePort, family discoveryv1.AddressType,
	annotations map[string]string, tl *timeline.Timeline) *watcher {
	return &watcher{cs: cs, ns: ns, selector: selector, service: service, target: target, family: family, annotations: annotations,
		now: time.Now, tl: tl, pods: map[types.UID]*podState{}, endpoints: map[string]map[string]epState{}, epSeen: map[string]epState{},
		changed: make(chan struct{}, 1), names: map[string]string{}, incarnation: map[types.UID]string{}, byName: map[string]types.UID{},
		addrs: map[string][]addrUse{}}
}

// name is the timeline's name of a pod incarnation; call with mu held.
func (w *watcher) name(pod string, uid types.UID) string {
	if n, ok := w.incarnation[uid]; ok {
		return n
	}
	n := pod
	if first, ok := w.byName[pod]; !ok || uid == "" {
		w.byName[pod] = uid
	} else if first != uid {
		n = pod + "@" + string(uid)[:min(5, len(uid))]
	}
	if uid != "" {
		w.incarnation[uid] = n
	}
	return n
}

func (w *watcher) emit(kind timeline.Kind, pod string, at time.Time, mod func(*timeline.Event)) {
	e := timeline.Event{At: at, Kind: kind, Pod: pod, Node: -1}
	if mod != nil {
		mod(&e)
	}
	w.tl.Add(e)
}

// run watches until ctx ends. A watch that closes resumes from the last
// version seen; one that fails (a version too old, 410 Gone) starts again
// from a fresh list, and what the list no longer holds is gone.
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
			seen := map[types.UID]bool{}
			for i := range l.Items {
				seen[l.Items[i].UID] = true
				w.pod(&l.Items[i], false)
			}
			w.forgetPods(seen)
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
			seen := map[string]bool{}
			for i := range l.Items {
				seen[l.Items[i].Name] = true
				w.slice(&l.Items[i], false)
			}
			w.forgetSlices(seen)
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

// loop lists, then watches from the list's version, until ctx ends.
// Errors go to errs (without blocking), and the loop retries after a
// pause.
func (w *watcher) loop(ctx context.Context, errs chan<- error, what string, list func(context.Context) (string, error),
	open func(context.Context, string) (watch.Interface, error), handle func(watch.Event)) {
	rv := ""
	for ctx.Err() == nil {
		var err error
		if rv == "" {
			rv, err = list(ctx)
		}
		if err == nil {
			var wi watch.Interface
			if wi, err = open(ctx, rv); err == nil {
				for ev := range wi.ResultChan() {
					if ev.Type == watch.Error {
						rv = "" // too old, most likely: list again
						break
					}
					if o, ok := ev.Object.(metav1.Object); ok && o.GetResourceVersion() != "" {
						rv = o.GetResourceVersion()
					}
					if ev.Type != watch.Bookmark {
						handle(ev)
					}
				}
				wi.Stop()
			} else {
				rv = ""
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

// forgetPods treats the pods a fresh list no longer holds as gone.
func (w *watcher) forgetPods(seen map[types.UID]bool) {
	w.mu.Lock()
	var gone []*corev1.Pod
	for uid, s := range w.pods {
		if !seen[uid] && !s.exited {
			gone = append(gone, &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: s.name, UID: uid}})
		}
	}
	w.mu.Unlock()
	for _, p := range gone {
		w.podGone(p)
	}
}

// forgetSlices drops the slices a fresh list no longer holds.
func (w *watcher) forgetSlices(seen map[string]bool) {
	w.mu.Lock()
	var gone []string
	for name := range w.endpoints {
		if !seen[name] {
			gone = append(gone, name)
		}
	}
	w.mu.Unlock()
	for _, name := range gone {
		w.slice(&discoveryv1.EndpointSlice{ObjectMeta: metav1.ObjectMeta{Name: name}, AddressType: w.family}, true)
	}
}

// podGone records a pod removed from the API, known by its UID.
func (w *watcher) podGone(p *corev1.Pod) {
	now := w.now()
	w.mu.Lock()
	defer w.mu.Unlock()
	s := w.pods[p.UID]
	if s == nil {
		return
	}
	w.finish(s, now)
}

// finish marks a pod deleted and exited; call with mu held.
func (w *watcher) finish(s *podState, now time.Time) {
	if !s.deleted {
		s.deleted = true
		w.emit(timeline.PodDeleted, s.name, now, nil)
	}
	if !s.exited {
		s.exited = true
		w.emit(timeline.PodExited, s.name, now, nil)
	}
	if s.ip != "" {
		s.ip = ""
		w.notify()
	}
}

func (w *watcher) notify() {
	select {
	case w.changed <- struct{}{}:
	default:
	}
}

// pod records a Pod's changes.
func (w *watcher) pod(p *corev1.Pod, gone bool) {
	now := w.now()
	w.mu.Lock()
	defer w.mu.Unlock()
	s := w.pods[p.UID]
	if s == nil {
		s = &podState{name: w.name(p.Name, p.UID)}
		w.pods[p.UID] = s
	}
	name := s.name
	w.names[name] = p.Spec.NodeName
	if gone {
		w.finish(s, now)
		return
	}
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
		w.emit(timeline.PodCreated, name, now, func(e *timeline.Event) { e.PreStop, e.Readiness = preStop, readiness })
	}
	var running, terminated bool
	for _, cs := range p.Status.ContainerStatuses {
		if c != nil && cs.Name != c.Name {
			continue
		}
		running = running || cs.State.Running != nil
		terminated = terminated || cs.State.Terminated != nil
	}
	if running && !s.started {
		s.started = true
		w.emit(timeline.PodStarted, name, now, nil)
	}
	for _, cond := range p.Status.Conditions {
		if cond.Type == corev1.PodReady && cond.Status == corev1.ConditionTrue && !s.ready {
			s.ready = true
			w.emit(timeline.PodReady, name, now, nil)
		}
	}
	if p.DeletionTimestamp != nil && !s.deleted {
		s.deleted = true
		w.emit(timeline.PodDeleted, name, now, nil)
	}
	// A deleted pod's container that terminated is gone for good; a
	// running pod's container that crashed restarts, and the prober shows
	// the gap.
	if ((s.deleted && terminated) || p.Status.Phase == corev1.PodSucceeded || p.Status.Phase == corev1.PodFailed) && !s.exited {
		s.exited = true
		w.emit(timeline.PodExited, name, now, nil)
	}
	ip := podIP(p, w.family)
	if s.exited {
		ip = ""
	}
	if ip != s.ip || port != s.port {
		s.ip, s.port = ip, port
		if ip != "" {
			a := net.JoinHostPort(ip, strconv.Itoa(int(port)))
			w.addrs[a] = append(w.addrs[a], addrUse{pod: name, from: now})
		}
		w.notify()
	}
}

// podAt names the pod that held address addr ("IP:PORT") at t: the last
// to take it before t, or the first ever seen with it. An address no pod
// of the workload held stays as it is.
func (w *watcher) podAt(addr string, t time.Time) string {
	if ap, err := netip.ParseAddrPort(addr); err == nil {
		addr = net.JoinHostPort(ap.Addr().Unmap().String(), strconv.Itoa(int(ap.Port())))
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	uses := w.addrs[addr]
	if len(uses) == 0 {
		return addr
	}
	name := uses[0].pod
	for _, u := range uses {
		if !u.from.After(t) {
			name = u.pod
		}
	}
	return name
}

// podIP is the pod's address in the Service's family.
func podIP(p *corev1.Pod, family discoveryv1.AddressType) string {
	for _, a := range p.Status.PodIPs {
		if ipFamily(a.IP) == family {
			return a.IP
		}
	}
	if len(p.Status.PodIPs) == 0 && ipFamily(p.Status.PodIP) == family {
		return p.Status.PodIP
	}
	return ""
}

// ipFamily is the EndpointSlice address type of an IP.
func ipFamily(ip string) discoveryv1.AddressType {
	if a, err := netip.ParseAddr(ip); err == nil && a.Is6() && !a.Is4In6() {
		return discoveryv1.AddressTypeIPv6
	}
	return discoveryv1.AddressTypeIPv4
}

// slice records an EndpointSlice's changes, per pod across the Service's
// slices of its ClusterIP's family (kube-proxy reads no other).
func (w *watcher) slice(s *discoveryv1.EndpointSlice, gone bool) {
	if s.AddressType != w.family {
		return
	}
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
			// nil means true for serving and ready alike (the API's
			// compatibility rule), false for terminating.
			st := epState{present: true, ready: c.Ready == nil || *c.Ready,
				serving: c.Serving == nil || *c.Serving, terminating: c.Terminating != nil && *c.Terminating}
			eps[w.name(ep.TargetRef.Name, ep.TargetRef.UID)] = st
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
	slices := make([]string, 0, len(w.endpoints))
	for name := range w.endpoints {
		slices = append(slices, name)
	}
	sort.Strings(slices) // a pod in two slices (briefly, while one is rewritten): the same answer every time
	for _, pod := range names {
		var st epState
		for _, sl := range slices {
			if e, ok := w.endpoints[sl][pod]; ok {
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
	for _, s := range w.pods {
		if s.ip != "" && s.port > 0 {
			ts = append(ts, agent.Target{Pod: s.name, Addr: net.JoinHostPort(s.ip, strconv.Itoa(int(s.port)))})
		}
	}
	sort.Slice(ts, func(i, j int) bool { return ts[i].Pod < ts[j].Pod })
	return ts
}

// terminating counts the pods seen deleted whose containers have not
// exited yet.
func (w *watcher) terminating() int {
	w.mu.Lock()
	defer w.mu.Unlock()
	n := 0
	for _, s := range w.pods {
		if s.deleted && !s.exited {
			n++
		}
	}
	return n
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
