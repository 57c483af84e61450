package cli_test

import (
	"encoding/json"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/rollguard/rollguard/internal/cli"
	"github.com/rollguard/rollguard/pkg/render"
)

// Fixtures shared with pkg/manifest's tests: a chart, a kustomize base and
// overlay, and a file whose valid YAML holds {{ ... }} for other programs.
const (
	chartDir  = "../../pkg/manifest/testdata/charts/shop"
	kustDir   = "../../pkg/manifest/testdata/kustomize"
	mixedFile = "../../pkg/manifest/testdata/mixed/app-and-alerts.yaml"
)

// report is the part of the JSON report these tests read.
type report struct {
	Summary struct {
		Objects     int            `json:"objects"`
		InputErrors int            `json:"inputErrors"`
		Skipped     map[string]int `json:"skippedKinds"`
	} `json:"summary"`
	Findings []struct {
		RuleID string `json:"ruleID"`
		File   string `json:"file"`
		Line   int    `json:"line"`
		Object struct {
			Kind      string `json:"kind"`
			Namespace string `json:"namespace"`
			Name      string `json:"name"`
			File      string `json:"file"`
			Line      int    `json:"line"`
		} `json:"object"`
	} `json:"findings"`
	Errors []struct {
		File    string `json:"file"`
		Line    int    `json:"line"`
		Message string `json:"message"`
	} `json:"errors"`
}

func parseReport(t *testing.T, out string) report {
	t.Helper()
	var r report
	if err := json.Unmarshal([]byte(out), &r); err != nil {
		t.Fatalf("not JSON: %v\n%s", err, out)
	}
	return r
}

// found lists findings as "RULE kind/name@file[:line]", sorted.
func (r report) found() []string {
	var s []string
	for _, f := range r.Findings {
		loc := f.File
		if f.Line > 0 {
			loc += ":" + itoa(f.Line)
		}
		s = append(s, f.RuleID+" "+f.Object.Kind+"/"+f.Object.Name+"@"+loc)
	}
	slices.Sort(s)
	return s
}

func itoa(n int) string { b, _ := json.Marshal(n); return string(b) }

func lastLine(s string) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	return lines[len(lines)-1]
}

// needTool skips a test that needs a real helm or kustomize when there is
// none; hack/test.sh puts the pinned ones from hack/tools.sh in PATH.
func needTool(t *testing.T, tool render.Tool) {
	t.Helper()
	env, names := render.HelmEnv, []string{"helm"}
	if tool == render.Kustomize {
		env, names = render.KustomizeEnv, []string{"kustomize", "kubectl"}
	}
	if os.Getenv(env) != "" {
		return
	}
	for _, n := range names {
		if _, err := exec.LookPath(n); err == nil {
			return
		}
	}
	t.Skipf("%s is not installed: run with PATH=\"$(hack/tools.sh):$PATH\" (hack/test.sh does) or set %s", names[0], env)
}

// TestAuditTemplateLikeStrings: {{ ... }} in valid YAML (a PrometheusRule,
// an Argo Workflow) is data; the Deployment beside it is audited, from a
// file and from standard input, and the exit status is the findings'.
func TestAuditTemplateLikeStrings(t *testing.T) {
	t.Parallel()
	data, err := os.ReadFile(mixedFile)
	if err != nil {
		t.Fatal(err)
	}
	for _, args := range [][]string{{mixedFile}, {"-"}} {
		out, stderr, code := rollguard(t, string(data), append([]string{"audit", "-o", "json"}, args...)...)
		if code != cli.ExitFindings || stderr != "" {
			t.Errorf("%v: exit %d, stderr %q; want 1 (RG201) and no error", args, code, stderr)
		}
		r := parseReport(t, out)
		if r.Summary.InputErrors != 0 || r.Summary.Skipped["PrometheusRule"] != 1 || r.Summary.Skipped["Workflow"] != 1 {
			t.Errorf("%v: summary %+v", args, r.Summary)
		}
		where := args[0]
		if where == "-" {
			where = "<stdin>"
		}
		if !slices.Contains(r.found(), "RG201 Deployment/web@"+where+":47") {
			t.Errorf("%v: findings %v lack RG201 on the Deployment at line 47", args, r.found())
		}
	}
	// With the readinessProbe the Deployment lacks, nothing fails: exit 0.
	fixed := strings.Replace(string(data), "          lifecycle:\n", "          readinessProbe:\n            tcpSocket: {port: http}\n          lifecycle:\n", 1)
	if _, stderr, code := rollguard(t, fixed, "audit", "-"); code != cli.ExitOK {
		t.Errorf("with a readinessProbe: exit %d, stderr %q", code, stderr)
	}
}

