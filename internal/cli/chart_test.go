package cli_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"

	"github.com/rollguard/rollguard/internal/cli"
	"github.com/rollguard/rollguard/pkg/config"
	"github.com/rollguard/rollguard/pkg/render"
	"github.com/rollguard/rollguard/pkg/rules"
	"github.com/rollguard/rollguard/pkg/webhook"
)

// The webhook's Helm chart, and the kustomize base generated from it by
// hack/gen-webhook-base (release rollguard in rollguard-system).
const (
	webhookChart = "../../charts/rollguard"
	webhookBase  = "../../deploy/webhook"
	baseFile     = webhookBase + "/rollguard.yaml"
	baseNS       = "rollguard-system"
)

// toolPath is the helm or kustomize a test runs, found as pkg/render finds
// them (the environment variable, then PATH); the test is skipped when
// there is none (needTool). For kustomize it may be kubectl, run as
// kubectl kustomize.
func toolPath(t *testing.T, tool render.Tool) []string {
	t.Helper()
	needTool(t, tool)
	env, names := render.HelmEnv, []string{"helm"}
	if tool == render.Kustomize {
		env, names = render.KustomizeEnv, []string{"kustomize", "kubectl"}
	}
	// For kustomize, the command that builds the folder given after it:
	// "kustomize build" or "kubectl kustomize".
	build := func(p string) []string {
		if tool != render.Kustomize {
			return []string{p}
		}
		if filepath.Base(p) == "kubectl" {
			return []string{p, "kustomize"}
		}
		return []string{p, "build"}
	}
	if p := os.Getenv(env); p != "" {
		return build(p)
	}
	for _, n := range names {
		if p, err := exec.LookPath(n); err == nil {
			return build(p)
		}
	}
	t.Fatalf("no %s", names[0])
	return nil
}

func runTool(t *testing.T, cmd []string, args ...string) []byte {
	t.Helper()
	c := exec.Command(cmd[0], append(cmd[1:], args...)...)
	var stderr bytes.Buffer
	c.Stderr = &stderr
	out, err := c.Output()
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", cmd, strings.Join(args, " "), err, stderr.String())
	}
	return out
}

// chartObjects is a rendered stream, each object as JSON.
type chartObjects []map[string]any

func parseObjects(t *testing.T, data []byte) chartObjects {
	t.Helper()
	var objs chartObjects
	dec := utilyaml.NewYAMLOrJSONDecoder(bytes.NewReader(data), 4096)
	for {
		var o map[string]any
		if err := dec.Decode(&o); errors.Is(err, io.EOF) {
			return objs
		} else if err != nil {
			t.Fatalf("rendered output: %v", err)
		}
		if o != nil {
			objs = append(objs, o)
		}
	}
}

// keys lists the objects as "Kind namespace/name", sorted.
func (objs chartObjects) keys() []string {
	var s []string
	for _, o := range objs {
		md, _ := o["metadata"].(map[string]any)
		s = append(s, o["kind"].(string)+" "+strOf(md["namespace"])+"/"+strOf(md["name"]))
	}
	sort.Strings(s)
	return s
}

func strOf(v any) string { s, _ := v.(string); return s }

// get decodes the one object of a kind and name into out; false when
// there is none.
func (objs chartObjects) get(t *testing.T, kind, name string, out any) bool {
	t.Helper()
	found := false
	for _, o := range objs {
		md, _ := o["metadata"].(map[string]any)
		if o["kind"] != kind || md["name"] != name {
			continue
		}
		if found {
			t.Fatalf("two objects %s %s", kind, name)
		}
		found = true
		data, _ := json.Marshal(o)
		if err := json.Unmarshal(data, out); err != nil {
			t.Fatalf("%s %s: %v", kind, name, err)
		}
	}
	return found
}

func (objs chartObjects) must(t *testing.T, kind, name string, out any) {
	t.Helper()
	if !objs.get(t, kind, name, out) {
		t.Fatalf("no %s %s in %v", kind, name, objs.keys())
	}
}

func helmTemplate(t *testing.T, release, namespace string, set ...string) chartObjects {
	t.Helper()
	args := []string{"template", release, webhookChart, "--namespace", namespace}
	for _, s := range set {
		args = append(args, "--set", s)
	}
	return parseObjects(t, runTool(t, toolPath(t, render.Helm), args...))
}

func TestChartLint(t *testing.T) {
	t.Parallel()
	helm := toolPath(t, render.Helm)
	for _, set := range [][]string{nil, {"certManager.enabled=true"}, {"certManager.enabled=true", "certManager.issuerRef.name=ca", "certManager.issuerRef.kind=ClusterIssuer"}} {
		args := []string{"lint", "--strict", webhookChart}
		for _, s := range set {
			args = append(args, "--set", s)
		}
		runTool(t, helm, args...)
	}
	// The values' schema refuses what the API server would refuse later.
	for _, bad := range []string{"failurePolicy=fail", "timeoutSeconds=31", "replicas=0", "image.pullPolicy=Sometimes"} {
		c := exec.Command(helm[0], "template", "rollguard", webhookChart, "--set", bad)
		if out, err := c.CombinedOutput(); err == nil || !strings.Contains(string(out), "schema") && !strings.Contains(string(out), "at '/") {
			t.Errorf("--set %s: err %v, output %s; want the schema's refusal", bad, err, out)
		}
	}
}

