//go:build e2e

package e2e

import (
	"bytes"
	"context"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"fmt"
	"io"
	"net/http"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	authnv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/intstr"

	"github.com/rollguard/rollguard/pkg/netns"
	"github.com/rollguard/rollguard/pkg/webhook"
)

const whNS = "rollguard-system"

// helm runs the real helm, installed by hack/tools.sh, inside node 1's
// network namespace (the only place the API server is reachable).
func helm(t *testing.T, args ...string) string {
	t.Helper()
	bin, err := exec.LookPath("helm")
	if err != nil {
		t.Fatalf("helm: %v (hack/tools.sh installs it; hack/test.sh puts it on PATH)", err)
	}
	cmd := exec.Command("nsenter", append([]string{"--net=/run/netns/rgnode1", bin, "--kubeconfig", kubeconfig}, args...)...)
	cmd.Dir = repo
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Run(); err != nil {
		t.Fatalf("helm %v: %v\n%s", args, err, out.String())
	}
	return out.String()
}

// installWebhook installs the chart as a user would, with the e2e image,
// and waits until both replicas are ready.
func installWebhook(t *testing.T) {
	t.Helper()
	helm(t, "install", "rollguard", filepath.Join(repo, "charts/rollguard"), "-n", whNS, "--create-namespace",
		"--set", "image.repository=localhost/rollguard", "--set", "image.tag=e2e", "--set", "image.pullPolicy=Never",
		"--set", "certCheckInterval=5s")
	t.Cleanup(func() {
		helm(t, "uninstall", "rollguard", "-n", whNS, "--wait")
		_ = clientset.CoreV1().Namespaces().Delete(context.Background(), whNS, metav1.DeleteOptions{})
	})
	waitWebhookReady(t, 2, 3*time.Minute)
}

// waitWebhookReady waits for n ready webhook pods.
func waitWebhookReady(t *testing.T, n int, timeout time.Duration) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) {
		d, err := clientset.AppsV1().Deployments(whNS).Get(context.Background(), "rollguard", metav1.GetOptions{})
		if err == nil && d.Status.ReadyReplicas == int32(n) && d.Status.Replicas == int32(n) {
			return
		}
		time.Sleep(500 * time.Millisecond)
	}
	pods, _ := clientset.CoreV1().Pods(whNS).List(context.Background(), metav1.ListOptions{})
	for _, p := range pods.Items {
		t.Logf("pod %s: %s %+v", p.Name, p.Status.Phase, p.Status.ContainerStatuses)
	}
	t.Fatalf("the webhook did not have %d ready replicas within %s", n, timeout)
}

// injected makes a namespace, opted in or not.
func injected(t *testing.T, name string, on bool) {
	t.Helper()
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name}}
	if on {
		ns.Labels = map[string]string{webhook.InjectLabel: "enabled"}
	}
	if _, err := clientset.CoreV1().Namespaces().Create(context.Background(), ns, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = clientset.CoreV1().Namespaces().Delete(context.Background(), name, metav1.DeleteOptions{}) })
}

