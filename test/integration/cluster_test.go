//go:build integration

package integration

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/yaml"

	"github.com/rollguard/rollguard/internal/cli"
	"github.com/rollguard/rollguard/pkg/manifest"
)

func restConfig(token string) *rest.Config {
	return &rest.Config{Host: server.url, BearerToken: token, TLSClientConfig: rest.TLSClientConfig{Insecure: true}}
}

func clients(t *testing.T) (*kubernetes.Clientset, dynamic.Interface) {
	t.Helper()
	cs, err := kubernetes.NewForConfig(restConfig(adminToken))
	if err != nil {
		t.Fatal(err)
	}
	dyn, err := dynamic.NewForConfig(restConfig(adminToken))
	if err != nil {
		t.Fatal(err)
	}
	return cs, dyn
}

var resources = map[string]schema.GroupVersionResource{
	"Deployment":              {Group: "apps", Version: "v1", Resource: "deployments"},
	"StatefulSet":             {Group: "apps", Version: "v1", Resource: "statefulsets"},
	"DaemonSet":               {Group: "apps", Version: "v1", Resource: "daemonsets"},
	"ReplicaSet":              {Group: "apps", Version: "v1", Resource: "replicasets"},
	"Pod":                     {Version: "v1", Resource: "pods"},
	"Service":                 {Version: "v1", Resource: "services"},
	"PodDisruptionBudget":     {Group: "policy", Version: "v1", Resource: "poddisruptionbudgets"},
	"HorizontalPodAutoscaler": {Group: "autoscaling", Version: "v2", Resource: "horizontalpodautoscalers"},
	"Job":                     {Group: "batch", Version: "v1", Resource: "jobs"},
	"CronJob":                 {Group: "batch", Version: "v1", Resource: "cronjobs"},
}

func namespace(t *testing.T, cs *kubernetes.Clientset, name string) {
	t.Helper()
	_, err := cs.CoreV1().Namespaces().Create(context.Background(), &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name}}, metav1.CreateOptions{})
	if err != nil && !apierrors.IsAlreadyExists(err) {
		t.Fatal(err)
	}
}

// create sends every object of a manifest file that the API serves to the
// apiserver, in ns (objects that name a namespace keep theirs, unless
// dryRun, which puts everything in ns and asks for server-side validation
// only). Controlled objects (a List's pods) are left out.
func create(t *testing.T, dyn dynamic.Interface, path, ns string, dryRun bool) []error {
	t.Helper()
	res := manifest.Load([]string{path}, manifest.Options{})
	if len(res.Errors) > 0 {
		t.Fatalf("%s: %v", path, res.Errors)
	}
	var errs []error
	for _, o := range res.Objects {
		gvr, ok := resources[o.Kind]
		if !ok {
			continue // not served by a plain apiserver (Argo Rollouts)
		}
		data, err := json.Marshal(o.Value)
		if err != nil {
			t.Fatal(err)
		}
		u := &unstructured.Unstructured{}
		if err := u.UnmarshalJSON(data); err != nil {
			t.Fatal(err)
		}
		if len(u.GetOwnerReferences()) > 0 {
			continue
		}
		u.SetAPIVersion(o.APIVersion)
		u.SetKind(o.Kind)
		target := ns
		if o.Namespace != "" && !dryRun {
			target = o.Namespace
		}
		u.SetNamespace(target)
		opts := metav1.CreateOptions{}
		if dryRun {
			opts.DryRun = []string{metav1.DryRunAll}
		}
		if _, err := dyn.Resource(gvr).Namespace(target).Create(context.Background(), u, opts); err != nil {
			errs = append(errs, err)
		}
	}
	return errs
}

func rollguard(t *testing.T, args ...string) (string, string, int) {
	t.Helper()
	var out, errOut bytes.Buffer
	code := cli.Main(args, cli.Streams{In: strings.NewReader(""), Out: &out, ErrOut: &errOut})
	return out.String(), errOut.String(), code
}

type finding struct{ Rule, Kind, Namespace, Name, Container string }

func findings(t *testing.T, out string) []finding {
	t.Helper()
	var r struct {
		Findings []struct {
			RuleID    string `json:"ruleID"`
			Container string `json:"container"`
			Object    struct{ Kind, Namespace, Name string }
		} `json:"findings"`
	}
	if err := json.Unmarshal([]byte(out), &r); err != nil {
		t.Fatalf("not JSON: %v\n%s", err, out)
	}
	var fs []finding
	for _, f := range r.Findings {
		fs = append(fs, finding{f.RuleID, f.Object.Kind, f.Object.Namespace, f.Object.Name, f.Container})
	}
	sort.Slice(fs, func(i, j int) bool {
		return strings.Join([]string{fs[i].Rule, fs[i].Name, fs[i].Container}, "/") < strings.Join([]string{fs[j].Rule, fs[j].Name, fs[j].Container}, "/")
	})
	return fs
}

