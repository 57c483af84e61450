package model_test

import (
	"testing"

	"github.com/rollguard/rollguard/pkg/model"
)

// telemetryWeb is a workload in namespace shop with a user port (http,
// 8080) and a metrics port by number (9102), a Service web for users and a
// Service web-metrics (labelled team: shop) for scraping; monitors are
// appended.
const telemetryWeb = `apiVersion: apps/v1
kind: Deployment
metadata: {name: web, namespace: shop}
spec:
  template:
    metadata: {labels: {app: web}}
    spec:
      containers:
        - {name: app, image: a, ports: [{name: http, containerPort: 8080}, {name: stats, containerPort: 9102}]}
---
apiVersion: v1
kind: Service
metadata: {name: web, namespace: shop}
spec:
  selector: {app: web}
  ports: [{port: 80, targetPort: 8080}]
---
apiVersion: v1
kind: Service
metadata: {name: web-metrics, namespace: shop, labels: {team: shop}}
spec:
  selector: {app: web}
  ports: [{port: 9102, targetPort: 9102}]
`

// TestScrapedBy: a port only monitors scrape is marked as telemetry, with
// the monitor named; the monitor must be in a namespace it covers, select
// the Service (ServiceMonitor) or the pods (PodMonitor), and name the port.
func TestScrapedBy(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name, monitor string
		opts          model.Options
		want          string // telemetry reason of port 9102; port 8080 never is
	}{
		{"ServiceMonitor by target port number", `
apiVersion: monitoring.coreos.com/v1
kind: ServiceMonitor
metadata: {name: sm, namespace: shop}
spec: {selector: {matchLabels: {team: shop}}, endpoints: [{targetPort: 9102}]}`, model.Options{}, "scraped by ServiceMonitor sm through a Service of its own"},
		{"ServiceMonitor by container port name as targetPort", `
apiVersion: monitoring.coreos.com/v1
kind: ServiceMonitor
metadata: {name: sm, namespace: shop}
spec: {selector: {matchLabels: {team: shop}}, endpoints: [{targetPort: stats}]}`, model.Options{}, "scraped by ServiceMonitor sm through a Service of its own"},
		{"ServiceMonitor in the default namespace, like the Service", `
apiVersion: monitoring.coreos.com/v1
kind: ServiceMonitor
metadata: {name: sm}
spec: {selector: {matchLabels: {team: shop}}, endpoints: [{targetPort: 9102}]}`, model.Options{Namespace: "shop"}, "scraped by ServiceMonitor sm through a Service of its own"},
		{"ServiceMonitor in another namespace", `
apiVersion: monitoring.coreos.com/v1
kind: ServiceMonitor
metadata: {name: sm, namespace: monitoring}
spec: {selector: {matchLabels: {team: shop}}, endpoints: [{targetPort: 9102}]}`, model.Options{}, ""},
		{"ServiceMonitor in another namespace, naming the Service's", `
apiVersion: monitoring.coreos.com/v1
kind: ServiceMonitor
metadata: {name: sm, namespace: monitoring}
spec: {selector: {matchLabels: {team: shop}}, namespaceSelector: {matchNames: [dev, shop]}, endpoints: [{targetPort: 9102}]}`, model.Options{}, "scraped by ServiceMonitor sm through a Service of its own"},
		{"ServiceMonitor naming other namespaces only", `
apiVersion: monitoring.coreos.com/v1
kind: ServiceMonitor
metadata: {name: sm, namespace: shop}
spec: {selector: {matchLabels: {team: shop}}, namespaceSelector: {matchNames: [dev]}, endpoints: [{targetPort: 9102}]}`, model.Options{}, ""},
		{"ServiceMonitor of any namespace", `
apiVersion: monitoring.coreos.com/v1
kind: ServiceMonitor
metadata: {name: sm, namespace: monitoring}
spec: {selector: {matchLabels: {team: shop}}, namespaceSelector: {any: true}, endpoints: [{targetPort: 9102}]}`, model.Options{}, "scraped by ServiceMonitor sm through a Service of its own"},
		{"ServiceMonitor selecting other Services", `
apiVersion: monitoring.coreos.com/v1
kind: ServiceMonitor
metadata: {name: sm, namespace: shop}
spec: {selector: {matchLabels: {team: other}}, endpoints: [{targetPort: 9102}]}`, model.Options{}, ""},
		{"ServiceMonitor with an invalid selector, then a valid one", `
apiVersion: monitoring.coreos.com/v1
kind: ServiceMonitor
metadata: {name: bad, namespace: shop}
spec: {selector: {matchExpressions: [{key: team, operator: Often}]}, endpoints: [{targetPort: 9102}]}
---
apiVersion: monitoring.coreos.com/v1
kind: ServiceMonitor
metadata: {name: sm, namespace: shop}
spec: {selector: {matchLabels: {team: shop}}, endpoints: [{targetPort: 9102}]}`, model.Options{}, "scraped by ServiceMonitor sm through a Service of its own"},
		{"ServiceMonitor of another namespace, then one of this", `
apiVersion: monitoring.coreos.com/v1
kind: ServiceMonitor
metadata: {name: far, namespace: monitoring}
spec: {selector: {matchLabels: {team: shop}}, endpoints: [{targetPort: 9102}]}
---
apiVersion: monitoring.coreos.com/v1
kind: ServiceMonitor
metadata: {name: sm, namespace: shop}
spec: {selector: {matchLabels: {team: shop}}, endpoints: [{targetPort: 9102}]}`, model.Options{}, "scraped by ServiceMonitor sm through a Service of its own"},
		{"ServiceMonitor naming a Service port the Service lacks", `
apiVersion: monitoring.coreos.com/v1
kind: ServiceMonitor
metadata: {name: sm, namespace: shop}
spec: {selector: {matchLabels: {team: shop}}, endpoints: [{port: metrics}, {targetPort: 9999}]}`, model.Options{}, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			m := build(t, telemetryWeb+"---"+tc.monitor+"\n", tc.opts)
			c := workload(t, m, "web").Containers[0]
			if len(c.Served) != 2 {
				t.Fatalf("served %+v, want ports 8080 and 9102", c.Served)
			}
			for _, sv := range c.Served {
				want := ""
				if sv.Port == 9102 {
					want = tc.want
				}
				if sv.Telemetry != want {
					t.Errorf("port %d: telemetry %q, want %q", sv.Port, sv.Telemetry, want)
				}
			}
		})
	}
}