// chartMode is one way of installing the chart, and what the render must hold.
type chartMode struct {
	name               string
	release, namespace string
	set                []string
	fullname           string
	failurePolicy      admissionregistrationv1.FailurePolicyType
	timeout            int32
	certManager        bool
	issuer             string // the Issuer the chart creates; "" for none
	replicas           int32
	plainMetrics       bool // metrics.secure=false
}

var chartModes = []chartMode{
	{name: "self-signed", release: "rollguard", namespace: baseNS, fullname: "rollguard",
		failurePolicy: admissionregistrationv1.Ignore, timeout: 5, replicas: 2},
	{name: "cert-manager", release: "rollguard", namespace: baseNS, set: []string{"certManager.enabled=true"}, fullname: "rollguard",
		failurePolicy: admissionregistrationv1.Ignore, timeout: 5, certManager: true, issuer: "rollguard-selfsigned", replicas: 2},
	{name: "fail", release: "guard", namespace: "platform", set: []string{"failurePolicy=Fail", "timeoutSeconds=10", "replicas=3", "metrics.secure=false"},
		fullname: "guard-rollguard", failurePolicy: admissionregistrationv1.Fail, timeout: 10, replicas: 3, plainMetrics: true},
	{name: "cert-manager issuer", release: "rollguard-prod", namespace: "ops",
		set:      []string{"certManager.enabled=true", "certManager.issuerRef.name=internal-ca", "certManager.issuerRef.kind=ClusterIssuer", "failurePolicy=Fail"},
		fullname: "rollguard-prod", failurePolicy: admissionregistrationv1.Fail, timeout: 5, certManager: true, replicas: 2},
}

// TestChartWebhookConfigurations: the two configurations are the ones the
// integration tier registers (test/integration/webhook_test.go), plus Argo
// Rollouts, calling the chart's Service, in every mode.
func TestChartWebhookConfigurations(t *testing.T) {
	t.Parallel()
	for _, m := range chartModes {
		t.Run(m.name, func(t *testing.T) {
			t.Parallel()
			objs := helmTemplate(t, m.release, m.namespace, m.set...)
			none := admissionregistrationv1.SideEffectClassNone
			ifNeeded := admissionregistrationv1.IfNeededReinvocationPolicy
			sel := &metav1.LabelSelector{MatchLabels: map[string]string{webhook.InjectLabel: "enabled"},
				MatchExpressions: []metav1.LabelSelectorRequirement{{Key: "kubernetes.io/metadata.name", Operator: metav1.LabelSelectorOpNotIn,
					Values: []string{"kube-system", "kube-public", "kube-node-lease", m.namespace}}}}
			svc := func(path string) admissionregistrationv1.WebhookClientConfig {
				port := int32(443)
				return admissionregistrationv1.WebhookClientConfig{Service: &admissionregistrationv1.ServiceReference{
					Namespace: m.namespace, Name: m.fullname + "-webhook", Path: &path, Port: &port}}
			}
			fp, timeout := m.failurePolicy, m.timeout
			wantM := []admissionregistrationv1.MutatingWebhook{{Name: "pods.rollguard.io", AdmissionReviewVersions: []string{"v1"},
				ClientConfig: svc(webhook.MutatePath),
				Rules: []admissionregistrationv1.RuleWithOperations{{Operations: []admissionregistrationv1.OperationType{admissionregistrationv1.Create},
					Rule: admissionregistrationv1.Rule{APIGroups: []string{""}, APIVersions: []string{"v1"}, Resources: []string{"pods"}}}},
				FailurePolicy: &fp, SideEffects: &none, TimeoutSeconds: &timeout, NamespaceSelector: sel, ReinvocationPolicy: &ifNeeded}}
			createUpdate := []admissionregistrationv1.OperationType{admissionregistrationv1.Create, admissionregistrationv1.Update}
			wantV := []admissionregistrationv1.ValidatingWebhook{{Name: "workloads.rollguard.io", AdmissionReviewVersions: []string{"v1"},
				ClientConfig: svc(webhook.ValidatePath),
				Rules: []admissionregistrationv1.RuleWithOperations{
					{Operations: createUpdate, Rule: admissionregistrationv1.Rule{APIGroups: []string{"apps"}, APIVersions: []string{"v1"}, Resources: []string{"deployments", "statefulsets", "daemonsets"}}},
					{Operations: createUpdate, Rule: admissionregistrationv1.Rule{APIGroups: []string{"argoproj.io"}, APIVersions: []string{"v1alpha1"}, Resources: []string{"rollouts"}}}},
				FailurePolicy: &fp, SideEffects: &none, TimeoutSeconds: &timeout, NamespaceSelector: sel}}

			var mwc admissionregistrationv1.MutatingWebhookConfiguration
			var vwc admissionregistrationv1.ValidatingWebhookConfiguration
			objs.must(t, "MutatingWebhookConfiguration", m.fullname, &mwc)
			objs.must(t, "ValidatingWebhookConfiguration", m.fullname, &vwc)
			if !reflect.DeepEqual(mwc.Webhooks, wantM) {
				t.Errorf("mutating webhooks\n%s\nwant\n%s", asJSON(mwc.Webhooks), asJSON(wantM))
			}
			if !reflect.DeepEqual(vwc.Webhooks, wantV) {
				t.Errorf("validating webhooks\n%s\nwant\n%s", asJSON(vwc.Webhooks), asJSON(wantV))
			}
			// The CA comes from cert-manager's injector, or from the webhook.
			inject := ""
			if m.certManager {
				inject = m.namespace + "/" + m.fullname + "-webhook"
			}
			for kind, md := range map[string]metav1.ObjectMeta{"mutating": mwc.ObjectMeta, "validating": vwc.ObjectMeta} {
				if got := md.Annotations["cert-manager.io/inject-ca-from"]; got != inject {
					t.Errorf("%s: cert-manager.io/inject-ca-from %q, want %q", kind, got, inject)
				}
			}

			// The webhook is told these names, and the Service's.
			args := deploymentOf(t, objs, m.fullname).Spec.Template.Spec.Containers[0].Args
			for _, want := range []string{"--mutating-webhook-configuration=" + m.fullname, "--validating-webhook-configuration=" + m.fullname,
				"--config-map=" + m.fullname} {
				if !slices.Contains(args, want) {
					t.Errorf("args %q lack %s", args, want)
				}
			}
			var s corev1.Service
			objs.must(t, "Service", m.fullname+"-webhook", &s)
		})
	}
}