// TestAuditClusterMatchesFiles: objects created from manifests in a real
// apiserver get exactly the findings the same manifests get as files.
func TestAuditClusterMatchesFiles(t *testing.T) {
	cs, dyn := clients(t)
	corpus := []string{"everything-wrong.yaml", "helm-rendered.yaml", "statefulset.yaml", "daemonset-etp-local.yaml", "jobs.yaml"}
	for _, name := range corpus {
		path := filepath.Join("../../testdata/corpus", name)
		ns := "it-" + strings.TrimSuffix(name, ".yaml")
		namespace(t, cs, ns)
		// The corpus names some namespaces itself; those must exist too.
		for _, other := range []string{"shop", "data", "ingress"} {
			namespace(t, cs, other)
		}
		if errs := create(t, dyn, path, ns, false); len(errs) > 0 {
			t.Fatalf("%s: %v", name, errs)
		}
	}
	kc := kubeconfig(t, server.url, adminToken, "default")
	for _, name := range corpus {
		path := filepath.Join("../../testdata/corpus", name)
		ns := "it-" + strings.TrimSuffix(name, ".yaml")
		fileOut, _, _ := rollguard(t, "audit", "-o", "json", "-n", ns, path)
		want := findings(t, fileOut)
		// Objects that name their own namespace are audited there.
		namespaces := map[string]bool{}
		for _, f := range want {
			namespaces[f.Namespace] = true
		}
		var got []finding
		for n := range namespaces {
			out, stderr, code := rollguard(t, "audit", "--cluster", "--kubeconfig", kc, "-n", n, "-o", "json")
			if code > 1 {
				t.Fatalf("%s: exit %d: %s", name, code, stderr)
			}
			for _, f := range findings(t, out) {
				if f.Namespace == n && belongs(f, want) {
					got = append(got, f)
				}
			}
		}
		sort.Slice(got, func(i, j int) bool {
			return strings.Join([]string{got[i].Rule, got[i].Name, got[i].Container}, "/") < strings.Join([]string{got[j].Rule, got[j].Name, got[j].Container}, "/")
		})
		if len(got) != len(want) {
			t.Errorf("%s: cluster findings %v\nfile findings %v", name, got, want)
			continue
		}
		for i := range got {
			if got[i] != want[i] {
				t.Errorf("%s: cluster finding %v, file finding %v", name, got[i], want[i])
			}
		}
	}
}

// belongs keeps the cluster findings about objects of this corpus file
// (other files share the shop, data and ingress namespaces).
func belongs(f finding, want []finding) bool {
	for _, w := range want {
		if w.Kind == f.Kind && w.Name == f.Name {
			return true
		}
	}
	return false
}

func TestAuditClusterScopes(t *testing.T) {
	cs, dyn := clients(t)
	for _, ns := range []string{"scope-a", "scope-b"} {
		namespace(t, cs, ns)
		if errs := create(t, dyn, "../../pkg/rules/testdata/RG101/fires-no-prestop.yaml", ns, false); len(errs) > 0 {
			t.Fatal(errs)
		}
	}
	kc := kubeconfig(t, server.url, adminToken, "scope-a")
	out, _, _ := rollguard(t, "audit", "--cluster", "--kubeconfig", kc, "-o", "json")
	for _, f := range findings(t, out) {
		if f.Namespace != "scope-a" {
			t.Errorf("the context's namespace is scope-a, got a finding in %s", f.Namespace)
		}
	}
	out, _, _ = rollguard(t, "audit", "--cluster", "--kubeconfig", kc, "-A", "-o", "json")
	seen := map[string]bool{}
	for _, f := range findings(t, out) {
		seen[f.Namespace] = true
	}
	if !seen["scope-a"] || !seen["scope-b"] {
		t.Errorf("-A: namespaces %v", seen)
	}
	out, _, code := rollguard(t, "audit", "--cluster", "--kubeconfig", kc, "-l", "app=nothing-has-this", "-o", "json")
	for _, f := range findings(t, out) {
		if f.Kind == "Deployment" {
			t.Errorf("-l matched no workload, yet %v", f)
		}
	}
	if code > 1 {
		t.Errorf("exit %d", code)
	}
}

