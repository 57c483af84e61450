//go:build integration

package integration

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-logr/logr"
	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/log"

	"github.com/rollguard/rollguard/pkg/manifest"
	"github.com/rollguard/rollguard/pkg/model"
	"github.com/rollguard/rollguard/pkg/rules"
	"github.com/rollguard/rollguard/pkg/webhook"
)

// The webhook under test runs in this process, serving the API server of
// the integration tier over TLS on loopback, registered with real webhook
// configurations: one per test binary, started by startWebhook.
const whNamespace = "rollguard-system"

var (
	whOnce sync.Once
	whErr  error
	whCA   []byte
	whPort int
)

// selfSigned writes a serving certificate for 127.0.0.1 into dir and
// returns its PEM, which is its own CA.
func selfSigned(dir string) ([]byte, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "rollguard-webhook"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		IPAddresses: []net.IP{net.ParseIP("127.0.0.1")}, KeyUsage: x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}, BasicConstraintsValid: true, IsCA: true}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return nil, err
	}
	kder, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		return nil, err
	}
	crt := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
	if err := os.WriteFile(filepath.Join(dir, "tls.crt"), crt, 0o600); err != nil {
		return nil, err
	}
	return crt, os.WriteFile(filepath.Join(dir, "tls.key"), pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kder}), 0o600)
}

// startWebhook starts the webhook once, registers it, and waits until the
// API server calls it.
func startWebhook(t *testing.T) {
	t.Helper()
	whOnce.Do(func() { whErr = runWebhook() })
	if whErr != nil {
		t.Fatalf("starting the webhook: %v", whErr)
	}
}

func runWebhook() error {
	cs, err := kubernetes.NewForConfig(restConfig(adminToken))
	if err != nil {
		return err
	}
	ctx := context.Background()
	for _, ns := range []string{whNamespace} {
		if _, err := cs.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
			return err
		}
	}
	dir, err := os.MkdirTemp("", "rollguard-webhook-")
	if err != nil {
		return err
	}
	if whCA, err = selfSigned(dir); err != nil {
		return err
	}
	ports, err := freePorts(1)
	if err != nil {
		return err
	}
	whPort = ports[0]
	ready := make(chan struct{})
	errc := make(chan error, 1)
	log.SetLogger(logr.Discard())
	go func() {
		errc <- webhook.Serve(context.Background(), webhook.ServerOptions{Config: restConfig(adminToken), Namespace: whNamespace,
			ConfigMap: "rollguard", Host: "127.0.0.1", Port: whPort, CertDir: dir, Registry: rules.Default(),
			Log: logr.Discard(), Ready: ready})
	}()
	select {
	case <-ready:
	case err := <-errc:
		return fmt.Errorf("the webhook stopped: %v", err)
	case <-time.After(60 * time.Second):
		return fmt.Errorf("the webhook did not start in 60s")
	}
	return register(ctx, cs)
}

