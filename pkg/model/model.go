// Package model implements the join that every rollguard rule reads:
// workloads with the Services that send them traffic (their target ports
// resolved against container ports), the PodDisruptionBudgets that guard
// them and the HorizontalPodAutoscaler that scales them.
package model

import (
	"fmt"
	"sort"

	appsv1 "k8s.io/api/apps/v1"
	autoscalingv1 "k8s.io/api/autoscaling/v1"
	autoscalingv2 "k8s.io/api/autoscaling/v2"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
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
}

// Model is the joined view of a set of objects.
type Model struct {
	Workloads []*Workload
	Services  []*Service
	PDBs      []*PDB
	HPAs      []*HPA
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
	m := &Model{}
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
		// A StatefulSet never surges: it deletes a pod, then creates its successor.
		rolling(nil, u, intstr.FromInt32(0), intstr.FromInt32(1), "spec.updateStrategy")
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
	byNS := map[string][]*Workload{}
	for _, w := range m.Workloads {
		byNS[w.Namespace] = append(byNS[w.Namespace], w)
	}
	podLabels := func(w *Workload) labels.Set { return labels.Set(w.Template.Labels) }

	for _, s := range m.Services {
		if len(s.Spec.Spec.Selector) == 0 || s.Spec.Spec.Type == corev1.ServiceTypeExternalName {
			continue // endpoints are managed by hand, or there are none
		}
		sel := labels.SelectorFromSet(s.Spec.Spec.Selector)
		for _, w := range byNS[s.Namespace] {
			if sel.Matches(podLabels(w)) {
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
		for _, w := range byNS[p.Namespace] {
			if !w.Batch && sel.Matches(podLabels(w)) {
				p.Workloads = append(p.Workloads, w)
				w.PDBs = append(w.PDBs, p)
			}
		}
	}
	for _, h := range m.HPAs {
		for _, w := range byNS[h.Namespace] {
			if w.Kind == h.TargetKind && w.Name == h.TargetName {
				h.Target, w.HPA = w, h
				break
			}
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
					if c.Spec.Ports[i].Protocol == "" || c.Spec.Ports[i].Protocol == corev1.ProtocolTCP {
						c.Served = append(c.Served, ServedPort{Port: c.Spec.Ports[i].ContainerPort, Declared: true})
						w.Served = true
					}
				}
			}
		}
	}
	sort.SliceStable(m.Workloads, func(i, j int) bool { return less(m.Workloads[i].Object, m.Workloads[j].Object) })
}

// attach resolves a Service port against a workload's containers, the way
// the EndpointSlice controller does, and records it on the container that
// receives the traffic. It returns false when a named targetPort matches no
// container port, so the pods get no endpoint for it.
func attach(w *Workload, s *Service, sp *corev1.ServicePort) bool {
	proto := sp.Protocol
	if proto == "" {
		proto = corev1.ProtocolTCP
	}
	protoOf := func(p *corev1.ContainerPort) corev1.Protocol {
		if p.Protocol == "" {
			return corev1.ProtocolTCP
		}
		return p.Protocol
	}
	if sp.TargetPort.Type == intstr.String && sp.TargetPort.StrVal != "" {
		for _, c := range w.Containers {
			for i := range c.Spec.Ports {
				p := &c.Spec.Ports[i]
				if p.Name == sp.TargetPort.StrVal && protoOf(p) == proto {
					c.Served = append(c.Served, ServedPort{Service: s, ServicePort: sp, Port: p.ContainerPort, Declared: true})
					return true
				}
			}
		}
		return false
	}
	num := sp.TargetPort.IntVal
	if num == 0 {
		num = sp.Port
	}
	for _, c := range w.Containers {
		for i := range c.Spec.Ports {
			if c.Spec.Ports[i].ContainerPort == num && protoOf(&c.Spec.Ports[i]) == proto {
				c.Served = append(c.Served, ServedPort{Service: s, ServicePort: sp, Port: num, Declared: true})
				return true
			}
		}
	}
	// The port list is informational: traffic reaches the pod's port
	// whether or not a container declares it. Attribute it to the first
	// app container, the one that by convention serves.
	for _, c := range w.Containers {
		if !c.Sidecar {
			c.Served = append(c.Served, ServedPort{Service: s, ServicePort: sp, Port: num})
			return true
		}
	}
	return true
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
