package model_test

import (
	"fmt"
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	"k8s.io/apimachinery/pkg/util/intstr"

	"github.com/rollguard/rollguard/pkg/manifest"
	"github.com/rollguard/rollguard/pkg/model"
)

// build decodes a YAML stream and joins it.
func build(t *testing.T, src string, opts model.Options) *model.Model {
	t.Helper()
	res := &manifest.Result{}
	manifest.Decode("in.yaml", []byte(src), res)
	if len(res.Errors) > 0 {
		t.Fatal(res.Errors)
	}
	opts.Others = res.Others
	return model.Build(res.Objects, opts)
}

// workload finds a workload by name.
func workload(t *testing.T, m *model.Model, name string) *model.Workload {
	t.Helper()
	for _, w := range m.Workloads {
		if w.Name == name {
			return w
		}
	}
	t.Fatalf("no workload %s", name)
	return nil
}

// TestWorkloadDefaults: each kind's strategy, replicas and pod spec path,
// with the API's defaults filled in.
func TestWorkloadDefaults(t *testing.T) {
	t.Parallel()
	const tpl = "  template:\n    metadata: {labels: {app: x}}\n    spec:\n      containers: [{name: c, image: i}]\n"
	for _, tc := range []struct {
		name, src                     string
		typ, surge, unavailable, path string
		replicas                      int32
		rolls                         bool
		specPath                      string
		grace                         time.Duration
		graceWritten                  bool
	}{
		{"Deployment, nothing written", "kind: Deployment\napiVersion: apps/v1\nmetadata: {name: x}\nspec:\n" + tpl,
			"RollingUpdate", "25%", "25%", "spec.strategy.rollingUpdate", 1, true, "spec.template.spec", 30 * time.Second, false},
		{"Deployment, Recreate", "kind: Deployment\napiVersion: apps/v1\nmetadata: {name: x}\nspec:\n  replicas: 3\n  strategy: {type: Recreate}\n" + tpl,
			"Recreate", "0", "0", "spec.strategy", 3, true, "spec.template.spec", 30 * time.Second, false},
		{"Deployment, written surge", "kind: Deployment\napiVersion: apps/v1\nmetadata: {name: x}\nspec:\n  strategy: {rollingUpdate: {maxSurge: 2}}\n" + tpl,
			"RollingUpdate", "2", "25%", "spec.strategy.rollingUpdate", 1, true, "spec.template.spec", 30 * time.Second, false},
		{"StatefulSet, nothing written: no surge, one unavailable", "kind: StatefulSet\napiVersion: apps/v1\nmetadata: {name: x}\nspec:\n" + tpl,
			"RollingUpdate", "0", "1", "spec.updateStrategy.rollingUpdate", 1, true, "spec.template.spec", 30 * time.Second, false},
		{"StatefulSet, OnDelete", "kind: StatefulSet\napiVersion: apps/v1\nmetadata: {name: x}\nspec:\n  updateStrategy: {type: OnDelete}\n" + tpl,
			"OnDelete", "0", "1", "spec.updateStrategy.rollingUpdate", 1, true, "spec.template.spec", 30 * time.Second, false},
		{"StatefulSet, written maxUnavailable", "kind: StatefulSet\napiVersion: apps/v1\nmetadata: {name: x}\nspec:\n  replicas: 4\n  updateStrategy: {rollingUpdate: {maxUnavailable: 2}}\n" + tpl,
			"RollingUpdate", "0", "2", "spec.updateStrategy.rollingUpdate", 4, true, "spec.template.spec", 30 * time.Second, false},
		{"DaemonSet, nothing written", "kind: DaemonSet\napiVersion: apps/v1\nmetadata: {name: x}\nspec:\n" + tpl,
			"RollingUpdate", "0", "1", "spec.updateStrategy.rollingUpdate", 0, true, "spec.template.spec", 30 * time.Second, false},
		{"DaemonSet, OnDelete", "kind: DaemonSet\napiVersion: apps/v1\nmetadata: {name: x}\nspec:\n  updateStrategy: {type: OnDelete}\n" + tpl,
			"OnDelete", "0", "1", "spec.updateStrategy.rollingUpdate", 0, true, "spec.template.spec", 30 * time.Second, false},
		{"DaemonSet, surging", "kind: DaemonSet\napiVersion: apps/v1\nmetadata: {name: x}\nspec:\n  updateStrategy: {rollingUpdate: {maxSurge: 1, maxUnavailable: 0}}\n" + tpl,
			"RollingUpdate", "1", "0", "spec.updateStrategy.rollingUpdate", 0, true, "spec.template.spec", 30 * time.Second, false},
		{"Rollout, blue-green", "kind: Rollout\napiVersion: argoproj.io/v1alpha1\nmetadata: {name: x}\nspec:\n  replicas: 2\n  strategy: {blueGreen: {}}\n" + tpl,
			"BlueGreen", "0", "0", "spec.strategy.blueGreen", 2, true, "spec.template.spec", 30 * time.Second, false},
		{"Rollout, canary with values", "kind: Rollout\napiVersion: argoproj.io/v1alpha1\nmetadata: {name: x}\nspec:\n  strategy: {canary: {maxSurge: 2, maxUnavailable: 0}}\n" + tpl,
			"Canary", "2", "0", "spec.strategy.canary", 1, true, "spec.template.spec", 30 * time.Second, false},
		{"Rollout, canary by default", "kind: Rollout\napiVersion: argoproj.io/v1alpha1\nmetadata: {name: x}\nspec:\n" + tpl,
			"Canary", "25%", "25%", "spec.strategy.canary", 1, true, "spec.template.spec", 30 * time.Second, false},
		{"ReplicaSet of its own", "kind: ReplicaSet\napiVersion: apps/v1\nmetadata: {name: x}\nspec:\n  replicas: 2\n" + tpl,
			"", "0", "0", "", 2, true, "spec.template.spec", 30 * time.Second, false},
		{"Pod: no replicas, does not roll", "kind: Pod\napiVersion: v1\nmetadata: {name: x}\nspec:\n  terminationGracePeriodSeconds: 10\n  containers: [{name: c, image: i}]\n",
			"", "0", "0", "", 0, false, "spec", 10 * time.Second, true},
		{"Pod whose owner is no controller stays", "kind: Pod\napiVersion: v1\nmetadata:\n  name: x\n  ownerReferences: [{apiVersion: v1, kind: Node, name: n, uid: u, controller: false}]\nspec:\n  containers: [{name: c, image: i}]\n",
			"", "0", "0", "", 0, false, "spec", 30 * time.Second, false},
		{"Pod with an owner reference that does not say", "kind: Pod\napiVersion: v1\nmetadata:\n  name: x\n  ownerReferences: [{apiVersion: v1, kind: Node, name: n, uid: u}]\nspec:\n  containers: [{name: c, image: i}]\n",
			"", "0", "0", "", 0, false, "spec", 30 * time.Second, false},
		{"Job: batch, does not roll", "kind: Job\napiVersion: batch/v1\nmetadata: {name: x}\nspec:\n" + tpl,
			"", "0", "0", "", 1, false, "spec.template.spec", 30 * time.Second, false},
		{"CronJob: batch, template under jobTemplate", "kind: CronJob\napiVersion: batch/v1\nmetadata: {name: x}\nspec:\n  schedule: '* * * * *'\n  jobTemplate:\n    spec:\n      template:\n        spec:\n          terminationGracePeriodSeconds: 0\n          containers: [{name: c, image: i}]\n",
			"", "0", "0", "", 1, false, "spec.jobTemplate.spec.template.spec", 0, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			m := build(t, tc.src, model.Options{})
			if len(m.Workloads) != 1 {
				t.Fatalf("got %d workloads, want 1", len(m.Workloads))
			}
			w := m.Workloads[0]
			st := w.Strategy
			if st.Type != tc.typ || st.MaxSurge.String() != tc.surge || st.MaxUnavailable.String() != tc.unavailable || st.Path != tc.path {
				t.Errorf("strategy %q surge %s unavailable %s at %q, want %q %s %s at %q", st.Type, st.MaxSurge.String(), st.MaxUnavailable.String(), st.Path, tc.typ, tc.surge, tc.unavailable, tc.path)
			}
			if got := w.EffectiveReplicas(); got != tc.replicas {
				t.Errorf("effective replicas %d, want %d", got, tc.replicas)
			}
			if got := w.Rolls(); got != tc.rolls {
				t.Errorf("rolls %v, want %v", got, tc.rolls)
			}
			if got := w.SpecPath(); got != tc.specPath {
				t.Errorf("spec path %q, want %q", got, tc.specPath)
			}
			if g, written := w.GracePeriod(); g != tc.grace || written != tc.graceWritten {
				t.Errorf("grace period %s (written %v), want %s (%v)", g, written, tc.grace, tc.graceWritten)
			}
		})
	}
}

