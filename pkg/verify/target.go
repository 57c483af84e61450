package verify

import (
	"context"
	"fmt"
	"sort"
	"strconv"
	"strings"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/client-go/kubernetes"
)

// Kind is a workload kind verify can roll.
type Kind string

// The kinds, in kubectl's resource names.
const (
	Deployment  Kind = "deployment"
	StatefulSet Kind = "statefulset"
	DaemonSet   Kind = "daemonset"
)

// kindNames maps kubectl's names and short names to a kind.
var kindNames = map[string]Kind{
	"deployment": Deployment, "deployments": Deployment, "deploy": Deployment, "deployment.apps": Deployment, "deployments.apps": Deployment,
	"statefulset": StatefulSet, "statefulsets": StatefulSet, "sts": StatefulSet, "statefulset.apps": StatefulSet, "statefulsets.apps": StatefulSet,
	"daemonset": DaemonSet, "daemonsets": DaemonSet, "ds": DaemonSet, "daemonset.apps": DaemonSet, "daemonsets.apps": DaemonSet,
}

// ParseTarget reads kubectl's KIND/NAME form.
func ParseTarget(s string) (Kind, string, error) {
	kind, name, ok := strings.Cut(s, "/")
	k, known := kindNames[strings.ToLower(kind)]
	switch {
	case !ok || name == "" || kind == "":
		return "", "", fmt.Errorf("%q: want KIND/NAME, e.g. deployment/orders", s)
	case !known:
		return "", "", fmt.Errorf("%q: verify rolls deployments, statefulsets and daemonsets, not %q", s, kind)
	case strings.Contains(name, "/"):
		return "", "", fmt.Errorf("%q: want KIND/NAME, e.g. deployment/orders", s)
	}
	return k, name, nil
}

// workload is the rolled object as verify reads it.
type workload struct {
	kind      Kind
	name      string
	namespace string
	selector  labels.Selector
	template  corev1.PodTemplateSpec
	// annotations of the workload itself, which may declare the app's
	// shutdown delay.
	annotations map[string]string
	generation  int64
	obj         any
}

func (w *workload) String() string { return string(w.kind) + "/" + w.name }

// getWorkload reads the workload.
func getWorkload(ctx context.Context, cs kubernetes.Interface, kind Kind, ns, name string) (*workload, error) {
	w := &workload{kind: kind, name: name, namespace: ns}
	var sel *metav1.LabelSelector
	var err error
	switch kind {
	case Deployment:
		var d *appsv1.Deployment
		if d, err = cs.AppsV1().Deployments(ns).Get(ctx, name, metav1.GetOptions{}); err == nil {
			sel, w.template, w.annotations, w.generation, w.obj = d.Spec.Selector, d.Spec.Template, d.Annotations, d.Generation, d
		}
	case StatefulSet:
		var s *appsv1.StatefulSet
		if s, err = cs.AppsV1().StatefulSets(ns).Get(ctx, name, metav1.GetOptions{}); err == nil {
			sel, w.template, w.annotations, w.generation, w.obj = s.Spec.Selector, s.Spec.Template, s.Annotations, s.Generation, s
		}
	case DaemonSet:
		var d *appsv1.DaemonSet
		if d, err = cs.AppsV1().DaemonSets(ns).Get(ctx, name, metav1.GetOptions{}); err == nil {
			sel, w.template, w.annotations, w.generation, w.obj = d.Spec.Selector, d.Spec.Template, d.Annotations, d.Generation, d
		}
	}
	if apierrors.IsNotFound(err) {
		return nil, &InputError{Err: fmt.Errorf("%s/%s not found in namespace %s (check the name and -n)", kind, name, ns)}
	}
	if err != nil {
		return nil, apiError(err, "get "+string(kind)+"s", ns)
	}
	if w.selector, err = metav1.LabelSelectorAsSelector(sel); err != nil {
		return nil, &InputError{Err: fmt.Errorf("%s: invalid selector: %w", w, err)}
	}
	return w, nil
}

// findService finds the Service whose selector picks the workload's pods,
// or reads the one named.
func findService(ctx context.Context, cs kubernetes.Interface, w *workload, named string) (*corev1.Service, error) {
	if named != "" {
		svc, err := cs.CoreV1().Services(w.namespace).Get(ctx, named, metav1.GetOptions{})
		if apierrors.IsNotFound(err) {
			return nil, &InputError{Err: fmt.Errorf("service %s not found in namespace %s", named, w.namespace)}
		}
		if err != nil {
			return nil, apiError(err, "get services", w.namespace)
		}
		if !selects(svc, w.template.Labels) {
			return nil, &InputError{Err: fmt.Errorf("service %s does not select the pods of %s (its selector %v, their labels %v)",
				named, w, svc.Spec.Selector, w.template.Labels)}
		}
		return svc, nil
	}
	list, err := cs.CoreV1().Services(w.namespace).List(ctx, metav1.ListOptions{})
	if err != nil {
		return nil, apiError(err, "list services", w.namespace)
	}
	var found []corev1.Service
	for _, s := range list.Items {
		if selects(&s, w.template.Labels) {
			found = append(found, s)
		}
	}
	switch len(found) {
	case 0:
		return nil, &InputError{Err: fmt.Errorf("no Service in namespace %s selects the pods of %s (labels %v): callers reach it some other way; name one with --service",
			w.namespace, w, w.template.Labels)}
	case 1:
		return &found[0], nil
	}
	names := make([]string, len(found))
	for i, s := range found {
		names[i] = s.Name
	}
	sort.Strings(names)
	return nil, &InputError{Err: fmt.Errorf("%d Services select the pods of %s (%s): pick the one callers use with --service",
		len(found), w, strings.Join(names, ", "))}
}

