//go:build e2e

package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	corev1 "k8s.io/api/core/v1"

	"github.com/rollguard/rollguard/pkg/config"
	"github.com/rollguard/rollguard/pkg/measure"
	"github.com/rollguard/rollguard/pkg/rules"
)

// measureCmd is `rollguard measure` as a user runs it, inside node 1's
// network namespace, with a kubeconfig.
func measureCmd(kc string, args ...string) *exec.Cmd {
	full := append([]string{"--net=/run/netns/rgnode1", filepath.Join(repo, ".cache/cluster/bin/rollguard"), "measure",
		"--kubeconfig", kc, "--image", "localhost/rollguard:e2e"}, args...)
	return exec.Command("nsenter", full...)
}

// runMeasure runs measure to its end and returns its report.
func runMeasure(t *testing.T, kc string, args ...string) *measure.Report {
	t.Helper()
	cmd := measureCmd(kc, append(args, "-o", "json")...)
	var out, errOut bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errOut
	err := cmd.Run()
	var rep measure.Report
	if jerr := json.Unmarshal(out.Bytes(), &rep); jerr != nil || err != nil {
		t.Fatalf("measure %v: %v (report: %v)\nstderr: %s", args, err, jerr, errOut.String())
	}
	t.Logf("measure %v: %d samples, removal %+v, addition %+v, recommended %s; %s; %d probe requests, %d failed; warnings %q; stderr %q",
		args, len(rep.Samples), rep.Removal, rep.Addition, rep.PreStop, rep.Sync, rep.Sent, rep.Failed, rep.Warnings, errOut.String())
	for _, n := range rep.PerNode {
		t.Logf("  %s: removal p50 %s p99 %s max %s (%d); addition p50 %s p99 %s (%d)", n.Node, n.Removal.P50, n.Removal.P99, n.Removal.Max,
			n.Removal.Count, n.Addition.P50, n.Addition.P99, n.Addition.Count)
	}
	return &rep
}

// measureLeftovers lists every object a measure run labels, in every
// namespace, and the namespaces it made.
func measureLeftovers(t *testing.T) []string {
	t.Helper()
	ctx := context.Background()
	sel := metav1.ListOptions{LabelSelector: measure.ManagedByLabel + "=" + measure.ManagedBy}
	var left []string
	if l, err := clientset.CoreV1().Pods("").List(ctx, sel); err == nil {
		for _, p := range l.Items {
			left = append(left, "pod "+p.Namespace+"/"+p.Name)
		}
	} else {
		t.Fatal(err)
	}
	if l, err := clientset.AppsV1().Deployments("").List(ctx, sel); err == nil {
		for _, d := range l.Items {
			left = append(left, "deployment "+d.Namespace+"/"+d.Name)
		}
	} else {
		t.Fatal(err)
	}
	if l, err := clientset.AppsV1().ReplicaSets("").List(ctx, sel); err == nil {
		for _, d := range l.Items {
			left = append(left, "replicaset "+d.Namespace+"/"+d.Name)
		}
	} else {
		t.Fatal(err)
	}
	if l, err := clientset.CoreV1().Services("").List(ctx, sel); err == nil {
		for _, s := range l.Items {
			left = append(left, "service "+s.Namespace+"/"+s.Name)
		}
	} else {
		t.Fatal(err)
	}
	if l, err := clientset.CoreV1().Namespaces().List(ctx, sel); err == nil {
		for _, n := range l.Items {
			left = append(left, "namespace "+n.Name)
		}
	} else {
		t.Fatal(err)
	}
	return left
}

func nothingLeft(t *testing.T) {
	t.Helper()
	if left := measureLeftovers(t); len(left) > 0 {
		t.Errorf("measure left behind: %s", strings.Join(left, ", "))
	}
}