// register installs the two webhook configurations as the chart does:
// labelled namespaces only, never the system ones or the webhook's own;
// failurePolicy Fail here, so that a webhook error fails the test.
func register(ctx context.Context, cs kubernetes.Interface) error {
	fail := admissionregistrationv1.Fail
	none := admissionregistrationv1.SideEffectClassNone
	ifNeeded := admissionregistrationv1.IfNeededReinvocationPolicy
	timeout := int32(10)
	url := func(path string) *string { u := fmt.Sprintf("https://127.0.0.1:%d%s", whPort, path); return &u }
	sel := &metav1.LabelSelector{MatchLabels: map[string]string{webhook.InjectLabel: "enabled"},
		MatchExpressions: []metav1.LabelSelectorRequirement{{Key: "kubernetes.io/metadata.name", Operator: metav1.LabelSelectorOpNotIn,
			Values: []string{"kube-system", "kube-public", "kube-node-lease", whNamespace}}}}
	m := &admissionregistrationv1.MutatingWebhookConfiguration{ObjectMeta: metav1.ObjectMeta{Name: "rollguard"},
		Webhooks: []admissionregistrationv1.MutatingWebhook{{Name: "pods.rollguard.io", AdmissionReviewVersions: []string{"v1"},
			ClientConfig: admissionregistrationv1.WebhookClientConfig{URL: url(webhook.MutatePath), CABundle: whCA},
			Rules: []admissionregistrationv1.RuleWithOperations{{Operations: []admissionregistrationv1.OperationType{admissionregistrationv1.Create},
				Rule: admissionregistrationv1.Rule{APIGroups: []string{""}, APIVersions: []string{"v1"}, Resources: []string{"pods"}}}},
			FailurePolicy: &fail, SideEffects: &none, TimeoutSeconds: &timeout, NamespaceSelector: sel, ReinvocationPolicy: &ifNeeded}}}
	v := &admissionregistrationv1.ValidatingWebhookConfiguration{ObjectMeta: metav1.ObjectMeta{Name: "rollguard"},
		Webhooks: []admissionregistrationv1.ValidatingWebhook{{Name: "workloads.rollguard.io", AdmissionReviewVersions: []string{"v1"},
			ClientConfig: admissionregistrationv1.WebhookClientConfig{URL: url(webhook.ValidatePath), CABundle: whCA},
			Rules: []admissionregistrationv1.RuleWithOperations{{Operations: []admissionregistrationv1.OperationType{admissionregistrationv1.Create, admissionregistrationv1.Update},
				Rule: admissionregistrationv1.Rule{APIGroups: []string{"apps"}, APIVersions: []string{"v1"}, Resources: []string{"deployments", "statefulsets", "daemonsets"}}},
				{Operations: []admissionregistrationv1.OperationType{admissionregistrationv1.Create, admissionregistrationv1.Update},
					Rule: admissionregistrationv1.Rule{APIGroups: []string{"argoproj.io"}, APIVersions: []string{"v1alpha1"}, Resources: []string{"rollouts"}}}},
			FailurePolicy: &fail, SideEffects: &none, TimeoutSeconds: &timeout, NamespaceSelector: sel}}}
	if _, err := cs.AdmissionregistrationV1().MutatingWebhookConfigurations().Create(ctx, m, metav1.CreateOptions{}); err != nil {
		return err
	}
	_, err := cs.AdmissionregistrationV1().ValidatingWebhookConfigurations().Create(ctx, v, metav1.CreateOptions{})
	return err
}