// selects reports whether a Service's selector picks pods with these labels.
func selects(svc *corev1.Service, podLabels map[string]string) bool {
	if len(svc.Spec.Selector) == 0 {
		return false // endpoints managed by hand: not the workload's pods
	}
	return labels.SelectorFromSet(svc.Spec.Selector).Matches(labels.Set(podLabels))
}

// servicePort picks the Service port traffic goes to: the one named or
// numbered by want, or the only TCP port.
func servicePort(svc *corev1.Service, want string) (corev1.ServicePort, error) {
	var tcp []corev1.ServicePort
	for _, p := range svc.Spec.Ports {
		if p.Protocol != "" && p.Protocol != corev1.ProtocolTCP {
			continue
		}
		tcp = append(tcp, p)
		if want != "" && (p.Name == want || strconv.Itoa(int(p.Port)) == want) {
			return p, nil
		}
	}
	var names []string
	for _, p := range tcp {
		n := strconv.Itoa(int(p.Port))
		if p.Name != "" {
			n += " (" + p.Name + ")"
		}
		names = append(names, n)
	}
	switch {
	case want != "":
		return corev1.ServicePort{}, &InputError{Err: fmt.Errorf("service %s has no TCP port %s; its TCP ports: %s", svc.Name, want, strings.Join(names, ", "))}
	case len(tcp) == 1:
		return tcp[0], nil
	case len(tcp) == 0:
		return corev1.ServicePort{}, &InputError{Err: fmt.Errorf("service %s has no TCP port: verify sends TCP traffic", svc.Name)}
	}
	return corev1.ServicePort{}, &InputError{Err: fmt.Errorf("service %s has %d TCP ports (%s): pick one with --port", svc.Name, len(tcp), strings.Join(names, ", "))}
}

// podPort resolves a Service's targetPort on a pod: a number, or the name
// of one of its containers' ports. It also returns the container serving
// it, or nil.
func podPort(spec *corev1.PodSpec, target intstr.IntOrString, port int32) (int32, *corev1.Container) {
	if target.Type == intstr.Int && target.IntVal == 0 && target.StrVal == "" {
		target = intstr.FromInt32(port) // targetPort defaults to port
	}
	// As the EndpointSlice controller resolves it (FindPort): containers,
	// then native sidecars (init containers that keep running), TCP ports.
	var cs []*corev1.Container
	for i := range spec.Containers {
		cs = append(cs, &spec.Containers[i])
	}
	for i := range spec.InitContainers {
		if c := &spec.InitContainers[i]; c.RestartPolicy != nil && *c.RestartPolicy == corev1.ContainerRestartPolicyAlways {
			cs = append(cs, c)
		}
	}
	for _, c := range cs {
		for _, p := range c.Ports {
			if p.Protocol != "" && p.Protocol != corev1.ProtocolTCP {
				continue
			}
			if (target.Type == intstr.String && p.Name == target.StrVal) || (target.Type == intstr.Int && p.ContainerPort == target.IntVal) {
				return p.ContainerPort, c
			}
		}
	}
	if target.Type == intstr.Int {
		if len(spec.Containers) == 1 {
			return target.IntVal, &spec.Containers[0]
		}
		return target.IntVal, nil
	}
	return 0, nil
}

// probesPort reports whether a readinessProbe checks the served port: a
// probe elsewhere passes before the app listens.
func probesPort(c *corev1.Container, port int32) bool {
	p := c.ReadinessProbe
	if p == nil {
		return false
	}
	var on intstr.IntOrString
	switch {
	case p.HTTPGet != nil:
		on = p.HTTPGet.Port
	case p.TCPSocket != nil:
		on = p.TCPSocket.Port
	case p.GRPC != nil:
		on = intstr.FromInt32(p.GRPC.Port)
	default:
		return false // an exec probe: what it checks is unknown
	}
	if on.Type == intstr.Int {
		return on.IntVal == port
	}
	for _, cp := range c.Ports {
		if cp.Name == on.StrVal {
			return cp.ContainerPort == port
		}
	}
	return false
}
