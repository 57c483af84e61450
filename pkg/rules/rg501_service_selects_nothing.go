package rules

import (
	"fmt"

	"k8s.io/apimachinery/pkg/labels"

	"github.com/rollguard/rollguard/pkg/model"
)

func serviceSelectsNothing() *Rule {
	return &Rule{
		ID: "RG501", Name: "service-selects-nothing", Case: Service, Severity: Warning,
		Summary: "A Service's selector matches no workload's pods",
		Rollout: "The Service has no endpoints: every connection to it is refused (or times out), rollout or not.",
		Why: `A Service sends traffic to the ready pods its selector matches in its namespace. A selector
that matches no pod template (a label changed on one side only, a typo) leaves it without
endpoints; kube-proxy then rejects its connections. rollguard reports it only when the input
holds workloads in that namespace, and not for Services without a selector, whose endpoints
are managed by hand. When the namespace also holds an operator's object that may run the
pods (a Prometheus, an Alertmanager, a Kafka or another kind known to run pods), the finding
is info: those pods are not in the input. With audit --cluster -l, which reads only some
workloads, it is not reported at all.`,
		Fix: `Make the selector match the labels of the pod template that should serve it.`,
		Example: `spec:
  selector:
    app: web     # must match spec.template.metadata.labels of the workload`,
		NoFix:   "The pods the Service was meant for cannot be told from the selector.",
		Subject: "Service",
		Model: func(s Settings, m *model.Model) []Finding {
			has := namespacesWithWorkloads(m)
			var out []Finding
			for _, svc := range m.Services {
				if m.Partial || len(svc.Workloads) > 0 || len(svc.Spec.Spec.Selector) == 0 || !has[svc.Namespace] {
					continue
				}
				sel := labels.Set(svc.Spec.Spec.Selector)
				out = append(out, Finding{Object: svc.Object, Path: "spec.selector",
					Message: fmt.Sprintf("selector %s matches no workload's pods in namespace %s", sel, svc.Namespace),
					Fix:     "use the labels of the pod template that should serve this Service",
					Lowered: operatorMayOwn(m, svc.Namespace, sel)})
			}
			return out
		},
	}
}

// operatorKinds are custom resources whose operators run pods: a Service or
// budget of the input may select those pods, which no manifest shows.
var operatorKinds = map[string]bool{
	"Prometheus": true, "Alertmanager": true, "ThanosRuler": true, "PrometheusAgent": true,
	"Kafka": true, "KafkaConnect": true, "Elasticsearch": true, "Kibana": true,
	"Cluster": true, "postgresql": true, "RabbitmqCluster": true, "RedisFailover": true,
}

// operatorMayOwn says which object of the namespace an operator may be
// running the selected pods for: one of a known pod-running kind whose name
// the selector's labels name (operators label their pods with the owner's
// name: prometheus=NAME, strimzi.io/cluster=NAME), or, when no label names
// one, any object of such a kind in the namespace.
func operatorMayOwn(m *model.Model, ns string, sel map[string]string) string {
	named := map[string]bool{}
	for _, v := range sel {
		named[v] = true
	}
	var any string
	for _, o := range m.Others {
		if o.Namespace != "" && o.Namespace != ns {
			continue
		}
		if operatorKinds[o.Kind] && !named[o.Name] && any == "" {
			any = fmt.Sprintf("the namespace holds %s %s, whose operator may run the pods it selects; rollguard cannot see those pods", o.Kind, o.Name)
			continue
		}
		// Only kinds known to run pods: a Certificate or a VirtualService
		// often shares the app's name and runs nothing.
		if operatorKinds[o.Kind] {
			return fmt.Sprintf("the namespace holds %s %s, whose operator may run the pods it selects; rollguard cannot see those pods", o.Kind, o.Name)
		}
	}
	return any
}
