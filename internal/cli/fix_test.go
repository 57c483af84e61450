package cli_test

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/rollguard/rollguard/internal/cli"
)

func copyFixture(t *testing.T, dir, src string) string {
	t.Helper()
	data, err := os.ReadFile(src)
	if err != nil {
		t.Fatal(err)
	}
	dst := filepath.Join(dir, filepath.Base(src))
	if err := os.WriteFile(dst, data, 0o640); err != nil {
		t.Fatal(err)
	}
	return dst
}

func TestFixWriteIsAtomicAndIdempotent(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	f := copyFixture(t, dir, "../../testdata/corpus/helm-rendered.yaml")
	golden, err := os.ReadFile("../../pkg/fix/testdata/golden/helm-rendered.fixed.yaml")
	if err != nil {
		t.Fatal(err)
	}
	_, stderr, code := rollguard(t, "", "fix", "--write", dir)
	if code != cli.ExitOK { // what remains (RG204, RG401) is below --fail-on error
		t.Fatalf("exit %d, stderr %q", code, stderr)
	}
	got, _ := os.ReadFile(f)
	if string(got) != string(golden) {
		t.Errorf("--write result differs from the golden fix")
	}
	if fi, _ := os.Stat(f); fi.Mode().Perm() != 0o640 {
		t.Errorf("mode %v, want the file's own 0640", fi.Mode().Perm())
	}
	entries, _ := os.ReadDir(dir)
	if len(entries) != 1 {
		t.Errorf("temporary files left behind: %v", entries)
	}
	for _, want := range []string{"not fixed:", "RG204", "why:", "RG401"} {
		if !strings.Contains(stderr, want) {
			t.Errorf("stderr lacks %q:\n%s", want, stderr)
		}
	}
	out, _, _ := rollguard(t, "", "fix", dir)
	if out != "" {
		t.Errorf("second run still has a diff:\n%s", out)
	}
	// The audit of the result reports none of the fixed rules.
	aout, _, _ := rollguard(t, "", "audit", "-o", "json", f)
	for _, fd := range decodeJSON(t, aout).Findings {
		if fd.RuleID == "RG101" || fd.RuleID == "RG305" {
			t.Errorf("audit after fix still reports %s", fd.RuleID)
		}
	}
}

func TestFixDiffApplies(t *testing.T) {
	git, err := exec.LookPath("git")
	if err != nil {
		t.Skip("git is not installed")
	}
	dir := t.TempDir()
	copyFixture(t, dir, "../../testdata/corpus/everything-wrong.yaml")
	cmd := exec.Command(git, "init", "-q", dir)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("git init: %v %s", err, out)
	}
	cwd, _ := os.Getwd()
	t.Chdir(dir)
	diff, _, code := rollguard(t, "", "fix", "everything-wrong.yaml")
	if code != cli.ExitFindings { // RG502 (error) has no automatic fix
		t.Errorf("exit %d, want 1", code)
	}
	if !strings.HasPrefix(diff, "--- a/everything-wrong.yaml\n+++ b/everything-wrong.yaml\n@@ ") {
		t.Fatalf("not a unified diff:\n%s", diff)
	}
	apply := exec.Command(git, "apply", "-")
	apply.Stdin = strings.NewReader(diff)
	if out, err := apply.CombinedOutput(); err != nil {
		t.Fatalf("git apply: %v %s", err, out)
	}
	want, _ := os.ReadFile(filepath.Join(cwd, "../../pkg/fix/testdata/golden/everything-wrong.fixed.yaml"))
	got, _ := os.ReadFile("everything-wrong.yaml")
	if string(got) != string(want) {
		t.Error("the applied diff does not give the golden fix")
	}
}

func TestFixStdin(t *testing.T) {
	t.Parallel()
	in, _ := os.ReadFile("../../testdata/corpus/kubectl-list.yaml")
	want, _ := os.ReadFile("../../pkg/fix/testdata/golden/kubectl-list.fixed.yaml")
	out, _, code := rollguard(t, string(in), "fix", "-")
	if out != string(want) || code != cli.ExitOK {
		t.Errorf("exit %d; stdout differs from the golden fix", code)
	}
	fixedIn, _ := os.ReadFile("../../testdata/corpus/fixed.yaml")
	out, stderr, code := rollguard(t, string(fixedIn), "fix", "-")
	if out != string(fixedIn) || stderr != "" || code != cli.ExitOK {
		t.Errorf("nothing to fix: want the input back, silence and 0; got exit %d, stderr %q", code, stderr)
	}
}

