//go:build integration

package integration

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"io"
	"os"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	authenticationv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/yaml"

	"github.com/rollguard/rollguard/pkg/verify"
)

// verifyRoles holds what deploy/rbac/rollguard-verify.yaml says: its
// ClusterRoles, as applied, and the example bindings it carries
// commented out.
type verifyRoles struct {
	roles    []rbacv1.ClusterRole
	examples [][]byte // one YAML document each
}

// examplesMarker starts the commented-out examples; they begin at the
// first "# ---" after it.
const examplesMarker = "# EXAMPLES TO EDIT"

func readVerifyRoles(t *testing.T) verifyRoles {
	t.Helper()
	path := "../../" + verify.RoleFile
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var vr verifyRoles
	for _, doc := range yamlDocs(t, path, data) {
		var role rbacv1.ClusterRole
		if err := yaml.UnmarshalStrict(doc, &role); err != nil || role.Kind != "ClusterRole" {
			t.Fatalf("%s: want ClusterRoles only, got a %q (%v)", path, role.Kind, err)
		}
		vr.roles = append(vr.roles, role)
	}
	// Uncomment the examples: "# x" is "x", "#" an empty line.
	lines := strings.Split(string(data), "\n")
	start := slices.IndexFunc(lines, func(l string) bool { return strings.HasPrefix(l, examplesMarker) })
	if start < 0 {
		t.Fatalf("%s: no line %q", path, examplesMarker)
	}
	first := slices.Index(lines[start:], "# ---")
	if first < 0 {
		t.Fatalf("%s: no example after %q", path, examplesMarker)
	}
	var text strings.Builder
	for i, l := range lines[start+first:] {
		switch {
		case l == "#" || l == "":
			text.WriteString("\n")
		case strings.HasPrefix(l, "# "):
			text.WriteString(l[2:] + "\n")
		default:
			t.Fatalf("%s:%d: %q in the examples is not commented out", path, start+first+i+1, l)
		}
	}
	vr.examples = yamlDocs(t, path+" (examples)", []byte(text.String()))
	return vr
}

// yamlDocs splits YAML into its documents, leaving out those that hold
// comments only.
func yamlDocs(t *testing.T, path string, data []byte) [][]byte {
	t.Helper()
	var docs [][]byte
	r := utilyaml.NewYAMLReader(bufio.NewReader(bytes.NewReader(data)))
	for {
		doc, err := r.Read()
		if err == io.EOF {
			return docs
		}
		if err != nil {
			t.Fatalf("%s: %v", path, err)
		}
		var meta metav1.TypeMeta
		if err := yaml.Unmarshal(doc, &meta); err != nil {
			t.Fatalf("%s: %v", path, err)
		}
		if meta.Kind != "" {
			docs = append(docs, doc)
		}
	}
}

// binding is one subject's example: a RoleBinding for the namespace, a
// ClusterRoleBinding for nodes and, for a ServiceAccount, the account.
type binding struct {
	account     *corev1.ServiceAccount
	namespaced  *rbacv1.RoleBinding
	clusterWide *rbacv1.ClusterRoleBinding
}