// TestMeasure holds measure to kube-proxy's own setting: at min-sync 1s
// and 5s the removal p99 must reflect it, and the preStop it recommends
// must make a rollout lossless where one well below the measured median
// loses connections (judged by verify, and by the tier's own client).
func TestMeasure(t *testing.T) {
	var fast, slow *measure.Report
	t.Run("min-sync 1s, as the role file's ServiceAccount, --write-config", func(t *testing.T) {
		kc := asRoleFile(t, "deploy/rbac/rollguard-measure.yaml", "ms-ci")
		cfgPath := filepath.Join(t.TempDir(), "rollguard.yaml")
		if err := os.WriteFile(cfgPath, []byte("# team settings\nfailOn: warning\npropagationBudget: 30s # a guess\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		fast = runMeasure(t, kc, "-n", "ms-fast", "--samples", "6", "--jitter", "1s", "--write-config", cfgPath)
		if len(fast.Samples) != 6 || fast.Partial {
			t.Fatalf("%d samples (partial %v), want 6", len(fast.Samples), fast.Partial)
		}
		for _, n := range fast.PerNode {
			if n.Removal.Count != 6 || n.Addition.Count != 6 {
				t.Errorf("node %s: %d removals and %d additions measured, want 6 each", n.Node, n.Removal.Count, n.Addition.Count)
			}
		}
		// kube-proxy waits at most min-sync between two syncs; the rest is
		// the controllers, the watches and the sync itself.
		if fast.Removal.P99 > 2500*time.Millisecond {
			t.Errorf("removal p99 %s at min-sync 1s: more than the 2.5s the setting allows", fast.Removal.P99)
		}
		// The canaries serve through their preStop, so probe requests
		// should not fail; a handful may on a loaded machine (the canaries
		// run on 100m of CPU), which does not touch the arrival times.
		if fast.Failed*200 > fast.Sent {
			t.Errorf("%d of %d probe requests failed (more than 0.5%%): %q", fast.Failed, fast.Sent, fast.Warnings)
		}
		data, err := os.ReadFile(cfgPath)
		if err != nil {
			t.Fatal(err)
		}
		cfg, err := config.Parse(data, rules.Default())
		if err != nil || cfg.PropagationBudget != fast.PreStop || !strings.HasPrefix(string(data), "# team settings\nfailOn: warning\n") || fast.PreStop < time.Second {
			t.Errorf("config after --write-config (%v, budget %v, recommended %s):\n%s", err, cfg.PropagationBudget, fast.PreStop, data)
		}
		nothingLeft(t)
	})
	t.Run("min-sync 5s", func(t *testing.T) {
		if fast == nil {
			t.Skip("the 1s run failed")
		}
		if out, err := cluster("proxy", "--proxy-mode", "nftables", "--min-sync", "5s"); err != nil {
			t.Fatalf("restarting kube-proxy: %v\n%s", err, out)
		}
		t.Cleanup(func() { _, _ = cluster("proxy", "--proxy-mode", "nftables", "--min-sync", "1s") })
		slow = runMeasure(t, kubeconfig, "-n", "ms-slow", "--samples", "8", "--jitter", "5s")
		if len(slow.Samples) != 8 {
			t.Fatalf("%d samples, want 8", len(slow.Samples))
		}
		if slow.Removal.P99 < fast.Removal.P99+1500*time.Millisecond {
			t.Errorf("removal p99 %s at min-sync 5s, %s at 1s: want the 5s run clearly slower", slow.Removal.P99, fast.Removal.P99)
		}
		if slow.Removal.P99 > 7*time.Second {
			t.Errorf("removal p99 %s at min-sync 5s: more than the 7s the setting allows", slow.Removal.P99)
		}
		if slow.Removal.P50 < 500*time.Millisecond {
			t.Errorf("removal p50 %s at min-sync 5s: a preStop of 0 would not be well below it", slow.Removal.P50)
		}
		nothingLeft(t)

		// The recommendation, applied: verify rolls the test app under
		// traffic with the recommended preStop, then with none.
		rec := int64(slow.PreStop / time.Second)
		deploy(t, "ms-rec", app{readiness: true, preStop: rec})
		rep, code, ind := runVerify(t, "ms-rec", 100, "--budget", slow.PreStop.String())
		if code != 0 || rep.Failed != 0 || ind.Failed() != 0 {
			t.Errorf("preStop %ds (recommended): exit %d, verify %d failed, independent client %d failed: want 0", rec, code, rep.Failed, ind.Failed())
		}
		deploy(t, "ms-none", app{readiness: true})
		rep, code, ind = runVerify(t, "ms-none", 100, "--budget", slow.PreStop.String())
		if code != 1 || rep.Failed == 0 || ind.Failed() == 0 {
			t.Errorf("no preStop (median removal %s): exit %d, verify %d failed, independent client %d failed: want losses", slow.Removal.P50, code, rep.Failed, ind.Failed())
		}
	})
}

// TestMeasureLeavesNothing: Ctrl-C (exit 130) removes everything measure
// made; a namespace whose LimitRange rejects its pods is named, exit 2,
// and the namespace given with --keep-namespace stays.
func TestMeasureLeavesNothing(t *testing.T) {
	t.Run("interrupt", func(t *testing.T) {
		cmd := measureCmd(kubeconfig, "-n", "ms-int", "--samples", "50")
		var out, errOut bytes.Buffer
		cmd.Stdout, cmd.Stderr = &out, &errOut
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		// Interrupt once the canaries are being deleted.
		deadline := time.Now().Add(90 * time.Second)
		for time.Now().Before(deadline) {
			l, err := clientset.CoreV1().Pods("ms-int").List(context.Background(), metav1.ListOptions{LabelSelector: measure.RoleLabel + "=canary"})
			if err == nil && len(l.Items) > 2 {
				break
			}
			time.Sleep(200 * time.Millisecond)
		}
		_ = cmd.Process.Signal(syscall.SIGINT)
		err := cmd.Wait()
		if ee, ok := err.(*exec.ExitError); !ok || ee.ExitCode() != 130 || !strings.Contains(errOut.String(), "interrupted") {
			t.Errorf("exit %v, stderr %q: want 130", err, errOut.String())
		}
		if !strings.Contains(out.String(), "incomplete run") {
			t.Errorf("no partial figures on stdout:\n%s", out.String())
		}
		nothingLeft(t)
	})
	t.Run("LimitRange", func(t *testing.T) {
		ctx := context.Background()
		ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "ms-limited"}}
		if _, err := clientset.CoreV1().Namespaces().Create(ctx, ns, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = clientset.CoreV1().Namespaces().Delete(ctx, "ms-limited", metav1.DeleteOptions{}) })
		lr := &corev1.LimitRange{ObjectMeta: metav1.ObjectMeta{Name: "big-only"}, Spec: corev1.LimitRangeSpec{Limits: []corev1.LimitRangeItem{{
			Type: corev1.LimitTypeContainer, Min: corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("500m")}}}}}
		if _, err := clientset.CoreV1().LimitRanges("ms-limited").Create(ctx, lr, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
		cmd := measureCmd(kubeconfig, "-n", "ms-limited", "--samples", "1")
		var errOut bytes.Buffer
		cmd.Stderr = &errOut
		err := cmd.Run()
		if ee, ok := err.(*exec.ExitError); !ok || ee.ExitCode() != 2 || !strings.Contains(errOut.String(), "--keep-namespace") {
			t.Errorf("an existing namespace without --keep-namespace: exit %v, stderr %q: want 2, naming --keep-namespace", err, errOut.String())
		}
		cmd = measureCmd(kubeconfig, "-n", "ms-limited", "--keep-namespace", "--samples", "1")
		errOut.Reset()
		cmd.Stderr = &errOut
		err = cmd.Run()
		if ee, ok := err.(*exec.ExitError); !ok || ee.ExitCode() != 2 || !strings.Contains(errOut.String(), "LimitRange big-only") {
			t.Errorf("exit %v, stderr %q: want 2, naming the LimitRange", err, errOut.String())
		}
		if _, err := clientset.CoreV1().Namespaces().Get(ctx, "ms-limited", metav1.GetOptions{}); apierrors.IsNotFound(err) {
			t.Error("--keep-namespace: the namespace was deleted")
		}
		nothingLeft(t)
	})
}
