package model_test

import (
	"testing"

	"k8s.io/apimachinery/pkg/util/intstr"

	"github.com/rollguard/rollguard/pkg/manifest"
	"github.com/rollguard/rollguard/pkg/model"
)

func TestFenceposts(t *testing.T) {
	t.Parallel()
	i, s := intstr.FromInt32, intstr.FromString
	for _, tc := range []struct {
		name                  string
		surge, unavail        intstr.IntOrString
		replicas              int32
		wantSurge, wantUnavai int32
		wantForced            bool
	}{
		{"defaults, one replica: surge rounds up, unavailable down", s("25%"), s("25%"), 1, 1, 0, false},
		{"defaults, four replicas", s("25%"), s("25%"), 4, 1, 1, false},
		{"defaults, ten replicas", s("25%"), s("25%"), 10, 3, 2, false},
		{"absolute values", i(2), i(1), 5, 2, 1, false},
		{"both zero percent: controller forces one unavailable", s("0%"), s("10%"), 5, 0, 1, true},
		{"literal zeros", i(0), i(0), 3, 0, 1, true},
		{"hundred percent", s("0%"), s("100%"), 3, 0, 3, false},
		{"99 percent of three rounds down", i(1), s("99%"), 3, 1, 2, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			gs, gu, forced, err := model.Fenceposts(tc.surge, tc.unavail, tc.replicas)
			if err != nil {
				t.Fatal(err)
			}
			if gs != tc.wantSurge || gu != tc.wantUnavai || forced != tc.wantForced {
				t.Errorf("got surge %d unavailable %d forced %v, want %d %d %v", gs, gu, forced, tc.wantSurge, tc.wantUnavai, tc.wantForced)
			}
		})
	}
	if _, _, _, err := model.Fenceposts(s("lots"), s("25%"), 3); err == nil {
		t.Error("an unparsable percentage gave no error")
	}
}

const joinFixture = `
apiVersion: apps/v1
kind: Deployment
metadata: {name: web, namespace: shop}
spec:
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web, tier: front}}
    spec:
      initContainers:
        - {name: mesh, image: m, restartPolicy: Always, ports: [{name: mesh, containerPort: 15001}]}
        - {name: init, image: i}
      containers:
        - {name: app, image: a, ports: [{name: http, containerPort: 8080}, {name: dns, containerPort: 53, protocol: UDP}]}
        - {name: metrics, image: x, ports: [{name: metrics, containerPort: 9090}]}
---
apiVersion: v1
kind: Service
metadata: {name: web, namespace: shop}
spec:
  selector: {app: web}
  ports:
    - {name: a, port: 80, targetPort: http}
    - {name: b, port: 9090}
    - {name: c, port: 7000, targetPort: 7001}
    - {name: d, port: 53, targetPort: dns, protocol: UDP}
    - {name: e, port: 54, targetPort: dns}
    - {name: f, port: 15001, targetPort: mesh}
---
apiVersion: v1
kind: Service
metadata: {name: other-namespace}
spec:
  selector: {app: web}
  ports: [{port: 80}]
---
apiVersion: autoscaling/v2
kind: HorizontalPodAutoscaler
metadata: {name: web, namespace: shop}
spec:
  scaleTargetRef: {kind: Deployment, name: web}
  maxReplicas: 5
---
apiVersion: v1
kind: Pod
metadata:
  name: web-abc
  namespace: shop
  labels: {app: web}
  ownerReferences: [{apiVersion: apps/v1, kind: ReplicaSet, name: web-abc, uid: u, controller: true}]
spec:
  containers: [{name: app, image: a}]
`

func TestJoin(t *testing.T) {
	t.Parallel()
	res := &manifest.Result{}
	manifest.Decode("join.yaml", []byte(joinFixture), res)
	if len(res.Errors) > 0 {
		t.Fatal(res.Errors)
	}
	m := model.Build(res.Objects, model.Options{})
	if len(m.Workloads) != 1 {
		t.Fatalf("got %d workloads, want 1 (the controlled Pod is left to its owner)", len(m.Workloads))
	}
	w := m.Workloads[0]
	if !w.Served || len(w.Services) != 1 || w.Services[0].Object.Name != "web" {
		t.Fatalf("want served by Service web only, got %d services", len(w.Services))
	}
	if w.HPA == nil || w.EffectiveReplicas() != 1 {
		t.Errorf("HPA without minReplicas: want joined with minReplicas 1, got %+v", w.HPA)
	}
	served := map[string][]int32{}
	for _, c := range w.Containers {
		for _, sp := range c.Served {
			served[c.Spec.Name] = append(served[c.Spec.Name], sp.Port)
		}
	}
	// a->8080 by name; b->9090 by number (declared on metrics); c->7001 undeclared, attributed
	// to the first app container; d->53 by name with UDP; f->mesh sidecar. e (dns over TCP) resolves nowhere.
	want := map[string][]int32{"app": {8080, 7001, 53}, "metrics": {9090}, "mesh": {15001}}
	for name, ports := range want {
		if len(served[name]) != len(ports) {
			t.Errorf("container %s serves %v, want %v", name, served[name], ports)
			continue
		}
		for i := range ports {
			if served[name][i] != ports[i] {
				t.Errorf("container %s serves %v, want %v", name, served[name], ports)
			}
		}
	}
	if _, ok := served["init"]; ok {
		t.Error("a plain init container cannot serve")
	}
	svc := m.Services[0]
	if len(svc.Unresolved) != 1 || svc.Unresolved[0].Name != "e" {
		t.Errorf("want port e (named dns, TCP) unresolved, got %v", svc.Unresolved)
	}
}

// TestNamedPortRegularBeforeSidecar: FindPort looks a named targetPort up in
// the regular containers before the native sidecars, whatever their order.
func TestNamedPortRegularBeforeSidecar(t *testing.T) {
	t.Parallel()
	res := &manifest.Result{}
	manifest.Decode("a.yaml", []byte(`apiVersion: apps/v1
kind: Deployment
metadata: {name: web}
spec:
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec:
      initContainers:
        - {name: proxy, image: p, restartPolicy: Always, ports: [{name: http, containerPort: 15001}]}
      containers:
        - {name: app, image: a, ports: [{name: http, containerPort: 8080}]}
---
apiVersion: v1
kind: Service
metadata: {name: web}
spec: {selector: {app: web}, ports: [{port: 80, targetPort: http}]}
`), res)
	m := model.Build(res.Objects, model.Options{})
	served := m.Workloads[0].ServedContainers()
	if len(served) != 1 || served[0].Spec.Name != "app" || served[0].Served[0].Port != 8080 {
		t.Fatalf("served %+v: want the regular container app on 8080", served)
	}
}
