//go:build e2e

package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	authenticationv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"
	sigsyaml "sigs.k8s.io/yaml"

	"github.com/rollguard/rollguard/pkg/netns"
	"github.com/rollguard/rollguard/pkg/traffic"
)

// verifyReport is the part of verify's JSON report the tests read.
type verifyReport struct {
	Schema    string         `json:"schema"`
	Requests  int            `json:"requests"`
	Failed    int            `json:"failed"`
	ByClass   map[string]int `json:"byClass"`
	Partial   bool           `json:"partial"`
	Agents    []struct{ Node string }
	Warnings  []string `json:"warnings"`
	Diagnosis struct {
		Counts      map[string]int `json:"counts"`
		ByRule      map[string]int `json:"byRule"`
		ByCertainty map[string]int `json:"byCertainty"`
	} `json:"diagnosis"`
	Intervals []struct {
		Node     string
		Failed   int
		Evidence string
	} `json:"intervals"`
}

// verifyCmd is `rollguard verify` as a user runs it: the whole process in
// node 1's network namespace, the only place the API server is reachable.
func verifyCmd(args ...string) *exec.Cmd { return verifyCmdAs(kubeconfig, args...) }

// verifyCmdAs is verifyCmd with another identity's kubeconfig.
func verifyCmdAs(kc string, args ...string) *exec.Cmd {
	full := append([]string{"--net=/run/netns/rgnode1", filepath.Join(repo, ".cache/cluster/bin/rollguard"), "verify",
		"--kubeconfig", kc, "-n", "default", "--image", "localhost/rollguard:e2e"}, args...)
	return exec.Command("nsenter", full...)
}

// independent counts failures the way a caller would, with no part of
// verify: the e2e tier's own client on both nodes, each at rate/2 requests
// a second to the Service, until stop is closed.
func independent(t *testing.T, name string, rate float64, stop <-chan struct{}) func() *traffic.Summary {
	t.Helper()
	return independentIn(t, "default", name, rate, stop)
}