func asJSON(v any) string { b, _ := json.MarshalIndent(v, "", "  "); return string(b) }

func deploymentOf(t *testing.T, objs chartObjects, name string) *appsv1.Deployment {
	t.Helper()
	var d appsv1.Deployment
	objs.must(t, "Deployment", name, &d)
	if len(d.Spec.Template.Spec.Containers) != 1 {
		t.Fatalf("Deployment %s: %d containers, want 1", name, len(d.Spec.Template.Spec.Containers))
	}
	return &d
}

// TestChartDeployment: two replicas (or the value) spread over nodes,
// probes, the preStop sleep and a grace period that covers it, the
// restricted securityContext, requests equal to limits, the arguments of
// each certificate mode (every one a flag of rollguard webhook), the
// certificate's Secret mounted at /certs, the Service, the PDB, the
// ConfigMap.
func TestChartDeployment(t *testing.T) {
	t.Parallel()
	help, _, code := rollguard(t, "", "webhook", "--help")
	if code != cli.ExitOK {
		t.Fatalf("webhook --help: exit %d", code)
	}
	for _, m := range chartModes {
		t.Run(m.name, func(t *testing.T) {
			t.Parallel()
			objs := helmTemplate(t, m.release, m.namespace, m.set...)
			d := deploymentOf(t, objs, m.fullname)
			spec := d.Spec.Template.Spec
			c := spec.Containers[0]
			podLabels := d.Spec.Template.Labels
			if d.Namespace != m.namespace || d.Spec.Replicas == nil || *d.Spec.Replicas != m.replicas {
				t.Errorf("Deployment in %q with replicas %v, want %s and %d", d.Namespace, d.Spec.Replicas, m.namespace, m.replicas)
			}
			if !reflect.DeepEqual(d.Spec.Selector.MatchLabels, selectorOf(podLabels, d.Spec.Selector.MatchLabels)) || len(d.Spec.Selector.MatchLabels) == 0 {
				t.Errorf("selector %v does not select the pod labels %v", d.Spec.Selector.MatchLabels, podLabels)
			}
			ru := d.Spec.Strategy.RollingUpdate
			if d.Spec.Strategy.Type != appsv1.RollingUpdateDeploymentStrategyType || ru == nil ||
				*ru.MaxUnavailable != intstr.FromInt32(0) || *ru.MaxSurge != intstr.FromInt32(1) || d.Spec.MinReadySeconds < 5 {
				t.Errorf("strategy %s, minReadySeconds %d: want RollingUpdate, maxSurge 1, maxUnavailable 0, at least 5", asJSON(d.Spec.Strategy), d.Spec.MinReadySeconds)
			}

			// Spread: preferred anti-affinity on the node, over these pods.
			aff := spec.Affinity
			if aff == nil || aff.PodAntiAffinity == nil || len(aff.PodAntiAffinity.PreferredDuringSchedulingIgnoredDuringExecution) != 1 {
				t.Fatalf("affinity %s: want one preferred podAntiAffinity term", asJSON(aff))
			}
			term := aff.PodAntiAffinity.PreferredDuringSchedulingIgnoredDuringExecution[0].PodAffinityTerm
			if term.TopologyKey != "kubernetes.io/hostname" || term.LabelSelector == nil ||
				!reflect.DeepEqual(term.LabelSelector.MatchLabels, d.Spec.Selector.MatchLabels) || aff.PodAntiAffinity.RequiredDuringSchedulingIgnoredDuringExecution != nil {
				t.Errorf("anti-affinity term %s: want kubernetes.io/hostname over the pods' selector, preferred only", asJSON(term))
			}

			// Probes on the probe port; the preStop sleep and the grace period.
			port := func(name string) int32 {
				for _, p := range c.Ports {
					if p.Name == name {
						return p.ContainerPort
					}
				}
				return 0
			}
			if port("webhook") != 9443 || port("probes") != 8081 || port("metrics") != 8080 {
				t.Errorf("ports %s: want webhook 9443, probes 8081, metrics 8080", asJSON(c.Ports))
			}
			probe := func(p *corev1.Probe, path string) {
				if p == nil || p.HTTPGet == nil || p.HTTPGet.Path != path || p.HTTPGet.Port != intstr.FromString("probes") {
					t.Errorf("probe %s: want httpGet %s on port probes (8081)", asJSON(p), path)
				}
			}
			probe(c.ReadinessProbe, "/readyz")
			probe(c.LivenessProbe, "/healthz")
			if c.ReadinessProbe != nil && c.LivenessProbe != nil &&
				c.LivenessProbe.PeriodSeconds*c.LivenessProbe.FailureThreshold <= c.ReadinessProbe.PeriodSeconds*c.ReadinessProbe.FailureThreshold {
				t.Errorf("liveness gives up no later than readiness")
			}
			if c.Lifecycle == nil || c.Lifecycle.PreStop == nil || c.Lifecycle.PreStop.Sleep == nil || c.Lifecycle.PreStop.Sleep.Seconds < 5 {
				t.Fatalf("preStop %s: want a native sleep of at least 5s", asJSON(c.Lifecycle))
			}
			if g := spec.TerminationGracePeriodSeconds; g == nil || *g < c.Lifecycle.PreStop.Sleep.Seconds+5 {
				t.Errorf("terminationGracePeriodSeconds %v: want at least the preStop sleep (%ds) and 5s to drain", g, c.Lifecycle.PreStop.Sleep.Seconds)
			}

			// PodSecurity restricted.
			psc, sc := spec.SecurityContext, c.SecurityContext
			if psc == nil || psc.RunAsNonRoot == nil || !*psc.RunAsNonRoot || psc.RunAsUser == nil || *psc.RunAsUser != 65532 ||
				psc.SeccompProfile == nil || psc.SeccompProfile.Type != corev1.SeccompProfileTypeRuntimeDefault {
				t.Errorf("pod securityContext %s", asJSON(psc))
			}
			if sc == nil || sc.AllowPrivilegeEscalation == nil || *sc.AllowPrivilegeEscalation || sc.ReadOnlyRootFilesystem == nil || !*sc.ReadOnlyRootFilesystem ||
				sc.Capabilities == nil || !reflect.DeepEqual(sc.Capabilities.Drop, []corev1.Capability{"ALL"}) || len(sc.Capabilities.Add) != 0 ||
				sc.Privileged != nil && *sc.Privileged {
				t.Errorf("container securityContext %s", asJSON(sc))
			}
			if len(c.Resources.Requests) == 0 || !reflect.DeepEqual(c.Resources.Requests, c.Resources.Limits) {
				t.Errorf("resources %s: want requests equal to limits", asJSON(c.Resources))
			}
			if spec.AutomountServiceAccountToken == nil || !*spec.AutomountServiceAccountToken || spec.ServiceAccountName != m.fullname {
				t.Errorf("serviceAccountName %q, automount %v: want %s, true", spec.ServiceAccountName, spec.AutomountServiceAccountToken, m.fullname)
			}
			if len(c.Env) != 1 || c.Env[0].Name != "POD_NAMESPACE" || c.Env[0].ValueFrom == nil || c.Env[0].ValueFrom.FieldRef == nil ||
				c.Env[0].ValueFrom.FieldRef.FieldPath != "metadata.namespace" {
				t.Errorf("env %s: want POD_NAMESPACE from metadata.namespace", asJSON(c.Env))
			}
			if c.Image != "ghcr.io/rollguard/rollguard:0.1.0" || c.ImagePullPolicy != corev1.PullIfNotPresent {
				t.Errorf("image %s (%s)", c.Image, c.ImagePullPolicy)
			}

			// Arguments, each a flag of rollguard webhook.
			svc, secret := m.fullname+"-webhook", m.fullname+"-webhook-tls"
			want := []string{"webhook", "--namespace=$(POD_NAMESPACE)", "--config-map=" + m.fullname, "--cert-dir=/certs", "--port=9443",
				"--metrics-bind-address=:8080", fmt.Sprintf("--metrics-secure=%t", !m.plainMetrics), "--health-probe-bind-address=:8081",
				"--mutating-webhook-configuration=" + m.fullname, "--validating-webhook-configuration=" + m.fullname}
			if !m.certManager {
				want = append(want, "--cert-secret="+secret, "--service="+svc, "--cert-check-interval=12h")
			}
			if !slices.Equal(c.Args, want) {
				t.Errorf("args\n%q\nwant\n%q", c.Args, want)
			}
			for _, a := range c.Args[1:] {
				flag, _, _ := strings.Cut(a, "=")
				if !strings.Contains(help, flag+" ") {
					t.Errorf("%s is not a flag of rollguard webhook", flag)
				}
			}

			// The certificate's Secret, mounted at --cert-dir.
			var mounted string
			for _, v := range spec.Volumes {
				for _, vm := range c.VolumeMounts {
					if vm.Name == v.Name && vm.MountPath == "/certs" && v.Secret != nil {
						mounted = v.Secret.SecretName
					}
				}
			}
			if mounted != secret {
				t.Errorf("/certs mounts Secret %q, want %s", mounted, secret)
			}
			var sec corev1.Secret
			hasSecret := objs.get(t, "Secret", secret, &sec)
			if m.certManager {
				var cert struct {
					Spec struct {
						SecretName string   `json:"secretName"`
						DNSNames   []string `json:"dnsNames"`
						IssuerRef  struct{ Name, Kind, Group string }
					}
				}
				objs.must(t, "Certificate", m.fullname+"-webhook", &cert)
				if hasSecret || cert.Spec.SecretName != secret || !slices.Contains(cert.Spec.DNSNames, svc+"."+m.namespace+".svc") {
					t.Errorf("Certificate %+v (and a Secret of the chart: %v): want secretName %s, dnsName %s.%s.svc, no Secret", cert.Spec, hasSecret, secret, svc, m.namespace)
				}
				var issuer map[string]any
				hasIssuer := objs.get(t, "Issuer", m.issuer, &issuer)
				if m.issuer != "" {
					if !hasIssuer || cert.Spec.IssuerRef.Name != m.issuer || cert.Spec.IssuerRef.Kind != "Issuer" {
						t.Errorf("issuerRef %+v: want the chart's Issuer %s", cert.Spec.IssuerRef, m.issuer)
					}
					if spec, _ := issuer["spec"].(map[string]any); spec["selfSigned"] == nil {
						t.Errorf("Issuer %v is not selfSigned", issuer)
					}
				} else if slices.ContainsFunc(objs.keys(), func(k string) bool { return strings.HasPrefix(k, "Issuer ") }) ||
					cert.Spec.IssuerRef != (struct{ Name, Kind, Group string }{"internal-ca", "ClusterIssuer", "cert-manager.io"}) {
					t.Errorf("issuerRef %+v, chartObjects %v: want the values' ClusterIssuer and no Issuer", cert.Spec.IssuerRef, objs.keys())
				}
			} else {
				// Empty, and kept: the webhook's rotator owns its data.
				if !hasSecret || len(sec.Data) != 0 || len(sec.StringData) != 0 || sec.Type != corev1.SecretTypeOpaque ||
					sec.Annotations["helm.sh/resource-policy"] != "keep" {
					t.Errorf("Secret %s: %s; want an empty Opaque Secret with helm.sh/resource-policy keep", secret, asJSON(sec))
				}
			}

			// The Service: 443 to the webhook port, and metrics.
			var s corev1.Service
			objs.must(t, "Service", svc, &s)
			wantPorts := []corev1.ServicePort{{Name: "webhook", Port: 443, TargetPort: intstr.FromString("webhook"), Protocol: corev1.ProtocolTCP},
				{Name: "metrics", Port: 8080, TargetPort: intstr.FromString("metrics"), Protocol: corev1.ProtocolTCP}}
			if !m.plainMetrics {
				https := "https"
				wantPorts[1].AppProtocol = &https
			}
			if !reflect.DeepEqual(s.Spec.Ports, wantPorts) || !reflect.DeepEqual(s.Spec.Selector, d.Spec.Selector.MatchLabels) {
				t.Errorf("Service ports %s, selector %v", asJSON(s.Spec.Ports), s.Spec.Selector)
			}

			// The PDB.
			var pdb policyv1.PodDisruptionBudget
			objs.must(t, "PodDisruptionBudget", m.fullname, &pdb)
			if pdb.Spec.MinAvailable == nil || *pdb.Spec.MinAvailable != intstr.FromInt32(1) || pdb.Spec.MaxUnavailable != nil ||
				pdb.Spec.Selector == nil || !reflect.DeepEqual(pdb.Spec.Selector.MatchLabels, d.Spec.Selector.MatchLabels) {
				t.Errorf("PodDisruptionBudget %s: want minAvailable 1 over the pods", asJSON(pdb.Spec))
			}

			// The configuration, a valid rollguard.yaml.
			var cm corev1.ConfigMap
			objs.must(t, "ConfigMap", m.fullname, &cm)
			cfg, err := config.Parse([]byte(cm.Data[webhook.ConfigKey]), rules.Default())
			if err != nil || cfg.PropagationBudget != 5*time.Second || len(cm.Data) != 1 {
				t.Errorf("ConfigMap %v: %v; want %s with propagationBudget 5s", cm.Data, err, webhook.ConfigKey)
			}
			for _, k := range objs.keys() {
				if kind, _, _ := strings.Cut(k, " "); kind != "ClusterRole" && kind != "ClusterRoleBinding" && !strings.HasPrefix(kind, "MutatingWebhook") &&
					!strings.HasPrefix(kind, "ValidatingWebhook") && !strings.Contains(k, " "+m.namespace+"/") {
					t.Errorf("%s is not in the release namespace %s", k, m.namespace)
				}
			}
		})
	}
}