// TestMonitorOnTheOnlyService: a ServiceMonitor on a workload's only
// Service proves the port is scraped, not that only scrapers use it; and a
// port served only by assumption has no Service for a monitor to select.
func TestMonitorOnTheOnlyService(t *testing.T) {
	t.Parallel()
	m := build(t, `apiVersion: apps/v1
kind: Deployment
metadata: {name: web}
spec:
  template:
    metadata: {labels: {app: web}}
    spec: {containers: [{name: app, image: a, ports: [{name: http, containerPort: 8080}]}]}
---
apiVersion: v1
kind: Service
metadata: {name: web, labels: {app: web}}
spec: {selector: {app: web}, ports: [{name: http, port: 80, targetPort: http}]}
---
apiVersion: monitoring.coreos.com/v1
kind: ServiceMonitor
metadata: {name: sm}
spec: {selector: {matchLabels: {app: web}}, endpoints: [{port: http}]}
`, model.Options{})
	if got := m.Workloads[0].Containers[0].Served[0].Telemetry; got != "" {
		t.Errorf("the only Service's scraped port: telemetry %q, want none", got)
	}
	m = build(t, `apiVersion: apps/v1
kind: Deployment
metadata: {name: web}
spec:
  template:
    metadata: {labels: {app: web}}
    spec: {containers: [{name: app, image: a, ports: [{name: stats, containerPort: 9102}]}]}
---
apiVersion: monitoring.coreos.com/v1
kind: ServiceMonitor
metadata: {name: sm}
spec: {selector: {}, endpoints: [{targetPort: 9102}]}
`, model.Options{AssumeServed: true})
	if got := m.Workloads[0].Containers[0].Served[0].Telemetry; got != "" {
		t.Errorf("an assumed port: telemetry %q, want none", got)
	}
}

// TestTelemetryPortNames: port names match the patterns, the default ones
// or those given; an empty list turns the names off.
func TestTelemetryPortNames(t *testing.T) {
	t.Parallel()
	const src = `apiVersion: apps/v1
kind: Deployment
metadata: {name: web}
spec:
  template:
    metadata: {labels: {app: web}}
    spec:
      containers:
        - {name: app, image: a, ports: [{name: http, containerPort: 8080}, {name: http-metrics, containerPort: 9090}, {name: admin, containerPort: 9901}]}
---
apiVersion: v1
kind: Service
metadata: {name: web}
spec:
  selector: {app: web}
  ports: [{name: web, port: 80, targetPort: http}, {name: scrape, port: 9090, targetPort: 9090}, {name: admin, port: 9901, targetPort: admin}]
`
	for _, tc := range []struct {
		name     string
		patterns []string
		want     map[int32]string
	}{
		{"defaults", nil, map[int32]string{9090: `port name "http-metrics" is for telemetry`}},
		{"given", []string{"adm*"}, map[int32]string{9901: `port name "admin" is for telemetry`}},
		{"none", []string{}, nil},
	} {
		m := build(t, src, model.Options{TelemetryPorts: tc.patterns})
		for _, sv := range m.Workloads[0].Containers[0].Served {
			if sv.Telemetry != tc.want[sv.Port] {
				t.Errorf("%s: port %d telemetry %q, want %q", tc.name, sv.Port, sv.Telemetry, tc.want[sv.Port])
			}
		}
	}
}