// example returns the file's example for a subject kind (User or
// ServiceAccount), moved to namespace ns and, for a User, to user: only
// names, namespaces and subjects change.
func (vr verifyRoles) example(t *testing.T, kind, ns, user string) binding {
	t.Helper()
	var b binding
	var accounts []*corev1.ServiceAccount
	for _, doc := range vr.examples {
		var meta metav1.TypeMeta
		_ = yaml.Unmarshal(doc, &meta)
		var subjects []rbacv1.Subject
		switch meta.Kind {
		case "ServiceAccount":
			var sa corev1.ServiceAccount
			if err := yaml.UnmarshalStrict(doc, &sa); err != nil {
				t.Fatal(err)
			}
			accounts = append(accounts, &sa)
			continue
		case "RoleBinding":
			var rb rbacv1.RoleBinding
			if err := yaml.UnmarshalStrict(doc, &rb); err != nil {
				t.Fatal(err)
			}
			subjects = rb.Subjects
			if len(subjects) == 1 && subjects[0].Kind == kind {
				if b.namespaced != nil {
					t.Fatalf("two example RoleBindings for a %s", kind)
				}
				b.namespaced = &rb
			}
		case "ClusterRoleBinding":
			var crb rbacv1.ClusterRoleBinding
			if err := yaml.UnmarshalStrict(doc, &crb); err != nil {
				t.Fatal(err)
			}
			subjects = crb.Subjects
			if len(subjects) == 1 && subjects[0].Kind == kind {
				if b.clusterWide != nil {
					t.Fatalf("two example ClusterRoleBindings for a %s", kind)
				}
				b.clusterWide = &crb
			}
		default:
			t.Fatalf("an example %s; want ServiceAccounts and bindings", meta.Kind)
		}
		if len(subjects) != 1 {
			t.Fatalf("an example %s with %d subjects, want 1", meta.Kind, len(subjects))
		}
	}
	if b.namespaced == nil || b.clusterWide == nil {
		t.Fatalf("%s: want an example RoleBinding and an example ClusterRoleBinding for a %s", verify.RoleFile, kind)
	}
	// The examples bind the file's roles, each with the binding its scope
	// needs.
	for _, ref := range []struct {
		ref  rbacv1.RoleRef
		want string
	}{{b.namespaced.RoleRef, "rollguard-verify"}, {b.clusterWide.RoleRef, "rollguard-verify-nodes"}} {
		if ref.ref != (rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: ref.want}) {
			t.Errorf("an example binding for a %s refers to %+v, want ClusterRole %s", kind, ref.ref, ref.want)
		}
	}
	rs, cs := &b.namespaced.Subjects[0], &b.clusterWide.Subjects[0]
	if !reflect.DeepEqual(*rs, *cs) {
		t.Errorf("the example bindings for a %s name different subjects: %+v and %+v", kind, *rs, *cs)
	}
	if kind == rbacv1.ServiceAccountKind {
		for _, sa := range accounts {
			if sa.Name == rs.Name && sa.Namespace == rs.Namespace {
				b.account = sa
			}
		}
		if b.account == nil {
			t.Fatalf("the example bindings name ServiceAccount %s/%s, which the examples do not create", rs.Namespace, rs.Name)
		}
		b.account.Namespace = ns
		rs.Namespace, cs.Namespace = ns, ns
	} else {
		rs.Name, cs.Name = user, user
	}
	b.namespaced.Namespace = ns
	b.clusterWide.Name += "-" + ns // cluster-scoped: one per test
	return b
}

// applyRoles creates the file's ClusterRoles as they are, or checks that
// an earlier test created exactly them.
func applyRoles(t *testing.T, cs kubernetes.Interface, roles []rbacv1.ClusterRole) {
	t.Helper()
	ctx := context.Background()
	for _, role := range roles {
		_, err := cs.RbacV1().ClusterRoles().Create(ctx, &role, metav1.CreateOptions{})
		if apierrors.IsAlreadyExists(err) {
			var got *rbacv1.ClusterRole
			if got, err = cs.RbacV1().ClusterRoles().Get(ctx, role.Name, metav1.GetOptions{}); err == nil && !reflect.DeepEqual(got.Rules, role.Rules) {
				t.Fatalf("ClusterRole %s exists with other rules: %+v", role.Name, got.Rules)
			}
		}
		if err != nil {
			t.Fatal(err)
		}
	}
}

func (b binding) create(t *testing.T, cs kubernetes.Interface) {
	t.Helper()
	ctx := context.Background()
	if _, err := cs.RbacV1().RoleBindings(b.namespaced.Namespace).Create(ctx, b.namespaced, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := cs.RbacV1().ClusterRoleBindings().Create(ctx, b.clusterWide, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = cs.RbacV1().ClusterRoleBindings().Delete(context.Background(), b.clusterWide.Name, metav1.DeleteOptions{})
	})
}

// fastConfig lifts client-go's default rate limit (5 a second), which
// would spread Preflight's reviews over seconds.
func fastConfig(cfg *rest.Config) *rest.Config {
	cfg.QPS, cfg.Burst = 200, 200
	return cfg
}

