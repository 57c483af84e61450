package manifest

import (
	appsv1 "k8s.io/api/apps/v1"
	autoscalingv1 "k8s.io/api/autoscaling/v1"
	autoscalingv2 "k8s.io/api/autoscaling/v2"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
)

// typeKey is an apiVersion and kind.
type typeKey struct{ apiVersion, kind string }

// decoded lists the kinds rollguard reads, with a constructor for the typed
// value that the object's JSON is decoded into.
var decoded = map[typeKey]func() any{
	{"apps/v1", "Deployment"}:                      func() any { return new(appsv1.Deployment) },
	{"apps/v1", "StatefulSet"}:                     func() any { return new(appsv1.StatefulSet) },
	{"apps/v1", "DaemonSet"}:                       func() any { return new(appsv1.DaemonSet) },
	{"apps/v1", "ReplicaSet"}:                      func() any { return new(appsv1.ReplicaSet) },
	{"v1", "Pod"}:                                  func() any { return new(corev1.Pod) },
	{"v1", "Service"}:                              func() any { return new(corev1.Service) },
	{"policy/v1", "PodDisruptionBudget"}:           func() any { return new(policyv1.PodDisruptionBudget) },
	{"autoscaling/v2", "HorizontalPodAutoscaler"}:  func() any { return new(autoscalingv2.HorizontalPodAutoscaler) },
	{"autoscaling/v1", "HorizontalPodAutoscaler"}:  func() any { return new(autoscalingv1.HorizontalPodAutoscaler) },
	{"batch/v1", "Job"}:                            func() any { return new(batchv1.Job) },
	{"batch/v1", "CronJob"}:                        func() any { return new(batchv1.CronJob) },
	{"argoproj.io/v1alpha1", "Rollout"}:            func() any { return new(Rollout) },
	{"monitoring.coreos.com/v1", "ServiceMonitor"}: func() any { return new(ServiceMonitor) },
}

// builtinKinds lists every kind of the built-in API groups whose kinds
// rollguard checks, so that a misspelt kind ("Deploymnet") in one of them is
// an error instead of a silently skipped object. Objects of other groups
// (CRDs, RBAC, storage, ...) are skipped without a check.
var builtinKinds = map[string][]string{
	"v1": {"Binding", "ComponentStatus", "ConfigMap", "Endpoints", "Event", "LimitRange",
		"Namespace", "Node", "PersistentVolume", "PersistentVolumeClaim", "Pod", "PodTemplate",
		"ReplicationController", "ResourceQuota", "Secret", "Service", "ServiceAccount"},
	"apps/v1":              {"ControllerRevision", "DaemonSet", "Deployment", "ReplicaSet", "StatefulSet"},
	"batch/v1":             {"CronJob", "Job"},
	"policy/v1":            {"Eviction", "PodDisruptionBudget"},
	"autoscaling/v1":       {"HorizontalPodAutoscaler", "Scale"},
	"autoscaling/v2":       {"HorizontalPodAutoscaler"},
	"networking.k8s.io/v1": {"Ingress", "IngressClass", "IPAddress", "NetworkPolicy", "ServiceCIDR"},
}

// removed lists API versions of the kinds rollguard reads that Kubernetes no
// longer serves: such a manifest cannot be applied, so it is an input error
// that says which version to use.
var removed = map[typeKey]struct{ in, use string }{
	{"extensions/v1beta1", "Deployment"}:               {"1.16", "apps/v1"},
	{"extensions/v1beta1", "DaemonSet"}:                {"1.16", "apps/v1"},
	{"extensions/v1beta1", "ReplicaSet"}:               {"1.16", "apps/v1"},
	{"apps/v1beta1", "Deployment"}:                     {"1.16", "apps/v1"},
	{"apps/v1beta1", "StatefulSet"}:                    {"1.16", "apps/v1"},
	{"apps/v1beta2", "Deployment"}:                     {"1.16", "apps/v1"},
	{"apps/v1beta2", "StatefulSet"}:                    {"1.16", "apps/v1"},
	{"apps/v1beta2", "DaemonSet"}:                      {"1.16", "apps/v1"},
	{"apps/v1beta2", "ReplicaSet"}:                     {"1.16", "apps/v1"},
	{"policy/v1beta1", "PodDisruptionBudget"}:          {"1.25", "policy/v1"},
	{"autoscaling/v2beta1", "HorizontalPodAutoscaler"}: {"1.25", "autoscaling/v2"},
	{"autoscaling/v2beta2", "HorizontalPodAutoscaler"}: {"1.26", "autoscaling/v2"},
	{"batch/v1beta1", "CronJob"}:                       {"1.25", "batch/v1"},
}

var builtinKindSet = func() map[typeKey]bool {
	m := map[typeKey]bool{}
	for v, kinds := range builtinKinds {
		for _, k := range kinds {
			m[typeKey{v, k}] = true
		}
	}
	return m
}()

// Rollout is the part of an Argo Rollouts Rollout that rollguard reads: it
// is a workload with a pod template and a canary or blue-green strategy.
type Rollout struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`
	Spec              RolloutSpec `json:"spec"`
}

// RolloutSpec is the part of an Argo Rollouts spec that rollguard reads.
type RolloutSpec struct {
	Replicas        *int32                 `json:"replicas,omitempty"`
	Selector        *metav1.LabelSelector  `json:"selector,omitempty"`
	Template        corev1.PodTemplateSpec `json:"template"`
	MinReadySeconds int32                  `json:"minReadySeconds,omitempty"`
	Strategy        RolloutStrategy        `json:"strategy"`
}

// RolloutStrategy holds the Rollout's strategy; exactly one is normally set.
type RolloutStrategy struct {
	Canary    *RolloutCanary `json:"canary,omitempty"`
	BlueGreen *struct{}      `json:"blueGreen,omitempty"`
}

// RolloutCanary holds the surge settings of a canary Rollout.
type RolloutCanary struct {
	MaxSurge       *intstr.IntOrString `json:"maxSurge,omitempty"`
	MaxUnavailable *intstr.IntOrString `json:"maxUnavailable,omitempty"`
}

// ServiceMonitor is the part of a Prometheus Operator ServiceMonitor that
// rollguard reads: which Services it scrapes, and on which ports. Scrapes
// go to pod addresses, not through kube-proxy, so those ports carry no
// users' connections.
type ServiceMonitor struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`
	Spec              struct {
		Selector          metav1.LabelSelector `json:"selector"`
		NamespaceSelector MonitorNamespaces    `json:"namespaceSelector"`
		Endpoints         []MonitorEndpoint    `json:"endpoints"`
	} `json:"spec"`
}

// MonitorNamespaces is a monitor's namespace selector; empty means the
// monitor's own namespace.
type MonitorNamespaces struct {
	Any        bool     `json:"any,omitempty"`
	MatchNames []string `json:"matchNames,omitempty"`
}

// MonitorEndpoint names a scraped Service port by name, or by target port.
type MonitorEndpoint struct {
	Port       string              `json:"port,omitempty"`
	TargetPort *intstr.IntOrString `json:"targetPort,omitempty"`
}