// TestTelemetryOnly: a container, or a workload, is telemetry-only when
// every port it serves is, and the first reason is given.
func TestTelemetryOnly(t *testing.T) {
	t.Parallel()
	const head = `apiVersion: apps/v1
kind: Deployment
metadata: {name: web}
spec:
  template:
    metadata: {labels: {app: web}}
    spec:
      containers:
`
	const svc = `---
apiVersion: v1
kind: Service
metadata: {name: web}
spec:
  selector: {app: web}
  ports: [{port: 1}, {port: 2}]
`
	for _, tc := range []struct {
		name, containers string
		first, workload  string // TelemetryOnly of the first container, of the workload
	}{
		{"every port is for telemetry", "        - {name: app, image: a, ports: [{name: metrics, containerPort: 1}, {name: debug, containerPort: 2}]}\n",
			`port name "metrics" is for telemetry`, `port name "metrics" is for telemetry`},
		{"a user port, then telemetry", "        - {name: app, image: a, ports: [{name: http, containerPort: 1}, {name: metrics, containerPort: 2}]}\n", "", ""},
		{"telemetry, then a user port", "        - {name: app, image: a, ports: [{name: metrics, containerPort: 1}, {name: http, containerPort: 2}]}\n", "", ""},
		{"a scrape-only exporter beside the app", "        - {name: exporter, image: e, ports: [{name: metrics, containerPort: 1}]}\n" +
			"        - {name: app, image: a, ports: [{name: http, containerPort: 2}]}\n", `port name "metrics" is for telemetry`, ""},
		{"the app beside a scrape-only exporter", "        - {name: app, image: a, ports: [{name: http, containerPort: 2}]}\n" +
			"        - {name: exporter, image: e, ports: [{name: metrics, containerPort: 1}]}\n", "", ""},
		{"two scrape-only containers", "        - {name: exporter, image: e, ports: [{name: metrics, containerPort: 1}]}\n" +
			"        - {name: debugger, image: d, ports: [{name: debug, containerPort: 2}]}\n", `port name "metrics" is for telemetry`, `port name "metrics" is for telemetry`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			w := build(t, head+tc.containers+svc, model.Options{}).Workloads[0]
			if got := w.Containers[0].TelemetryOnly(); got != tc.first {
				t.Errorf("first container telemetry-only %q, want %q", got, tc.first)
			}
			if got := w.TelemetryOnly(); got != tc.workload {
				t.Errorf("workload telemetry-only %q, want %q", got, tc.workload)
			}
		})
	}
}

// TestScrapeServiceWithUnresolvedPort: a scrape Service's port that
// reaches no container of the workload (its named targetPort resolves
// elsewhere) counts as monitored when the monitor names the same
// targetPort; every port of the Service must be, for its ports to be
// telemetry.
func TestScrapeServiceWithUnresolvedPort(t *testing.T) {
	t.Parallel()
	const src = `apiVersion: apps/v1
kind: Deployment
metadata: {name: web}
spec:
  template:
    metadata: {labels: {app: web}}
    spec:
      containers:
        - {name: app, image: a, ports: [{name: http, containerPort: 8080}, {name: stats, containerPort: 9102}]}
---
apiVersion: v1
kind: Service
metadata: {name: web}
spec: {selector: {app: web}, ports: [{port: 80, targetPort: http}]}
---
apiVersion: v1
kind: Service
metadata: {name: web-metrics, labels: {team: shop}}
spec:
  selector: {app: web}
  ports: [{name: a, port: 9102, targetPort: 9102}, {name: b, port: 9200, targetPort: exporter}, {name: c, port: 9300, targetPort: 9300}]
---
apiVersion: monitoring.coreos.com/v1
kind: ServiceMonitor
metadata: {name: sm}
spec: {selector: {matchLabels: {team: shop}}, endpoints: [{targetPort: 9102}, {targetPort: 9300}, {targetPort: `
	for _, tc := range []struct{ endpoint, want string }{
		{"exporter", "scraped by ServiceMonitor sm through a Service of its own"},
		{"exporter-2", ""}, // port b is scraped by nobody
		{"9200", ""},       // a number is not the name exporter
	} {
		m := build(t, src+tc.endpoint+"}]}\n", model.Options{})
		for _, sv := range m.Workloads[0].Containers[0].Served {
			want := ""
			if sv.Port == 9102 || sv.Port == 9300 {
				want = tc.want
			}
			if sv.Telemetry != want {
				t.Errorf("endpoint %q: port %d telemetry %q, want %q", tc.endpoint, sv.Port, sv.Telemetry, want)
			}
		}
	}
}