// independentIn is independent for a Service in a namespace.
func independentIn(t *testing.T, ns, name string, rate float64, stop <-chan struct{}) func() *traffic.Summary {
	t.Helper()
	svc, err := clientset.CoreV1().Services(ns).Get(context.Background(), name, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	target := svc.Spec.ClusterIP + ":80"
	sum := traffic.NewSummary()
	var wg sync.WaitGroup
	for _, node := range []string{"rgnode1", "rgnode2"} {
		dial := netns.Dialer(node)
		wg.Add(1)
		go func() {
			defer wg.Done()
			_ = traffic.Run(context.Background(), traffic.Config{Rate: rate / 2, Duration: 5 * time.Minute, Mode: traffic.ModeHTTP, Host: name,
				ConnectTimeout: 4 * time.Second, ResponseTimeout: 4 * time.Second, Stop: stop,
				Dial: func(ctx context.Context, _ int, _ int64) (net.Conn, traffic.Pick, error) {
					c, err := dial(ctx, "tcp", target)
					return c, traffic.Pick{}, err
				}}, sum)
		}()
	}
	return func() *traffic.Summary { wg.Wait(); return sum }
}

// waitServing waits until one second of requests from each node to the
// Service all succeed.
func waitServing(t *testing.T, name string) { t.Helper(); waitServingIn(t, "default", name) }

func waitServingIn(t *testing.T, ns, name string) {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for time.Now().Before(deadline) {
		stop := make(chan struct{})
		wait := independentIn(t, ns, name, 40, stop)
		time.Sleep(time.Second)
		close(stop)
		if s := wait(); s.Total > 0 && s.Failed() == 0 {
			return
		}
	}
	t.Fatalf("service %s did not answer cleanly within 60s", name)
}

// flushConntrack starts a run clean: a failed connection of an earlier
// run leaves an UNREPLIED entry to a dead pod for 120s, which a reused
// source port would hit.
func flushConntrack(t *testing.T) {
	t.Helper()
	for _, n := range []string{"rgnode1", "rgnode2"} {
		if out, err := exec.Command("nsenter", "--net=/run/netns/"+n, "conntrack", "-F").CombinedOutput(); err != nil {
			t.Fatalf("conntrack -F in %s: %v %s", n, err, out)
		}
	}
}

// runVerify runs verify on a deployment with the independent client
// beside it, and returns verify's report, its exit code and the
// independent count.
func runVerify(t *testing.T, name string, rate float64, extra ...string) (*verifyReport, int, *traffic.Summary) {
	t.Helper()
	return runVerifyAs(t, kubeconfig, name, rate, extra...)
}

// runVerifyAs is runVerify with another identity's kubeconfig.
func runVerifyAs(t *testing.T, kc, name string, rate float64, extra ...string) (*verifyReport, int, *traffic.Summary) {
	t.Helper()
	// A Deployment with no readinessProbe is "available" before its app
	// listens: wait until the Service answers cleanly, so the independent
	// client counts the rollout's failures only, as verify's warm-up does.
	waitServing(t, name)
	flushConntrack(t)
	stop := make(chan struct{})
	wait := independent(t, name, rate, stop)
	args := append([]string{"deployment/" + name, "--rate", fmt.Sprint(rate), "--budget", "3s", "--settle", "4s", "-o", "json"}, extra...)
	cmd := verifyCmdAs(kc, args...)
	var out, errOut bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errOut
	err := cmd.Run()
	close(stop)
	ind := wait()
	code := 0
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatal(err)
	}
	var rep verifyReport
	if jerr := json.Unmarshal(out.Bytes(), &rep); jerr != nil {
		t.Fatalf("verify exited %d with no report (%v):\n%s", code, jerr, errOut.String())
	}
	t.Logf("verify %s %v: exit %d, %d requests, %d failed %v, diagnosis %v %v, rules %v; independent client: %d requests, %d failed %v; warnings %q",
		name, extra, code, rep.Requests, rep.Failed, rep.ByClass, rep.Diagnosis.Counts, rep.Diagnosis.ByCertainty, rep.Diagnosis.ByRule,
		ind.Total, ind.Failed(), ind.ByClass, rep.Warnings)
	for i, iv := range rep.Intervals {
		if i == 6 {
			break
		}
		t.Logf("  node %s, %d failed: %s", iv.Node, iv.Failed, iv.Evidence)
	}
	if errOut.Len() > 0 {
		t.Logf("stderr: %s", errOut.String())
	}
	if len(rep.Agents) != 2 {
		t.Errorf("agents on %d nodes, want both", len(rep.Agents))
	}
	// The two clients send the same rate over windows that both hold the
	// whole rollout, so their failure counts compare directly.
	if d := rep.Failed - ind.Failed(); max(rep.Failed, ind.Failed()) > 10 && float64(max(d, -d)) > 0.2*float64(max(rep.Failed, ind.Failed())) {
		t.Errorf("verify counted %d failures, the independent client %d: more than 20%% apart", rep.Failed, ind.Failed())
	}
	return &rep, code, ind
}

