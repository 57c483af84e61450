// Package model implements the join that every rollguard rule reads:
// workloads with the Services that send them traffic (their target ports
// resolved against container ports), the PodDisruptionBudgets that guard
// them and the HorizontalPodAutoscaler that scales them.
package model

import (
	"fmt"
	"path"
	"sort"
	"strconv"
	"strings"

	appsv1 "k8s.io/api/apps/v1"
	autoscalingv1 "k8s.io/api/autoscaling/v1"
	autoscalingv2 "k8s.io/api/autoscaling/v2"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/selection"
	"k8s.io/apimachinery/pkg/util/intstr"

	"github.com/rollguard/rollguard/pkg/manifest"
)

// Options shape how objects are joined.
type Options struct {
	// Namespace is given to objects that name none (kubectl's -n).
	Namespace string
	// AssumeServed treats a workload whose containers declare ports as
	// served even when no Service in the input selects it: for auditing
	// workloads whose Services live elsewhere.
	AssumeServed bool
	// TelemetryPorts are glob patterns of port names that only scrapers
	// use (nil: DefaultTelemetryPorts; empty: none).
	TelemetryPorts []string
	// Others are the skipped objects of custom kinds, whose operators may
	// own pods the input does not show.
	Others []manifest.Ref
	// Partial says the input holds only some of the workloads of its
	// namespaces (audit --cluster -l), so a Service or budget that
	// selects none of them is not wrong.
	Partial bool
}

// DefaultTelemetryPorts are the port names that carry only metrics and
// debugging scrapes, which reach pod addresses directly.
var DefaultTelemetryPorts = []string{"metrics", "*-metrics", "metrics-*", "prometheus", "prom", "profiling", "pprof", "debug", "telemetry"}

// Model is the joined view of a set of objects.
type Model struct {
	Workloads []*Workload
	Services  []*Service
	PDBs      []*PDB
	HPAs      []*HPA
	// Monitors are the ServiceMonitors of the input.
	Monitors []*manifest.Object
	// Others and Partial are as given in Options.
	Others  []manifest.Ref
	Partial bool

	defaultNS string
	// monitors are Monitors with their namespace and selector worked out
	// once: markTelemetry asks about every port of every Service of every
	// workload with two Services or more.
	monitors []monitor
}

// monitor is a ServiceMonitor ready to match.
type monitor struct {
	obj *manifest.Object
	mon *manifest.ServiceMonitor
	ns  string
	sel labels.Selector
}

// Workload is anything that runs pods from a template.
type Workload struct {
	Object    *manifest.Object
	Namespace string
	Kind      string
	Name      string
	// Meta is the workload's own metadata, Template its pod template (for
	// a bare Pod, the Pod's metadata and spec).
	Meta     *metav1.ObjectMeta
	Template *corev1.PodTemplateSpec
	// TemplatePath is the path of the pod template in the manifest, "" for
	// a Pod, whose spec is at "spec".
	TemplatePath string
	// Replicas as written; nil when unset (the API defaults it to 1) and
	// for kinds without replicas (DaemonSet, Pod).
	Replicas        *int32
	Strategy        Strategy
	MinReadySeconds int32
	// Batch marks Jobs and CronJobs: they run to completion and are never
	// considered served, whatever selects them.
	Batch bool

	Containers []*Container
	Services   []*Service
	PDBs       []*PDB
	HPA        *HPA
	// Served is true when a Service selects the workload, or when
	// AssumeServed is set and a container declares ports.
	Served bool
}

// Strategy is a workload's update strategy with Kubernetes' defaults
// filled in.
type Strategy struct {
	// Type is RollingUpdate, Recreate, OnDelete (StatefulSet, DaemonSet),
	// Canary or BlueGreen (Argo Rollouts), or "" for a bare Pod.
	Type           string
	MaxSurge       intstr.IntOrString
	MaxUnavailable intstr.IntOrString
	// Path is where the strategy is (or would be) written.
	Path string
}

// Container is one container of a workload's pod template.
type Container struct {
	Spec *corev1.Container
	// Path is the container's path in the manifest.
	Path string
	// Sidecar marks a native sidecar: an init container with
	// restartPolicy Always, which runs beside the app and may serve.
	Sidecar bool
	// Served lists the Service ports whose traffic reaches this container.
	Served []ServedPort

	shutdown *Shutdown // read once, by Workload.Shutdown
}