// labelled creates a namespace opted in (or not).
func labelled(t *testing.T, cs kubernetes.Interface, name string, inject bool) {
	t.Helper()
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name}}
	if inject {
		ns.Labels = map[string]string{webhook.InjectLabel: "enabled"}
	}
	if _, err := cs.CoreV1().Namespaces().Create(context.Background(), ns, metav1.CreateOptions{}); err != nil {
		if !apierrors.IsAlreadyExists(err) {
			t.Fatal(err)
		}
		cur, err := cs.CoreV1().Namespaces().Get(context.Background(), name, metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		cur.Labels = ns.Labels
		if _, err := cs.CoreV1().Namespaces().Update(context.Background(), cur, metav1.UpdateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
}

// staticLister is the Services of one file, for the in-process Mutate
// that says what the webhook should do.
type staticLister []*corev1.Service

func (s staticLister) Services(string) ([]*corev1.Service, error) { return s, nil }
func (s staticLister) Others(string) ([]*manifest.Object, error)  { return nil, nil }

// podOf is a workload's pod as its controller would create it.
func podOf(w *model.Workload, ns string) *corev1.Pod {
	return &corev1.Pod{ObjectMeta: metav1.ObjectMeta{GenerateName: w.Name + "-", Namespace: ns,
		Labels: w.Template.Labels, Annotations: w.Template.Annotations}, Spec: *w.Template.Spec.DeepCopy()}
}

// TestWebhookRemediationsAccepted: over every rule fixture and the golden
// corpus, each served workload's pod is created (server-side dry run) in
// an opted-in namespace holding the file's Services. The API server must
// accept every pod the webhook mutated, the webhook must mutate exactly
// the pods the handler mutates in-process, and a mutated pod mutated again
// must be left as it is (reinvocation gives an empty patch).
func TestWebhookRemediationsAccepted(t *testing.T) {
	startWebhook(t)
	cs := kubernetes.NewForConfigOrDie(fastConfig(restConfig(adminToken)))
	ctx := context.Background()
	files, _ := filepath.Glob("../../pkg/rules/testdata/RG*/*.yaml")
	corpus, _ := filepath.Glob("../../testdata/corpus/*.yaml")
	files = append(files, corpus...)
	sort.Strings(files)
	local := &webhook.Mutator{Registry: rules.Default(), Settings: &webhook.Current{}, Namespace: whNamespace}
	var mutated, unchanged, invalid, pods int
	for i, path := range files {
		res := manifest.Load([]string{path}, manifest.Options{})
		if len(res.Errors) > 0 {
			continue // an input-error fixture
		}
		m := model.Build(res.Objects, model.Options{Namespace: "default"})
		var svcs staticLister
		for _, o := range res.Objects {
			if s, ok := o.Value.(*corev1.Service); ok {
				svcs = append(svcs, s)
			}
		}
		ns, plain := fmt.Sprintf("wh-%d", i), fmt.Sprintf("wh-%d-plain", i)
		labelled(t, cs, ns, true)
		labelled(t, cs, plain, false)
		var created staticLister
		for _, s := range svcs {
			c := s.DeepCopy()
			c.Namespace, c.ResourceVersion, c.Spec.ClusterIP, c.Spec.ClusterIPs = ns, "", "", nil
			if _, err := cs.CoreV1().Services(ns).Create(ctx, c, metav1.CreateOptions{}); err != nil {
				t.Logf("%s: Service %s not created (%v): left out", path, s.Name, err)
				continue
			}
			created = append(created, c)
		}
		local.Lister = created

		for _, w := range m.Workloads {
			if w.Template == nil || w.Batch {
				continue
			}
			pods++
			pod := podOf(w, ns)
			// A fixture the API server itself refuses says nothing of the
			// webhook: try it where no webhook acts first.
			bare := podOf(w, plain)
			if _, err := cs.CoreV1().Pods(plain).Create(ctx, bare, metav1.CreateOptions{DryRun: []string{metav1.DryRunAll}}); err != nil {
				invalid++
				continue
			}
			want, _, err := local.Mutate(pod.DeepCopy(), ns)
			if err != nil {
				t.Errorf("%s %s: in-process Mutate: %v", path, w.Name, err)
				continue
			}
			var got *corev1.Pod
			deadline := time.Now().Add(10 * time.Second)
			for {
				got, err = cs.CoreV1().Pods(ns).Create(ctx, pod.DeepCopy(), metav1.CreateOptions{DryRun: []string{metav1.DryRunAll}})
				if err != nil || want == nil || got.Annotations[webhook.MutatedAnnotation] != "" || time.Now().After(deadline) {
					break // a mutation is awaited until the webhook's cache holds the new Services
				}
				time.Sleep(100 * time.Millisecond)
			}
			if err != nil {
				t.Errorf("%s %s: the API server refused the mutated pod: %v", path, w.Name, err)
				continue
			}
			ann := got.Annotations[webhook.MutatedAnnotation]
			if (want != nil) != (ann != "") {
				t.Errorf("%s %s: webhook annotation %q, in-process mutation %v", path, w.Name, ann, want != nil)
			}
			if ann == "" {
				unchanged++
				continue
			}
			mutated++
			if again, _, err := local.Mutate(got, ns); err != nil || again != nil {
				t.Errorf("%s %s: reinvocation on the admitted pod changes it again (%v): %s", path, w.Name, err, again.Annotations[webhook.MutatedAnnotation])
			}
		}
	}
	t.Logf("%d files, %d pods: %d mutated and accepted, %d left unchanged, %d refused by the API server without the webhook", len(files), pods, mutated, unchanged, invalid)
	if mutated < 20 {
		t.Errorf("only %d pods mutated: the fixtures should give many", mutated)
	}
}

// warnings collects the API server's warnings.
type warnings struct {
	mu   sync.Mutex
	msgs []string
}

func (w *warnings) HandleWarningHeader(_ int, _ string, msg string) {
	w.mu.Lock()
	w.msgs = append(w.msgs, msg)
	w.mu.Unlock()
}

func (w *warnings) all() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return strings.Join(w.msgs, "\n")
}

func lossyDeployment(name string) *appsv1.Deployment {
	l := map[string]string{"app": name}
	return &appsv1.Deployment{ObjectMeta: metav1.ObjectMeta{Name: name}, Spec: appsv1.DeploymentSpec{
		Selector: &metav1.LabelSelector{MatchLabels: l},
		Template: corev1.PodTemplateSpec{ObjectMeta: metav1.ObjectMeta{Labels: l}, Spec: corev1.PodSpec{Containers: []corev1.Container{{
			Name: "app", Image: "example.com/app:1", Ports: []corev1.ContainerPort{{Name: "http", ContainerPort: 8080}}}}}}}}
}

func serviceFor(name string) *corev1.Service {
	return &corev1.Service{ObjectMeta: metav1.ObjectMeta{Name: name}, Spec: corev1.ServiceSpec{Selector: map[string]string{"app": name},
		Ports: []corev1.ServicePort{{Port: 80, TargetPort: intstr.FromString("http")}}}}
}

// TestWebhookWarnAndDeny: findings are warnings by default, saying which
// the pods get fixed; a rule listed under deny: in the ConfigMap refuses
// the workload with the rule's fix, once the ConfigMap changes, without
// a restart.
func TestWebhookWarnAndDeny(t *testing.T) {
	startWebhook(t)
	cs, _ := clients(t)
	ctx := context.Background()
	labelled(t, cs, "wh-deny", true)
	if _, err := cs.CoreV1().Services("wh-deny").Create(ctx, serviceFor("orders"), metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	w := &warnings{}
	cfg := restConfig(adminToken)
	cfg.WarningHandler = w
	wcs := kubernetes.NewForConfigOrDie(cfg)
	// The Service must be in the webhook's cache: wait for the warning
	// that needs it.
	deadline := time.Now().Add(10 * time.Second)
	for !strings.Contains(w.all(), "RG201") && time.Now().Before(deadline) {
		_, err := wcs.AppsV1().Deployments("wh-deny").Create(ctx, lossyDeployment("orders"), metav1.CreateOptions{DryRun: []string{metav1.DryRunAll}})
		if err != nil {
			t.Fatalf("warn mode refused the Deployment: %v", err)
		}
		time.Sleep(100 * time.Millisecond)
	}
	got := w.all()
	for _, want := range []string{"Deployment wh-deny/orders: RG201 readiness-missing (case2)", "RG101", "(fixed on its pods at admission)"} {
		if !strings.Contains(got, want) {
			t.Errorf("warnings lack %q:\n%s", want, got)
		}
	}
	setConfig(t, cs, "deny: [RG201]\n")
	t.Cleanup(func() { setConfig(t, cs, "") })
	deadline = time.Now().Add(10 * time.Second)
	var err error
	for time.Now().Before(deadline) {
		_, err = cs.AppsV1().Deployments("wh-deny").Create(ctx, lossyDeployment("orders"), metav1.CreateOptions{DryRun: []string{metav1.DryRunAll}})
		if err != nil {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	if err == nil || !apierrors.IsForbidden(err) && !apierrors.IsInvalid(err) || !strings.Contains(err.Error(), "RG201") || !strings.Contains(err.Error(), "fix:") {
		t.Errorf("deny mode: %v; want a denial naming RG201 and its fix", err)
	}
	fixed := lossyDeployment("fixed")
	fixed.Spec.Template.Spec.Containers[0].ReadinessProbe = &corev1.Probe{ProbeHandler: corev1.ProbeHandler{TCPSocket: &corev1.TCPSocketAction{Port: intstr.FromString("http")}}}
	fixed.Spec.Template.Labels, fixed.Spec.Selector.MatchLabels = map[string]string{"app": "orders"}, map[string]string{"app": "orders"}
	if _, err := cs.AppsV1().Deployments("wh-deny").Create(ctx, fixed, metav1.CreateOptions{DryRun: []string{metav1.DryRunAll}}); err != nil {
		t.Errorf("deny mode refused a Deployment with a readinessProbe: %v", err)
	}
}

// setConfig writes the webhook's ConfigMap ("" deletes it).
func setConfig(t *testing.T, cs kubernetes.Interface, text string) {
	t.Helper()
	ctx := context.Background()
	cms := cs.CoreV1().ConfigMaps(whNamespace)
	if text == "" {
		if err := cms.Delete(ctx, "rollguard", metav1.DeleteOptions{}); err != nil && !apierrors.IsNotFound(err) {
			t.Fatal(err)
		}
		return
	}
	cm := &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "rollguard"}, Data: map[string]string{webhook.ConfigKey: text}}
	if _, err := cms.Create(ctx, cm, metav1.CreateOptions{}); apierrors.IsAlreadyExists(err) {
		_, err = cms.Update(ctx, cm, metav1.UpdateOptions{})
		if err != nil {
			t.Fatal(err)
		}
	} else if err != nil {
		t.Fatal(err)
	}
}

// TestWebhookScope: an unlabelled namespace, the system namespaces and the
// webhook's own, even labelled, are never touched; an opted-out pod
// neither.
func TestWebhookScope(t *testing.T) {
	startWebhook(t)
	cs := kubernetes.NewForConfigOrDie(fastConfig(restConfig(adminToken)))
	ctx := context.Background()
	labelled(t, cs, "wh-scope", true)
	labelled(t, cs, "wh-unlabelled", false)
	for _, ns := range []string{"kube-system", "kube-public", "kube-node-lease", whNamespace} {
		labelled(t, cs, ns, true)
		t.Cleanup(func() { labelled(t, cs, ns, false) })
	}
	pod := func(ns string) *corev1.Pod {
		return &corev1.Pod{ObjectMeta: metav1.ObjectMeta{GenerateName: "web-", Labels: map[string]string{"app": "web"}},
			Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "app", Image: "example.com/web:1", Ports: []corev1.ContainerPort{{Name: "http", ContainerPort: 8080}}}}}}
	}
	for _, ns := range []string{"wh-scope", "wh-unlabelled", "kube-system", "kube-public", "kube-node-lease", whNamespace} {
		svc := serviceFor("web")
		if _, err := cs.CoreV1().Services(ns).Create(ctx, svc, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
			t.Fatal(err)
		}
	}
	// The labelled namespace: mutated (once the cache has its Service).
	deadline := time.Now().Add(10 * time.Second)
	var got *corev1.Pod
	var err error
	for time.Now().Before(deadline) {
		if got, err = cs.CoreV1().Pods("wh-scope").Create(ctx, pod("wh-scope"), metav1.CreateOptions{DryRun: []string{metav1.DryRunAll}}); err != nil {
			t.Fatal(err)
		}
		if got.Annotations[webhook.MutatedAnnotation] != "" {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	if got.Annotations[webhook.MutatedAnnotation] == "" {
		t.Fatalf("the pod in an opted-in namespace was not mutated")
	}
	optOut := pod("wh-scope")
	optOut.Annotations = map[string]string{webhook.InjectAnnotation: "disabled"}
	if got, err := cs.CoreV1().Pods("wh-scope").Create(ctx, optOut, metav1.CreateOptions{DryRun: []string{metav1.DryRunAll}}); err != nil || got.Annotations[webhook.MutatedAnnotation] != "" {
		t.Errorf("opted-out pod: %v, annotations %v", err, got.Annotations)
	}
	for _, ns := range []string{"wh-unlabelled", "kube-system", "kube-public", "kube-node-lease", whNamespace} {
		got, err := cs.CoreV1().Pods(ns).Create(ctx, pod(ns), metav1.CreateOptions{DryRun: []string{metav1.DryRunAll}})
		if err != nil {
			t.Errorf("%s: %v", ns, err)
			continue
		}
		if got.Annotations[webhook.MutatedAnnotation] != "" || got.Spec.Containers[0].ReadinessProbe != nil {
			t.Errorf("namespace %s: the pod was mutated", ns)
		}
	}
}

var _ rest.WarningHandler = &warnings{}

// rolloutCRD is enough of Argo Rollouts' CustomResourceDefinition for the
// API server to serve Rollouts: the group, version and names the chart's
// validating rule lists, and a schema that keeps every field.
var rolloutCRD = &unstructured.Unstructured{Object: map[string]any{
	"apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
	"metadata": map[string]any{"name": "rollouts.argoproj.io"},
	"spec": map[string]any{
		"group": "argoproj.io", "scope": "Namespaced",
		"names": map[string]any{"kind": "Rollout", "listKind": "RolloutList", "plural": "rollouts", "singular": "rollout"},
		"versions": []any{map[string]any{"name": "v1alpha1", "served": true, "storage": true,
			"schema": map[string]any{"openAPIV3Schema": map[string]any{"type": "object", "x-kubernetes-preserve-unknown-fields": true}}}},
	},
}}

// TestWebhookArgoRollout: where the Rollout CRD is installed, a Rollout
// is judged like a Deployment: its findings are admission warnings, and a
// rule configured to deny refuses it.
func TestWebhookArgoRollout(t *testing.T) {
	startWebhook(t)
	cs, _ := clients(t)
	ctx := context.Background()
	cfg := restConfig(adminToken)
	dyn := dynamic.NewForConfigOrDie(cfg)
	crds := dyn.Resource(schema.GroupVersionResource{Group: "apiextensions.k8s.io", Version: "v1", Resource: "customresourcedefinitions"})
	if _, err := crds.Create(ctx, rolloutCRD, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
		t.Fatal(err)
	}
	labelled(t, cs, "wh-argo", true)
	if _, err := cs.CoreV1().Services("wh-argo").Create(ctx, serviceFor("orders"), metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
		t.Fatal(err)
	}
	d := lossyDeployment("orders")
	rollout := &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": "argoproj.io/v1alpha1", "kind": "Rollout", "metadata": map[string]any{"name": "orders"},
		"spec": map[string]any{"replicas": int64(2), "selector": map[string]any{"matchLabels": map[string]any{"app": "orders"}},
			"strategy": map[string]any{"canary": map[string]any{"steps": []any{map[string]any{"setWeight": int64(50)}}}}},
	}}
	tmpl, err := runtime.DefaultUnstructuredConverter.ToUnstructured(&d.Spec.Template)
	if err != nil {
		t.Fatal(err)
	}
	if err := unstructured.SetNestedMap(rollout.Object, tmpl, "spec", "template"); err != nil {
		t.Fatal(err)
	}
	w := &warnings{}
	wcfg := restConfig(adminToken)
	wcfg.WarningHandler = w
	rollouts := dynamic.NewForConfigOrDie(wcfg).Resource(schema.GroupVersionResource{Group: "argoproj.io", Version: "v1alpha1", Resource: "rollouts"}).Namespace("wh-argo")
	// Until the CRD is served and the Service is in the webhook's cache.
	deadline := time.Now().Add(20 * time.Second)
	for !strings.Contains(w.all(), "RG201") && time.Now().Before(deadline) {
		if _, err = rollouts.Create(ctx, rollout, metav1.CreateOptions{DryRun: []string{metav1.DryRunAll}}); err != nil && !apierrors.IsNotFound(err) {
			t.Fatalf("warn mode refused the Rollout: %v", err)
		}
		time.Sleep(100 * time.Millisecond)
	}
	if got := w.all(); !strings.Contains(got, "Rollout wh-argo/orders: RG201 readiness-missing") {
		t.Fatalf("no RG201 warning for the Rollout (last error %v):\n%s", err, got)
	}
	setConfig(t, cs, "deny: [RG201]\n")
	t.Cleanup(func() { setConfig(t, cs, "") })
	deadline = time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		if _, err = rollouts.Create(ctx, rollout, metav1.CreateOptions{DryRun: []string{metav1.DryRunAll}}); err != nil {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	if err == nil || !apierrors.IsForbidden(err) || !strings.Contains(err.Error(), "RG201") {
		t.Errorf("deny mode: %v; want a denial naming RG201", err)
	}
}