// selectorOf is the part of labels that selector names.
func selectorOf(labels, selector map[string]string) map[string]string {
	out := map[string]string{}
	for k := range selector {
		if v, ok := labels[k]; ok {
			out[k] = v
		}
	}
	return out
}

// TestChartValues: the values the e2e tier and users set reach the
// objects.
func TestChartValues(t *testing.T) {
	t.Parallel()
	objs := helmTemplate(t, "rollguard", baseNS, "image.repository=localhost/rollguard", "image.tag=e2e", "image.pullPolicy=Never",
		"certCheckInterval=1h", "metrics.enabled=false", "podDisruptionBudget.minAvailable=50%", "preStopSleepSeconds=8",
		"terminationGracePeriodSeconds=25", "config.propagationBudget=8s", "config.deny={RG201}", "nodeSelector.pool=system",
		"affinity.nodeAffinity.requiredDuringSchedulingIgnoredDuringExecution.nodeSelectorTerms[0].matchExpressions[0].key=pool",
		"affinity.nodeAffinity.requiredDuringSchedulingIgnoredDuringExecution.nodeSelectorTerms[0].matchExpressions[0].operator=Exists",
		"resources.requests.cpu=1", "resources.limits.cpu=1", "priorityClassName=system-cluster-critical")
	d := deploymentOf(t, objs, "rollguard")
	c, spec := d.Spec.Template.Spec.Containers[0], d.Spec.Template.Spec
	if c.Image != "localhost/rollguard:e2e" || c.ImagePullPolicy != corev1.PullNever {
		t.Errorf("image %s (%s)", c.Image, c.ImagePullPolicy)
	}
	if !slices.Contains(c.Args, "--cert-check-interval=1h") || !slices.Contains(c.Args, "--metrics-bind-address=") {
		t.Errorf("args %q", c.Args)
	}
	if c.Lifecycle.PreStop.Sleep.Seconds != 8 || *spec.TerminationGracePeriodSeconds != 25 {
		t.Errorf("preStop %d, grace %d", c.Lifecycle.PreStop.Sleep.Seconds, *spec.TerminationGracePeriodSeconds)
	}
	if spec.NodeSelector["pool"] != "system" || spec.Affinity.PodAntiAffinity != nil || spec.Affinity.NodeAffinity == nil ||
		spec.PriorityClassName != "system-cluster-critical" || c.Resources.Limits.Cpu().String() != "1" {
		t.Errorf("nodeSelector %v, affinity %s, priorityClassName %q, resources %s", spec.NodeSelector, asJSON(spec.Affinity), spec.PriorityClassName, asJSON(c.Resources))
	}
	for _, p := range c.Ports {
		if p.Name == "metrics" {
			t.Errorf("metrics disabled, but port %v", p)
		}
	}
	var s corev1.Service
	objs.must(t, "Service", "rollguard-webhook", &s)
	if len(s.Spec.Ports) != 1 || s.Spec.Ports[0].Name != "webhook" {
		t.Errorf("Service ports %s: want webhook only", asJSON(s.Spec.Ports))
	}
	var pdb policyv1.PodDisruptionBudget
	objs.must(t, "PodDisruptionBudget", "rollguard", &pdb)
	if *pdb.Spec.MinAvailable != intstr.FromString("50%") {
		t.Errorf("minAvailable %v", pdb.Spec.MinAvailable)
	}
	var cm corev1.ConfigMap
	objs.must(t, "ConfigMap", "rollguard", &cm)
	cfg, err := config.Parse([]byte(cm.Data[webhook.ConfigKey]), rules.Default())
	if err != nil || cfg.PropagationBudget != 8*time.Second || len(cfg.Deny) != 1 {
		t.Errorf("config %q: %v, %+v", cm.Data[webhook.ConfigKey], err, cfg)
	}
}