// ServedPort is a Service port resolved to a container port.
type ServedPort struct {
	Service     *Service // nil when served is only assumed (AssumeServed)
	ServicePort *corev1.ServicePort
	// Port is the container port number the traffic reaches.
	Port int32
	// Declared is false when the Service targets a port number that no
	// container declares: Kubernetes still sends traffic there, and by
	// convention rollguard attributes it to the first container.
	Declared bool
	// Telemetry, when set, says why only scrapers use this port (a
	// telemetry port name, a ServiceMonitor): they reach pod addresses
	// directly, not through kube-proxy.
	Telemetry string
	// Name is the container port's name, if it has one.
	Name string
	// Protocol is the port's protocol, defaulted to TCP.
	Protocol corev1.Protocol
}

// Service is a Service and the workloads it selects.
type Service struct {
	Object    *manifest.Object
	Namespace string
	Spec      *corev1.Service
	Workloads []*Workload
	// Unresolved lists ports whose named targetPort no selected container
	// declares: those pods get no endpoint for that port.
	Unresolved []*corev1.ServicePort
}

// PDB is a PodDisruptionBudget and the workloads whose pods it selects.
type PDB struct {
	Object    *manifest.Object
	Namespace string
	Spec      *policyv1.PodDisruptionBudget
	Workloads []*Workload
}

// HPA is a HorizontalPodAutoscaler of either served version.
type HPA struct {
	Object      *manifest.Object
	Namespace   string
	TargetKind  string
	TargetName  string
	MinReplicas int32
	MaxReplicas int32
	Target      *Workload
}

// Build joins objects into a model.
func Build(objs []*manifest.Object, opts Options) *Model {
	if opts.Namespace == "" {
		opts.Namespace = "default"
	}
	m := &Model{Others: opts.Others, Partial: opts.Partial, defaultNS: opts.Namespace}
	for _, o := range objs {
		ns := o.Namespace
		if ns == "" {
			ns = opts.Namespace
		}
		switch v := o.Value.(type) {
		case *corev1.Service:
			m.Services = append(m.Services, &Service{Object: o, Namespace: ns, Spec: v})
		case *policyv1.PodDisruptionBudget:
			m.PDBs = append(m.PDBs, &PDB{Object: o, Namespace: ns, Spec: v})
		case *autoscalingv2.HorizontalPodAutoscaler:
			m.HPAs = append(m.HPAs, newHPA(o, ns, v.Spec.ScaleTargetRef.Kind, v.Spec.ScaleTargetRef.Name, v.Spec.MinReplicas, v.Spec.MaxReplicas))
		case *autoscalingv1.HorizontalPodAutoscaler:
			m.HPAs = append(m.HPAs, newHPA(o, ns, v.Spec.ScaleTargetRef.Kind, v.Spec.ScaleTargetRef.Name, v.Spec.MinReplicas, v.Spec.MaxReplicas))
		case *manifest.ServiceMonitor:
			m.Monitors = append(m.Monitors, o)
		default:
			if w := newWorkload(o, ns); w != nil {
				m.Workloads = append(m.Workloads, w)
			}
		}
	}
	m.join(opts)
	return m
}

func newHPA(o *manifest.Object, ns, kind, name string, min *int32, max int32) *HPA {
	h := &HPA{Object: o, Namespace: ns, TargetKind: kind, TargetName: name, MinReplicas: 1, MaxReplicas: max}
	if min != nil {
		h.MinReplicas = *min
	}
	return h
}

// controlled reports whether an object is managed by a controller (a Pod of
// a ReplicaSet, a ReplicaSet of a Deployment): the controller is what to
// audit and fix, so the object itself is left out.
func controlled(meta *metav1.ObjectMeta) bool {
	for _, ref := range meta.OwnerReferences {
		if ref.Controller != nil && *ref.Controller {
			return true
		}
	}
	return false
}

