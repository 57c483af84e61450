package cli_test

import (
	"bytes"
	"encoding/json"
	"encoding/xml"
	"flag"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/rollguard/rollguard/internal/cli"
)

var update = flag.Bool("update", false, "rewrite the golden files under testdata/golden")

// rollguard runs the CLI in-process and returns stdout, stderr and the exit code.
func rollguard(t *testing.T, stdin string, args ...string) (string, string, int) {
	t.Helper()
	var out, errOut bytes.Buffer
	code := cli.Main(args, cli.Streams{In: strings.NewReader(stdin), Out: &out, ErrOut: &errOut})
	return out.String(), errOut.String(), code
}

var formats = map[string]string{"text": "txt", "json": "json", "sarif": "sarif", "junit": "junit.xml"}

// TestGoldenCorpus audits each corpus file in every format and compares
// with testdata/golden; run with -update after an intended change and
// review the diff.
func TestGoldenCorpus(t *testing.T) {
	t.Chdir("../..") // paths in reports are then testdata/corpus/...
	files, err := filepath.Glob("testdata/corpus/*.yaml")
	if err != nil || len(files) < 8 {
		t.Fatalf("corpus: %v (%d files)", err, len(files))
	}
	wantExit := map[string]int{"fixed": 0, "jobs": 0}
	for _, f := range files {
		name := strings.TrimSuffix(filepath.Base(f), ".yaml")
		for format, ext := range formats {
			out, stderr, code := rollguard(t, "", "audit", "-o", format, f)
			want, ok := wantExit[name]
			if !ok {
				want = 1
			}
			if code != want {
				t.Errorf("%s -o %s: exit %d, want %d (stderr %q)", name, format, code, want, stderr)
			}
			golden := filepath.Join("testdata/golden", name+"."+ext)
			if *update {
				if err := os.WriteFile(golden, []byte(out), 0o644); err != nil {
					t.Fatal(err)
				}
				continue
			}
			data, err := os.ReadFile(golden)
			if err != nil {
				t.Fatalf("%v (run go test ./internal/cli -run TestGoldenCorpus -update)", err)
			}
			if string(data) != out {
				t.Errorf("%s -o %s differs from %s:\n%s", name, format, golden, firstDiff(string(data), out))
			}
			checkWellFormed(t, format, out)
		}
	}
}

func firstDiff(want, got string) string {
	wl, gl := strings.Split(want, "\n"), strings.Split(got, "\n")
	for i := 0; i < len(wl) || i < len(gl); i++ {
		var w, g string
		if i < len(wl) {
			w = wl[i]
		}
		if i < len(gl) {
			g = gl[i]
		}
		if w != g {
			return "line " + strconv.Itoa(i+1) + ":\n  want: " + w + "\n  got:  " + g
		}
	}
	return ""
}

func checkWellFormed(t *testing.T, format, out string) {
	t.Helper()
	switch format {
	case "json", "sarif":
		var v map[string]any
		if err := json.Unmarshal([]byte(out), &v); err != nil {
			t.Errorf("-o %s is not JSON: %v", format, err)
		}
	case "junit":
		if err := xml.Unmarshal([]byte(out), new(struct{})); err != nil {
			t.Errorf("-o junit is not XML: %v", err)
		}
	}
}

// auditJSON decodes the JSON report.
type auditJSON struct {
	SchemaVersion string `json:"schemaVersion"`
	Summary       struct {
		Findings    int            `json:"findings"`
		Suppressed  int            `json:"suppressed"`
		InputErrors int            `json:"inputErrors"`
		Skipped     map[string]int `json:"skippedKinds"`
	} `json:"summary"`
	Findings []struct {
		RuleID string `json:"ruleID"`
		Case   string `json:"case"`
		Line   int    `json:"line"`
		Object struct {
			Kind string `json:"kind"`
		} `json:"object"`
	} `json:"findings"`
	Errors []struct {
		File    string `json:"file"`
		Line    int    `json:"line"`
		Message string `json:"message"`
	} `json:"errors"`
}

func decodeJSON(t *testing.T, out string) auditJSON {
	t.Helper()
	var r auditJSON
	if err := json.Unmarshal([]byte(out), &r); err != nil {
		t.Fatalf("not JSON: %v\n%s", err, out)
	}
	return r
}

func TestJobsNeverCase1Or2(t *testing.T) {
	t.Parallel()
	out, _, _ := rollguard(t, "", "audit", "-o", "json", "--assume-served", "../../testdata/corpus/jobs.yaml")
	for _, f := range decodeJSON(t, out).Findings {
		if f.Case == "case1" || f.Case == "case2" {
			t.Errorf("%s (%s) on a %s", f.RuleID, f.Case, f.Object.Kind)
		}
	}
}