// rbacRule is an RBAC rule in a comparable form.
type rbacRule struct{ groups, resources, names, verbs string }

func rulesOf(rs []rbacv1.PolicyRule) []rbacRule {
	var out []rbacRule
	for _, r := range rs {
		out = append(out, rbacRule{strings.Join(r.APIGroups, ","), strings.Join(r.Resources, ","), strings.Join(r.ResourceNames, ","), strings.Join(r.Verbs, ",")})
	}
	return out
}

// TestChartRBAC: exactly what pkg/webhook/server.go's informers and
// cert-controller v0.16.0's rotator call (see the comments in
// charts/rollguard/templates/rbac.yaml), no wildcard, bound to the
// webhook's ServiceAccount; nothing of the rotator's with cert-manager.
func TestChartRBAC(t *testing.T) {
	t.Parallel()
	for _, m := range chartModes {
		t.Run(m.name, func(t *testing.T) {
			t.Parallel()
			objs := helmTemplate(t, m.release, m.namespace, m.set...)
			wantCluster := []rbacRule{
				{"", "services", "", "list,watch"},
				{"policy", "poddisruptionbudgets", "", "list,watch"},
				{"autoscaling", "horizontalpodautoscalers", "", "list,watch"},
			}
			wantNS := []rbacRule{{"", "configmaps", m.fullname, "list,watch"}}
			if !m.certManager {
				wantCluster = append(wantCluster,
					rbacRule{"admissionregistration.k8s.io", "mutatingwebhookconfigurations,validatingwebhookconfigurations", "", "list,watch"},
					rbacRule{"admissionregistration.k8s.io", "mutatingwebhookconfigurations,validatingwebhookconfigurations", m.fullname, "update"})
				wantNS = append(wantNS,
					rbacRule{"", "secrets", "", "list,watch"},
					rbacRule{"", "secrets", m.fullname + "-webhook-tls", "update"})
			}
			if !m.plainMetrics {
				wantCluster = append(wantCluster,
					rbacRule{"authentication.k8s.io", "tokenreviews", "", "create"},
					rbacRule{"authorization.k8s.io", "subjectaccessreviews", "", "create"})
			}
			var cr rbacv1.ClusterRole
			var role rbacv1.Role
			objs.must(t, "ClusterRole", m.fullname, &cr)
			objs.must(t, "Role", m.fullname, &role)
			if got := rulesOf(cr.Rules); !reflect.DeepEqual(got, wantCluster) {
				t.Errorf("ClusterRole rules\n%+v\nwant\n%+v", got, wantCluster)
			}
			if got := rulesOf(role.Rules); !reflect.DeepEqual(got, wantNS) || role.Namespace != m.namespace {
				t.Errorf("Role in %s, rules\n%+v\nwant\n%+v", role.Namespace, got, wantNS)
			}
			for _, r := range append(cr.Rules, role.Rules...) {
				for _, s := range slices.Concat(r.APIGroups, r.Resources, r.Verbs, r.ResourceNames, r.NonResourceURLs) {
					if strings.Contains(s, "*") {
						t.Errorf("wildcard in %+v", r)
					}
				}
			}
			sa := rbacv1.Subject{Kind: "ServiceAccount", Name: m.fullname, Namespace: m.namespace}
			var crb rbacv1.ClusterRoleBinding
			var rb rbacv1.RoleBinding
			objs.must(t, "ClusterRoleBinding", m.fullname, &crb)
			objs.must(t, "RoleBinding", m.fullname, &rb)
			if crb.RoleRef != (rbacv1.RoleRef{APIGroup: "rbac.authorization.k8s.io", Kind: "ClusterRole", Name: m.fullname}) || !slices.Equal(crb.Subjects, []rbacv1.Subject{sa}) {
				t.Errorf("ClusterRoleBinding %s", asJSON(crb))
			}
			if rb.RoleRef != (rbacv1.RoleRef{APIGroup: "rbac.authorization.k8s.io", Kind: "Role", Name: m.fullname}) || !slices.Equal(rb.Subjects, []rbacv1.Subject{sa}) || rb.Namespace != m.namespace {
				t.Errorf("RoleBinding %s", asJSON(rb))
			}
			var acct corev1.ServiceAccount
			objs.must(t, "ServiceAccount", m.fullname, &acct)
			// With secure metrics, a ClusterRole for scrapers to be bound
			// to: get on /metrics, nothing else, bound to nobody.
			reader := m.fullname + "-metrics-reader"
			if !m.plainMetrics {
				var mr rbacv1.ClusterRole
				objs.must(t, "ClusterRole", reader, &mr)
				if len(mr.Rules) != 1 || !slices.Equal(mr.Rules[0].NonResourceURLs, []string{"/metrics"}) || !slices.Equal(mr.Rules[0].Verbs, []string{"get"}) ||
					len(mr.Rules[0].Resources) > 0 {
					t.Errorf("ClusterRole %s: %s", reader, asJSON(mr.Rules))
				}
			}
			// No other RBAC object, and no leases.
			for _, k := range objs.keys() {
				if strings.Contains(k, "Role") && !strings.HasSuffix(k, "/"+m.fullname) && (m.plainMetrics || k != "ClusterRole /"+reader) {
					t.Errorf("unexpected %s", k)
				}
			}
		})
	}
}

