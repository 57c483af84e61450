//go:build e2e

// Package e2e holds rollguard's end-to-end tier: a real two-node cluster
// (hack/cluster) with kubelet, containerd and kube-proxy, rollouts under
// traffic, and the figures that lab and verify are held to. It needs root.
//
//	go test -tags e2e -timeout 30m ./test/e2e/
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
	"runtime"
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"

	"github.com/rollguard/rollguard/pkg/netns"
	"github.com/rollguard/rollguard/pkg/traffic"
)

var (
	repo       string
	kubeconfig string
	clientset  *kubernetes.Clientset
)

// netns.Do's locked threads must never be the process's main thread,
// whose namespace is the one `ip netns pids` and /proc/PID/ns/net report:
// lock the main goroutine to it during initialisation.
func init() { runtime.LockOSThread() }

func TestMain(m *testing.M) {
	var err error
	if repo, err = filepath.Abs("../.."); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	if os.Geteuid() != 0 {
		fmt.Fprintln(os.Stderr, "e2e: needs root (it runs a cluster in network namespaces)")
		os.Exit(1)
	}
	out, err := cluster("up", "--proxy-mode", "nftables", "--min-sync", "1s")
	if err != nil {
		fmt.Fprintf(os.Stderr, "e2e: hack/cluster up: %v\n%s\n", err, out)
		cluster("down")
		os.Exit(1)
	}
	kubeconfig = strings.TrimPrefix(strings.TrimSpace(lastLine(out)), "KUBECONFIG=")
	code := run(m)
	// The last check: down leaves nothing behind.
	if out, err := cluster("down"); err != nil {
		fmt.Fprintf(os.Stderr, "e2e: hack/cluster down: %v\n%s\n", err, out)
		code = 1
	}
	if left := leftovers(); left != "" {
		fmt.Fprintf(os.Stderr, "e2e: hack/cluster down left behind:\n%s\n", left)
		code = 1
	}
	os.Exit(code)
}

func run(m *testing.M) int {
	cfg, err := clientcmd.BuildConfigFromFlags("", kubeconfig)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	cfg.Dial = netns.Dialer("rgnode1") // the API server is only reachable inside the nodes' network
	// Bursts of pod creations (the webhook tests) need more than
	// client-go's default 5 requests a second.
	cfg.QPS, cfg.Burst = 100, 200
	if clientset, err = kubernetes.NewForConfig(cfg); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	code := m.Run()
	if code != 0 {
		fmt.Fprintf(os.Stderr, "e2e: logs of the cluster's daemons are in %s/.cache/cluster/logs\n", repo)
	}
	return code
}

func cluster(args ...string) (string, error) {
	cmd := exec.Command(filepath.Join(repo, "hack/cluster"), args...)
	cmd.Dir = repo
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	err := cmd.Run()
	return out.String(), err
}

func lastLine(s string) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	return lines[len(lines)-1]
}

// leftovers lists what a cluster run could leave: processes started from
// the cluster's folder, node namespaces, mounts under the folder, cgroups,
// kube-proxy's nftables tables.
func leftovers() string {
	var b strings.Builder
	root := filepath.Join(repo, ".cache/cluster")
	procs, _ := filepath.Glob("/proc/[0-9]*/cmdline")
	for _, p := range procs {
		data, err := os.ReadFile(p)
		if err != nil {
			continue
		}
		cmd := strings.ReplaceAll(string(data), "\x00", " ")
		if strings.Contains(cmd, root) || strings.Contains(cmd, ".cache/kube/") {
			fmt.Fprintf(&b, "process %s: %s\n", filepath.Base(filepath.Dir(p)), cmd)
		}
	}
	for _, n := range []string{"rgnode1", "rgnode2"} {
		if _, err := os.Stat("/run/netns/" + n); err == nil {
			fmt.Fprintf(&b, "network namespace %s\n", n)
		}
		if dirs, _ := filepath.Glob("/sys/fs/cgroup/*/" + n); len(dirs) > 0 {
			fmt.Fprintf(&b, "cgroups %v\n", dirs)
		}
	}
	// kube-proxy's tables live in the node namespaces and go with them;
	// none may ever appear in the host's.
	if out, err := exec.Command("nft", "list", "tables").Output(); err == nil && strings.Contains(string(out), "kube-proxy") {
		fmt.Fprintf(&b, "nftables tables in the host namespace:\n%s", out)
	}
	if mounts, err := os.ReadFile("/proc/self/mountinfo"); err == nil {
		for _, line := range strings.Split(string(mounts), "\n") {
			if strings.Contains(line, root+"/") {
				fmt.Fprintf(&b, "mount %s\n", line)
			}
		}
	}
	return b.String()
}

