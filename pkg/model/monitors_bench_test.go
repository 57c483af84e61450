package model_test

import (
	"fmt"
	"strings"
	"testing"

	"github.com/rollguard/rollguard/pkg/manifest"
	"github.com/rollguard/rollguard/pkg/model"
)

// BenchmarkManyMonitors is a namespace of n workloads, each behind a user
// Service and a metrics Service, and a ServiceMonitor per workload: every
// served port is asked about every monitor. Its cost grew with workloads
// times monitors times a selector's conversion (about 36 s at 400); the
// selectors are now converted once.
func BenchmarkManyMonitors(b *testing.B) {
	const n = 400
	var doc strings.Builder
	for i := range n {
		fmt.Fprintf(&doc, `---
apiVersion: apps/v1
kind: Deployment
metadata: {name: w%[1]d}
spec:
  replicas: 2
  selector: {matchLabels: {app: w%[1]d}}
  template:
    metadata: {labels: {app: w%[1]d}}
    spec: {containers: [{name: c, image: i, ports: [{name: http, containerPort: 8080}, {name: metrics, containerPort: 9090}]}]}
---
apiVersion: v1
kind: Service
metadata: {name: w%[1]d}
spec: {selector: {app: w%[1]d}, ports: [{name: http, port: 80, targetPort: http}]}
---
apiVersion: v1
kind: Service
metadata: {name: w%[1]d-metrics, labels: {monitor: w%[1]d}}
spec: {selector: {app: w%[1]d}, ports: [{name: metrics, port: 9090, targetPort: metrics}]}
---
apiVersion: monitoring.coreos.com/v1
kind: ServiceMonitor
metadata: {name: w%[1]d}
spec: {selector: {matchLabels: {monitor: w%[1]d}}, endpoints: [{port: metrics}]}
`, i)
	}
	res := &manifest.Result{}
	manifest.Decode("many.yaml", []byte(doc.String()), res)
	if len(res.Errors) > 0 {
		b.Fatal(res.Errors)
	}
	b.ResetTimer()
	for b.Loop() {
		m := model.Build(res.Objects, model.Options{Namespace: "default"})
		if len(m.Monitors) != n {
			b.Fatalf("%d monitors", len(m.Monitors))
		}
	}
}