// TestChartAudit: rollguard's own manifests pass its audit with no
// finding at all, info included (its Deployment, Service and PDB are
// read): the chart folder as audit renders it,
// and every mode's render on standard input.
func TestChartAudit(t *testing.T) {
	t.Parallel()
	helm := toolPath(t, render.Helm)
	out, stderr, code := rollguard(t, "", "audit", "-o", "json", "--fail-on", "info", "-n", baseNS, webhookChart)
	r := parseReport(t, out)
	if code != cli.ExitOK || stderr != "" || len(r.Findings) != 0 || r.Summary.InputErrors != 0 || r.Summary.Objects != 3 {
		t.Errorf("audit %s: exit %d, stderr %q, findings %v, summary %+v", webhookChart, code, stderr, r.found(), r.Summary)
	}
	for _, m := range chartModes {
		args := []string{"template", m.release, webhookChart, "--namespace", m.namespace}
		for _, s := range m.set {
			args = append(args, "--set", s)
		}
		out, stderr, code := rollguard(t, string(runTool(t, helm, args...)), "audit", "-o", "json", "--fail-on", "info", "-")
		if r := parseReport(t, out); code != cli.ExitOK || stderr != "" || len(r.Findings) != 0 || r.Summary.InputErrors != 0 {
			t.Errorf("%s: exit %d, stderr %q, findings %v", m.name, code, stderr, r.found())
		}
	}
}