func TestFixedIsSilent(t *testing.T) {
	t.Parallel()
	out, stderr, code := rollguard(t, "", "audit", "--fail-on", "info", "../../testdata/corpus/fixed.yaml")
	if out != "" || stderr != "" || code != 0 {
		t.Errorf("fixed manifest: exit %d, stdout %q, stderr %q; want silence and 0", code, out, stderr)
	}
}

func TestBadInput(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	bad := filepath.Join(dir, "bad.yaml")
	good := filepath.Join(dir, "good.yaml")
	if err := os.WriteFile(bad, []byte("apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: x\n  labels: [\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile("../../testdata/corpus/everything-wrong.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(good, data, 0o644); err != nil {
		t.Fatal(err)
	}
	out, stderr, code := rollguard(t, "", "audit", "-o", "json", bad, good, filepath.Join(dir, "nope.yaml"))
	if code != cli.ExitUsage {
		t.Errorf("exit %d, want %d", code, cli.ExitUsage)
	}
	r := decodeJSON(t, out)
	if r.Summary.Findings == 0 {
		t.Error("the readable file was not audited")
	}
	if len(r.Errors) != 2 || r.Errors[0].File != bad || r.Errors[0].Line == 0 {
		t.Errorf("errors %+v: want the bad file with its line, and the missing one", r.Errors)
	}
	for _, want := range []string{bad + ":", "invalid YAML", "nope.yaml: cannot read: no such file", "2 input error(s)"} {
		if !strings.Contains(stderr, want) {
			t.Errorf("stderr lacks %q:\n%s", want, stderr)
		}
	}
}

func TestUsageErrors(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"audit"}, "no input"},
		{[]string{"audit", "-o", "yaml", "x"}, `--output "yaml"`},
		{[]string{"audit", "--fail-on", "fatal", "x"}, "--fail-on"},
		{[]string{"audit", "--disable", "RG999", "x"}, `unknown rule "RG999"`},
		{[]string{"audit", "--propagation-budget", "-1s", "x"}, "must be positive"},
		{[]string{"audit", "--propagation-budget", "soon", "x"}, "invalid argument"},
		{[]string{"audit", "--no-such-flag"}, "unknown flag"},
		{[]string{"audit", "--config", "/nonexistent/rollguard.yaml", "x"}, "reading config"},
		{[]string{"rules", "RG999"}, `unknown rule "RG999"`},
		{[]string{"frobnicate"}, "unknown command"},
	} {
		_, stderr, code := rollguard(t, "", tc.args...)
		if code != cli.ExitUsage || !strings.Contains(stderr, tc.want) {
			t.Errorf("%v: exit %d, stderr %q; want %d and %q", tc.args, code, stderr, cli.ExitUsage, tc.want)
		}
	}
}

func TestStdinAndFailOn(t *testing.T) {
	t.Parallel()
	data, err := os.ReadFile("../../testdata/corpus/helm-rendered.yaml")
	if err != nil {
		t.Fatal(err)
	}
	// helm-rendered has one error (RG101): disabled, the warnings decide.
	_, _, code := rollguard(t, string(data), "audit", "--disable", "prestop-missing", "-")
	if code != 0 {
		t.Errorf("warnings only, default --fail-on error: exit %d, want 0", code)
	}
	_, _, code = rollguard(t, string(data), "audit", "--disable", "RG101", "--fail-on", "warning", "-")
	if code != cli.ExitFindings {
		t.Errorf("--fail-on warning: exit %d, want 1", code)
	}
	out, _, _ := rollguard(t, string(data), "audit", "-o", "json", "-n", "prod", "-")
	r := decodeJSON(t, out)
	if r.Summary.Skipped["ConfigMap"] != 1 || r.Summary.Skipped["ServiceAccount"] != 1 {
		t.Errorf("skipped kinds %v", r.Summary.Skipped)
	}
	if !strings.Contains(out, `"namespace": "prod"`) {
		t.Error("-n prod not applied to objects without a namespace")
	}
}