// app describes the test app's Deployment.
type app struct {
	preStop   int64 // seconds of native preStop sleep; 0 for none
	readiness bool
	// serviceReady, when set, is called between creating the Service and
	// the Deployment (the order of a manifest that lists the Service
	// first), to wait until whoever must see the Service has.
	serviceReady func(t *testing.T)
}

func deploy(t *testing.T, name string, a app) { t.Helper(); deployIn(t, "default", name, a) }

// deployIn is deploy in a namespace.
func deployIn(t *testing.T, ns, name string, a app) {
	t.Helper()
	ctx := context.Background()
	labels := map[string]string{"app": name}
	c := corev1.Container{
		Name: "web", Image: "localhost/rollguard:e2e", ImagePullPolicy: corev1.PullNever,
		Args:  []string{"serve", "--listen", ":8080", "--listen-delay", "2s", "--shutdown-delay", "0s", "--drain", "1s"},
		Ports: []corev1.ContainerPort{{Name: "http", ContainerPort: 8080}},
	}
	if a.readiness {
		c.ReadinessProbe = &corev1.Probe{ProbeHandler: corev1.ProbeHandler{HTTPGet: &corev1.HTTPGetAction{Path: "/healthz", Port: intstr.FromInt32(8080)}},
			PeriodSeconds: 1, FailureThreshold: 1}
	}
	if a.preStop > 0 {
		c.Lifecycle = &corev1.Lifecycle{PreStop: &corev1.LifecycleHandler{Sleep: &corev1.SleepAction{Seconds: a.preStop}}}
	}
	replicas := int32(2)
	d := &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns},
		Spec: appsv1.DeploymentSpec{
			Replicas: &replicas,
			Selector: &metav1.LabelSelector{MatchLabels: labels},
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: labels},
				Spec: corev1.PodSpec{
					NodeSelector: map[string]string{"kubernetes.io/hostname": "rgnode1"},
					Containers:   []corev1.Container{c},
				},
			},
		},
	}
	svc := &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns},
		Spec: corev1.ServiceSpec{Selector: labels,
			Ports: []corev1.ServicePort{{Port: 80, TargetPort: intstr.FromInt32(8080)}}},
	}
	if _, err := clientset.CoreV1().Services(ns).Create(ctx, svc, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	if a.serviceReady != nil {
		a.serviceReady(t)
	}
	if _, err := clientset.AppsV1().Deployments(ns).Create(ctx, d, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = clientset.AppsV1().Deployments(ns).Delete(ctx, name, metav1.DeleteOptions{})
		_ = clientset.CoreV1().Services(ns).Delete(ctx, name, metav1.DeleteOptions{})
	})
	waitRolledOutIn(t, ns, name, 90*time.Second)
}

func waitRolledOut(t *testing.T, name string, timeout time.Duration) {
	t.Helper()
	waitRolledOutIn(t, "default", name, timeout)
}

func waitRolledOutIn(t *testing.T, ns, name string, timeout time.Duration) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) {
		d, err := clientset.AppsV1().Deployments(ns).Get(context.Background(), name, metav1.GetOptions{})
		if err == nil && d.Status.ObservedGeneration >= d.Generation && d.Status.UpdatedReplicas == *d.Spec.Replicas &&
			d.Status.AvailableReplicas == *d.Spec.Replicas && d.Status.Replicas == *d.Spec.Replicas {
			return
		}
		time.Sleep(300 * time.Millisecond)
	}
	t.Fatalf("deployment %s did not roll out within %s", name, timeout)
}