func newWorkload(o *manifest.Object, ns string) *Workload {
	w := &Workload{Object: o, Namespace: ns, Kind: o.Kind, Name: o.Name, TemplatePath: "spec.template"}
	rolling := func(s, u *intstr.IntOrString, defS, defU intstr.IntOrString, path string) {
		w.Strategy.MaxSurge, w.Strategy.MaxUnavailable = defS, defU
		if s != nil {
			w.Strategy.MaxSurge = *s
		}
		if u != nil {
			w.Strategy.MaxUnavailable = *u
		}
		w.Strategy.Path = path
	}
	pct25 := intstr.FromString("25%")
	switch v := o.Value.(type) {
	case *appsv1.Deployment:
		w.Meta, w.Template, w.Replicas, w.MinReadySeconds = &v.ObjectMeta, &v.Spec.Template, v.Spec.Replicas, v.Spec.MinReadySeconds
		w.Strategy.Type = string(v.Spec.Strategy.Type)
		if w.Strategy.Type == "" {
			w.Strategy.Type = string(appsv1.RollingUpdateDeploymentStrategyType)
		}
		if w.Strategy.Type == string(appsv1.RollingUpdateDeploymentStrategyType) {
			var s, u *intstr.IntOrString
			if ru := v.Spec.Strategy.RollingUpdate; ru != nil {
				s, u = ru.MaxSurge, ru.MaxUnavailable
			}
			rolling(s, u, pct25, pct25, "spec.strategy.rollingUpdate")
		} else {
			w.Strategy.Path = "spec.strategy"
		}
	case *appsv1.StatefulSet:
		w.Meta, w.Template, w.Replicas, w.MinReadySeconds = &v.ObjectMeta, &v.Spec.Template, v.Spec.Replicas, v.Spec.MinReadySeconds
		w.Strategy.Type = string(v.Spec.UpdateStrategy.Type)
		if w.Strategy.Type == "" {
			w.Strategy.Type = string(appsv1.RollingUpdateStatefulSetStrategyType)
		}
		var u *intstr.IntOrString
		if ru := v.Spec.UpdateStrategy.RollingUpdate; ru != nil {
			u = ru.MaxUnavailable
		}
		// A StatefulSet never surges: it deletes a pod, then creates its
		// successor. maxUnavailable lives in rollingUpdate, as for the others.
		rolling(nil, u, intstr.FromInt32(0), intstr.FromInt32(1), "spec.updateStrategy.rollingUpdate")
	case *appsv1.DaemonSet:
		w.Meta, w.Template, w.MinReadySeconds = &v.ObjectMeta, &v.Spec.Template, v.Spec.MinReadySeconds
		w.Strategy.Type = string(v.Spec.UpdateStrategy.Type)
		if w.Strategy.Type == "" {
			w.Strategy.Type = string(appsv1.RollingUpdateDaemonSetStrategyType)
		}
		var s, u *intstr.IntOrString
		if ru := v.Spec.UpdateStrategy.RollingUpdate; ru != nil {
			s, u = ru.MaxSurge, ru.MaxUnavailable
		}
		rolling(s, u, intstr.FromInt32(0), intstr.FromInt32(1), "spec.updateStrategy.rollingUpdate")
	case *appsv1.ReplicaSet:
		if controlled(&v.ObjectMeta) {
			return nil
		}
		w.Meta, w.Template, w.Replicas, w.MinReadySeconds = &v.ObjectMeta, &v.Spec.Template, v.Spec.Replicas, v.Spec.MinReadySeconds
	case *corev1.Pod:
		if controlled(&v.ObjectMeta) {
			return nil
		}
		w.Meta = &v.ObjectMeta
		w.Template = &corev1.PodTemplateSpec{ObjectMeta: v.ObjectMeta, Spec: v.Spec}
		w.TemplatePath = ""
	case *manifest.Rollout:
		w.Meta, w.Template, w.Replicas, w.MinReadySeconds = &v.ObjectMeta, &v.Spec.Template, v.Spec.Replicas, v.Spec.MinReadySeconds
		switch {
		case v.Spec.Strategy.BlueGreen != nil:
			w.Strategy.Type, w.Strategy.Path = "BlueGreen", "spec.strategy.blueGreen"
		default:
			w.Strategy.Type = "Canary"
			var s, u *intstr.IntOrString
			if c := v.Spec.Strategy.Canary; c != nil {
				s, u = c.MaxSurge, c.MaxUnavailable
			}
			rolling(s, u, pct25, pct25, "spec.strategy.canary")
		}
	case *batchv1.Job:
		w.Meta, w.Template, w.Batch = &v.ObjectMeta, &v.Spec.Template, true
	case *batchv1.CronJob:
		w.Meta, w.Template, w.Batch = &v.ObjectMeta, &v.Spec.JobTemplate.Spec.Template, true
		w.TemplatePath = "spec.jobTemplate.spec.template"
	default:
		return nil
	}
	spec := w.SpecPath()
	for i := range w.Template.Spec.InitContainers {
		c := &w.Template.Spec.InitContainers[i]
		if c.RestartPolicy != nil && *c.RestartPolicy == corev1.ContainerRestartPolicyAlways {
			w.Containers = append(w.Containers, &Container{Spec: c, Sidecar: true, Path: fmt.Sprintf("%s.initContainers[%d]", spec, i)})
		}
	}
	for i := range w.Template.Spec.Containers {
		c := &w.Template.Spec.Containers[i]
		w.Containers = append(w.Containers, &Container{Spec: c, Path: fmt.Sprintf("%s.containers[%d]", spec, i)})
	}
	return w
}