// rollIn restarts a Deployment under 100 requests/s from both nodes and
// returns the independent client's count of failures.
func rollIn(t *testing.T, ns, name string) (total, failed int) {
	t.Helper()
	waitServingIn(t, ns, name)
	// Forget earlier connections to this Service only: flushing the whole
	// table would cut the API server's kept-alive connection to the
	// webhook, and the call on it would fail open.
	svc, err := clientset.CoreV1().Services(ns).Get(context.Background(), name, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	for _, n := range []string{"rgnode1", "rgnode2"} {
		_ = exec.Command("nsenter", "--net=/run/netns/"+n, "conntrack", "-D", "-d", svc.Spec.ClusterIP).Run() // exit 1: nothing to delete
	}
	stop := make(chan struct{})
	wait := independentIn(t, ns, name, 100, stop)
	time.Sleep(2 * time.Second)
	patch := fmt.Sprintf(`{"spec":{"template":{"metadata":{"annotations":{"rollguard.io/restartedAt":%q}}}}}`, time.Now().Format(time.RFC3339Nano))
	if _, err := clientset.AppsV1().Deployments(ns).Patch(context.Background(), name, types.StrategicMergePatchType, []byte(patch), metav1.PatchOptions{}); err != nil {
		t.Fatal(err)
	}
	waitRolledOutIn(t, ns, name, 2*time.Minute)
	// The old pods' preStop and drain, then a margin.
	deadline := time.Now().Add(60 * time.Second)
	for time.Now().Before(deadline) {
		l, err := clientset.CoreV1().Pods(ns).List(context.Background(), metav1.ListOptions{LabelSelector: "app=" + name})
		if err == nil && len(l.Items) == 2 {
			break
		}
		time.Sleep(500 * time.Millisecond)
	}
	time.Sleep(3 * time.Second)
	close(stop)
	s := wait()
	t.Logf("%s/%s: %d requests, %d failed %v", ns, name, s.Total, s.Failed(), s.ByClass)
	return s.Total, s.Failed()
}

// createPods sends n server-side dry-run pod creations (they pass through
// admission, webhooks included, and create nothing) from workers at once,
// calling during() once a third of them are done, and returns how many
// came back mutated.
func createPods(t *testing.T, ns string, n, workers int, during func()) (mutated int) {
	t.Helper()
	var done, muts atomic.Int64
	var once sync.Once
	var wg sync.WaitGroup
	errs := make(chan error, n)
	next := make(chan int)
	for range workers {
		wg.Go(func() {
			for i := range next {
				p := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: fmt.Sprintf("burst-%d", i), Labels: map[string]string{"app": "burst"}},
					Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "app", Image: "localhost/rollguard:e2e",
						Ports: []corev1.ContainerPort{{Name: "http", ContainerPort: 8080}}}}}}
				got, err := clientset.CoreV1().Pods(ns).Create(context.Background(), p, metav1.CreateOptions{DryRun: []string{metav1.DryRunAll}})
				if err != nil {
					errs <- err
					continue
				}
				if got.Annotations[webhook.MutatedAnnotation] != "" {
					muts.Add(1)
				}
				if done.Add(1) == int64(n/3) && during != nil {
					once.Do(func() { go during() })
				}
			}
		})
	}
	for i := range n {
		next <- i
		time.Sleep(20 * time.Millisecond) // a burst spread over a few seconds
	}
	close(next)
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Errorf("pod creation refused: %v", err)
	}
	return int(muts.Load())
}

func burstService(t *testing.T, ns string) {
	t.Helper()
	svc := &corev1.Service{ObjectMeta: metav1.ObjectMeta{Name: "burst"}, Spec: corev1.ServiceSpec{Selector: map[string]string{"app": "burst"},
		Ports: []corev1.ServicePort{{Port: 80, TargetPort: intstr.FromString("http")}}}}
	if _, err := clientset.CoreV1().Services(ns).Create(context.Background(), svc, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
}

// scrapeMetrics reads /metrics of each webhook pod from node 1, as a
// Prometheus would: verifying the certificate with the CA in the chart's
// Secret for the Service's name, with the token of a ServiceAccount bound
// to the chart's metrics-reader ClusterRole (401 without a token, 403
// before the binding).
func scrapeMetrics(t *testing.T) {
	t.Helper()
	ctx := context.Background()
	sa := &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: "scraper", Namespace: "default"}}
	if _, err := clientset.CoreV1().ServiceAccounts("default").Create(ctx, sa, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = clientset.CoreV1().ServiceAccounts("default").Delete(context.Background(), "scraper", metav1.DeleteOptions{})
	})
	tr, err := clientset.CoreV1().ServiceAccounts("default").CreateToken(ctx, "scraper", &authnv1.TokenRequest{}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	sec, err := clientset.CoreV1().Secrets(whNS).Get(ctx, "rollguard-webhook-tls", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(sec.Data["ca.crt"]) {
		t.Fatal("no ca.crt in the webhook's Secret")
	}
	pods, err := clientset.CoreV1().Pods(whNS).List(ctx, metav1.ListOptions{LabelSelector: "app.kubernetes.io/name=rollguard"})
	if err != nil || len(pods.Items) == 0 {
		t.Fatalf("webhook pods: %v", err)
	}
	dial := netns.Dialer("rgnode1")
	client := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{DialContext: dial,
		TLSClientConfig: &tls.Config{RootCAs: pool, ServerName: "rollguard-webhook." + whNS + ".svc"}}}
	scrape := func(ip, token string) (int, string) {
		t.Helper()
		req, _ := http.NewRequest("GET", "https://"+ip+":8080/metrics", nil)
		if token != "" {
			req.Header.Set("Authorization", "Bearer "+token)
		}
		resp, err := client.Do(req)
		if err != nil {
			t.Fatalf("scraping %s: %v", ip, err)
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(body)
	}
	ip := pods.Items[0].Status.PodIP
	if code, _ := scrape(ip, ""); code != http.StatusUnauthorized {
		t.Errorf("no token: %d, want 401", code)
	}
	if code, _ := scrape(ip, tr.Status.Token); code != http.StatusForbidden {
		t.Errorf("a ServiceAccount without the right: %d, want 403", code)
	}
	crb := &rbacv1.ClusterRoleBinding{ObjectMeta: metav1.ObjectMeta{Name: "scraper"},
		RoleRef:  rbacv1.RoleRef{APIGroup: "rbac.authorization.k8s.io", Kind: "ClusterRole", Name: "rollguard-metrics-reader"},
		Subjects: []rbacv1.Subject{{Kind: "ServiceAccount", Name: "scraper", Namespace: "default"}}}
	if _, err := clientset.RbacV1().ClusterRoleBindings().Create(ctx, crb, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = clientset.RbacV1().ClusterRoleBindings().Delete(context.Background(), "scraper", metav1.DeleteOptions{})
	})
	// The API server keeps one connection to the Service, so one replica
	// may have answered every admission, and the other counted none.
	counting := 0
	for _, p := range pods.Items {
		// A refusal is cached for 10 s.
		code, body := scrape(p.Status.PodIP, tr.Status.Token)
		for deadline := time.Now().Add(20 * time.Second); code == http.StatusForbidden && time.Now().Before(deadline); {
			time.Sleep(time.Second)
			code, body = scrape(p.Status.PodIP, tr.Status.Token)
		}
		if code != http.StatusOK || !strings.Contains(body, "# TYPE ") {
			t.Errorf("pod %s, bound: %d, want 200 with metrics\n%.300s", p.Name, code, body)
		}
		if strings.Contains(body, `rollguard_webhook_admissions_total{handler="mutate",outcome="mutated"`) {
			counting++
		}
	}
	if counting == 0 {
		t.Error("no replica counted a mutated admission")
	}
}

