package rules_test

import (
	"fmt"
	"reflect"
	"sort"
	"strings"
	"testing"

	"github.com/rollguard/rollguard/pkg/manifest"
	"github.com/rollguard/rollguard/pkg/model"
	"github.com/rollguard/rollguard/pkg/rules"
)

// audit runs every rule, with the default settings, over YAML files given
// as name, content pairs.
func audit(t *testing.T, files ...string) *rules.Report {
	t.Helper()
	res := &manifest.Result{}
	for i := 0; i+1 < len(files); i += 2 {
		manifest.Decode(files[i], []byte(files[i+1]), res)
	}
	if len(res.Errors) > 0 {
		t.Fatal(res.Errors)
	}
	return rules.Default().Run(model.Build(res.Objects, model.Options{Others: res.Others}), rules.Options{Settings: rules.DefaultSettings()})
}

// findings returns the findings of one rule.
func findings(rep *rules.Report, id string) []rules.Finding {
	var out []rules.Finding
	for _, f := range rep.Findings {
		if f.Rule.ID == id {
			out = append(out, f)
		}
	}
	return out
}

// served is a Deployment web behind a Service; its containers are
// appended (indented for the containers list), then any more documents.
func served(containers string, more ...string) string {
	return `apiVersion: apps/v1
kind: Deployment
metadata: {name: web}
spec:
  replicas: 3
  minReadySeconds: 5
  selector: {matchLabels: {app: web}}
  strategy: {rollingUpdate: {maxSurge: 1, maxUnavailable: 0}}
  template:
    metadata: {labels: {app: web}}
    spec:
      containers:
` + containers + `---
apiVersion: v1
kind: Service
metadata: {name: web}
spec: {selector: {app: web}, ports: [{port: 80, targetPort: 8080}]}
` + strings.Join(more, "")
}

func TestRegistryRefusesRuleWithoutSeverity(t *testing.T) {
	t.Parallel()
	r := &rules.Rule{ID: "RG101", Name: "a", Case: rules.Case1, Summary: "s", Rollout: "r.", Why: "w", Fix: "f", Example: "e", NoFix: "n",
		Workload: func(rules.Settings, *model.Workload) []rules.Finding { return nil }}
	if _, err := rules.NewRegistry(r); err == nil {
		t.Error("a rule without a severity was registered")
	}
}

func TestSeverityAndCaseNames(t *testing.T) {
	t.Parallel()
	for _, s := range []rules.Severity{rules.Info, rules.Warning, rules.Error} {
		got, err := rules.ParseSeverity(strings.ToUpper(s.String()))
		if err != nil || got != s {
			t.Errorf("ParseSeverity(%q) = %v, %v", strings.ToUpper(s.String()), got, err)
		}
	}
	if !(rules.Info < rules.Warning && rules.Warning < rules.Error) || rules.Severity(0).String() != "" {
		t.Error("severities are not ordered info < warning < error, or the zero value has a name")
	}
	if _, err := rules.ParseSeverity("fatal"); err == nil {
		t.Error("an unknown severity parsed")
	}
	for c, want := range map[rules.Case]string{rules.Case1: "Case 1", rules.Case2: "Case 2", rules.Strategy: "strategy"} {
		if got := c.Title(); got != want {
			t.Errorf("%s.Title() = %q, want %q", c, got, want)
		}
	}
}

// TestSuppressionKeys: the annotation's list may hold empty entries, names
// and IDs in any case, and "all"; the reason defaults to the annotation.
func TestSuppressionKeys(t *testing.T) {
	t.Parallel()
	container := "        - {name: app, image: a, ports: [{containerPort: 8080}], readinessProbe: {tcpSocket: {port: 8080}}}\n"
	for _, tc := range []struct {
		name, annotations string
		suppressed        bool
		reason            string
	}{
		{"an empty entry first", `{rollguard.io/ignore: " , RG101"}`, true, "annotation rollguard.io/ignore"},
		{"by name, in capitals", `{rollguard.io/ignore: "PRESTOP-MISSING", rollguard.io/ignore-reason: "drains itself"}`, true, "drains itself"},
		{"all", `{rollguard.io/ignore: "All"}`, true, "annotation rollguard.io/ignore"},
		{"another rule", `{rollguard.io/ignore: "RG201"}`, false, ""},
		{"another annotation", `{example.com/ignore: "RG101"}`, false, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			// On the workload, and on the pod template after a workload annotation of no concern.
			for _, src := range []string{
				strings.Replace(served(container), "metadata: {name: web}", "metadata: {name: web, annotations: "+tc.annotations+"}", 1),
				strings.Replace(strings.Replace(served(container), "metadata: {name: web}", "metadata: {name: web, annotations: {team: a}}", 1),
					"metadata: {labels: {app: web}}", "metadata: {labels: {app: web}, annotations: "+tc.annotations+"}", 1),
			} {
				rep := audit(t, "a.yaml", src)
				var got []string
				for _, f := range rep.Suppressed {
					if f.Rule.ID == "RG101" {
						got = append(got, f.SuppressReason)
					}
				}
				if tc.suppressed != (len(got) == 1) || (tc.suppressed && got[0] != tc.reason) || tc.suppressed == (len(findings(rep, "RG101")) == 1) {
					t.Errorf("suppressed with reasons %q (active %d), want suppressed %v with %q", got, len(findings(rep, "RG101")), tc.suppressed, tc.reason)
				}
			}
		})
	}
}