func TestConfigFile(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	write := func(name, text string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	cfg := write("rollguard.yaml", "apiVersion: rollguard.io/v1alpha1\nkind: Config\npropagationBudget: 12s\ndrainAllowance: 8s\ndisabledRules: [RG304]\nseverity: {RG305: error}\nignorePaths: [\"**/skip/**\"]\n")
	if err := os.MkdirAll(filepath.Join(dir, "m", "skip"), 0o755); err != nil {
		t.Fatal(err)
	}
	src, _ := os.ReadFile("../../pkg/rules/testdata/RG103/quiet-grace-equal.yaml")
	write("m/app.yaml", string(src))
	write("m/skip/broken.yaml", "not: [valid")
	out, stderr, code := rollguard(t, "", "audit", "-o", "json", "--config", cfg, filepath.Join(dir, "m"))
	if code != cli.ExitFindings {
		t.Fatalf("exit %d (stderr %q)", code, stderr)
	}
	ids := map[string]bool{}
	for _, f := range decodeJSON(t, out).Findings {
		ids[f.RuleID] = true
	}
	// A 12s budget makes the 5s preStop too short (RG102); an 8s drain makes grace 10s too short (RG103).
	if !ids["RG102"] || !ids["RG103"] || ids["RG304"] {
		t.Errorf("config not applied: findings %v", ids)
	}
	// The flag wins over the file.
	out, _, _ = rollguard(t, "", "audit", "-o", "json", "--config", cfg, "--propagation-budget", "5s", filepath.Join(dir, "m"))
	for _, f := range decodeJSON(t, out).Findings {
		if f.RuleID == "RG102" {
			t.Error("--propagation-budget did not override the config file")
		}
	}
	badCfg := write("bad.yaml", "propagationBudgett: 5s\n")
	_, stderr, code = rollguard(t, "", "audit", "--config", badCfg, filepath.Join(dir, "m"))
	if code != cli.ExitUsage || !strings.Contains(stderr, "propagationBudgett") {
		t.Errorf("misspelt config key: exit %d, stderr %q", code, stderr)
	}
}

func TestRulesCommand(t *testing.T) {
	t.Parallel()
	out, _, code := rollguard(t, "", "rules")
	if code != 0 || !strings.Contains(out, "RG101") || !strings.Contains(out, "RG502") {
		t.Errorf("catalogue: exit %d\n%s", code, out)
	}
	out, _, _ = rollguard(t, "", "rules", "readiness-missing")
	for _, want := range []string{"# RG201 readiness-missing", "## Why", "## How to fix", "```yaml"} {
		if !strings.Contains(out, want) {
			t.Errorf("rules readiness-missing lacks %q", want)
		}
	}
	out, _, _ = rollguard(t, "", "rules", "-o", "json")
	var list []map[string]string
	if err := json.Unmarshal([]byte(out), &list); err != nil || len(list) < 19 {
		t.Errorf("rules -o json: %v, %d rules", err, len(list))
	}
}

func TestColor(t *testing.T) {
	t.Parallel()
	f := "../../testdata/corpus/everything-wrong.yaml"
	always, _, _ := rollguard(t, "", "audit", "--color", "always", f)
	if !strings.Contains(always, "\x1b[31m") {
		t.Error("--color always: no ANSI colour in the output")
	}
	for _, args := range [][]string{{"audit", "--color", "never", f}, {"audit", f}} {
		out, _, _ := rollguard(t, "", args...)
		if strings.Contains(out, "\x1b[") {
			t.Errorf("%v: colour written to a non-terminal", args)
		}
	}
	if _, stderr, code := rollguard(t, "", "audit", "--color", "sometimes", f); code != cli.ExitUsage || !strings.Contains(stderr, "--color") {
		t.Errorf("bad --color: exit %d, %q", code, stderr)
	}
}

// TestSARIFFingerprintsSurviveMovedLines: code scanning matches findings
// across commits by fingerprint, so lines added above must not change it.
func TestSARIFFingerprintsSurviveMovedLines(t *testing.T) {
	t.Parallel()
	data, err := os.ReadFile("../../testdata/corpus/everything-wrong.yaml")
	if err != nil {
		t.Fatal(err)
	}
	prints := func(text string) []string {
		out, _, _ := rollguard(t, text, "audit", "-o", "sarif", "-")
		var log struct {
			Runs []struct {
				Results []struct {
					PartialFingerprints map[string]string `json:"partialFingerprints"`
				} `json:"results"`
			} `json:"runs"`
		}
		if err := json.Unmarshal([]byte(out), &log); err != nil {
			t.Fatal(err)
		}
		var fs []string
		for _, r := range log.Runs[0].Results {
			fs = append(fs, r.PartialFingerprints["rollguardFinding/v1"])
		}
		return fs
	}
	// A Service with two unresolved ports: one rule, one object, two findings.
	data = append(data, []byte("---\napiVersion: v1\nkind: Service\nmetadata: {name: two, namespace: shop}\n"+
		"spec: {selector: {app: checkout}, ports: [{name: a, port: 1, targetPort: nope}, {name: b, port: 2, targetPort: nada}]}\n")...)
	before, after := prints(string(data)), prints("# a new comment\n\n# and another\n"+string(data))
	if len(before) == 0 || strings.Join(before, ",") != strings.Join(after, ",") {
		t.Errorf("fingerprints changed when lines moved:\n%v\n%v", before, after)
	}
	seen := map[string]bool{}
	for _, f := range before {
		if seen[f] {
			t.Errorf("two findings share fingerprint %s", f)
		}
		seen[f] = true
	}
}