func TestFixRefusesTemplatesAndBadInput(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	tmpl := filepath.Join(dir, "deploy.yaml")
	text := "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: {{ .Release.Name }}\n"
	if err := os.WriteFile(tmpl, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
	good := copyFixture(t, dir, "../../pkg/rules/testdata/RG101/fires-no-prestop.yaml")
	_, stderr, code := rollguard(t, "", "fix", "--write", dir)
	if code != cli.ExitUsage || !strings.Contains(stderr, "deploy.yaml:4: contains template directives") {
		t.Errorf("exit %d, stderr %q", code, stderr)
	}
	if got, _ := os.ReadFile(tmpl); string(got) != text {
		t.Error("the template was changed")
	}
	if got, _ := os.ReadFile(good); !strings.Contains(string(got), "preStop") {
		t.Error("the good file beside it was not fixed")
	}
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"fix"}, "no input"},
		{[]string{"fix", "--write", "-"}, "without --write"},
		{[]string{"fix", "--k8s-version", "2.1", "x"}, "--k8s-version"},
		{[]string{"fix", "--rules", "RG999", "x"}, `unknown rule "RG999"`},
	} {
		_, stderr, code := rollguard(t, "", tc.args...)
		if code != cli.ExitUsage || !strings.Contains(stderr, tc.want) {
			t.Errorf("%v: exit %d, stderr %q", tc.args, code, stderr)
		}
	}
}

func TestFixOnlySelectedRules(t *testing.T) {
	t.Parallel()
	in, _ := os.ReadFile("../../testdata/corpus/everything-wrong.yaml")
	out, stderr, _ := rollguard(t, string(in), "fix", "--rules", "RG201", "--k8s-version", "v1.29.4", "-")
	if !strings.Contains(out, "readinessProbe:\n            tcpSocket:\n              port: http") {
		t.Error("RG201 was not fixed")
	}
	if strings.Contains(out, "seconds: 5") || strings.Contains(out, "terminationGracePeriodSeconds: 10") {
		t.Error("rules outside --rules were fixed")
	}
	if strings.Contains(stderr, "RG304") {
		t.Error("findings of rules outside --rules were reported")
	}
}

// TestFixListsEveryEdit: standard error names every edit, those of later
// rounds of the fix loop too (RG103 and RG305 fire only after RG101 and
// RG201 are fixed), with the rule, object, field and value. Lines are the
// file's on disk for a diff, and the fixed file's with --write.
func TestFixListsEveryEdit(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	f := copyFixture(t, dir, "../../pkg/fix/testdata/follow-on.yaml")
	edits := func(lines ...int) []string {
		return []string{
			fmt.Sprintf("fixed: %s:%d: RG305 min-ready-seconds-zero: Deployment shop/cart: spec.minReadySeconds: 5", f, lines[0]),
			fmt.Sprintf("fixed: %s:%d: RG103 grace-period-too-short: Deployment shop/cart: spec.template.spec.terminationGracePeriodSeconds: 10", f, lines[1]),
			fmt.Sprintf("fixed: %s:%d: RG201 readiness-missing: Deployment shop/cart: spec.template.spec.containers[0].readinessProbe: {tcpSocket: {port: http}, periodSeconds: 5, failureThreshold: 2}", f, lines[2]),
			fmt.Sprintf("fixed: %s:%d: RG101 prestop-missing: Deployment shop/cart: spec.template.spec.containers[0].lifecycle.preStop: {sleep: {seconds: 5}}", f, lines[3]),
			"    note: ", // the native sleep's Kubernetes 1.30 floor, checked below
		}
	}
	check := func(stderr string, want []string) {
		t.Helper()
		got := strings.Split(strings.TrimSuffix(stderr, "\n"), "\n")
		if len(got) != len(want) {
			t.Fatalf("stderr has %d lines, want %d:\n%s", len(got), len(want), stderr)
		}
		for i := range want {
			if !strings.HasPrefix(got[i], want[i]) || (want[i] != "    note: " && got[i] != want[i]) {
				t.Errorf("stderr line %d:\n got %s\nwant %s", i+1, got[i], want[i])
			}
		}
		if !strings.Contains(got[len(got)-1], "Kubernetes 1.30") {
			t.Errorf("the native sleep's note does not name Kubernetes 1.30: %s", got[len(got)-1])
		}
	}
	// Diff: lines of the file as it is; an inserted field is at the line
	// it goes in before (minReadySeconds before "selector:", line 11).
	_, stderr, code := rollguard(t, "", "fix", f)
	if code != cli.ExitOK {
		t.Errorf("exit %d", code)
	}
	check(stderr, edits(11, 17, 26, 26))
	// --write: lines of the fixed file, where each field now is.
	_, stderr, code = rollguard(t, "", "fix", "--write", f)
	if code != cli.ExitOK {
		t.Errorf("exit %d", code)
	}
	check(stderr, edits(11, 18, 27, 33))
	fixed, _ := os.ReadFile(f)
	lines := strings.Split(string(fixed), "\n")
	for n, key := range map[int]string{11: "minReadySeconds: 5", 18: "terminationGracePeriodSeconds: 10", 27: "readinessProbe:", 33: "preStop:"} {
		if strings.TrimSpace(lines[n-1]) != key {
			t.Errorf("line %d of the fixed file is %q, want %q", n, lines[n-1], key)
		}
	}
}

