package lab

import (
	"sort"
	"sync"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"

	"github.com/rollguard/rollguard/pkg/diagnose"
	"github.com/rollguard/rollguard/pkg/manifest"
	"github.com/rollguard/rollguard/pkg/model"
	"github.com/rollguard/rollguard/pkg/rules"
)

// ruleFor names, for a cause on a pod, the rule that prevents it: the
// rules registry is run over a Deployment with the pod's spec (its preStop
// delay, its readinessProbe) behind a Service, and the first rule of the
// cause's case that fires is the answer. The diagnosis itself knows no rule.
func ruleFor(sc Scenario) func(diagnose.Cause, diagnose.PodSpec) string {
	reg := rules.Default()
	settings := rules.Settings{PropagationBudget: sc.budget(), DrainAllowance: sc.Drain}
	var mu sync.Mutex
	cache := map[[2]any]string{}
	return func(cause diagnose.Cause, p diagnose.PodSpec) string {
		key := [2]any{cause, [2]any{p.PreStop, p.Readiness}}
		mu.Lock()
		defer mu.Unlock()
		if id, ok := cache[key]; ok {
			return id
		}
		want := map[diagnose.Cause]rules.Case{diagnose.Case1: rules.Case1, diagnose.Case2: rules.Case2}[cause]
		m := model.Build(podObjects(p, sc), model.Options{})
		var ids []string
		for _, f := range reg.Run(m, rules.Options{Settings: settings}).Findings {
			if f.Rule.Case == want {
				ids = append(ids, f.Rule.ID)
			}
		}
		sort.Strings(ids)
		id := ""
		if len(ids) > 0 {
			id = ids[0]
		}
		cache[key] = id
		return id
	}
}

// podObjects is the lab's workload as manifests would state it.
func podObjects(p diagnose.PodSpec, sc Scenario) []*manifest.Object {
	labels := map[string]string{"app": "web"}
	c := corev1.Container{Name: "web", Image: "rollguard", Ports: []corev1.ContainerPort{{Name: "http", ContainerPort: 8080}}}
	if p.PreStop > 0 {
		c.Lifecycle = &corev1.Lifecycle{PreStop: &corev1.LifecycleHandler{Sleep: &corev1.SleepAction{Seconds: int64(p.PreStop.Seconds())}}}
	}
	if p.Readiness {
		c.ReadinessProbe = &corev1.Probe{ProbeHandler: corev1.ProbeHandler{TCPSocket: &corev1.TCPSocketAction{Port: intstr.FromString("http")}}}
	}
	replicas := int32(sc.Replicas)
	grace := int64(sc.Grace.Seconds())
	dep := &appsv1.Deployment{ObjectMeta: metav1.ObjectMeta{Name: "web"}, Spec: appsv1.DeploymentSpec{
		Replicas: &replicas, Selector: &metav1.LabelSelector{MatchLabels: labels},
		Strategy: appsv1.DeploymentStrategy{Type: appsv1.RollingUpdateDeploymentStrategyType,
			RollingUpdate: &appsv1.RollingUpdateDeployment{MaxSurge: &sc.MaxSurge, MaxUnavailable: &sc.MaxUnavailable}},
		Template: corev1.PodTemplateSpec{ObjectMeta: metav1.ObjectMeta{Labels: labels},
			Spec: corev1.PodSpec{TerminationGracePeriodSeconds: &grace, Containers: []corev1.Container{c}}}}}
	svc := &corev1.Service{ObjectMeta: metav1.ObjectMeta{Name: "web"}, Spec: corev1.ServiceSpec{Selector: labels,
		Ports: []corev1.ServicePort{{Port: 80, TargetPort: intstr.FromString("http")}}}}
	return []*manifest.Object{
		{APIVersion: "apps/v1", Kind: "Deployment", Name: "web", Value: dep},
		{APIVersion: "v1", Kind: "Service", Name: "web", Value: svc},
	}
}