func TestControlledObjectsLeftToTheirOwner(t *testing.T) {
	t.Parallel()
	m := build(t, `apiVersion: apps/v1
kind: ReplicaSet
metadata:
  name: web-abc
  ownerReferences: [{apiVersion: apps/v1, kind: Deployment, name: web, uid: u, controller: true}]
spec:
  template:
    metadata: {labels: {app: web}}
    spec: {containers: [{name: c, image: i}]}
`, model.Options{})
	if len(m.Workloads) != 0 {
		t.Errorf("a ReplicaSet its Deployment controls was audited on its own")
	}
}

func TestEffectiveReplicasFollowsTheHPA(t *testing.T) {
	t.Parallel()
	m := build(t, `apiVersion: apps/v1
kind: Deployment
metadata: {name: web}
spec:
  replicas: 5
  template:
    metadata: {labels: {app: web}}
    spec: {containers: [{name: c, image: i}]}
---
apiVersion: autoscaling/v1
kind: HorizontalPodAutoscaler
metadata: {name: web}
spec:
  scaleTargetRef: {kind: Deployment, name: web}
  minReplicas: 3
  maxReplicas: 9
---
apiVersion: autoscaling/v2
kind: HorizontalPodAutoscaler
metadata: {name: other}
spec:
  scaleTargetRef: {kind: StatefulSet, name: web}
  maxReplicas: 9
`, model.Options{})
	w := m.Workloads[0]
	if w.HPA == nil || w.HPA.Object.Name != "web" || w.HPA.MaxReplicas != 9 || w.EffectiveReplicas() != 3 {
		t.Fatalf("got HPA %+v and %d replicas, want HPA web (3..9) and 3", w.HPA, w.EffectiveReplicas())
	}
	if other := m.HPAs[1]; other.Target != nil || other.MinReplicas != 1 {
		t.Errorf("an HPA of a StatefulSet the input lacks: target %v, minReplicas %d; want none, 1", other.Target, other.MinReplicas)
	}
}