// SpecPath is the manifest path of the pod spec.
func (w *Workload) SpecPath() string {
	if w.TemplatePath == "" {
		return "spec"
	}
	return w.TemplatePath + ".spec"
}

// EffectiveReplicas is the replica count the rollout starts from: the HPA's
// minimum when an HPA scales the workload (its lowest, most fragile point),
// else the written count, else the API default of 1. DaemonSets and Pods
// report 0: their count is not a setting.
func (w *Workload) EffectiveReplicas() int32 {
	switch {
	case w.HPA != nil:
		return w.HPA.MinReplicas
	case w.Replicas != nil:
		return *w.Replicas
	case w.Kind == "DaemonSet" || w.Kind == "Pod":
		return 0
	default:
		return 1
	}
}

// ServedContainers lists the containers that receive Service traffic.
func (w *Workload) ServedContainers() []*Container {
	var out []*Container
	for _, c := range w.Containers {
		if len(c.Served) > 0 {
			out = append(out, c)
		}
	}
	return out
}

// Rolls reports whether the workload is replaced pod by pod on update, the
// setting where the two cases bite. Bare Pods and batch work do not roll.
func (w *Workload) Rolls() bool {
	return !w.Batch && w.Kind != "Pod"
}

func (m *Model) join(opts Options) {
	idx := newPodIndex(m.Workloads)
	for _, s := range m.Services {
		if len(s.Spec.Spec.Selector) == 0 || s.Spec.Spec.Type == corev1.ServiceTypeExternalName {
			continue // endpoints are managed by hand, or there are none
		}
		sel := labels.SelectorFromSet(s.Spec.Spec.Selector)
		for _, w := range idx.candidates(s.Namespace, sel) {
			if selects(sel, w) {
				s.Workloads = append(s.Workloads, w)
				w.Services = append(w.Services, s)
			}
		}
		for i := range s.Spec.Spec.Ports {
			sp := &s.Spec.Spec.Ports[i]
			unresolved := false
			for _, w := range s.Workloads {
				if !w.Batch && !attach(w, s, sp) {
					unresolved = true
				}
			}
			if unresolved {
				s.Unresolved = append(s.Unresolved, sp)
			}
		}
	}
	for _, p := range m.PDBs {
		if p.Spec.Spec.Selector == nil {
			continue // a null selector selects no pods
		}
		sel, err := metav1.LabelSelectorAsSelector(p.Spec.Spec.Selector)
		if err != nil {
			continue
		}
		for _, w := range idx.candidates(p.Namespace, sel) {
			if !w.Batch && selects(sel, w) {
				p.Workloads = append(p.Workloads, w)
				w.PDBs = append(w.PDBs, p)
			}
		}
	}
	for _, h := range m.HPAs {
		if w := idx.byName[h.Namespace+"/"+h.TargetKind+"/"+h.TargetName]; w != nil {
			h.Target, w.HPA = w, h
		}
	}
	for _, w := range m.Workloads {
		if w.Batch {
			continue
		}
		w.Served = len(w.Services) > 0
		if !w.Served && opts.AssumeServed {
			for _, c := range w.Containers {
				for i := range c.Spec.Ports {
					p := &c.Spec.Ports[i]
					if protocolOf(p.Protocol) == corev1.ProtocolTCP {
						c.Served = append(c.Served, ServedPort{Port: p.ContainerPort, Declared: true, Name: p.Name, Protocol: corev1.ProtocolTCP})
						w.Served = true
					}
				}
			}
		}
	}
	m.markTelemetry(opts)
	sort.SliceStable(m.Workloads, func(i, j int) bool { return less(m.Workloads[i].Object, m.Workloads[j].Object) })
}

