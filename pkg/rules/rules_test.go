package rules_test

import (
	"bufio"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/rollguard/rollguard/pkg/manifest"
	"github.com/rollguard/rollguard/pkg/model"
	"github.com/rollguard/rollguard/pkg/rules"
)

var (
	idRe   = regexp.MustCompile(`^RG[1-5][0-9]{2}$`)
	nameRe = regexp.MustCompile(`^[a-z][a-z0-9]*(-[a-z0-9]+)*$`)
	// The hundreds digit of an ID names its case; IDs are stable forever,
	// so a rule never moves between cases.
	caseOfDigit = map[byte]rules.Case{'1': rules.Case1, '2': rules.Case2, '3': rules.Strategy, '4': rules.Disruption, '5': rules.Service}
)

func TestRegistryMeta(t *testing.T) {
	t.Parallel()
	reg := rules.Default()
	all := reg.All()
	if len(all) < 19 {
		t.Fatalf("registry has %d rules, want at least 19", len(all))
	}
	for i, r := range all {
		if !idRe.MatchString(r.ID) {
			t.Errorf("%s: ID does not match %s", r.ID, idRe)
		}
		if !nameRe.MatchString(r.Name) {
			t.Errorf("%s: name %q is not kebab-case", r.ID, r.Name)
		}
		if want := caseOfDigit[r.ID[2]]; r.Case != want {
			t.Errorf("%s: case %s, but its ID says %s", r.ID, r.Case, want)
		}
		if i > 0 && all[i-1].ID >= r.ID {
			t.Errorf("rules not sorted by ID: %s before %s", all[i-1].ID, r.ID)
		}
		if reg.Lookup(r.Name) != r || reg.Lookup(strings.ToLower(r.ID)) != r {
			t.Errorf("%s: lookup by name or lower-case ID fails", r.ID)
		}
		if strings.HasSuffix(r.Summary, ".") || !strings.HasSuffix(r.Rollout, ".") {
			t.Errorf("%s: summary is a title (no final stop), rollout a sentence (final stop)", r.ID)
		}
	}
}

func TestRegistryRefusesBadRules(t *testing.T) {
	t.Parallel()
	good := func(id, name string) *rules.Rule {
		return &rules.Rule{ID: id, Name: name, Case: rules.Case1, Severity: rules.Error, Summary: "s", Rollout: "r.",
			Why: "w", Fix: "f", Example: "e", NoFix: "n", Workload: func(rules.Settings, *model.Workload) []rules.Finding { return nil }}
	}
	if _, err := rules.NewRegistry(good("RG101", "a"), good("RG102", "b")); err != nil {
		t.Fatalf("valid rules refused: %v", err)
	}
	noDoc := good("RG103", "c")
	noDoc.Why = " "
	noCheck := good("RG104", "d")
	noCheck.Workload = nil
	modelNoSubject := good("RG105", "e")
	modelNoSubject.Workload, modelNoSubject.Model = nil, func(rules.Settings, *model.Model) []rules.Finding { return nil }
	bothFixes := good("RG106", "f")
	bothFixes.Remediate = func(rules.FixOptions, rules.Finding) rules.Remedy { return rules.Remedy{} }
	noFixWord := good("RG107", "g")
	noFixWord.NoFix = ""
	for name, rs := range map[string][]*rules.Rule{
		"remediation and no-fix reason":  {bothFixes},
		"neither remediation nor reason": {noFixWord},
		"duplicate ID":                   {good("RG101", "a"), good("RG101", "b")},
		"duplicate name":                 {good("RG101", "a"), good("RG102", "a")},
		"missing doc":                    {noDoc},
		"no check":                       {noCheck},
		"model rule, no subject":         {modelNoSubject},
	} {
		if _, err := rules.NewRegistry(rs...); err == nil {
			t.Errorf("%s: registry accepted it", name)
		}
	}
}