// TestVerify holds verify to the real cluster: the two cases and their
// fixes, each failure attributed as the spec says it must be.
func TestVerify(t *testing.T) {
	t.Run("no probe, no preStop", func(t *testing.T) {
		deploy(t, "vf-bare", app{})
		rep, code, _ := runVerify(t, "vf-bare", 200)
		if rep.Failed == 0 || code != 1 {
			t.Errorf("%d failed, exit %d: want failures and exit 1", rep.Failed, code)
		}
	})
	t.Run("Case 1 only: readiness, no preStop", func(t *testing.T) {
		deploy(t, "vf-case1", app{readiness: true})
		html := filepath.Join(t.TempDir(), "verify.html")
		rep, code, _ := runVerify(t, "vf-case1", 200, "--report", html)
		if page, err := os.ReadFile(html); err != nil || !strings.Contains(string(page), `"pod":"vf-case1-`) || !strings.Contains(string(page), "rgnode2") {
			t.Errorf("--report: %v, or the page lacks the pods and nodes", err)
		}
		if rep.Failed == 0 || code != 1 {
			t.Fatalf("%d failed, exit %d: want failures and exit 1", rep.Failed, code)
		}
		if c := rep.Diagnosis.Counts["case1"]; float64(c) < 0.9*float64(rep.Failed) {
			t.Errorf("%d of %d failures attributed to Case 1, want at least 90%%", c, rep.Failed)
		}
	})
	t.Run("Case 2 only: preStop sleep 10s, no readiness", func(t *testing.T) {
		deploy(t, "vf-case2", app{preStop: 10})
		rep, code, _ := runVerify(t, "vf-case2", 200)
		if rep.Failed == 0 || code != 1 {
			t.Fatalf("%d failed, exit %d: want failures and exit 1", rep.Failed, code)
		}
		if c := rep.Diagnosis.Counts["case2"]; float64(c) < 0.9*float64(rep.Failed) {
			t.Errorf("%d of %d failures attributed to Case 2, want at least 90%%", c, rep.Failed)
		}
	})
	// With conntrack, each failure's pod is known: the attribution is
	// exact, and no failure is left ambiguous, even with no fix at all.
	t.Run("privileged agents: no probe, no preStop", func(t *testing.T) {
		deploy(t, "vf-bare-ct", app{})
		rep, code, _ := runVerify(t, "vf-bare-ct", 200, "--privileged-agents")
		if rep.Failed == 0 || code != 1 {
			t.Fatalf("%d failed, exit %d: want failures and exit 1", rep.Failed, code)
		}
		if rep.Diagnosis.Counts["ambiguous"] != 0 || float64(rep.Diagnosis.ByCertainty["exact"]) < 0.9*float64(rep.Failed) {
			t.Errorf("%v %v: want exact attributions and none ambiguous", rep.Diagnosis.Counts, rep.Diagnosis.ByCertainty)
		}
	})
	t.Run("privileged agents: Case 1 only", func(t *testing.T) {
		deploy(t, "vf-case1-ct", app{readiness: true})
		rep, _, _ := runVerify(t, "vf-case1-ct", 200, "--privileged-agents")
		if c := rep.Diagnosis.Counts["case1"]; rep.Failed == 0 || float64(c) < 0.9*float64(rep.Failed) {
			t.Errorf("%d of %d failures attributed to Case 1, want at least 90%%", c, rep.Failed)
		}
	})
	t.Run("privileged agents: Case 2 only", func(t *testing.T) {
		deploy(t, "vf-case2-ct", app{preStop: 10})
		rep, _, _ := runVerify(t, "vf-case2-ct", 200, "--privileged-agents")
		if c := rep.Diagnosis.Counts["case2"]; rep.Failed == 0 || float64(c) < 0.9*float64(rep.Failed) {
			t.Errorf("%d of %d failures attributed to Case 2, want at least 90%%", c, rep.Failed)
		}
	})
	t.Run("privileged agents: both fixes", func(t *testing.T) {
		deploy(t, "vf-fixed-ct", app{readiness: true, preStop: 10})
		rep, code, _ := runVerify(t, "vf-fixed-ct", 200, "--privileged-agents")
		if rep.Failed != 0 || code != 0 || len(rep.Warnings) != 0 {
			t.Errorf("%d failed, exit %d, warnings %q: want none and exit 0", rep.Failed, code, rep.Warnings)
		}
	})
	// Run as a ServiceAccount bound to exactly the documented roles: they
	// are enough for a whole run.
	t.Run("both fixes, as the role file's identity", func(t *testing.T) {
		deploy(t, "vf-fixed", app{readiness: true, preStop: 10})
		rep, code, ind := runVerifyAs(t, asRoleFile(t, "deploy/rbac/rollguard-verify.yaml", "vf-ci", "rollguard-verify"), "vf-fixed", 200)
		if rep.Failed != 0 || code != 0 || ind.Failed() != 0 {
			t.Errorf("verify: %d failed, exit %d; independent: %d failed: want none and exit 0", rep.Failed, code, ind.Failed())
		}
		if rep.Requests < 200*10 {
			t.Errorf("%d requests: the agents did not sustain 200 requests/s", rep.Requests)
		}
	})
}

// TestVerifyLeavesNothing: a stuck rollout (exit 2, naming what is stuck)
// and Ctrl-C (exit 130) both remove every agent.
func TestVerifyLeavesNothing(t *testing.T) {
	deploy(t, "vf-stuck", app{readiness: true})
	t.Run("timeout", func(t *testing.T) {
		cmd := verifyCmd("deployment/vf-stuck", "--rate", "20", "--trigger", "image=web=localhost/no-such-image:1", "--timeout", "8s", "--settle", "0s")
		var errOut bytes.Buffer
		cmd.Stderr = &errOut
		err := cmd.Run()
		ee, ok := err.(*exec.ExitError)
		if !ok || ee.ExitCode() != 2 || !strings.Contains(errOut.String(), "did not finish rolling out") {
			t.Errorf("exit %v, stderr %q: want 2 and what is stuck", err, errOut.String())
		}
		noAgents(t)
	})
	t.Run("interrupt", func(t *testing.T) {
		cmd := verifyCmd("deployment/vf-stuck", "--rate", "20", "--trigger", "none", "--timeout", "2m")
		var errOut bytes.Buffer
		cmd.Stderr = &errOut
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		// Interrupt once the agents run.
		deadline := time.Now().Add(90 * time.Second)
		for time.Now().Before(deadline) && countAgents(t) == 0 {
			time.Sleep(200 * time.Millisecond)
		}
		time.Sleep(2 * time.Second)
		_ = cmd.Process.Signal(syscall.SIGINT)
		err := cmd.Wait()
		if ee, ok := err.(*exec.ExitError); !ok || ee.ExitCode() != 130 {
			t.Errorf("exit %v, stderr %q: want 130", err, errOut.String())
		}
		noAgents(t)
	})
}