// TestAuditHelmTemplateBesideValid: an unparseable Helm template is an
// input error at its directive's line with the helm template hint; the
// valid file beside it, and the valid documents on standard input, are
// still audited, and the last message says exactly what was left out.
func TestAuditHelmTemplateBesideValid(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	tmpl := filepath.Join(dir, "deployment.yaml")
	text := "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: {{ include \"shop.fullname\" . }}\n  labels:\n    {{- include \"shop.labels\" . | nindent 4 }}\n"
	if err := os.WriteFile(tmpl, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
	out, stderr, code := rollguard(t, "", "audit", "-o", "json", tmpl, mixedFile)
	if code != cli.ExitUsage {
		t.Errorf("exit %d, want 2", code)
	}
	r := parseReport(t, out)
	if len(r.Errors) != 1 || r.Errors[0].File != tmpl || r.Errors[0].Line != 4 {
		t.Errorf("errors %+v: want the template at line 4", r.Errors)
	}
	if !slices.Contains(r.found(), "RG201 Deployment/web@"+mixedFile+":47") {
		t.Errorf("the valid file was not audited: %v", r.found())
	}
	for _, want := range []string{tmpl + ":4: contains template directives", "helm template CHART | rollguard audit -"} {
		if !strings.Contains(stderr, want) {
			t.Errorf("stderr lacks %q:\n%s", want, stderr)
		}
	}
	if got := lastLine(stderr); got != "error: 1 input error(s); left out of the audit: 1 document; the rest of the input was audited" {
		t.Errorf("last line %q", got)
	}

	// On standard input only the template's document goes.
	valid, _ := os.ReadFile(mixedFile)
	out, stderr, code = rollguard(t, text+"---\n"+string(valid), "audit", "-o", "json", "-")
	r = parseReport(t, out)
	if code != cli.ExitUsage || len(r.Errors) != 1 || r.Errors[0].Line != 4 || !slices.Contains(r.found(), "RG201 Deployment/web@<stdin>:54") {
		t.Errorf("stdin: exit %d, errors %+v, findings %v", code, r.Errors, r.found())
	}
	if got := lastLine(stderr); !strings.Contains(got, "left out of the audit: 1 document; the rest") {
		t.Errorf("stdin: last line %q", got)
	}
}

// TestAuditChart renders the fixture chart with the real helm: -f and
// --set change what is found, findings name the template without a line,
// -n reaches helm, and the Helm test hook is not audited.
func TestAuditChart(t *testing.T) {
	t.Parallel()
	needTool(t, render.Helm)
	deployment := chartDir + "/templates/deployment.yaml"
	for _, tc := range []struct {
		args []string
		want []string
	}{
		{nil, []string{"RG304 Deployment/shop@" + deployment}},
		{[]string{"-f", chartDir + "/values-prod.yaml"}, []string{"RG305 Deployment/shop@" + deployment, "RG401 Deployment/shop@" + deployment}},
		{[]string{"--values", chartDir + "/values-prod.yaml", "--set", "replicaCount=1"}, []string{"RG304 Deployment/shop@" + deployment}},
	} {
		args := append(append([]string{"audit", "-o", "json", "--fail-on", "info", "-n", "shop"}, tc.args...), chartDir)
		out, stderr, code := rollguard(t, "", args...)
		r := parseReport(t, out)
		if code != cli.ExitFindings || stderr != "" || !slices.Equal(r.found(), tc.want) {
			t.Errorf("%v: exit %d, stderr %q, findings %v; want 1 and %v", tc.args, code, stderr, r.found(), tc.want)
		}
		for _, f := range r.Findings {
			if f.Object.Namespace != "shop" || f.Object.Line != 0 {
				t.Errorf("%v: finding on %+v, want namespace shop and no line", tc.args, f.Object)
			}
		}
		if r.Summary.Objects != 2 || r.Summary.Skipped["ConfigMap"] != 1 || r.Summary.Skipped["Pod"] != 0 {
			t.Errorf("%v: summary %+v: want the Deployment and Service, the ConfigMap skipped, no test Pod", tc.args, r.Summary)
		}
	}
	// Text output names the template, with no line to mislead an editor.
	out, _, _ := rollguard(t, "", "audit", chartDir)
	if !strings.Contains(out, "Deployment default/shop  "+deployment+"\n") {
		t.Errorf("text output:\n%s", out)
	}
	// Found while walking, the chart is rendered and its templates are not
	// read as manifests.
	out, stderr, code := rollguard(t, "", "audit", "-o", "json", filepath.Dir(chartDir))
	if r := parseReport(t, out); code != cli.ExitOK || stderr != "" || !slices.Equal(r.found(), []string{"RG304 Deployment/shop@" + deployment}) {
		t.Errorf("walk: exit %d, stderr %q, findings %v", code, stderr, r.found())
	}
}

// TestAuditKustomize builds the fixture overlay: the patch is applied
// (3 replicas: RG401), findings name the kustomization, and a walk over
// base and overlay builds both without reading the patch as an object.
func TestAuditKustomize(t *testing.T) {
	t.Parallel()
	needTool(t, render.Kustomize)
	overlay := kustDir + "/overlays/prod"
	out, stderr, code := rollguard(t, "", "audit", "-o", "json", "--fail-on", "warning", overlay)
	r := parseReport(t, out)
	want := []string{"RG305 Deployment/prod-web@" + overlay + "/kustomization.yaml", "RG401 Deployment/prod-web@" + overlay + "/kustomization.yaml"}
	if code != cli.ExitFindings || stderr != "" || !slices.Equal(r.found(), want) {
		t.Errorf("overlay: exit %d, stderr %q, findings %v; want 1 and %v", code, stderr, r.found(), want)
	}
	out, stderr, code = rollguard(t, "", "audit", "-o", "json", kustDir)
	r = parseReport(t, out)
	if code != cli.ExitOK || stderr != "" || r.Summary.Objects != 4 || r.Summary.InputErrors != 0 {
		t.Errorf("walk: exit %d, stderr %q, summary %+v; want base and overlay, 4 objects", code, stderr, r.Summary)
	}
}

// TestAuditRenderErrors: a chart or kustomization that cannot be rendered
// (its tool missing, or failing) is an input error naming the folder and
// the reason; the rest is still audited and the exit status is 2.
func TestAuditRenderErrors(t *testing.T) {
	t.Setenv(render.HelmEnv, "/nonexistent/helm")
	t.Setenv(render.KustomizeEnv, "/nonexistent/kustomize")
	out, stderr, code := rollguard(t, "", "audit", "-o", "json", chartDir, kustDir+"/base", mixedFile)
	r := parseReport(t, out)
	if code != cli.ExitUsage || len(r.Errors) != 2 || !slices.Contains(r.found(), "RG201 Deployment/web@"+mixedFile+":47") {
		t.Errorf("exit %d, errors %+v, findings %v; want 2, two errors and the plain file audited", code, r.Errors, r.found())
	}
	for _, want := range []string{
		chartDir + ": cannot render the Helm chart, so nothing in it was audited: rendering needs helm, and ROLLGUARD_HELM=/nonexistent/helm cannot be run",
		"helm template shop " + chartDir + " | rollguard audit -",
		kustDir + "/base: cannot render the kustomization",
		"kustomize build " + kustDir + "/base | rollguard audit -",
		"error: 2 input error(s); left out of the audit: 1 Helm chart and 1 kustomization; the rest of the input was audited",
	} {
		if !strings.Contains(stderr, want) {
			t.Errorf("stderr lacks %q:\n%s", want, stderr)
		}
	}

	// Nothing in PATH: the message says which program to install.
	t.Setenv(render.HelmEnv, "")
	t.Setenv("PATH", t.TempDir())
	_, stderr, code = rollguard(t, "", "audit", chartDir)
	if code != cli.ExitUsage || !strings.Contains(stderr, "rendering needs helm, which is not in PATH: install Helm") {
		t.Errorf("no helm in PATH: exit %d, stderr %q", code, stderr)
	}
}

// TestAuditHelmFails: helm's own error reaches the user with the folder.
func TestAuditHelmFails(t *testing.T) {
	t.Parallel()
	needTool(t, render.Helm)
	dir := filepath.Join(t.TempDir(), "broken")
	copyTree(t, chartDir, dir)
	if err := os.WriteFile(filepath.Join(dir, "templates", "service.yaml"), []byte("kind: Service\nname: {{ .Values.port | nosuchfunction }}\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	out, stderr, code := rollguard(t, "", "audit", "-o", "json", dir, mixedFile)
	r := parseReport(t, out)
	if code != cli.ExitUsage || len(r.Errors) != 1 || r.Errors[0].File != dir || !slices.Contains(r.found(), "RG201 Deployment/web@"+mixedFile+":47") {
		t.Errorf("exit %d, errors %+v, findings %v", code, r.Errors, r.found())
	}
	for _, want := range []string{dir + ": cannot render the Helm chart", "helm template broken " + dir + " --skip-tests failed (exit status 1)", `function "nosuchfunction" not defined`} {
		if !strings.Contains(stderr, want) {
			t.Errorf("stderr lacks %q:\n%s", want, stderr)
		}
	}
}

func TestAuditValuesFlags(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"audit", "-f", "/nonexistent/values.yaml", chartDir}, "--values /nonexistent/values.yaml: no such file or directory"},
		{[]string{"audit", "--set", "replicaCount=2", mixedFile}, "--values and --set are for Helm charts, and the input holds none"},
		{[]string{"audit", "--cluster", "--set", "a=1"}, "--cluster reads no charts"},
		{[]string{"audit", "-f", "-", chartDir}, "--values -: helm is not given rollguard's standard input"},
	} {
		out, stderr, code := rollguard(t, "", tc.args...)
		if code != cli.ExitUsage || !strings.Contains(stderr, tc.want) || out != "" {
			t.Errorf("%v: exit %d, stderr %q, stdout %q; want 2 and %q", tc.args, code, stderr, out, tc.want)
		}
	}
}

