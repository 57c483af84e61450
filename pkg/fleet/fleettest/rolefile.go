// Package fleettest holds test helpers for commands built on fleet: it
// holds a command's role file and its Permissions equal.
package fleettest

import (
	"bufio"
	"bytes"
	"io"
	"maps"
	"os"
	"slices"
	"strings"
	"testing"

	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"sigs.k8s.io/yaml"

	"github.com/rollguard/rollguard/pkg/fleet"
)

// Key names a permission with its scope, for comparing sets.
func Key(p fleet.Permission) string { return p.Name("NS") }

// RoleFileRoles decodes the ClusterRoles of a role file, by name. The file
// must hold ClusterRoles only (bindings are commented-out examples).
func RoleFileRoles(t testing.TB, path string) map[string]rbacv1.ClusterRole {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	roles := map[string]rbacv1.ClusterRole{}
	r := utilyaml.NewYAMLReader(bufio.NewReader(bytes.NewReader(data)))
	for {
		doc, err := r.Read()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatalf("%s: %v", path, err)
		}
		var meta metav1.TypeMeta
		if err := yaml.Unmarshal(doc, &meta); err != nil {
			t.Fatalf("%s: %v", path, err)
		}
		if meta.Kind == "" {
			continue // comments only
		}
		if meta.Kind != "ClusterRole" {
			t.Fatalf("%s: a %s; the file should hold ClusterRoles only (its bindings are commented-out examples)", path, meta.Kind)
		}
		var role rbacv1.ClusterRole
		if err := yaml.UnmarshalStrict(doc, &role); err != nil {
			t.Fatalf("%s: %v", path, err)
		}
		roles[role.Name] = role
	}
	return roles
}

// MatchRoleFile checks that every rule of a role file's ClusterRoles
// (scope: role name -> cluster-wide) is an entry of perms with the right
// scope, and every entry is granted by a rule, in the same order; that no
// rule is wider than its entries (wildcards, resource names, non-resource
// URLs); and that each entry says what it is for.
func MatchRoleFile(t testing.TB, path string, scope map[string]bool, order []string, perms []fleet.Permission) {
	t.Helper()
	roles := RoleFileRoles(t, path)
	if len(roles) != len(scope) {
		t.Errorf("%s holds ClusterRoles %v, want exactly %v", path, slices.Sorted(maps.Keys(roles)), slices.Sorted(maps.Keys(scope)))
	}
	var fromFile []string
	for _, name := range order {
		role, ok := roles[name]
		if !ok {
			t.Errorf("%s: no ClusterRole %s", path, name)
			continue
		}
		if role.AggregationRule != nil {
			t.Errorf("%s: %s aggregates other roles", path, name)
		}
		for i, rule := range role.Rules {
			if len(rule.ResourceNames) > 0 || len(rule.NonResourceURLs) > 0 {
				t.Errorf("%s: %s rule %d names resources or URLs; the entries are whole resources", path, name, i)
			}
			for _, g := range rule.APIGroups {
				for _, r := range rule.Resources {
					for _, v := range rule.Verbs {
						if g == "*" || r == "*" || v == "*" {
							t.Errorf("%s: %s rule %d has a wildcard", path, name, i)
							continue
						}
						res, sub, _ := strings.Cut(r, "/")
						fromFile = append(fromFile, Key(fleet.Permission{Group: g, Resource: res, Subresource: sub, Verb: v, Cluster: scope[name]}))
					}
				}
			}
		}
	}
	var fromCode []string
	seen := map[string]bool{}
	for _, p := range perms {
		k := Key(p)
		if seen[k] {
			t.Errorf("Permissions lists %q twice", k)
		}
		seen[k] = true
		if p.For == "" {
			t.Errorf("Permissions: %q does not say what it is for", k)
		}
		fromCode = append(fromCode, k)
	}
	for _, k := range fromFile {
		if !slices.Contains(fromCode, k) {
			t.Errorf("%s grants %q, which Permissions does not list", path, k)
		}
	}
	for _, k := range fromCode {
		if !slices.Contains(fromFile, k) {
			t.Errorf("Permissions lists %q, which %s does not grant", k, path)
		}
	}
	if !t.Failed() && !slices.Equal(fromFile, fromCode) {
		t.Errorf("Permissions is not in the order of %s:\nfile: %q\ncode: %q", path, fromFile, fromCode)
	}
}