// TestChartBaseUpToDate: deploy/webhook/rollguard.yaml is what
// hack/gen-webhook-base renders from the chart now.
func TestChartBaseUpToDate(t *testing.T) {
	t.Parallel()
	helm := toolPath(t, render.Helm)
	if len(helm) != 1 {
		t.Fatalf("helm %v", helm)
	}
	if _, err := exec.LookPath("bash"); err != nil {
		t.Skip("bash is not installed: hack/gen-webhook-base is a bash script")
	}
	c := exec.Command("bash", filepath.Join("..", "..", "hack", "gen-webhook-base"), "-")
	c.Env = append(os.Environ(), "HELM="+helm[0])
	var stderr bytes.Buffer
	c.Stderr = &stderr
	fresh, err := c.Output()
	if err != nil {
		t.Fatalf("hack/gen-webhook-base: %v\n%s", err, stderr.String())
	}
	have, err := os.ReadFile(baseFile)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(have, fresh) {
		t.Errorf("%s is out of date with charts/rollguard: run hack/gen-webhook-base (make webhook-base)", baseFile)
	}
}

// TestChartKustomizeBase: kustomize build deploy/webhook gives the
// checked-in base's objects, plus its Namespace, unchanged.
func TestChartKustomizeBase(t *testing.T) {
	t.Parallel()
	built := parseObjects(t, runTool(t, toolPath(t, render.Kustomize), webhookBase))
	base, err := os.ReadFile(baseFile)
	if err != nil {
		t.Fatal(err)
	}
	ns, err := os.ReadFile(webhookBase + "/namespace.yaml")
	if err != nil {
		t.Fatal(err)
	}
	want := append(parseObjects(t, ns), parseObjects(t, base)...)
	canon := func(objs chartObjects) []string {
		var s []string
		for _, o := range objs {
			b, _ := json.Marshal(o)
			s = append(s, string(b))
		}
		sort.Strings(s)
		return s
	}
	if got, w := canon(built), canon(want); !slices.Equal(got, w) {
		t.Errorf("kustomize build %s: %v\nwant the chartObjects of rollguard.yaml and namespace.yaml: %v", webhookBase, built.keys(), want.keys())
		for i := range min(len(got), len(w)) {
			if got[i] != w[i] {
				t.Errorf("first difference:\n%s\n%s", got[i], w[i])
				break
			}
		}
	}
	var d appsv1.Deployment
	built.must(t, "Deployment", "rollguard", &d)
	var nsObj corev1.Namespace
	built.must(t, "Namespace", baseNS, &nsObj)
	if d.Namespace != baseNS || nsObj.Labels["pod-security.kubernetes.io/enforce"] != "restricted" {
		t.Errorf("Deployment in %q, namespace labels %v", d.Namespace, nsObj.Labels)
	}
	// The base passes the audit too (audit builds the kustomization).
	out, stderr, code := rollguard(t, "", "audit", "-o", "json", "--fail-on", "info", webhookBase)
	if r := parseReport(t, out); code != cli.ExitOK || stderr != "" || len(r.Findings) != 0 || r.Summary.InputErrors != 0 {
		t.Errorf("audit %s: exit %d, stderr %q, findings %v", webhookBase, code, stderr, r.found())
	}
}

// TestChartSingleReplicaHasNoPDB: with one replica a PodDisruptionBudget
// of minAvailable 1 would block every drain of its node: none is rendered.
func TestChartSingleReplicaHasNoPDB(t *testing.T) {
	t.Parallel()
	objs := helmTemplate(t, "rollguard", "rollguard-system", "replicas=1")
	var pdb policyv1.PodDisruptionBudget
	if objs.get(t, "PodDisruptionBudget", "rollguard", &pdb) {
		t.Errorf("a PodDisruptionBudget with one replica: %s", asJSON(pdb.Spec))
	}
}
