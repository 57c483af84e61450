//go:build integration

package integration

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/go-logr/logr/funcr"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"k8s.io/client-go/rest"
	"k8s.io/klog/v2"
	"sigs.k8s.io/controller-runtime/pkg/log"

	"github.com/rollguard/rollguard/pkg/rules"
	"github.com/rollguard/rollguard/pkg/webhook"
)

// TestChartRBAC applies everything the chart renders (in both TLS modes,
// strictly validated by the API server; cert-manager's Issuer and
// Certificate against cert-manager's own CRDs) and runs the webhook as the chart's
// ServiceAccount: with exactly the chart's RBAC it must sync its caches,
// (self-signed) fill its Secret and inject its CA into both webhook
// configurations, become ready, and follow a ConfigMap change. The
// configurations are removed at the end: no pod of the other tests must
// wait on a webhook nobody serves.
func TestChartRBAC(t *testing.T) {
	if _, err := exec.LookPath("helm"); err != nil {
		t.Skip("helm is not installed (hack/tools.sh installs it; hack/test.sh puts it on PATH)")
	}
	for _, mode := range []string{"self", "cm"} {
		t.Run(mode, func(t *testing.T) { chartRBAC(t, mode) })
	}
}

func chartRBAC(t *testing.T, mode string) {
	release, ns := "rollguard-"+mode, "rgchart-"+mode+"-system"
	args := []string{"template", release, "../../charts/rollguard", "-n", ns}
	if mode == "cm" {
		args = append(args, "--set", "certManager.enabled=true")
	}
	out, err := exec.Command("helm", args...).Output()
	if err != nil {
		t.Fatal(err)
	}
	cs, dyn := clients(t)
	ctx := context.Background()
	if _, err := cs.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
		t.Fatal(err)
	}
	gvr := map[string]schema.GroupVersionResource{}
	for k, r := range map[string]string{"PodDisruptionBudget": "policy/v1/poddisruptionbudgets", "ServiceAccount": "/v1/serviceaccounts", "Secret": "/v1/secrets",
		"ConfigMap": "/v1/configmaps", "ClusterRole": "rbac.authorization.k8s.io/v1/clusterroles", "ClusterRoleBinding": "rbac.authorization.k8s.io/v1/clusterrolebindings",
		"Role": "rbac.authorization.k8s.io/v1/roles", "RoleBinding": "rbac.authorization.k8s.io/v1/rolebindings", "Service": "/v1/services", "Deployment": "apps/v1/deployments",
		"MutatingWebhookConfiguration": "admissionregistration.k8s.io/v1/mutatingwebhookconfigurations", "ValidatingWebhookConfiguration": "admissionregistration.k8s.io/v1/validatingwebhookconfigurations"} {
		p := strings.Split(r, "/")
		gvr[k] = schema.GroupVersionResource{Group: p[0], Version: p[1], Resource: p[2]}
	}
	var certManagerObjects []*unstructured.Unstructured
	dec := utilyaml.NewYAMLOrJSONDecoder(bytes.NewReader(out), 4096)
	for {
		var o map[string]any
		if err := dec.Decode(&o); errors.Is(err, io.EOF) {
			break
		} else if err != nil {
			t.Fatal(err)
		}
		if o == nil {
			continue
		}
		u := &unstructured.Unstructured{Object: o}
		if u.GetKind() == "Issuer" || u.GetKind() == "Certificate" {
			certManagerObjects = append(certManagerObjects, u)
			continue
		}
		r := gvr[u.GetKind()]
		var ri interface {
			Create(context.Context, *unstructured.Unstructured, metav1.CreateOptions, ...string) (*unstructured.Unstructured, error)
		} = dyn.Resource(r)
		if u.GetNamespace() != "" {
			ri = dyn.Resource(r).Namespace(u.GetNamespace())
		}
		if _, err := ri.Create(ctx, u, metav1.CreateOptions{FieldValidation: "Strict"}); err != nil {
			t.Fatalf("%s %s: %v", u.GetKind(), u.GetName(), err)
		}
		if u.GetNamespace() == "" {
			t.Cleanup(func() { _ = dyn.Resource(r).Delete(context.Background(), u.GetName(), metav1.DeleteOptions{}) })
		}
	}
	if mode == "cm" {
		applyCertManagerObjects(t, certManagerObjects, ns)
	}
	cfg := restConfig(adminToken)
	// The chart's ServiceAccount, by impersonation: its rights are the
	// chart's RBAC and nothing else.
	cfg.Impersonate = rest.ImpersonationConfig{UserName: "system:serviceaccount:" + ns + ":" + release}
	dir := t.TempDir()
	var logs bytes.Buffer
	lg := funcr.New(func(p, a string) { logs.WriteString(p + " " + a + "\n") }, funcr.Options{})
	log.SetLogger(lg)
	// client-go's reflectors log a forbidden list or watch through klog:
	// into the same buffer, so that a watch the chart does not grant
	// shows (its list alone would let the caches sync).
	klog.SetLogger(lg)
	t.Cleanup(klog.ClearLogger)
	ports, err := freePorts(2)
	if err != nil {
		t.Fatal(err)
	}
	o := webhook.ServerOptions{Config: cfg, Namespace: ns, ConfigMap: release, Host: "127.0.0.1", Port: ports[0], CertDir: dir,
		MetricsAddr: fmt.Sprintf("127.0.0.1:%d", ports[1]), MetricsSecure: true, ProbeAddr: "", Registry: rules.Default(), Log: lg}
	ready := make(chan struct{})
	o.Ready = ready
	// The CA a scraper verifies the metrics server with, and the name it
	// asks for: the webhook serves /metrics with its own certificate.
	var servingCA []byte
	serverName := "127.0.0.1"
	if mode == "self" {
		serverName = release + "-webhook." + ns + ".svc"
		o.Rotate = &webhook.Rotation{Secret: release + "-webhook-tls", DNSName: release + "-webhook." + ns + ".svc", Mutating: release, Validating: release, CheckEvery: time.Hour}
		// The kubelet's part: the Secret's keys into the mounted folder.
		go func() {
			for {
				s, err := cs.CoreV1().Secrets(ns).Get(ctx, release+"-webhook-tls", metav1.GetOptions{})
				if err == nil && len(s.Data["tls.crt"]) > 0 {
					for k, v := range s.Data {
						_ = os.WriteFile(filepath.Join(dir, k), v, 0o600)
					}
					return
				}
				time.Sleep(200 * time.Millisecond)
			}
		}()
	} else {
		if servingCA, err = selfSigned(dir); err != nil {
			t.Fatal(err)
		}
	}
	sctx, cancel := context.WithCancel(ctx)
	defer cancel()
	errc := make(chan error, 1)
	go func() { errc <- webhook.Serve(sctx, o) }()
	select {
	case <-ready:
	case err := <-errc:
		t.Fatalf("stopped: %v\n%s", err, logs.String())
	case <-time.After(60 * time.Second):
		t.Fatalf("not ready in 60s\n%s", logs.String())
	}
	if mode == "self" {
		deadline := time.Now().Add(30 * time.Second)
		for {
			m, _ := cs.AdmissionregistrationV1().MutatingWebhookConfigurations().Get(ctx, release, metav1.GetOptions{})
			v, _ := cs.AdmissionregistrationV1().ValidatingWebhookConfigurations().Get(ctx, release, metav1.GetOptions{})
			if len(m.Webhooks[0].ClientConfig.CABundle) > 0 && len(v.Webhooks[0].ClientConfig.CABundle) > 0 {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("CA not injected\n%s", logs.String())
			}
			time.Sleep(200 * time.Millisecond)
		}
	}
	// A configuration change is in force without a restart.
	cm, _ := cs.CoreV1().ConfigMaps(ns).Get(ctx, release, metav1.GetOptions{})
	cm.Data["rollguard.yaml"] = "propagationBudget: 9s\n"
	if _, err := cs.CoreV1().ConfigMaps(ns).Update(ctx, cm, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for !strings.Contains(logs.String(), `"propagationBudget"="9s"`) && time.Now().Before(deadline) {
		time.Sleep(100 * time.Millisecond)
	}
	if !strings.Contains(logs.String(), `"propagationBudget"="9s"`) {
		t.Errorf("the configuration change was not loaded:\n%s", logs.String())
	}
	// /metrics over HTTPS, reviewed by the API server with the chart's
	// RBAC: no token, a user with no rights, then the same kind of user
	// bound to the chart's metrics-reader ClusterRole.
	scrape := func(token string) (int, string) {
		t.Helper()
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(servingCA) {
			t.Fatalf("no CA to verify the metrics server with")
		}
		c := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool, ServerName: serverName}}}
		req, _ := http.NewRequest("GET", "https://"+o.MetricsAddr+"/metrics", nil)
		if token != "" {
			req.Header.Set("Authorization", "Bearer "+token)
		}
		deadline := time.Now().Add(10 * time.Second)
		for {
			resp, err := c.Do(req)
			if err == nil {
				body, _ := io.ReadAll(resp.Body)
				resp.Body.Close()
				return resp.StatusCode, string(body)
			}
			if time.Now().After(deadline) {
				t.Fatalf("scraping /metrics: %v", err)
			}
			time.Sleep(100 * time.Millisecond)
		}
	}
	if mode == "self" {
		// The rotator's CA, from the Secret a scraper would read it from.
		sec, err := cs.CoreV1().Secrets(ns).Get(ctx, release+"-webhook-tls", metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		servingCA = sec.Data["ca.crt"]
	}
	if code, _ := scrape(""); code != http.StatusUnauthorized {
		t.Errorf("/metrics without a token: %d, want 401", code)
	}
	if code, _ := scrape(nobodyToken); code != http.StatusForbidden {
		t.Errorf("/metrics for a user without the right: %d, want 403", code)
	}
	if code, _ := scrape(readerToken); code != http.StatusForbidden {
		t.Errorf("/metrics for reader before the binding: %d, want 403", code)
	}
	crb := &rbacv1.ClusterRoleBinding{ObjectMeta: metav1.ObjectMeta{Name: release + "-metrics-test"},
		RoleRef:  rbacv1.RoleRef{APIGroup: "rbac.authorization.k8s.io", Kind: "ClusterRole", Name: release + "-metrics-reader"},
		Subjects: []rbacv1.Subject{{APIGroup: "rbac.authorization.k8s.io", Kind: "User", Name: "reader"}}}
	if _, err := cs.RbacV1().ClusterRoleBindings().Create(ctx, crb, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	defer func() {
		_ = cs.RbacV1().ClusterRoleBindings().Delete(context.Background(), crb.Name, metav1.DeleteOptions{})
	}()
	// A refusal is cached for 10 s: the binding is in force after that.
	code, body := scrape(readerToken)
	for deadline := time.Now().Add(20 * time.Second); code == http.StatusForbidden && time.Now().Before(deadline); {
		time.Sleep(500 * time.Millisecond)
		code, body = scrape(readerToken)
	}
	if code != http.StatusOK || !strings.Contains(body, "rollguard_webhook_config_reloads_total") {
		t.Errorf("/metrics for a user bound to the metrics-reader ClusterRole: %d, want 200 with rollguard's metrics\n%.500s", code, body)
	}
	if strings.Contains(strings.ToLower(logs.String()), "forbidden") {
		t.Errorf("a request was forbidden:\n%s", logs.String())
	}
}

// applyCertManagerObjects creates the chart's Issuer and Certificate,
// strictly validated against cert-manager's own CRDs (from
// $CERT_MANAGER_CRDS, which hack/test.sh fills, or else from
// hack/cert-manager-crds.sh). No cert-manager runs here: what is checked
// is that cert-manager would accept the objects as written.
func applyCertManagerObjects(t *testing.T, objs []*unstructured.Unstructured, ns string) {
	t.Helper()
	dir := os.Getenv("CERT_MANAGER_CRDS")
	if dir == "" {
		out, err := exec.Command("../../hack/cert-manager-crds.sh").Output()
		if err != nil {
			t.Fatalf("CERT_MANAGER_CRDS is not set, and hack/cert-manager-crds.sh failed: %v", err)
		}
		dir = strings.TrimSpace(string(out))
	}
	if len(objs) != 2 {
		t.Fatalf("the chart rendered %d cert-manager objects, want an Issuer and a Certificate", len(objs))
	}
	_, dyn := clients(t)
	ctx := context.Background()
	crds := dyn.Resource(schema.GroupVersionResource{Group: "apiextensions.k8s.io", Version: "v1", Resource: "customresourcedefinitions"})
	files, err := filepath.Glob(filepath.Join(dir, "cert-manager.io_*.yaml"))
	if err != nil || len(files) < 2 {
		t.Fatalf("no cert-manager CRDs in %s (%v)", dir, err)
	}
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		crd := &unstructured.Unstructured{}
		if err := utilyaml.NewYAMLOrJSONDecoder(bytes.NewReader(data), 4096).Decode(&crd.Object); err != nil {
			t.Fatalf("%s: %v", f, err)
		}
		if _, err := crds.Create(ctx, crd, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
			t.Fatalf("%s: %v", f, err)
		}
	}
	// A CRD is served a moment after it is created: retry NotFound.
	create := func(u *unstructured.Unstructured) error {
		gvr := schema.GroupVersionResource{Group: "cert-manager.io", Version: "v1", Resource: strings.ToLower(u.GetKind()) + "s"}
		deadline := time.Now().Add(20 * time.Second)
		for {
			_, err := dyn.Resource(gvr).Namespace(ns).Create(ctx, u, metav1.CreateOptions{FieldValidation: "Strict"})
			if !apierrors.IsNotFound(err) || time.Now().After(deadline) {
				return err
			}
			time.Sleep(200 * time.Millisecond)
		}
	}
	for _, u := range objs {
		if err := create(u); err != nil {
			t.Errorf("%s %s, as cert-manager's CRD validates it: %v", u.GetKind(), u.GetName(), err)
		}
	}
	// The schema is cert-manager's, not an open one: a field it lacks is
	// refused.
	bad := objs[len(objs)-1].DeepCopy()
	bad.SetName(bad.GetName() + "-bad")
	if err := unstructured.SetNestedField(bad.Object, "x", "spec", "noSuchField"); err != nil {
		t.Fatal(err)
	}
	if err := create(bad); err == nil {
		t.Errorf("a %s with spec.noSuchField was accepted: the CRD does not check", bad.GetKind())
	}
}