// rollUnderTraffic sends 20 new connections per second for 30s from node 2
// to the Service, restarts the rollout 3s in, and returns the summary.
func rollUnderTraffic(t *testing.T, name string) *traffic.Summary {
	t.Helper()
	ctx := context.Background()
	svc, err := clientset.CoreV1().Services("default").Get(ctx, name, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	target := svc.Spec.ClusterIP + ":80"
	// A failed connection leaves an UNREPLIED conntrack entry pointing at a
	// dead pod for 120s; a reused source port would then fail even with
	// every fix in place. Start each run clean.
	if out, err := exec.Command("nsenter", "--net=/run/netns/rgnode2", "conntrack", "-F").CombinedOutput(); err != nil {
		t.Fatalf("conntrack -F: %v %s", err, out)
	}
	dial := netns.Dialer("rgnode2")
	sum := traffic.NewSummary()
	var fails traffic.Failures
	done := make(chan error, 1)
	go func() {
		done <- traffic.Run(ctx, traffic.Config{Rate: 20, Duration: 30 * time.Second, Mode: traffic.ModeHTTP, Host: name,
			ConnectTimeout: 4 * time.Second, ResponseTimeout: 4 * time.Second,
			Dial: func(ctx context.Context, _ int, _ int64) (net.Conn, traffic.Pick, error) {
				c, err := dial(ctx, "tcp", target)
				return c, traffic.Pick{}, err
			}}, sum, &fails)
	}()
	time.Sleep(3 * time.Second)
	patch := fmt.Sprintf(`{"spec":{"template":{"metadata":{"annotations":{"rollguard.io/restartedAt":%q}}}}}`, time.Now().Format(time.RFC3339Nano))
	if _, err := clientset.AppsV1().Deployments("default").Patch(ctx, name, types.StrategicMergePatchType, []byte(patch), metav1.PatchOptions{}); err != nil {
		t.Fatal(err)
	}
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	waitRolledOut(t, name, 90*time.Second)
	t.Logf("%s: %d requests, %d failed %v", name, sum.Total, sum.Failed(), sum.ByClass)
	for i, f := range fails.Records {
		if i == 5 {
			break
		}
		t.Logf("  %s: %s", f.Class, f.Err)
	}
	return sum
}

// TestRollouts reproduces the two cases on the real cluster and their fix:
// the ground truth that lab and verify are held to.
func TestRollouts(t *testing.T) {
	t.Run("no probe, no preStop, min-sync 1s", func(t *testing.T) {
		deploy(t, "web-bare", app{})
		auditFinds(t, "web-bare", "RG101", "RG201")
		if s := rollUnderTraffic(t, "web-bare"); s.Failed() == 0 {
			t.Errorf("no request failed: the rollout should lose connections")
		}
	})
	t.Run("readiness and preStop 10s, min-sync 1s", func(t *testing.T) {
		deploy(t, "web-fixed", app{readiness: true, preStop: 10})
		if s := rollUnderTraffic(t, "web-fixed"); s.Failed() != 0 {
			t.Errorf("%d requests failed with both fixes in place", s.Failed())
		}
	})
	t.Run("readiness and preStop 1s, min-sync 5s", func(t *testing.T) {
		if out, err := cluster("proxy", "--proxy-mode", "nftables", "--min-sync", "5s"); err != nil {
			t.Fatalf("restarting kube-proxy: %v\n%s", err, out)
		}
		t.Cleanup(func() { _, _ = cluster("proxy", "--proxy-mode", "nftables", "--min-sync", "1s") })
		deploy(t, "web-short", app{readiness: true, preStop: 1})
		if s := rollUnderTraffic(t, "web-short"); s.Failed() == 0 {
			t.Errorf("no request failed: a 1s preStop is shorter than a 5s min-sync")
		}
	})
	// kube-proxy in iptables mode (it removes the nftables table when it
	// starts): the Service still routes, and both fixes still lose nothing.
	t.Run("iptables, readiness and preStop 10s, min-sync 1s", func(t *testing.T) {
		if out, err := cluster("proxy", "--proxy-mode", "iptables", "--min-sync", "1s"); err != nil {
			t.Fatalf("restarting kube-proxy: %v\n%s", err, out)
		}
		t.Cleanup(func() { _, _ = cluster("proxy", "--proxy-mode", "nftables", "--min-sync", "1s") })
		deploy(t, "web-iptables", app{readiness: true, preStop: 10})
		if s := rollUnderTraffic(t, "web-iptables"); s.Failed() != 0 || s.ByClass[traffic.OK] != 600 {
			t.Errorf("%d of %d requests failed with both fixes in place", s.Failed(), s.Total)
		}
	})
}

// auditFinds runs `rollguard audit --cluster` against the running
// Deployment, as a user would: the whole process inside node 1's network
// namespace (nsenter), the only place the API server can be reached.
func auditFinds(t *testing.T, name string, rules ...string) {
	t.Helper()
	var out, errOut bytes.Buffer
	cmd := exec.Command("nsenter", "--net=/run/netns/rgnode1", filepath.Join(repo, ".cache/cluster/bin/rollguard"),
		"audit", "--cluster", "--kubeconfig", kubeconfig, "-o", "json")
	cmd.Stdout, cmd.Stderr = &out, &errOut
	err := cmd.Run()
	if ee, ok := err.(*exec.ExitError); err != nil && (!ok || ee.ExitCode() > 1) {
		t.Fatalf("audit --cluster: %v, %s", err, errOut.String())
	}
	var r struct {
		Findings []struct {
			RuleID string `json:"ruleID"`
			Object struct{ Name string }
		} `json:"findings"`
	}
	if err := json.Unmarshal(out.Bytes(), &r); err != nil {
		t.Fatal(err)
	}
	got := map[string]bool{}
	for _, f := range r.Findings {
		if f.Object.Name == name {
			got[f.RuleID] = true
		}
	}
	for _, rule := range rules {
		if !got[rule] {
			t.Errorf("audit --cluster did not report %s on %s (got %v)", rule, name, got)
		}
	}
}