// podIndex finds the workloads a selector may match without trying every
// workload of the namespace: one namespace can hold thousands.
type podIndex struct {
	byNS    map[string][]*Workload
	byLabel map[string][]*Workload // "ns\x00key\x00value"
	byName  map[string]*Workload   // "ns/Kind/name"
}

func newPodIndex(ws []*Workload) *podIndex {
	idx := &podIndex{byNS: map[string][]*Workload{}, byLabel: map[string][]*Workload{}, byName: map[string]*Workload{}}
	for _, w := range ws {
		idx.byNS[w.Namespace] = append(idx.byNS[w.Namespace], w)
		idx.byName[w.Namespace+"/"+w.Kind+"/"+w.Name] = w
		for k, v := range w.Template.Labels {
			key := w.Namespace + "\x00" + k + "\x00" + v
			idx.byLabel[key] = append(idx.byLabel[key], w)
		}
	}
	return idx
}

// candidates narrows the workloads of a namespace to those carrying one of
// the selector's required key=value labels; selects decides.
func (idx *podIndex) candidates(ns string, sel labels.Selector) []*Workload {
	reqs, _ := sel.Requirements()
	for _, r := range reqs {
		if controllerLabel[r.Key()] || (r.Operator() != selection.Equals && r.Operator() != selection.DoubleEquals) {
			continue
		}
		return idx.byLabel[ns+"\x00"+r.Key()+"\x00"+r.Values().UnsortedList()[0]]
	}
	return idx.byNS[ns]
}

// controllerLabel lists the labels that controllers put on the pods they
// create, which pod templates do not carry: a selector may use them.
var controllerLabel = map[string]bool{
	appsv1.DefaultDeploymentUniqueLabelKey: true, // pod-template-hash
	appsv1.ControllerRevisionHashLabelKey:  true,
	appsv1.StatefulSetPodNameLabel:         true,
	appsv1.PodIndexLabel:                   true,
	daemonSetGeneration:                    true,
	"rollouts-pod-template-hash":           true, // Argo Rollouts
}

// daemonSetGeneration is the label the DaemonSet controller puts on its pods
// (pkg/controller/daemon: extensions.DaemonSetTemplateGenerationKey).
const daemonSetGeneration = "pod-template-generation"

// addsLabel reports whether the workload's controller labels its pods with key.
func addsLabel(w *Workload, key string) bool {
	switch key {
	case appsv1.DefaultDeploymentUniqueLabelKey:
		return w.Kind == "Deployment"
	case appsv1.ControllerRevisionHashLabelKey:
		return w.Kind == "StatefulSet" || w.Kind == "DaemonSet"
	case appsv1.StatefulSetPodNameLabel, appsv1.PodIndexLabel:
		return w.Kind == "StatefulSet"
	case daemonSetGeneration:
		return w.Kind == "DaemonSet"
	case "rollouts-pod-template-hash":
		return w.Kind == "Rollout"
	}
	return false
}

// selects reports whether a selector matches some pod of the workload: its
// template's labels, plus the labels its controller adds to each pod (a
// per-pod Service of a StatefulSet selects statefulset.kubernetes.io/pod-name).
func selects(sel labels.Selector, w *Workload) bool {
	reqs, _ := sel.Requirements()
	set := labels.Set(w.Template.Labels)
	for _, r := range reqs {
		if controllerLabel[r.Key()] && addsLabel(w, r.Key()) && w.Template.Labels[r.Key()] == "" {
			if !controllerValueFits(w, r) {
				return false
			}
			continue
		}
		if !r.Matches(set) {
			return false
		}
	}
	return true
}