// run audits one fixture file with the default settings.
func run(t *testing.T, path string) *rules.Report {
	t.Helper()
	res := manifest.Load([]string{path}, manifest.Options{})
	if len(res.Errors) > 0 {
		t.Fatalf("fixture %s does not load: %v", path, res.Errors)
	}
	opts := model.Options{Others: res.Others}
	if fixtureFlags(t, path) == "--assume-served" {
		opts.AssumeServed = true
	}
	return rules.Default().Run(model.Build(res.Objects, opts), rules.Options{Settings: rules.DefaultSettings()})
}

// fixtureFlags reads a "# rollguard-flags: ..." first line.
func fixtureFlags(t *testing.T, path string) string {
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	if sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "# rollguard-flags: "); ok {
			return strings.TrimSpace(v)
		}
	}
	return ""
}

func fired(rep *rules.Report, r *rules.Rule) int {
	n := 0
	for _, f := range rep.Findings {
		if f.Rule.ID == r.ID {
			n++
		}
	}
	return n
}

// TestRuleFixtures runs every rule's fixtures: each rule must have at least
// one that fires and one that stays quiet, and every fixture must do what
// its name says.
func TestRuleFixtures(t *testing.T) {
	t.Parallel()
	reg := rules.Default()
	dirs, err := filepath.Glob("testdata/RG*")
	if err != nil {
		t.Fatal(err)
	}
	for _, d := range dirs {
		if reg.Lookup(filepath.Base(d)) == nil {
			t.Errorf("%s: fixtures for a rule that does not exist", d)
		}
	}
	for _, r := range reg.All() {
		t.Run(r.ID, func(t *testing.T) {
			t.Parallel()
			fires, _ := filepath.Glob(filepath.Join("testdata", r.ID, "fires-*.yaml"))
			quiet, _ := filepath.Glob(filepath.Join("testdata", r.ID, "quiet-*.yaml"))
			quiet = append(quiet, "testdata/quiet-fixed.yaml")
			if len(fires) == 0 || len(quiet) < 2 {
				t.Fatalf("want at least one fires-*.yaml and one quiet-*.yaml in testdata/%s", r.ID)
			}
			for _, p := range fires {
				if fired(run(t, p), r) == 0 {
					t.Errorf("%s: %s did not fire", p, r.ID)
				}
			}
			for _, p := range quiet {
				rep := run(t, p)
				if n := fired(rep, r); n > 0 {
					t.Errorf("%s: %s fired %d times", p, r.ID, n)
				}
			}
		})
	}
}

func TestFixedWorkloadIsQuiet(t *testing.T) {
	t.Parallel()
	rep := run(t, "testdata/quiet-fixed.yaml")
	for _, f := range rep.Findings {
		t.Errorf("%s fired on the fixed workload: %s", f.Rule.ID, f.Message)
	}
}

func TestSuppression(t *testing.T) {
	t.Parallel()
	rep := run(t, "testdata/RG301/quiet-suppressed.yaml")
	got := map[string]string{}
	for _, f := range rep.Suppressed {
		got[f.Rule.ID] = f.SuppressReason
	}
	for _, id := range []string{"RG301", "RG304"} {
		if got[id] != "holds a ReadWriteOnce volume" {
			t.Errorf("%s: suppressed reason %q, want the annotation's reason", id, got[id])
		}
	}
	if len(rep.Findings) != 0 {
		t.Errorf("unexpected active findings: %v", rep.Findings)
	}
}

func TestSeverityOverrideAndDisable(t *testing.T) {
	t.Parallel()
	reg := rules.Default()
	res := manifest.Load([]string{"testdata/RG101/fires-no-prestop.yaml"}, manifest.Options{})
	m := model.Build(res.Objects, model.Options{})
	r := reg.Lookup("RG101")
	rep := reg.Run(m, rules.Options{Settings: rules.DefaultSettings(), Severity: map[*rules.Rule]rules.Severity{r: rules.Info}})
	if len(rep.Findings) != 1 || rep.Findings[0].Severity != rules.Info {
		t.Fatalf("severity override not applied: %+v", rep.Findings)
	}
	rep = reg.Run(m, rules.Options{Settings: rules.DefaultSettings(), Disabled: map[*rules.Rule]bool{r: true}})
	if fired(rep, r) != 0 {
		t.Fatal("disabled rule ran")
	}
}