// TestFixRefusesRenderedFolders: fix edits files, and a chart's or a
// kustomization's objects have none, so such a folder is refused and left
// byte for byte as it was, while a plain file beside it is still fixed.
func TestFixRefusesRenderedFolders(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	copyTree(t, chartDir, filepath.Join(dir, "shop"))
	copyTree(t, kustDir, filepath.Join(dir, "kustomize"))
	plain := copyFixture(t, dir, "../../pkg/rules/testdata/RG101/fires-no-prestop.yaml")
	before := snapshot(t, dir)

	for _, target := range []string{"shop", "kustomize/overlays/prod"} {
		p := filepath.Join(dir, target)
		out, stderr, code := rollguard(t, "", "fix", "--write", p)
		if code != cli.ExitUsage || out != "" || !strings.Contains(stderr, p+": is a ") ||
			!strings.Contains(stderr, "rendered output has no file to edit, so nothing in it was read or changed") {
			t.Errorf("fix --write %s: exit %d, stdout %q, stderr %q", target, code, out, stderr)
		}
		if after := snapshot(t, dir); !maps(before, after) {
			t.Errorf("fix --write %s changed files", target)
		}
	}
	_, stderr, code := rollguard(t, "", "fix", "--write", dir)
	if code != cli.ExitUsage || strings.Count(stderr, ": is a ") != 3 { // the chart, the base, the overlay
		t.Errorf("fix --write on the tree: exit %d, stderr %q", code, stderr)
	}
	after := snapshot(t, dir)
	for name, data := range before {
		if name == plain {
			if after[name] == data {
				t.Error("the plain file beside the chart was not fixed")
			}
			continue
		}
		if after[name] != data {
			t.Errorf("%s was changed", name)
		}
	}
	if len(after) != len(before) {
		t.Errorf("files were added or removed: %d before, %d after", len(before), len(after))
	}
}

func maps(a, b map[string]string) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if b[k] != v {
			return false
		}
	}
	return true
}

// snapshot reads every file under dir.
func snapshot(t *testing.T, dir string) map[string]string {
	t.Helper()
	files := map[string]string{}
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		data, err := os.ReadFile(p)
		files[p] = string(data)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return files
}

func copyTree(t *testing.T, src, dst string) {
	t.Helper()
	err := filepath.WalkDir(src, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(src, p)
		if d.IsDir() {
			return os.MkdirAll(filepath.Join(dst, rel), 0o755)
		}
		data, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		return os.WriteFile(filepath.Join(dst, rel), data, 0o644)
	})
	if err != nil {
		t.Fatal(err)
	}
}