func TestNamespaces(t *testing.T) {
	t.Parallel()
	const src = `apiVersion: apps/v1
kind: Deployment
metadata: {name: a}
spec:
  template:
    metadata: {labels: {app: a}}
    spec: {containers: [{name: c, image: i}]}
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: b, namespace: shop}
spec:
  template:
    metadata: {labels: {app: a}}
    spec: {containers: [{name: c, image: i}]}
`
	for _, tc := range []struct{ flag, a, b string }{{"", "default", "shop"}, {"prod", "prod", "shop"}} {
		m := build(t, src, model.Options{Namespace: tc.flag})
		if a, b := workload(t, m, "a").Namespace, workload(t, m, "b").Namespace; a != tc.a || b != tc.b {
			t.Errorf("-n %q: namespaces %q and %q, want %q and %q", tc.flag, a, b, tc.a, tc.b)
		}
	}
}

// TestJoinSkipsWhatCannotSelect: Services and budgets that select nothing
// (no selector, ExternalName, a null or invalid selector) are passed over
// without stopping the join of those after them, and batch work is never
// served nor guarded.
func TestJoinSkipsWhatCannotSelect(t *testing.T) {
	t.Parallel()
	m := build(t, `apiVersion: batch/v1
kind: Job
metadata: {name: job}
spec:
  template:
    metadata: {labels: {app: web}}
    spec: {containers: [{name: c, image: i, ports: [{containerPort: 80}]}]}
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: web}
spec:
  template:
    metadata: {labels: {app: web}}
    spec: {containers: [{name: c, image: i, ports: [{containerPort: 80}]}]}
---
apiVersion: v1
kind: Service
metadata: {name: manual}
spec: {ports: [{port: 80}]}
---
apiVersion: v1
kind: Service
metadata: {name: external}
spec: {type: ExternalName, externalName: example.com, selector: {app: web}}
---
apiVersion: v1
kind: Service
metadata: {name: web}
spec: {selector: {app: web}, ports: [{port: 80}]}
---
apiVersion: policy/v1
kind: PodDisruptionBudget
metadata: {name: null-selector}
spec: {maxUnavailable: 1}
---
apiVersion: policy/v1
kind: PodDisruptionBudget
metadata: {name: bad-selector}
spec:
  maxUnavailable: 1
  selector: {matchExpressions: [{key: app, operator: Sometimes, values: [web]}]}
---
apiVersion: policy/v1
kind: PodDisruptionBudget
metadata: {name: web}
spec:
  maxUnavailable: 1
  selector: {matchLabels: {app: web}}
`, model.Options{})
	w := workload(t, m, "web")
	if len(w.Services) != 1 || w.Services[0].Object.Name != "web" || !w.Served {
		t.Errorf("web: served %v by %d Services, want served by Service web only", w.Served, len(w.Services))
	}
	if len(w.PDBs) != 1 || w.PDBs[0].Object.Name != "web" {
		t.Errorf("web: %d budgets, want budget web only", len(w.PDBs))
	}
	job := workload(t, m, "job")
	if job.Served || len(job.PDBs) != 0 || len(job.ServedContainers()) != 0 {
		t.Errorf("job: served %v, %d budgets, %d served containers; batch work is neither served nor guarded", job.Served, len(job.PDBs), len(job.ServedContainers()))
	}
}