// TestFixInsertsGracePeriodBeforeContainers: with no grace period written,
// RG103 fires in the second round (the default 30s no longer covers the new
// preStop delay plus a 30s drain), and the field it adds goes before the
// container list, not after it; stderr lists it.
func TestFixInsertsGracePeriodBeforeContainers(t *testing.T) {
	t.Parallel()
	in, err := os.ReadFile("../../pkg/fix/testdata/follow-on.yaml")
	if err != nil {
		t.Fatal(err)
	}
	src := strings.Replace(string(in), "      terminationGracePeriodSeconds: 8\n", "", 1)
	out, stderr, _ := rollguard(t, src, "fix", "--drain-allowance", "30s", "-")
	if !strings.Contains(out, "    spec:\n      terminationGracePeriodSeconds: 35\n      containers:\n") {
		t.Errorf("terminationGracePeriodSeconds is not right before the containers:\n%s", out)
	}
	want := "fixed: <stdin>:18: RG103 grace-period-too-short: Deployment shop/cart: spec.template.spec.terminationGracePeriodSeconds: 35\n"
	if !strings.Contains(stderr, want) {
		t.Errorf("stderr lacks\n%s\ngot:\n%s", want, stderr)
	}
}

// TestFixOldClusterNoNativeSleepNote: below 1.30 the fix writes an exec
// sleep, and says what that needs instead of the native action's floor.
func TestFixOldClusterNoNativeSleepNote(t *testing.T) {
	t.Parallel()
	in, err := os.ReadFile("../../pkg/fix/testdata/follow-on.yaml")
	if err != nil {
		t.Fatal(err)
	}
	out, stderr, _ := rollguard(t, string(in), "fix", "--k8s-version", "1.29", "-")
	if !strings.Contains(out, `command: ["sleep", "5"]`) || strings.Contains(out, "sleep:\n") {
		t.Errorf("want an exec sleep for 1.29:\n%s", out)
	}
	if strings.Contains(stderr, "1.30") || !strings.Contains(stderr, "RG101 prestop-missing") || !strings.Contains(stderr, "    note: ") {
		t.Errorf("want the RG101 edit with its exec note and no 1.30 floor:\n%s", stderr)
	}
}

// TestFixK8sVersionFromConfig: the configuration file's k8sVersion is the
// default of --k8s-version, and the flag wins over it.
func TestFixK8sVersionFromConfig(t *testing.T) {
	t.Parallel()
	in, err := os.ReadFile("../../pkg/fix/testdata/follow-on.yaml")
	if err != nil {
		t.Fatal(err)
	}
	cfg := filepath.Join(t.TempDir(), "rollguard.yaml")
	if err := os.WriteFile(cfg, []byte("k8sVersion: \"1.29\"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if out, stderr, _ := rollguard(t, string(in), "fix", "--config", cfg, "-"); !strings.Contains(out, `command: ["sleep", "5"]`) {
		t.Errorf("k8sVersion 1.29 in the file: want an exec sleep:\n%s\n%s", out, stderr)
	}
	if out, stderr, _ := rollguard(t, string(in), "fix", "--config", cfg, "--k8s-version", "1.30", "-"); strings.Contains(out, `command: ["sleep"`) || !strings.Contains(out, "sleep:\n") {
		t.Errorf("--k8s-version 1.30 over the file's 1.29: want the native sleep:\n%s\n%s", out, stderr)
	}
	bad := filepath.Join(t.TempDir(), "rollguard.yaml")
	if err := os.WriteFile(bad, []byte("k8sVersion: 2.0\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, stderr, code := rollguard(t, string(in), "fix", "--config", bad, "-"); code == 0 || !strings.Contains(stderr, "k8sVersion") {
		t.Errorf("a bad k8sVersion: exit %d, %s", code, stderr)
	}
}