// TestFindingOrder: findings come by file, line, object, rule and
// container; findings that tie on all of these keep the rule's order.
func TestFindingOrder(t *testing.T) {
	t.Parallel()
	two := "        - {name: zeta, image: z, ports: [{containerPort: 8080}], readinessProbe: {tcpSocket: {port: 8080}}}\n" +
		"        - {name: alpha, image: a, ports: [{containerPort: 9090}], readinessProbe: {tcpSocket: {port: 9090}}}\n"
	svc := func(name string) string {
		return fmt.Sprintf(`---
apiVersion: v1
kind: Service
metadata: {name: %s}
spec:
  selector: {app: web}
  ports: [{name: a, port: 1, targetPort: nope}, {name: b, port: 2, targetPort: gone}, {name: c, port: 9090}]
`, name)
	}
	svcFirst := strings.TrimPrefix(svc("first"), "---\n") + "---\n" + served(two)
	rep := audit(t, "b.yaml", served(two, svc("named")), "a.yaml", served(two), "c.yaml", svcFirst)
	var got []string
	for _, f := range rep.Findings {
		if f.Rule.ID == "RG101" || f.Rule.ID == "RG502" {
			got = append(got, fmt.Sprintf("%s %s %s %s %s", f.Object.Source.File, f.Object.Ref(), f.Rule.ID, f.Container, f.Path))
		}
	}
	want := []string{
		"a.yaml Deployment/web RG101 alpha spec.template.spec.containers[1].lifecycle",
		"a.yaml Deployment/web RG101 zeta spec.template.spec.containers[0].lifecycle",
		"b.yaml Deployment/web RG101 alpha spec.template.spec.containers[1].lifecycle",
		"b.yaml Deployment/web RG101 zeta spec.template.spec.containers[0].lifecycle",
		"b.yaml Service/named RG502  spec.ports[0]",
		"b.yaml Service/named RG502  spec.ports[1]",
		"c.yaml Service/first RG502  spec.ports[0]",
		"c.yaml Service/first RG502  spec.ports[1]",
		"c.yaml Deployment/web RG101 alpha spec.template.spec.containers[1].lifecycle",
		"c.yaml Deployment/web RG101 zeta spec.template.spec.containers[0].lifecycle",
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("order:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}

// TestFindingOrderOfRenderedObjects: objects of helm or kustomize output
// carry no line, so the findings of one template's objects come by
// reference.
func TestFindingOrderOfRenderedObjects(t *testing.T) {
	t.Parallel()
	c := "        - {name: app, image: a, ports: [{containerPort: 8080}], readinessProbe: {tcpSocket: {port: 8080}}}\n"
	src := strings.ReplaceAll(served(c), "metadata: {name: web}", "metadata: {name: web-b}") + "---\n" +
		strings.ReplaceAll(served(c), "metadata: {name: web}", "metadata: {name: web-a}")
	res := &manifest.Result{}
	manifest.Decode("charts/web/templates/web.yaml", []byte(src), res)
	if len(res.Errors) > 0 {
		t.Fatal(res.Errors)
	}
	for _, o := range res.Objects {
		o.Source.Line = 0 // as the manifest package leaves a rendered object
	}
	rep := rules.Default().Run(model.Build(res.Objects, model.Options{}), rules.Options{Settings: rules.DefaultSettings()})
	var got []string
	for _, f := range findings(rep, "RG101") {
		got = append(got, f.Object.Ref())
	}
	if want := "Deployment/web-a Deployment/web-b"; strings.Join(got, " ") != want {
		t.Errorf("RG101 on %q, want %q", strings.Join(got, " "), want)
	}
}

func TestFixOptions(t *testing.T) {
	t.Parallel()
	for minor, want := range map[int]bool{0: true, 29: false, 30: true, 31: true} {
		if got := (rules.FixOptions{KubeMinor: minor}).NativeSleep(); got != want {
			t.Errorf("KubeMinor %d: native sleep %v, want %v", minor, got, want)
		}
	}
	if got, want := rules.M("a", 1, "b", "x"), (rules.Map{{Key: "a", Value: 1}, {Key: "b", Value: "x"}}); !reflect.DeepEqual(got, want) {
		t.Errorf("M = %v, want %v", got, want)
	}
	if got, want := rules.M("a", 1, "b"), (rules.Map{{Key: "a", Value: 1}}); !reflect.DeepEqual(got, want) {
		t.Errorf("M with a key short of a value = %v, want %v", got, want)
	}
}

// remedy audits YAML and returns the remedy rule id proposes for its first
// finding, with the finding's container renamed when container is set.
func remedy(t *testing.T, src, id string, o rules.FixOptions, container string) rules.Remedy {
	t.Helper()
	fs := findings(audit(t, "a.yaml", src), id)
	if len(fs) == 0 {
		t.Fatalf("%s did not fire", id)
	}
	f := fs[0]
	if container != "" {
		f.Container = container
	}
	return f.Rule.Remediate(o, f)
}

// TestRemedyValues: what each remediation writes, and where; when it
// declines, why.
func TestRemedyValues(t *testing.T) {
	t.Parallel()
	o := rules.FixOptions{Settings: rules.DefaultSettings()}
	old := o
	old.KubeMinor = 29
	prepend := o
	prepend.PrependSleep = true
	const c0 = "spec.template.spec.containers[0]"
	probe := ", readinessProbe: {tcpSocket: {port: 8080}}"
	app := func(fields string) string {
		return "        - {name: app, image: example/app, ports: [{name: http, containerPort: 8080}]" + fields + "}\n"
	}
	inApp := func(src string) string {
		return strings.Replace(src, "metadata: {name: web}", "metadata: {name: web, annotations: {rollguard.io/shutdown-delay: 3s}}", 1)
	}
	sleep := func(n int) string { return fmt.Sprintf(", lifecycle: {preStop: {sleep: {seconds: %d}}}", n) }
	exec := func(cmd string) string { return ", lifecycle: {preStop: {exec: {command: " + cmd + "}}}" }
	for _, tc := range []struct {
		name, src, id string
		o             rules.FixOptions
		container     string
		want          rules.Remedy
	}{
		{"RG101: a native sleep of the budget", served(app(probe)), "RG101", o, "",
			rules.Remedy{Ops: []rules.Op{{Path: c0 + ".lifecycle.preStop", Value: rules.M("sleep", rules.M("seconds", int64(5)))}}, Note: "the native sleep action needs Kubernetes 1.30 or later; for older clusters pass --k8s-version to get an exec sleep"}},
		{"RG101 before 1.30: an exec sleep", served(app(probe)), "RG101", old, "",
			rules.Remedy{Ops: []rules.Op{{Path: c0 + ".lifecycle.preStop", Value: rules.M("exec", rules.M("command", []any{"sleep", "5"}))}},
				Note: "Kubernetes 1.29 has no native sleep action: the hook runs the image's sleep binary, which distroless and scratch images lack"}},
		{"RG101 before 1.30 on a distroless image: declined, no exec sleep that would fail",
			served("        - {name: app, image: gcr.io/distroless/static:nonroot, ports: [{name: http, containerPort: 8080}]" + probe + "}\n"), "RG101", old, "",
			rules.Remedy{Unfixable: `Kubernetes 1.29 has no native sleep action, and image "gcr.io/distroless/static:nonroot" looks like a minimal one with no sleep binary for an exec hook: ` +
				"make the app keep serving for 5s after SIGTERM (and declare it with the rollguard.io/shutdown-delay annotation), or run nodes of 1.30 or later"}},
		{"RG101 before 1.30 on a minimal image whose probe runs sleep: an exec sleep",
			served("        - {name: app, image: cgr.dev/chainguard/nginx, ports: [{name: http, containerPort: 8080}], readinessProbe: {exec: {command: [sleep, \"0\"]}}}\n"), "RG101", old, "",
			rules.Remedy{Ops: []rules.Op{{Path: c0 + ".lifecycle.preStop", Value: rules.M("exec", rules.M("command", []any{"sleep", "5"}))}},
				Note: "Kubernetes 1.29 has no native sleep action: the hook runs the image's sleep binary, which distroless and scratch images lack"}},
		{"RG101 on a distroless image from 1.30: the native sleep",
			served("        - {name: app, image: gcr.io/distroless/static:nonroot, ports: [{name: http, containerPort: 8080}]" + probe + "}\n"), "RG101", o, "",
			rules.Remedy{Ops: []rules.Op{{Path: c0 + ".lifecycle.preStop", Value: rules.M("sleep", rules.M("seconds", int64(5)))}}, Note: "the native sleep action needs Kubernetes 1.30 or later; for older clusters pass --k8s-version to get an exec sleep"}},
		{"RG101 on a container that is not there", served(app(probe)), "RG101", o, "gone",
			rules.Remedy{Unfixable: `container "gone" not found`}},
		{"RG102: a native sleep raised to the budget", served(app(probe + sleep(2))), "RG102", o, "",
			rules.Remedy{Ops: []rules.Op{{Path: c0 + ".lifecycle.preStop.sleep.seconds", Value: int64(5)}}}},
		{"RG102: a native sleep raised by what the app's own delay lacks", inApp(served(app(probe + sleep(1)))), "RG102", o, "",
			rules.Remedy{Ops: []rules.Op{{Path: c0 + ".lifecycle.preStop.sleep.seconds", Value: int64(2)}}}},
		{"RG102: an exec sleep replaced, the app's delay counted", inApp(served(app(probe + exec(`[sleep, "1"]`)))), "RG102", o, "",
			rules.Remedy{Ops: []rules.Op{{Path: c0 + ".lifecycle.preStop", Value: rules.M("sleep", rules.M("seconds", int64(2)))}}, Note: "the native sleep action needs Kubernetes 1.30 or later; for older clusters pass --k8s-version to get an exec sleep"}},
		{"RG102: a shell hook that does more is declined without prepend-sleep", served(app(probe + exec(`[sh, -c, "sleep 1; nginx -s quit"]`))), "RG102", o, "",
			rules.Remedy{Unfixable: "the preStop hook does more than sleep, and rollguard does not merge hooks: move that work into the app's SIGTERM handling, or pass --prepend-sleep to sleep before it (shell hooks)"}},
		{"RG101: a hook that is no shell script is declined even with prepend-sleep", served(app(probe + exec(`[kill, "1"]`))), "RG101", prepend, "",
			rules.Remedy{Unfixable: "the preStop hook does more than sleep, and rollguard does not merge hooks: move that work into the app's SIGTERM handling, or pass --prepend-sleep to sleep before it (shell hooks)"}},
		{"RG102 with prepend-sleep: the missing time in front of the script", served(app(probe + exec(`[sh, -c, "sleep 1; nginx -s quit"]`))), "RG102", prepend, "",
			rules.Remedy{Ops: []rules.Op{{Path: c0 + ".lifecycle.preStop.exec.command[2]", Value: "sleep 4; sleep 1; nginx -s quit"}}, Note: "--prepend-sleep: the hook sleeps before its own work"}},
		{"RG103: the grace period for the budget and the drain", strings.Replace(served(app(probe+sleep(5))), "    spec:\n      containers:", "    spec:\n      terminationGracePeriodSeconds: 6\n      containers:", 1), "RG103", o, "",
			rules.Remedy{Ops: []rules.Op{{Path: "spec.template.spec.terminationGracePeriodSeconds", Value: int64(10)}}}},
		{"RG103: the grace period for a long sleep and the drain", strings.Replace(served(app(probe+sleep(8))), "    spec:\n      containers:", "    spec:\n      terminationGracePeriodSeconds: 6\n      containers:", 1), "RG103", o, "",
			rules.Remedy{Ops: []rules.Op{{Path: "spec.template.spec.terminationGracePeriodSeconds", Value: int64(13)}}}},
		{"RG104: an exec sleep becomes the native action", served(app(probe + exec(`[sh, -c, "sleep 7"]`))), "RG104", o, "",
			rules.Remedy{Ops: []rules.Op{{Path: c0 + ".lifecycle.preStop", Value: rules.M("sleep", rules.M("seconds", int64(7)))}},
				Note: "the native sleep action needs Kubernetes 1.30 or later; for older clusters pass --k8s-version to get an exec sleep"}},
		{"RG104: a short exec sleep becomes the native action for what the app's delay lacks", inApp(served(app(probe + exec(`[sh, -c, "sleep 1"]`)))), "RG104", o, "",
			rules.Remedy{Ops: []rules.Op{{Path: c0 + ".lifecycle.preStop", Value: rules.M("sleep", rules.M("seconds", int64(2)))}},
				Note: "the native sleep action needs Kubernetes 1.30 or later; for older clusters pass --k8s-version to get an exec sleep"}},
		{"RG104 before 1.30", served(app(probe + exec(`[sh, -c, "sleep 7"]`))), "RG104", old, "",
			rules.Remedy{Unfixable: "Kubernetes 1.29 has no native sleep action to replace the exec hook with"}},
		{"RG104: a hook that does more than sleep", served(app(probe + exec(`[sh, -c, "sleep 7; nginx -s quit"]`))), "RG104", o, "",
			rules.Remedy{Unfixable: "the hook does more than sleep: move that work into the app's SIGTERM handling, then use the native sleep action"}},
		{"RG104 on a container that is not there", served(app(probe + exec(`[sh, -c, "sleep 7"]`))), "RG104", o, "gone",
			rules.Remedy{Unfixable: `container "gone" not found`}},
		{"RG201: tcpSocket on the served port, by name", served(app(sleep(5))), "RG201", o, "",
			rules.Remedy{Ops: []rules.Op{{Path: c0 + ".readinessProbe", Value: rules.M("tcpSocket", rules.M("port", "http"), "periodSeconds", 5, "failureThreshold", 2)}}}},
		{"RG201: tcpSocket on the served port, by number", served("        - {name: app, image: a, ports: [{containerPort: 8080}]" + sleep(5) + "}\n"), "RG201", o, "",
			rules.Remedy{Ops: []rules.Op{{Path: c0 + ".readinessProbe", Value: rules.M("tcpSocket", rules.M("port", int32(8080)), "periodSeconds", 5, "failureThreshold", 2)}}}},
		{"RG201: by number when another port has the name", served("        - {name: app, image: a, ports: [{name: admin, containerPort: 9000}, {containerPort: 8080}]" + sleep(5) + "}\n"), "RG201", o, "",
			rules.Remedy{Ops: []rules.Op{{Path: c0 + ".readinessProbe", Value: rules.M("tcpSocket", rules.M("port", int32(8080)), "periodSeconds", 5, "failureThreshold", 2)}}}},
		{"RG201: the liveness handler reused", served(app(sleep(5) + ", livenessProbe: {httpGet: {path: /healthz, port: 8080}, failureThreshold: 9}")), "RG201", o, "",
			rules.Remedy{Ops: []rules.Op{{Path: c0 + ".readinessProbe", Value: rules.Map{{Key: "httpGet", Value: rules.M("path", "/healthz", "port", int64(8080))},
				{Key: "periodSeconds", Value: 5}, {Key: "failureThreshold", Value: 2}}}}, Note: "readiness reuses the liveness probe's handler"}},
		{"RG201: a liveness handler with headers reused", served(app(sleep(5) + ", livenessProbe: {httpGet: {path: /healthz, port: http, httpHeaders: [{name: X-Probe, value: ready}]}}")), "RG201", o, "",
			rules.Remedy{Ops: []rules.Op{{Path: c0 + ".readinessProbe", Value: rules.Map{{Key: "httpGet", Value: rules.M("path", "/healthz", "port", "http",
				"httpHeaders", []any{rules.M("name", "X-Probe", "value", "ready")})}, {Key: "periodSeconds", Value: 5}, {Key: "failureThreshold", Value: 2}}}},
				Note: "readiness reuses the liveness probe's handler"}},
		{"RG201: a tcpSocket liveness handler reused", served(app(sleep(5) + ", livenessProbe: {tcpSocket: {port: http}}")), "RG201", o, "",
			rules.Remedy{Ops: []rules.Op{{Path: c0 + ".readinessProbe", Value: rules.Map{{Key: "tcpSocket", Value: rules.M("port", "http")},
				{Key: "periodSeconds", Value: 5}, {Key: "failureThreshold", Value: 2}}}}, Note: "readiness reuses the liveness probe's handler"}},
		{"RG201: a liveness probe on another port is not reused", served(app(sleep(5) + ", livenessProbe: {httpGet: {path: /healthz, port: 9000}}")), "RG201", o, "",
			rules.Remedy{Ops: []rules.Op{{Path: c0 + ".readinessProbe", Value: rules.M("tcpSocket", rules.M("port", "http"), "periodSeconds", 5, "failureThreshold", 2)}}}},
		{"RG201: an exec liveness probe is not reused", served(app(sleep(5) + ", livenessProbe: {exec: {command: [check]}}")), "RG201", o, "",
			rules.Remedy{Ops: []rules.Op{{Path: c0 + ".readinessProbe", Value: rules.M("tcpSocket", rules.M("port", "http"), "periodSeconds", 5, "failureThreshold", 2)}}}},
		{"RG201 on a container that is not there", served(app(sleep(5))), "RG201", o, "gone",
			rules.Remedy{Unfixable: `container "gone" not found`}},
		{"RG302: a quarter of the replicas, and a surge when there is none", strings.Replace(served(app(probe+sleep(5))), "{maxSurge: 1, maxUnavailable: 0}", "{maxSurge: 0, maxUnavailable: 100%}", 1), "RG302", o, "",
			rules.Remedy{Ops: []rules.Op{{Path: "spec.strategy.rollingUpdate.maxUnavailable", Value: int32(0)}, {Path: "spec.strategy.rollingUpdate.maxSurge", Value: 1}},
				Note: "maxUnavailable 0 keeps at least 3 of 3 replicas ready; maxSurge 1 lets the rollout add a pod first, as it could not otherwise move"}},
		{"RG302: a quarter of eight replicas, the surge kept", strings.Replace(strings.Replace(served(app(probe+sleep(5))), "{maxSurge: 1, maxUnavailable: 0}", "{maxSurge: 1, maxUnavailable: 8}", 1), "replicas: 3", "replicas: 8", 1), "RG302", o, "",
			rules.Remedy{Ops: []rules.Op{{Path: "spec.strategy.rollingUpdate.maxUnavailable", Value: int32(2)}},
				Note: "maxUnavailable 2 keeps at least 6 of 8 replicas ready"}},
		{"RG303: a surge", strings.Replace(served(app(probe+sleep(5))), "{maxSurge: 1, maxUnavailable: 0}", "{maxSurge: 0, maxUnavailable: 0}", 1), "RG303", o, "",
			rules.Remedy{Ops: []rules.Op{{Path: "spec.strategy.rollingUpdate.maxSurge", Value: 1}}, Note: "maxSurge 1: a new pod is added and ready before an old one goes"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			if got := remedy(t, tc.src, tc.id, tc.o, tc.container); !reflect.DeepEqual(got, tc.want) {
				t.Errorf("got  %#v\nwant %#v", got, tc.want)
			}
		})
	}
}

// TestDaemonSetRemedy: a DaemonSet's rollout is fixed one node at a time.
func TestDaemonSetRemedy(t *testing.T) {
	t.Parallel()
	fs := findings(run(t, "testdata/RG302/fires-daemonset-all.yaml"), "RG302")
	if len(fs) != 1 {
		t.Fatalf("got %d RG302 findings, want 1", len(fs))
	}
	want := rules.Remedy{Ops: []rules.Op{{Path: "spec.updateStrategy.rollingUpdate.maxUnavailable", Value: 1}}, Note: "maxUnavailable 1: one pod is replaced at a time"}
	if got := fs[0].Rule.Remediate(rules.FixOptions{Settings: rules.DefaultSettings()}, fs[0]); !reflect.DeepEqual(got, want) {
		t.Errorf("got %#v, want %#v", got, want)
	}
}

// TestRunOptions: a disabled rule does not run and the others still do;
// Only runs just the rules named.
func TestRunOptions(t *testing.T) {
	t.Parallel()
	reg := rules.Default()
	res := &manifest.Result{}
	manifest.Decode("a.yaml", []byte(served("        - {name: app, image: a, ports: [{containerPort: 8080}]}\n")), res)
	m := model.Build(res.Objects, model.Options{})
	rg101, rg201 := reg.Lookup("RG101"), reg.Lookup("RG201")
	ids := func(rep *rules.Report) string {
		var out []string
		for _, f := range rep.Findings {
			out = append(out, f.Rule.ID)
		}
		return strings.Join(out, " ")
	}
	rep := reg.Run(m, rules.Options{Settings: rules.DefaultSettings(), Disabled: map[*rules.Rule]bool{rg101: true}})
	if got := ids(rep); strings.Contains(got, "RG101") || !strings.Contains(got, "RG201") || len(rep.Rules) != len(reg.All())-1 {
		t.Errorf("RG101 disabled: findings %s from %d rules; want RG201 and no RG101, from all rules but one", got, len(rep.Rules))
	}
	rep = reg.Run(m, rules.Options{Settings: rules.DefaultSettings(), Only: map[*rules.Rule]bool{rg201: true}})
	if got := ids(rep); got != "RG201" || len(rep.Rules) != 1 {
		t.Errorf("only RG201: findings %q from %d rules, want RG201 from 1", got, len(rep.Rules))
	}
}

// TestFindingFields: where a finding points, and how a lowered message
// reads.
func TestFindingFields(t *testing.T) {
	t.Parallel()
	rep := audit(t, "a.yaml", served("        - {name: app, image: example/app, ports: [{containerPort: 8080}], lifecycle: {preStop: {exec: {command: [sh, -c, sleep 5]}}}}\n"))
	if fs := findings(rep, "RG201"); len(fs) != 1 || fs[0].Path != "spec.template.spec.containers[0]" || fs[0].Container != "app" {
		t.Errorf("RG201: %+v, want one finding at the container itself", fs)
	}
	fs := findings(rep, "RG104")
	if len(fs) != 1 || fs[0].Severity != rules.Info ||
		!strings.HasPrefix(fs[0].Message, `container "app" delays shutdown with an exec preStop hook that needs "sh" and "sleep" in the image`) ||
		!strings.HasSuffix(fs[0].Message, `; info only: image "example/app" is not a distroless, scratch or other minimal image, which are the ones without a shell`) {
		t.Errorf("RG104: %+v, want one info finding whose message ends with why it is info", fs)
	}
}

// TestSuppressionIsPerObject: a suppressed finding on one workload leaves
// the same rule's finding on the next one active.
func TestSuppressionIsPerObject(t *testing.T) {
	t.Parallel()
	c := "        - {name: app, image: a, ports: [{containerPort: 8080}], readinessProbe: {tcpSocket: {port: 8080}}}\n"
	quiet := strings.Replace(served(c), "metadata: {name: web}", "metadata: {name: quiet, annotations: {rollguard.io/ignore: RG101}}", 1)
	rep := audit(t, "a.yaml", quiet+"---\n"+strings.Replace(served(c), "metadata: {name: web}", "metadata: {name: loud}", 1))
	var got []string
	for _, f := range rep.Suppressed {
		got = append(got, "suppressed "+f.Rule.ID+" "+f.Object.Name)
	}
	for _, f := range findings(rep, "RG101") {
		got = append(got, "active "+f.Rule.ID+" "+f.Object.Name)
	}
	if want := "suppressed RG101 quiet, active RG101 loud"; strings.Join(got, ", ") != want {
		t.Errorf("got %s, want %s", strings.Join(got, ", "), want)
	}
}

// TestEveryServedContainer: a container-level rule judges every served
// container, so a first container that passes does not hide a second that
// fails; the finding names the second, with its fix.
func TestEveryServedContainer(t *testing.T) {
	t.Parallel()
	const (
		probe    = "readinessProbe: {tcpSocket: {port: PORT}}"
		sleep5   = "lifecycle: {preStop: {sleep: {seconds: 5}}}"
		tolerant = "readinessProbe: {tcpSocket: {port: PORT}}, livenessProbe: {tcpSocket: {port: PORT}, failureThreshold: 6}"
	)
	for _, tc := range []struct {
		id, good, bad, want string // want: in the bad container's message or fix
	}{
		{"RG101", probe + ", " + sleep5, probe, "add lifecycle.preStop.sleep.seconds: 5"},
		{"RG101", probe + ", " + sleep5, probe + ", lifecycle: {preStop: {exec: {command: [kill, '1']}}}", `its preStop hook runs "kill 1" at once`},
		{"RG102", probe + ", " + sleep5, probe + ", lifecycle: {preStop: {sleep: {seconds: 2}}}", "raise the preStop sleep to 5s"},
		{"RG102", probe, probe + ", lifecycle: {preStop: {sleep: {seconds: 2}}}", "raise the preStop sleep to 5s"},
		{"RG102", probe + ", lifecycle: {preStop: {exec: {command: [/drain]}}}", probe + ", lifecycle: {preStop: {sleep: {seconds: 2}}}", "less than the 5s propagation budget"},
		{"RG104", probe + ", " + sleep5, probe + ", lifecycle: {preStop: {exec: {command: [sh, -c, sleep 5]}}}", `needs "sh" and "sleep" in the image`},
		{"RG104", probe + ", command: [sh, -c, 'sleep 1; exec app'], lifecycle: {preStop: {exec: {command: [sh, -c, sleep 5]}}}",
			probe + ", lifecycle: {preStop: {exec: {command: [sh, -c, sleep 5]}}}", `needs "sh" and "sleep" in the image`},
		{"RG105", probe + ", " + sleep5, probe + ", lifecycle: {preStop: {exec: {command: [/drain]}}}", `has a preStop hook that runs "/drain"`},
		{"RG105", probe + ", lifecycle: {preStop: {exec: {command: [sh, -c, sleep 5; /drain]}}}", probe + ", lifecycle: {preStop: {exec: {command: [sh, -c, sleep 1; /drain]}}}",
			`has a preStop hook that after sleeping 1s runs "/drain"`},
		{"RG201", probe + ", " + sleep5, sleep5, "add a readinessProbe on port 9090"},
		{"RG201", sleep5 + ", readinessProbe: {exec: {command: [check]}}", sleep5 + ", startupProbe: {tcpSocket: {port: 7000}}",
			"has no readinessProbe; its startupProbe does not check a served port"},
		{"RG202", sleep5, sleep5 + ", readinessProbe: {tcpSocket: {port: 7777}}", "probes readiness on port 7777"},
		{"RG202", sleep5 + ", readinessProbe: {exec: {command: [check]}}", sleep5 + ", readinessProbe: {tcpSocket: {port: 7777}}", "probes readiness on port 7777"},
		{"RG202", sleep5 + ", readinessProbe: {tcpSocket: {port: nope}}", sleep5 + ", readinessProbe: {tcpSocket: {port: 7777}}", "probes readiness on port 7777"},
		{"RG202", probe + ", " + sleep5, sleep5 + ", readinessProbe: {tcpSocket: {port: 7777}}", "probe the served port 9090"},
		{"RG203", sleep5, sleep5 + ", readinessProbe: {tcpSocket: {port: nope}}", `use port 9090, or declare a port named "nope"`},
		{"RG204", probe + ", " + sleep5, probe + ", livenessProbe: {tcpSocket: {port: PORT}}, " + sleep5, "raise livenessProbe.failureThreshold to 4 or more"},
		{"RG204", probe + ", livenessProbe: {exec: {command: [check]}}, " + sleep5, probe + ", livenessProbe: {tcpSocket: {port: PORT}}, " + sleep5, "identical readiness and liveness probes"},
		{"RG204", tolerant + ", " + sleep5, probe + ", livenessProbe: {tcpSocket: {port: PORT}, periodSeconds: 5, failureThreshold: 2}, " + sleep5,
			"restarts after 10s of failing liveness, no later than readiness takes it out of the endpoints (30s)"},
		{"RG204", tolerant + ", " + sleep5, "readinessProbe: {tcpSocket: {port: PORT}, periodSeconds: 4, failureThreshold: 5}, livenessProbe: {tcpSocket: {port: PORT}, periodSeconds: 3}, " + sleep5,
			"raise livenessProbe.failureThreshold to 7 or more"},
	} {
		t.Run(tc.id+" "+tc.want, func(t *testing.T) {
			t.Parallel()
			c := "        - {name: good, image: gcr.io/distroless/static, ports: [{containerPort: 8080}], " + strings.ReplaceAll(tc.good, "PORT", "8080") + "}\n" +
				"        - {name: bad, image: gcr.io/distroless/static, ports: [{containerPort: 9090}], " + strings.ReplaceAll(tc.bad, "PORT", "9090") + "}\n"
			src := strings.Replace(served(c), "ports: [{port: 80, targetPort: 8080}]", "ports: [{name: a, port: 80, targetPort: 8080}, {name: b, port: 90, targetPort: 9090}]", 1)
			fs := findings(audit(t, "a.yaml", src), tc.id)
			if len(fs) != 1 || fs[0].Container != "bad" || !strings.Contains(fs[0].Message+" "+fs[0].Fix, tc.want) {
				for _, f := range fs {
					t.Logf("%s %s: %s; fix: %s", f.Container, f.Severity, f.Message, f.Fix)
				}
				t.Errorf("want one finding, on container bad, with %q", tc.want)
			}
		})
	}
}

// TestFindingOrderByRule: one object's findings come in rule order.
func TestFindingOrderByRule(t *testing.T) {
	t.Parallel()
	rep := audit(t, "a.yaml", served("        - {name: app, image: a, ports: [{containerPort: 8080}]}\n"))
	var ids []string
	for _, f := range rep.Findings {
		if f.Object.Kind == "Deployment" {
			ids = append(ids, f.Rule.ID)
		}
	}
	if len(ids) < 2 || !sort.StringsAreSorted(ids) {
		t.Errorf("rules %v: want at least two, in ID order", ids)
	}
}