// TestAssumeServed: without a Service, AssumeServed serves the TCP ports a
// container declares, and only those.
func TestAssumeServed(t *testing.T) {
	t.Parallel()
	const src = `apiVersion: apps/v1
kind: Deployment
metadata: {name: web}
spec:
  template:
    metadata: {labels: {app: web}}
    spec:
      containers:
        - {name: app, image: a, ports: [{name: dns, containerPort: 53, protocol: UDP}, {name: http, containerPort: 8080}]}
        - {name: udp, image: u, ports: [{containerPort: 514, protocol: UDP}]}
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: syslog}
spec:
  template:
    metadata: {labels: {app: syslog}}
    spec: {containers: [{name: udp, image: u, ports: [{containerPort: 514, protocol: UDP}]}]}
`
	m := build(t, src, model.Options{AssumeServed: true})
	w := workload(t, m, "web")
	served := w.ServedContainers()
	if !w.Served || len(served) != 1 || len(served[0].Served) != 1 {
		t.Fatalf("served %v with %d containers, want app alone", w.Served, len(served))
	}
	if sp := served[0].Served[0]; sp.Port != 8080 || sp.Name != "http" || !sp.Declared || sp.Service != nil {
		t.Errorf("assumed port %+v, want declared 8080 (http) without a Service", sp)
	}
	if syslog := workload(t, m, "syslog"); syslog.Served {
		t.Error("a workload with only UDP ports was assumed served")
	}
	if w := workload(t, build(t, src, model.Options{}), "web"); w.Served {
		t.Error("served without a Service or AssumeServed")
	}
}

// TestEmptyTargetPortDefaultsToPort: targetPort "" is defaulted to the
// port, as the API server does, rather than matched as a name; a port no
// container declares still reaches the first app container.
func TestEmptyTargetPortDefaultsToPort(t *testing.T) {
	t.Parallel()
	m := build(t, `apiVersion: apps/v1
kind: Deployment
metadata: {name: web}
spec:
  template:
    metadata: {labels: {app: web}}
    spec: {containers: [{name: app, image: a, ports: [{containerPort: 9000}, {containerPort: 80}]}]}
---
apiVersion: v1
kind: Service
metadata: {name: web}
spec: {selector: {app: web}, ports: [{port: 80, targetPort: ""}, {port: 81, targetPort: ""}]}
`, model.Options{})
	c := m.Workloads[0].Containers[0]
	if len(c.Served) != 2 || c.Served[0].Port != 80 || !c.Served[0].Declared || c.Served[1].Port != 81 || c.Served[1].Declared || len(m.Services[0].Unresolved) != 0 {
		t.Errorf("served %+v, unresolved %v: want 80 (declared) and 81 (undeclared), resolved", c.Served, m.Services[0].Unresolved)
	}
}

// TestProtocols: an unwritten protocol is TCP on either side, and a port
// resolves only against a container port of its protocol.
func TestProtocols(t *testing.T) {
	t.Parallel()
	m := build(t, `apiVersion: apps/v1
kind: Deployment
metadata: {name: web}
spec:
  template:
    metadata: {labels: {app: web}}
    spec:
      containers:
        - {name: app, image: a, ports: [{name: http, containerPort: 8080}, {name: dns, containerPort: 53, protocol: UDP}, {name: sip, containerPort: 5060, protocol: TCP}]}
---
apiVersion: v1
kind: Service
metadata: {name: web}
spec:
  selector: {app: web}
  ports:
    - {name: a, port: 80, targetPort: http, protocol: TCP}
    - {name: b, port: 5060, targetPort: sip}
    - {name: c, port: 53, targetPort: dns, protocol: UDP}
    - {name: d, port: 5061, targetPort: sip, protocol: UDP}
`, model.Options{})
	var got []string
	for _, sp := range m.Workloads[0].Containers[0].Served {
		got = append(got, fmt.Sprintf("%s>%d/%s", sp.ServicePort.Name, sp.Port, sp.Protocol))
	}
	if want := "a>8080/TCP b>5060/TCP c>53/UDP"; strings.Join(got, " ") != want {
		t.Errorf("served %s, want %s", strings.Join(got, " "), want)
	}
	if u := m.Services[0].Unresolved; len(u) != 1 || u[0].Name != "d" {
		t.Errorf("unresolved %v, want port d (sip over UDP)", u)
	}
}