func clientFor(t *testing.T, cfg *rest.Config) kubernetes.Interface {
	t.Helper()
	c, err := kubernetes.NewForConfig(fastConfig(cfg))
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// permissionNames names verify's permissions in ns, the namespaced ones,
// the cluster-wide ones, or both.
func permissionNames(ns string, namespaced, cluster bool) []string {
	var names []string
	for _, p := range verify.Permissions() {
		if p.Cluster && cluster || !p.Cluster && namespaced {
			names = append(names, p.Name(ns))
		}
	}
	return names
}

// preflightUntil runs Preflight until the permissions it finds missing
// are want (none: it passes), since RBAC's caches take a moment to see a
// binding change, and returns its error.
func preflightUntil(t *testing.T, c kubernetes.Interface, ns string, want []string) error {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for {
		err := verify.Preflight(context.Background(), c, ns)
		var got []string
		var pe *verify.PermissionError
		switch {
		case errors.As(err, &pe):
			for _, p := range pe.Missing {
				got = append(got, p.Name(pe.Namespace))
			}
			var ie *verify.InputError
			if !errors.As(err, &ie) {
				t.Fatalf("missing permissions are not an *InputError: %T", err)
			}
		case err != nil:
			t.Fatalf("Preflight in %s: an API error: %v", ns, err)
		}
		if slices.Equal(got, want) {
			return err
		}
		if time.Now().After(deadline) {
			t.Fatalf("Preflight in %s: missing %q\nwant %q", ns, got, want)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

func mustSay(t *testing.T, err error, says ...string) {
	t.Helper()
	for _, s := range says {
		if !strings.Contains(err.Error(), s) {
			t.Errorf("error %q does not say %q", err, s)
		}
	}
}

// TestVerifyRBACUser: a user with no rights lacks every permission; bound
// by the file's own roles with its example bindings, Preflight passes in
// that namespace and only there; with the RoleBinding removed, the
// namespaced permissions are missing and named as kubectl names them.
func TestVerifyRBACUser(t *testing.T) {
	admin, _ := clients(t)
	ns, other := "verify-rbac-user", "verify-rbac-user-other"
	namespace(t, admin, ns)
	namespace(t, admin, other)
	vr := readVerifyRoles(t)
	applyRoles(t, admin, vr.roles)
	const user = "verify-rbac@example.com"
	cfg := restConfig(adminToken)
	cfg.Impersonate = rest.ImpersonationConfig{UserName: user}
	c := clientFor(t, cfg)

	err := preflightUntil(t, c, ns, permissionNames(ns, true, true))
	mustSay(t, err, "\n  create pods/proxy in namespace "+ns+"\n", "\n  list nodes (cluster-wide)\n",
		"bind the roles in "+verify.RoleFile+" (see docs/verify.md)")

	b := vr.example(t, rbacv1.UserKind, ns, user)
	b.create(t, admin)
	preflightUntil(t, c, ns, nil)
	// A RoleBinding grants one namespace.
	preflightUntil(t, c, other, permissionNames(other, true, false))

	ctx := context.Background()
	if err := admin.RbacV1().RoleBindings(ns).Delete(ctx, b.namespaced.Name, metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	err = preflightUntil(t, c, ns, permissionNames(ns, true, false))
	mustSay(t, err, "\n  create pods/proxy in namespace "+ns+"\n", "\n  patch deployments.apps in namespace "+ns+"\n", verify.RoleFile)
	if strings.Contains(err.Error(), "nodes") {
		t.Errorf("nodes are still granted, yet: %v", err)
	}
	if err := admin.RbacV1().ClusterRoleBindings().Delete(ctx, b.clusterWide.Name, metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	preflightUntil(t, c, ns, permissionNames(ns, true, true))
}

// TestVerifyRBACServiceAccount: the ServiceAccount example (a CI job's, or
// an Argo Rollouts analysis Job's), with a real token of that account.
func TestVerifyRBACServiceAccount(t *testing.T) {
	admin, _ := clients(t)
	ns := "verify-rbac-sa"
	namespace(t, admin, ns)
	vr := readVerifyRoles(t)
	applyRoles(t, admin, vr.roles)
	b := vr.example(t, rbacv1.ServiceAccountKind, ns, "")
	ctx := context.Background()
	if _, err := admin.CoreV1().ServiceAccounts(ns).Create(ctx, b.account, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	tr, err := admin.CoreV1().ServiceAccounts(ns).CreateToken(ctx, b.account.Name, &authenticationv1.TokenRequest{}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	c := clientFor(t, restConfig(tr.Status.Token))

	preflightUntil(t, c, ns, permissionNames(ns, true, true))
	b.create(t, admin)
	preflightUntil(t, c, ns, nil)
	if err := admin.RbacV1().ClusterRoleBindings().Delete(ctx, b.clusterWide.Name, metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	err = preflightUntil(t, c, ns, permissionNames(ns, false, true))
	mustSay(t, err, "verify lacks 1 permission:\n  list nodes (cluster-wide)\n")
}