// controllerValueFits says whether some pod of w can carry a value of a
// controller-added label that the requirement accepts. Hashes cannot be
// known from a manifest, so any value fits; a StatefulSet pod's name is
// NAME-ORDINAL and its index is the ordinal.
func controllerValueFits(w *Workload, r labels.Requirement) bool {
	switch r.Operator() {
	case selection.DoesNotExist:
		return false
	case selection.Exists, selection.NotIn, selection.NotEquals:
		return true
	}
	for v := range r.Values() {
		switch r.Key() {
		case appsv1.StatefulSetPodNameLabel:
			if ord, ok := strings.CutPrefix(v, w.Name+"-"); ok && isOrdinal(ord) {
				return true
			}
		case appsv1.PodIndexLabel:
			if isOrdinal(v) {
				return true
			}
		default:
			return true
		}
	}
	return false
}

func isOrdinal(s string) bool {
	n, err := strconv.Atoi(s)
	return err == nil && n >= 0 && strconv.Itoa(n) == s
}

func protocolOf(p corev1.Protocol) corev1.Protocol {
	if p == "" {
		return corev1.ProtocolTCP
	}
	return p
}

// attach resolves a Service port against a workload's containers as the
// EndpointSlice controller's FindPort does: a named targetPort is looked up
// among the regular containers' ports first, then the native sidecars',
// with the protocol matching; a number is used as is. It records the port
// on the container that receives the traffic, and returns false when a
// named targetPort matches nothing, so the pods get no endpoint for it.
func attach(w *Workload, s *Service, sp *corev1.ServicePort) bool {
	proto := protocolOf(sp.Protocol)
	served := func(c *Container, p *corev1.ContainerPort, num int32, declared bool) {
		sv := ServedPort{Service: s, ServicePort: sp, Port: num, Declared: declared, Protocol: proto}
		if p != nil {
			sv.Name = p.Name
		}
		c.Served = append(c.Served, sv)
	}
	for _, sidecars := range []bool{false, true} {
		for _, c := range w.Containers {
			if c.Sidecar != sidecars {
				continue
			}
			for i := range c.Spec.Ports {
				p := &c.Spec.Ports[i]
				if protocolOf(p.Protocol) != proto {
					continue
				}
				switch {
				case sp.TargetPort.Type == intstr.String && sp.TargetPort.StrVal != "":
					if p.Name == sp.TargetPort.StrVal {
						served(c, p, p.ContainerPort, true)
						return true
					}
				case p.ContainerPort == targetNumber(sp):
					served(c, p, p.ContainerPort, true)
					return true
				}
			}
		}
	}
	if sp.TargetPort.Type == intstr.String && sp.TargetPort.StrVal != "" {
		return false
	}
	// The port list is informational: traffic reaches the pod's port
	// whether or not a container declares it. Attribute it to the first
	// app container, the one that by convention serves.
	for _, c := range w.Containers {
		if !c.Sidecar {
			served(c, nil, targetNumber(sp), false)
			return true
		}
	}
	return true
}

// targetNumber is a numeric targetPort, defaulted to the port, as the API
// server defaults it.
func targetNumber(sp *corev1.ServicePort) int32 {
	if sp.TargetPort.IntVal != 0 {
		return sp.TargetPort.IntVal
	}
	return sp.Port
}

func less(a, b *manifest.Object) bool {
	if a.Source.File != b.Source.File {
		return a.Source.File < b.Source.File
	}
	if a.Source.Line != b.Source.Line {
		return a.Source.Line < b.Source.Line
	}
	return a.Ref() < b.Ref()
}

// markTelemetry marks the served ports that only scrapers use: a port name
// that says so, or a port reached only through a Service that exists for a
// ServiceMonitor. Prometheus scrapes pod addresses it discovers, so
// kube-proxy's lag never reaches those callers.
func (m *Model) markTelemetry(opts Options) {
	m.monitors = m.monitors[:0]
	for _, o := range m.Monitors {
		mon, ok := o.Value.(*manifest.ServiceMonitor)
		if !ok {
			continue
		}
		sel, err := metav1.LabelSelectorAsSelector(&mon.Spec.Selector)
		if err != nil {
			continue // an invalid selector selects nothing
		}
		ns := o.Namespace
		if ns == "" {
			ns = m.defaultNS
		}
		m.monitors = append(m.monitors, monitor{obj: o, mon: mon, ns: ns, sel: sel})
	}
	patterns := opts.TelemetryPorts
	if patterns == nil {
		patterns = DefaultTelemetryPorts
	}
	named := func(names ...string) string {
		for _, n := range names {
			for _, p := range patterns {
				if ok, _ := path.Match(p, n); ok && n != "" {
					return fmt.Sprintf("port name %q is for telemetry", n)
				}
			}
		}
		return ""
	}
	for _, w := range m.Workloads {
		for _, c := range w.Containers {
			for i := range c.Served {
				sv := &c.Served[i]
				var names []string
				if sv.ServicePort != nil {
					names = append(names, sv.ServicePort.Name, sv.ServicePort.TargetPort.StrVal)
				}
				sv.Telemetry = named(append(names, sv.Name)...)
				if sv.Telemetry == "" {
					sv.Telemetry = m.scrapedBy(w, sv)
				}
			}
		}
	}
}