// TestAuditClusterRBAC: a user without rights gets a clear error naming
// the missing permission; bound to deploy/rbac/rollguard-audit.yaml, the
// same user can audit every namespace.
func TestAuditClusterRBAC(t *testing.T) {
	cs, _ := clients(t)
	kc := kubeconfig(t, server.url, readerToken, "default")
	_, stderr, code := rollguard(t, "audit", "--cluster", "--kubeconfig", kc, "-A")
	if code != cli.ExitUsage || !strings.Contains(stderr, "forbidden") || !strings.Contains(stderr, "deploy/rbac/rollguard-audit.yaml") {
		t.Fatalf("without rights: exit %d, stderr %q", code, stderr)
	}
	data, err := os.ReadFile("../../deploy/rbac/rollguard-audit.yaml")
	if err != nil {
		t.Fatal(err)
	}
	var role rbacv1.ClusterRole
	if err := yaml.UnmarshalStrict(data, &role); err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if _, err := cs.RbacV1().ClusterRoles().Create(ctx, &role, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	binding := &rbacv1.ClusterRoleBinding{ObjectMeta: metav1.ObjectMeta{Name: "rollguard-audit-reader"},
		RoleRef:  rbacv1.RoleRef{APIGroup: "rbac.authorization.k8s.io", Kind: "ClusterRole", Name: role.Name},
		Subjects: []rbacv1.Subject{{APIGroup: "rbac.authorization.k8s.io", Kind: "User", Name: "reader"}}}
	if _, err := cs.RbacV1().ClusterRoleBindings().Create(ctx, binding, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second) // RBAC caches take a moment
	for {
		_, stderr, code = rollguard(t, "audit", "--cluster", "--kubeconfig", kc, "-A")
		if code <= 1 || time.Now().After(deadline) {
			break
		}
		time.Sleep(200 * time.Millisecond)
	}
	if code > 1 {
		t.Errorf("with the audit ClusterRole: exit %d, stderr %q", code, stderr)
	}
}

func TestAuditClusterUnreachable(t *testing.T) {
	ports, err := freePorts(1)
	if err != nil {
		t.Fatal(err)
	}
	kc := kubeconfig(t, "https://127.0.0.1:"+itoa(ports[0]), adminToken, "default")
	start := time.Now()
	_, stderr, code := rollguard(t, "audit", "--cluster", "--kubeconfig", kc, "--request-timeout", "5s")
	if code != cli.ExitUsage || !strings.Contains(stderr, "cannot reach the cluster at https://127.0.0.1:") || !strings.Contains(stderr, `context "it"`) {
		t.Errorf("exit %d, stderr %q", code, stderr)
	}
	if took := time.Since(start); took > 10*time.Second {
		t.Errorf("took %s, more than the 5s timeout allows", took)
	}
	_, stderr, code = rollguard(t, "audit", "--cluster", "--kubeconfig", "/nonexistent/kubeconfig")
	if code != cli.ExitUsage || !strings.Contains(stderr, "kubeconfig") {
		t.Errorf("missing kubeconfig: exit %d, stderr %q", code, stderr)
	}
}

func itoa(i int) string { return strconv.Itoa(i) }

// TestFixedManifestsPassServerSideValidation: every manifest rollguard fix
// produced for the corpus is accepted by a real apiserver's dry run; and
// the dry run is real: a native preStop sleep longer than the grace period,
// which RG103 says the API rejects, is rejected.
func TestFixedManifestsPassServerSideValidation(t *testing.T) {
	cs, dyn := clients(t)
	fixed, err := filepath.Glob("../../pkg/fix/testdata/golden/*.fixed.yaml")
	if err != nil || len(fixed) < 8 {
		t.Fatalf("%d fixed manifests: %v", len(fixed), err)
	}
	for i, path := range fixed {
		ns := "dry-run-" + strconv.Itoa(i)
		namespace(t, cs, ns)
		if errs := create(t, dyn, path, ns, true); len(errs) > 0 {
			t.Errorf("%s: %v", filepath.Base(path), errs)
		}
	}
	namespace(t, cs, "dry-run")
	errs := create(t, dyn, "../../pkg/rules/testdata/RG103/fires-native-sleep-over-grace.yaml", "dry-run", true)
	if len(errs) != 1 || !strings.Contains(errs[0].Error(), "terminationGracePeriodSeconds") {
		t.Errorf("a native sleep over the grace period: want the API to reject it, got %v", errs)
	}
}

// TestAuditClusterSelectorScope: with -l, Services and budgets are judged
// against the selected workloads only; another team's Service that selects
// nothing yet is not this audit's finding. Without -l it is.
func TestAuditClusterSelectorScope(t *testing.T) {
	cs, dyn := clients(t)
	namespace(t, cs, "two-teams")
	if errs := create(t, dyn, "testdata/two-teams.yaml", "two-teams", false); len(errs) > 0 {
		t.Fatal(errs)
	}
	kc := kubeconfig(t, server.url, adminToken, "two-teams")
	count := func(args ...string) map[string]int {
		out, stderr, code := rollguard(t, append([]string{"audit", "--cluster", "--kubeconfig", kc, "-o", "json"}, args...)...)
		if code > 1 {
			t.Fatalf("%v: exit %d: %s", args, code, stderr)
		}
		n := map[string]int{}
		for _, f := range findings(t, out) {
			n[f.Rule+" "+f.Kind+"/"+f.Name]++
		}
		return n
	}
	whole := count()
	if whole["RG501 Service/b"] != 1 || whole["RG403 PodDisruptionBudget/b"] != 1 {
		t.Errorf("the whole namespace: want RG501 on Service b and RG403 on budget b, got %v", whole)
	}
	scoped := count("-l", "team=a")
	if scoped["RG501 Service/b"] != 0 || scoped["RG403 PodDisruptionBudget/b"] != 0 {
		t.Errorf("-l team=a: team b's Service and budget were judged: %v", scoped)
	}
	if scoped["RG101 Deployment/a"] != 1 {
		t.Errorf("-l team=a: want team a's own finding RG101, got %v", scoped)
	}
}