// webhookSees waits until the webhook mutates a pod of the app (created
// with a server-side dry run): the API server sees the namespace's label
// and the webhook's caches the app's Service. Ten mutations in a row, so
// that both replicas' caches are all but surely there too. A pod admitted
// before would be left alone, as the docs say of pods no Service selects
// at admission.
func webhookSees(t *testing.T, ns, name string) {
	t.Helper()
	pod := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{GenerateName: name + "-", Labels: map[string]string{"app": name}},
		Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "web", Image: "localhost/rollguard:e2e",
			Ports: []corev1.ContainerPort{{Name: "http", ContainerPort: 8080}}}}}}
	inRow := 0
	for deadline := time.Now().Add(30 * time.Second); inRow < 10; {
		got, err := clientset.CoreV1().Pods(ns).Create(context.Background(), pod, metav1.CreateOptions{DryRun: []string{metav1.DryRunAll}})
		if err != nil {
			t.Fatal(err)
		}
		if got.Annotations[webhook.MutatedAnnotation] != "" {
			inRow++
			continue
		}
		inRow = 0
		if time.Now().After(deadline) {
			t.Fatalf("the webhook did not mutate a pod of %s/%s in 30s", ns, name)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// servingCert reads the SHA-256 of the certificate one webhook pod serves,
// from node 1 (cert-controller gives every certificate serial 1).
func servingCert(t *testing.T, podIP string) string {
	t.Helper()
	c, err := netns.Dialer("rgnode1")(context.Background(), "tcp", podIP+":9443")
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	tc := tls.Client(c, &tls.Config{InsecureSkipVerify: true}) // only the serial is read
	if err := tc.Handshake(); err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(tc.ConnectionState().PeerCertificates[0].Raw)
	return hex.EncodeToString(sum[:8])
}

// TestWebhook installs the chart and holds the webhook to the issue: the
// lossy Deployment loses connections where the namespace is not opted in
// and none where it is; a burst of pod creations survives the loss of a
// replica and a certificate rotation, every pod admitted and mutated;
// with no replica left, pods are still created (failurePolicy Ignore),
// unmutated.
func TestWebhook(t *testing.T) {
	installWebhook(t)
	t.Run("lossless where opted in, same rollout and traffic", func(t *testing.T) {
		injected(t, "wh-plain", false)
		injected(t, "wh-inject", true)
		deployIn(t, "wh-plain", "lossy", app{})
		deployIn(t, "wh-inject", "lossy", app{serviceReady: func(t *testing.T) { webhookSees(t, "wh-inject", "lossy") }})
		pods, err := clientset.CoreV1().Pods("wh-inject").List(context.Background(), metav1.ListOptions{LabelSelector: "app=lossy"})
		if err != nil || len(pods.Items) == 0 {
			t.Fatalf("pods: %v", err)
		}
		for _, p := range pods.Items {
			c := p.Spec.Containers[0]
			if p.Annotations[webhook.MutatedAnnotation] == "" || c.ReadinessProbe == nil || c.Lifecycle == nil || c.Lifecycle.PreStop == nil {
				t.Errorf("pod %s was not mutated: annotations %v", p.Name, p.Annotations)
			}
		}
		plainTotal, plainFailed := rollIn(t, "wh-plain", "lossy")
		injTotal, injFailed := rollIn(t, "wh-inject", "lossy")
		if plainFailed == 0 {
			t.Errorf("the unlabelled namespace lost nothing (%d requests): the lossy Deployment should lose connections", plainTotal)
		}
		if injFailed != 0 {
			t.Errorf("the opted-in namespace lost %d of %d requests", injFailed, injTotal)
		}
	})
	t.Run("metrics: HTTPS with the serving certificate, for bound tokens only", func(t *testing.T) {
		scrapeMetrics(t)
	})
	t.Run("a replica deleted during 200 pod creations", func(t *testing.T) {
		injected(t, "wh-burst", true)
		burstService(t, "wh-burst")
		webhookSees(t, "wh-burst", "burst")
		pods, err := clientset.CoreV1().Pods(whNS).List(context.Background(), metav1.ListOptions{LabelSelector: "app.kubernetes.io/name=rollguard"})
		if err != nil || len(pods.Items) != 2 {
			t.Fatalf("webhook pods: %v (%d)", err, len(pods.Items))
		}
		victim := pods.Items[0].Name
		n := createPods(t, "wh-burst", 240, 8, func() {
			if err := clientset.CoreV1().Pods(whNS).Delete(context.Background(), victim, metav1.DeleteOptions{}); err != nil {
				t.Errorf("deleting webhook pod %s: %v", victim, err)
			}
		})
		if n != 240 {
			t.Errorf("%d of 240 pods mutated while webhook pod %s went away", n, victim)
		}
		waitWebhookReady(t, 2, 3*time.Minute)
	})
	t.Run("certificate rotation during pod creations", func(t *testing.T) {
		injected(t, "wh-rotate", true)
		burstService(t, "wh-rotate")
		pods, err := clientset.CoreV1().Pods(whNS).List(context.Background(), metav1.ListOptions{LabelSelector: "app.kubernetes.io/name=rollguard"})
		if err != nil || len(pods.Items) == 0 {
			t.Fatalf("webhook pods: %v", err)
		}
		ip := pods.Items[0].Status.PodIP
		before := servingCert(t, ip)
		// Drop the serving certificate from the Secret: the rotator issues
		// a new one under the same CA at its next check (5s here).
		secret := "rollguard-webhook-tls"
		patch := `[{"op":"remove","path":"/data/tls.crt"}]`
		if _, err := clientset.CoreV1().Secrets(whNS).Patch(context.Background(), secret, types.JSONPatchType, []byte(patch), metav1.PatchOptions{}); err != nil {
			t.Fatalf("patching Secret %s: %v", secret, err)
		}
		stop := time.Now().Add(100 * time.Second)
		total, mutated := 0, 0
		rotated := false
		for time.Now().Before(stop) {
			total += 20
			mutated += createPods(t, "wh-rotate", 20, 4, nil)
			if after := servingCert(t, ip); after != before {
				rotated = true
				t.Logf("the webhook serves a new certificate (%s, was %s) after %d pod creations", after, before, total)
				break
			}
		}
		if !rotated {
			t.Errorf("the serving certificate did not change within 100s")
		}
		total += 40
		mutated += createPods(t, "wh-rotate", 40, 4, nil)
		if mutated != total {
			t.Errorf("%d of %d pods mutated across the rotation", mutated, total)
		}
	})
	t.Run("no replica: pods are still created, unmutated", func(t *testing.T) {
		injected(t, "wh-down", true)
		burstService(t, "wh-down")
		scale := func(n int32) {
			s, err := clientset.AppsV1().Deployments(whNS).GetScale(context.Background(), "rollguard", metav1.GetOptions{})
			if err != nil {
				t.Fatal(err)
			}
			s.Spec.Replicas = n
			if _, err := clientset.AppsV1().Deployments(whNS).UpdateScale(context.Background(), "rollguard", s, metav1.UpdateOptions{}); err != nil {
				t.Fatal(err)
			}
		}
		scale(0)
		t.Cleanup(func() { scale(2); waitWebhookReady(t, 2, 3*time.Minute) })
		deadline := time.Now().Add(90 * time.Second)
		for time.Now().Before(deadline) {
			l, _ := clientset.CoreV1().Pods(whNS).List(context.Background(), metav1.ListOptions{LabelSelector: "app.kubernetes.io/name=rollguard"})
			if len(l.Items) == 0 {
				break
			}
			time.Sleep(500 * time.Millisecond)
		}
		if n := createPods(t, "wh-down", 10, 2, nil); n != 0 {
			t.Errorf("%d pods mutated with no webhook replica", n)
		}
	})
}