// TestDocsUpToDate fails when docs/rules/ differs from the registry; run
// `go run ./hack/gendocs` to regenerate.
func TestDocsUpToDate(t *testing.T) {
	t.Parallel()
	reg := rules.Default()
	want := map[string]string{"README.md": reg.IndexMarkdown()}
	for _, r := range reg.All() {
		want[r.ID+".md"] = r.Markdown()
	}
	pages, _ := filepath.Glob("../../docs/rules/*.md")
	if len(pages) != len(want) {
		t.Errorf("docs/rules has %d pages, the registry makes %d: run go run ./hack/gendocs", len(pages), len(want))
	}
	for name, text := range want {
		got, err := os.ReadFile(filepath.Join("../../docs/rules", name))
		if err != nil || string(got) != text {
			t.Errorf("docs/rules/%s is out of date: run go run ./hack/gendocs", name)
		}
	}
}

func TestUnknownRuleInAnnotationWarns(t *testing.T) {
	t.Parallel()
	res := &manifest.Result{}
	manifest.Decode("a.yaml", []byte(`apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
  annotations: {rollguard.io/ignore: "RG101, RG999"}
spec:
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec: {containers: [{name: web, image: w, ports: [{containerPort: 80}]}]}
---
apiVersion: v1
kind: Service
metadata: {name: web}
spec: {selector: {app: web}, ports: [{port: 80}]}
`), res)
	rep := rules.Default().Run(model.Build(res.Objects, model.Options{}), rules.Options{Settings: rules.DefaultSettings()})
	if len(rep.Warnings) != 1 || !strings.Contains(rep.Warnings[0], `unknown rule "RG999"`) {
		t.Errorf("warnings %v: want one about RG999", rep.Warnings)
	}
	suppressed := false
	for _, f := range rep.Suppressed {
		suppressed = suppressed || f.Rule.ID == "RG101"
	}
	if !suppressed {
		t.Error("the known rule in the same annotation was not suppressed")
	}
}

// expectRe reads a fixture's "# expect: RG101 info "substring"" lines: some
// finding of that rule has that severity and a message or fix holding the text.
var expectRe = regexp.MustCompile(`^# expect: (RG[0-9]{3}) (error|warning|info) "(.*)"$`)

// TestFixtureExpectations checks the severities and messages that
// fixtures pin, and that every firing fixture without a pin reports the
// rule at its own severity, so a finding lowered by mistake is caught.
func TestFixtureExpectations(t *testing.T) {
	t.Parallel()
	reg := rules.Default()
	files, _ := filepath.Glob("testdata/RG*/*.yaml")
	pinned := 0
	for _, p := range files {
		data, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		rep := run(t, p)
		var expects [][]string
		for _, line := range strings.Split(string(data), "\n") {
			if m := expectRe.FindStringSubmatch(line); m != nil {
				expects = append(expects, m)
			}
		}
		for _, m := range expects {
			pinned++
			found := false
			for _, f := range rep.Findings {
				found = found || (f.Rule.ID == m[1] && f.Severity.String() == m[2] && strings.Contains(f.Message+" "+f.Fix, m[3]))
			}
			if !found {
				t.Errorf("%s: no %s %s finding with %q; got:", p, m[1], m[2], m[3])
				for _, f := range rep.Findings {
					t.Logf("  %s %s %s", f.Rule.ID, f.Severity, f.Message)
				}
			}
		}
		id := filepath.Base(filepath.Dir(p))
		if len(expects) == 0 && strings.HasPrefix(filepath.Base(p), "fires-") {
			r := reg.Lookup(id)
			for _, f := range rep.Findings {
				if f.Rule.ID == r.ID && f.Severity != r.Severity {
					t.Errorf("%s: %s reported as %s, want its own severity %s (or pin it with # expect:)", p, id, f.Severity, r.Severity)
				}
			}
		}
	}
	if pinned < 10 {
		t.Errorf("only %d pinned expectations found", pinned)
	}
}