// TestControllerAddedLabels: a selector may use the labels a controller
// adds to its pods; which ones depends on the kind, and a StatefulSet pod's
// name and index must be ones it can have.
func TestControllerAddedLabels(t *testing.T) {
	t.Parallel()
	kinds := map[string]string{
		"Deployment":  "apiVersion: apps/v1\nkind: Deployment",
		"StatefulSet": "apiVersion: apps/v1\nkind: StatefulSet",
		"DaemonSet":   "apiVersion: apps/v1\nkind: DaemonSet",
		"Rollout":     "apiVersion: argoproj.io/v1alpha1\nkind: Rollout",
	}
	for _, tc := range []struct {
		name, selector string
		selected       map[string]bool // by kind; absent kinds are not selected
	}{
		{"pod-template-hash", "{matchLabels: {app: db, pod-template-hash: 5d8f}}", map[string]bool{"Deployment": true}},
		{"controller-revision-hash", "{matchLabels: {app: db, controller-revision-hash: db-7c9}}", map[string]bool{"StatefulSet": true, "DaemonSet": true}},
		{"pod-template-generation", "{matchLabels: {app: db, pod-template-generation: '3'}}", map[string]bool{"DaemonSet": true}},
		{"rollouts-pod-template-hash", "{matchLabels: {app: db, rollouts-pod-template-hash: 5d8f}}", map[string]bool{"Rollout": true}},
		{"pod name", "{matchLabels: {statefulset.kubernetes.io/pod-name: db-0}}", map[string]bool{"StatefulSet": true}},
		{"pod name with a higher ordinal", "{matchLabels: {statefulset.kubernetes.io/pod-name: db-12}}", map[string]bool{"StatefulSet": true}},
		{"pod name of another StatefulSet", "{matchLabels: {statefulset.kubernetes.io/pod-name: web-0}}", nil},
		{"pod name without an ordinal", "{matchLabels: {statefulset.kubernetes.io/pod-name: db-x}}", nil},
		{"pod index 0", "{matchLabels: {app: db, apps.kubernetes.io/pod-index: '0'}}", map[string]bool{"StatefulSet": true}},
		{"pod index with a leading zero", "{matchLabels: {app: db, apps.kubernetes.io/pod-index: '01'}}", nil},
		{"pod name with a negative ordinal", "{matchLabels: {statefulset.kubernetes.io/pod-name: db--1}}", nil},
		{"pod index in a set", "{matchLabels: {app: db}, matchExpressions: [{key: apps.kubernetes.io/pod-index, operator: In, values: [x, '2']}]}", map[string]bool{"StatefulSet": true}},
		{"the hash must not exist", "{matchLabels: {app: db}, matchExpressions: [{key: pod-template-hash, operator: DoesNotExist}]}",
			map[string]bool{"StatefulSet": true, "DaemonSet": true, "Rollout": true}},
		{"the hash exists", "{matchLabels: {app: db}, matchExpressions: [{key: pod-template-hash, operator: Exists}]}", map[string]bool{"Deployment": true}},
		{"a hash other than one", "{matchLabels: {app: db}, matchExpressions: [{key: pod-template-hash, operator: NotIn, values: [x]}]}",
			map[string]bool{"Deployment": true, "StatefulSet": true, "DaemonSet": true, "Rollout": true}},
		{"a label not in a set", "{matchExpressions: [{key: tier, operator: NotIn, values: [back]}]}",
			map[string]bool{"Deployment": true, "StatefulSet": true, "DaemonSet": true, "Rollout": true}},
		{"a label that exists", "{matchExpressions: [{key: tier, operator: Exists}]}",
			map[string]bool{"Deployment": true, "StatefulSet": true, "DaemonSet": true, "Rollout": true}},
		{"a label the pods lack", "{matchLabels: {app: db, tier: back}}", nil},
		{"a controller label, then a label the pods lack", "{matchLabels: {pod-template-hash: 5d8f}, matchExpressions: [{key: tier, operator: In, values: [back]}]}", nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			for kind, head := range kinds {
				m := build(t, head+`
metadata: {name: db}
spec:
  template:
    metadata: {labels: {app: db, tier: front}}
    spec: {containers: [{name: c, image: i}]}
---
apiVersion: policy/v1
kind: PodDisruptionBudget
metadata: {name: pdb}
spec:
  maxUnavailable: 1
  selector: `+tc.selector+"\n", model.Options{})
				if got := len(m.PDBs[0].Workloads) == 1; got != tc.selected[kind] {
					t.Errorf("%s: selected %v, want %v", kind, got, tc.selected[kind])
				}
			}
		})
	}
}