// scrapedBy names the ServiceMonitor of the input that scrapes a served
// port through a Service that exists for scraping: every port of that
// Service is scraped, and the workload has another Service for its users.
// A monitor on a workload's only Service proves the port is scraped, not
// that only scrapers use it: apps serve /metrics beside their API.
func (m *Model) scrapedBy(w *Workload, sv *ServedPort) string {
	if sv.Service == nil || len(w.Services) < 2 {
		return ""
	}
	name := ""
	for i := range sv.Service.Spec.Spec.Ports {
		sp := &sv.Service.Spec.Spec.Ports[i]
		by := m.monitorOf(sv.Service, sp, containerPort(w, sp))
		if by == "" {
			return "" // the Service has a port no monitor scrapes
		}
		if sp == sv.ServicePort {
			name = by
		}
	}
	return name
}

// containerPort is the served port a Service port reaches in the workload.
func containerPort(w *Workload, sp *corev1.ServicePort) *ServedPort {
	for _, c := range w.Containers {
		for i := range c.Served {
			if c.Served[i].ServicePort == sp {
				return &c.Served[i]
			}
		}
	}
	return nil
}

// monitorOf names a ServiceMonitor that scrapes a Service's port, by the
// port's name, or by its target: the Service's targetPort, or the container
// port's name or number (the operator's targetPort is the pod's port).
func (m *Model) monitorOf(svc *Service, sp *corev1.ServicePort, target *ServedPort) string {
	set := labels.Set(svc.Spec.Labels)
	for _, mo := range m.monitors {
		if !monitorCovers(mo.mon.Spec.NamespaceSelector, mo.ns, svc.Namespace) || !mo.sel.Matches(set) {
			continue
		}
		for _, ep := range mo.mon.Spec.Endpoints {
			if (ep.Port != "" && ep.Port == sp.Name) || (ep.TargetPort != nil && (sameTarget(*ep.TargetPort, sp.TargetPort) || target != nil && targetIs(*ep.TargetPort, target))) {
				return "scraped by ServiceMonitor " + mo.obj.Name + " through a Service of its own"
			}
		}
	}
	return ""
}

func targetIs(t intstr.IntOrString, sv *ServedPort) bool {
	if t.Type == intstr.String {
		return t.StrVal == sv.Name
	}
	return t.IntVal == sv.Port
}

// sameTarget compares a monitor's targetPort with a Service port's.
func sameTarget(a, b intstr.IntOrString) bool {
	return a.Type == b.Type && a.IntVal == b.IntVal && a.StrVal == b.StrVal
}

func monitorCovers(nsSel manifest.MonitorNamespaces, own, target string) bool {
	switch {
	case nsSel.Any:
		return true
	case len(nsSel.MatchNames) > 0:
		for _, n := range nsSel.MatchNames {
			if n == target {
				return true
			}
		}
		return false
	}
	return own == target
}

// TelemetryOnly reports why every port a container serves is only
// scraped, or "" when some port carries users' connections.
func (c *Container) TelemetryOnly() string {
	why := ""
	for _, sv := range c.Served {
		if sv.Telemetry == "" {
			return ""
		}
		if why == "" {
			why = sv.Telemetry
		}
	}
	return why
}

// TelemetryOnly reports why every port the workload serves is only
// scraped, or "" when some port carries users' connections.
func (w *Workload) TelemetryOnly() string {
	why := ""
	for _, c := range w.ServedContainers() {
		t := c.TelemetryOnly()
		if t == "" {
			return ""
		}
		if why == "" {
			why = t
		}
	}
	return why
}