func countAgents(t *testing.T) int {
	t.Helper()
	l, err := clientset.CoreV1().Pods("").List(context.Background(), metav1.ListOptions{LabelSelector: "app.kubernetes.io/managed-by=rollguard-verify"})
	if err != nil {
		t.Fatal(err)
	}
	return len(l.Items)
}

func noAgents(t *testing.T) {
	t.Helper()
	if n := countAgents(t); n != 0 {
		t.Errorf("%d agent pods left behind, across namespaces", n)
	}
}

// asRoleFile makes a kubeconfig for a ServiceAccount sa in default bound
// to exactly the ClusterRoles of a role file: a RoleBinding in default for
// the roles named in inDefault, a ClusterRoleBinding for the others. It
// returns the kubeconfig's path.
func asRoleFile(t *testing.T, file, sa string, inDefault ...string) string {
	t.Helper()
	ctx := context.Background()
	data, err := os.ReadFile(filepath.Join(repo, file))
	if err != nil {
		t.Fatal(err)
	}
	var roles []string
	for _, doc := range strings.Split(string(data), "\n---") {
		var role rbacv1.ClusterRole
		if err := sigsyaml.Unmarshal([]byte(doc), &role); err != nil || role.Kind != "ClusterRole" {
			continue // comments and commented-out examples
		}
		_ = clientset.RbacV1().ClusterRoles().Delete(ctx, role.Name, metav1.DeleteOptions{})
		if _, err := clientset.RbacV1().ClusterRoles().Create(ctx, &role, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
		roles = append(roles, role.Name)
	}
	if len(roles) != 2 {
		t.Fatalf("%s holds %d ClusterRoles (%v), want the namespaced one and the cluster-wide one", file, len(roles), roles)
	}
	if _, err := clientset.CoreV1().ServiceAccounts("default").Create(ctx,
		&corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: sa, Namespace: "default"}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	subject := []rbacv1.Subject{{Kind: "ServiceAccount", Name: sa, Namespace: "default"}}
	for _, role := range roles {
		name := sa + "-" + role
		ref := rbacv1.RoleRef{APIGroup: "rbac.authorization.k8s.io", Kind: "ClusterRole", Name: role}
		if slices.Contains(inDefault, role) {
			rb := &rbacv1.RoleBinding{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "default"}, Subjects: subject, RoleRef: ref}
			if _, err := clientset.RbacV1().RoleBindings("default").Create(ctx, rb, metav1.CreateOptions{}); err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { _ = clientset.RbacV1().RoleBindings("default").Delete(ctx, name, metav1.DeleteOptions{}) })
			continue
		}
		crb := &rbacv1.ClusterRoleBinding{ObjectMeta: metav1.ObjectMeta{Name: name}, Subjects: subject, RoleRef: ref}
		if _, err := clientset.RbacV1().ClusterRoleBindings().Create(ctx, crb, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = clientset.RbacV1().ClusterRoleBindings().Delete(ctx, name, metav1.DeleteOptions{}) })
	}
	t.Cleanup(func() {
		_ = clientset.CoreV1().ServiceAccounts("default").Delete(ctx, sa, metav1.DeleteOptions{})
		for _, r := range roles {
			_ = clientset.RbacV1().ClusterRoles().Delete(ctx, r, metav1.DeleteOptions{})
		}
	})
	tr, err := clientset.CoreV1().ServiceAccounts("default").CreateToken(ctx, sa, &authenticationv1.TokenRequest{}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	cfg, err := clientcmd.LoadFromFile(kubeconfig)
	if err != nil {
		t.Fatal(err)
	}
	for _, ai := range cfg.AuthInfos {
		*ai = clientcmdapi.AuthInfo{Token: tr.Status.Token}
	}
	path := filepath.Join(t.TempDir(), sa+".kubeconfig")
	if err := clientcmd.WriteToFile(*cfg, path); err != nil {
		t.Fatal(err)
	}
	return path
}