// TestTemplateLabelBeatsControllerLabel: a template that writes a
// controller's label itself is matched on what it writes.
func TestTemplateLabelBeatsControllerLabel(t *testing.T) {
	t.Parallel()
	m := build(t, `apiVersion: apps/v1
kind: Deployment
metadata: {name: web}
spec:
  template:
    metadata: {labels: {app: web, pod-template-hash: fixed}}
    spec: {containers: [{name: c, image: i}]}
---
apiVersion: v1
kind: Service
metadata: {name: right}
spec: {selector: {app: web, pod-template-hash: fixed}, ports: [{port: 80}]}
---
apiVersion: v1
kind: Service
metadata: {name: wrong}
spec: {selector: {app: web, pod-template-hash: other}, ports: [{port: 80}]}
`, model.Options{})
	if w := m.Workloads[0]; len(w.Services) != 1 || w.Services[0].Object.Name != "right" {
		t.Errorf("got %d Services, want Service right only", len(w.Services))
	}
}

// TestWorkloadOrder: workloads come sorted by file, then line, then
// reference, whatever the input order.
func TestWorkloadOrder(t *testing.T) {
	t.Parallel()
	obj := func(file string, line int, name string) *manifest.Object {
		return &manifest.Object{Kind: "Deployment", Name: name, Source: manifest.Source{File: file, Line: line},
			Value: &appsv1.Deployment{}}
	}
	m := model.Build([]*manifest.Object{
		obj("b.yaml", 1, "a"), obj("a.yaml", 9, "z"), obj("a.yaml", 2, "y"), obj("a.yaml", 2, "x"),
	}, model.Options{})
	var got []string
	for _, w := range m.Workloads {
		got = append(got, w.Object.Source.String()+" "+w.Name)
	}
	if want := "a.yaml:2 x, a.yaml:2 y, a.yaml:9 z, b.yaml:1 a"; strings.Join(got, ", ") != want {
		t.Errorf("order %s, want %s", strings.Join(got, ", "), want)
	}
}

// TestWorkloadOrderKeepsTies: rendered objects have no line, so a template
// that emits the same object twice gives two workloads that sort equal;
// they keep their input order.
func TestWorkloadOrderKeepsTies(t *testing.T) {
	t.Parallel()
	obj := func(replicas int32) *manifest.Object {
		return &manifest.Object{Kind: "Deployment", Name: "web", Source: manifest.Source{File: "charts/web/templates/web.yaml"},
			Value: &appsv1.Deployment{Spec: appsv1.DeploymentSpec{Replicas: &replicas}}}
	}
	in := []*manifest.Object{obj(1), obj(2), obj(3)}
	m := model.Build(in, model.Options{})
	if len(m.Workloads) != len(in) {
		t.Fatalf("%d workloads, want %d", len(m.Workloads), len(in))
	}
	for i, w := range m.Workloads {
		if w.Object != in[i] {
			t.Errorf("workload %d has %d replicas, want %d (input order)", i, w.EffectiveReplicas(), i+1)
		}
	}
}

func TestIsZero(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		v    intstr.IntOrString
		want bool
	}{
		{intstr.FromInt32(0), true},
		{intstr.FromInt32(1), false},
		{intstr.FromString("0"), true},
		{intstr.FromString("0%"), true},
		{intstr.FromString("10%"), false},
		{intstr.FromString("none%"), false},
		{intstr.FromString(""), false},
	} {
		if got := model.IsZero(tc.v); got != tc.want {
			t.Errorf("IsZero(%s) = %v, want %v", tc.v.String(), got, tc.want)
		}
	}
}
