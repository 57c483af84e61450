package fix_test

import (
	"bytes"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/rollguard/rollguard/pkg/fix"
	"github.com/rollguard/rollguard/pkg/manifest"
	"github.com/rollguard/rollguard/pkg/model"
	"github.com/rollguard/rollguard/pkg/rules"
)

var update = flag.Bool("update", false, "rewrite testdata/golden")

func opts() fix.Options {
	return fix.Options{
		Rules: rules.Options{Settings: rules.DefaultSettings()},
		Fix:   rules.FixOptions{Settings: rules.DefaultSettings()},
	}
}

func run(t *testing.T, name string, data []byte, o fix.Options) *fix.Result {
	t.Helper()
	res := fix.Run([]fix.Input{{Name: name, Data: data}}, rules.Default(), o)
	if len(res.Errors) > 0 {
		t.Fatalf("%s: input errors %v", name, res.Errors)
	}
	return res
}

// fixtures are every manifest the project has: the audit corpus, the rule
// fixtures and the fix fixtures.
func fixtures(t *testing.T) []string {
	var all []string
	for _, g := range []string{"../../testdata/corpus/*.yaml", "../rules/testdata/*.yaml", "../rules/testdata/*/*.yaml", "testdata/*.yaml"} {
		m, err := filepath.Glob(g)
		if err != nil {
			t.Fatal(err)
		}
		all = append(all, m...)
	}
	if len(all) < 60 {
		t.Fatalf("only %d fixtures found", len(all))
	}
	return all
}

// TestGolden compares the fixed text of the corpus and the fix fixtures
// with the checked-in expectations: comments and formatting preserved.
func TestGolden(t *testing.T) {
	t.Parallel()
	var files []string
	for _, g := range []string{"../../testdata/corpus/*.yaml", "testdata/*.yaml"} {
		m, _ := filepath.Glob(g)
		files = append(files, m...)
	}
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		got := run(t, f, data, opts()).Files[0].After
		golden := filepath.Join("testdata/golden", strings.TrimSuffix(filepath.Base(f), ".yaml")+".fixed.yaml")
		if *update {
			if err := os.WriteFile(golden, got, 0o644); err != nil {
				t.Fatal(err)
			}
			continue
		}
		want, err := os.ReadFile(golden)
		if err != nil {
			t.Fatalf("%v (run go test ./pkg/fix -update)", err)
		}
		if !bytes.Equal(got, want) {
			t.Errorf("%s: fixed text differs from %s", f, golden)
		}
	}
}

// TestProperties checks every fixture: fixing twice changes nothing more,
// the fixed text decodes cleanly, the audit of the fixed text reports none
// of the findings that were fixed, and only lines were added or changed
// where a fix was made (the rest of the text is a subsequence of the
// original, in order).
func TestProperties(t *testing.T) {
	t.Parallel()
	reg := rules.Default()
	for _, f := range fixtures(t) {
		data, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		first := run(t, f, data, opts())
		fixed := first.Files[0].After
		second := run(t, f, fixed, opts())
		if second.Files[0].Changed() || len(second.Applied) > 0 {
			t.Errorf("%s: not idempotent: the second run changed\n%s", f, second.Files[0].After)
		}
		loaded := &manifest.Result{}
		manifest.DecodeFile(f, fixed, loaded)
		if len(loaded.Errors) > 0 {
			t.Errorf("%s: fixed text has errors: %v", f, loaded.Errors)
			continue
		}
		audit := reg.Run(model.Build(loaded.Objects, model.Options{}), rules.Options{Settings: rules.DefaultSettings()})
		fixedKeys := map[string]bool{}
		for _, a := range first.Applied {
			fixedKeys[a.Finding.Rule.ID+"/"+a.Finding.Object.Ref()+"/"+a.Finding.Container] = true
		}
		for _, fd := range audit.Findings {
			if fixedKeys[fd.Rule.ID+"/"+fd.Object.Ref()+"/"+fd.Container] {
				t.Errorf("%s: %s still reported on %s after its fix", f, fd.Rule.ID, fd.Object.Ref())
			}
		}
		if removed := removedLines(string(data), string(fixed)); removed > len(first.Applied)*4 {
			t.Errorf("%s: %d original lines gone for %d fixes", f, removed, len(first.Applied))
		}
	}
}

// removedLines counts original lines that are not in the fixed text, in
// order: a fix replaces a few lines at most.
func removedLines(before, after string) int {
	a, b := strings.Split(before, "\n"), strings.Split(after, "\n")
	j, removed := 0, 0
	for _, line := range a {
		k := j
		for k < len(b) && b[k] != line {
			k++
		}
		if k == len(b) {
			removed++
			continue
		}
		j = k + 1
	}
	return removed
}

func TestRemainingSaysWhy(t *testing.T) {
	t.Parallel()
	data, err := os.ReadFile("testdata/hook-does-work.yaml")
	if err != nil {
		t.Fatal(err)
	}
	res := run(t, "hook-does-work.yaml", data, opts())
	if res.Files[0].Changed() || len(res.Edits) > 0 {
		t.Errorf("a hook that does other work was changed (%d edits):\n%s", len(res.Edits), res.Files[0].After)
	}
	why := map[string]string{}
	for _, r := range res.Remaining {
		why[r.Finding.Rule.ID] = r.Why
	}
	if len(why) != 2 || !strings.Contains(why["RG102"], "--prepend-sleep") || !strings.Contains(why["RG104"], "more than sleep") {
		t.Fatalf("remaining %v: want RG102 naming --prepend-sleep, and RG104", why)
	}
}

// sleepN hides the length of a prepended sleep, which the rules decide
// (the budget less the hook's own delay), so that the tests below pin the
// bytes fix is responsible for: the list's form and its quoting.
var sleepN = regexp.MustCompile(`sleep [0-9]+; `)

// TestPrependSleepKeepsQuoting: --prepend-sleep rewrites only the script of
// a shell hook, in the quotes and list form it was written in.
func TestPrependSleepKeepsQuoting(t *testing.T) {
	t.Parallel()
	data, err := os.ReadFile("testdata/hook-does-work.yaml")
	if err != nil {
		t.Fatal(err)
	}
	const hook = `command: ["/bin/sh", "-c", "sleep 1 && nginx -s quit"]`
	if !bytes.Contains(data, []byte(hook)) {
		t.Fatalf("the fixture lacks %s", hook)
	}
	block := "command:\n                  - %s\n                  - %s\n                  - %s  # then quit\n"
	for _, tc := range []struct{ name, hook, want string }{
		{"flow, double quotes", hook, `command: ["/bin/sh", "-c", "sleep N; sleep 1 && nginx -s quit"]`},
		{"flow, single and plain, inner spaces",
			`command: [ sh, -c, 'sleep 1 && nginx -s quit' ]`,
			`command: [ sh, -c, 'sleep N; sleep 1 && nginx -s quit' ]`},
		{"block, plain",
			fmt.Sprintf(block, "sh", "-c", "sleep 1 && nginx -s quit"),
			fmt.Sprintf(block, "sh", "-c", "sleep N; sleep 1 && nginx -s quit")},
		{"block, double quotes",
			fmt.Sprintf(block, `"/bin/sh"`, `"-c"`, `"sleep 1 && nginx -s quit"`),
			fmt.Sprintf(block, `"/bin/sh"`, `"-c"`, `"sleep N; sleep 1 && nginx -s quit"`)},
		{"block, single quotes",
			fmt.Sprintf(block, `'/bin/sh'`, `'-c'`, `'sleep 1 && nginx -s quit'`),
			fmt.Sprintf(block, `'/bin/sh'`, `'-c'`, `'sleep N; sleep 1 && nginx -s quit'`)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			src := strings.Replace(string(data), hook, strings.TrimSuffix(tc.hook, "\n"), 1)
			o := opts()
			o.Fix.PrependSleep = true
			res := run(t, "hook.yaml", []byte(src), o)
			got := sleepN.ReplaceAllString(string(res.Files[0].After), "sleep N; ")
			want := strings.Replace(string(data), hook, strings.TrimSuffix(tc.want, "\n"), 1)
			if got != want {
				t.Errorf("got:\n%s\nwant:\n%s", got, want)
			}
			for _, r := range res.Remaining {
				if r.Finding.Rule.ID == "RG102" {
					t.Errorf("RG102 remains: %s", r.Why)
				}
			}
			if len(res.Edits) != 1 || !strings.HasSuffix(res.Edits[0].Path, ".exec.command[2]") && !strings.HasSuffix(res.Edits[0].Path, ".exec.command") {
				t.Errorf("edits %+v: want the one edit of the command", res.Edits)
			}
		})
	}
}

// TestEveryEditIsListed: the edits of later rounds (RG103's grace period
// for the preStop delay RG101 added, RG305's minReadySeconds once RG201
// added a readinessProbe) are listed like the first round's, each with the
// line of its field before and after fixing.
func TestEveryEditIsListed(t *testing.T) {
	t.Parallel()
	data, err := os.ReadFile("testdata/follow-on.yaml")
	if err != nil {
		t.Fatal(err)
	}
	res := run(t, "follow-on.yaml", data, opts())
	type want struct {
		round        int
		value        string
		key          string // the text the field's line starts with, after fixing
		originalLine int
	}
	wants := map[string]want{
		"RG101": {0, "{sleep: {seconds: 5}}", "preStop:", 26},
		"RG201": {0, "{tcpSocket: {port: http}, periodSeconds: 5, failureThreshold: 2}", "readinessProbe:", 26},
		"RG103": {1, "10", "terminationGracePeriodSeconds: 10", 17},
		"RG305": {1, "5", "minReadySeconds: 5", 11},
	}
	after := strings.Split(string(res.Files[0].After), "\n")
	before := strings.Split(string(data), "\n")
	for _, e := range res.Edits {
		id := e.Rules[0].ID
		w, ok := wants[id]
		if !ok {
			t.Errorf("unexpected edit by %s: %s", id, e.Path)
			continue
		}
		delete(wants, id)
		if e.Round != w.round || e.ValueText() != w.value || e.File != "follow-on.yaml" || e.Object.Name != "cart" {
			t.Errorf("%s: round %d, value %s, file %s, object %s", id, e.Round, e.ValueText(), e.File, e.Object.Ref())
		}
		if e.Line < 1 || e.Line > len(after) || !strings.HasPrefix(strings.TrimSpace(after[e.Line-1]), w.key) {
			t.Errorf("%s: line %d of the fixed text is not %q", id, e.Line, w.key)
		}
		if e.OriginalLine != w.originalLine {
			t.Errorf("%s: original line %d (%q), want %d (%q)", id, e.OriginalLine, before[e.OriginalLine-1], w.originalLine, before[w.originalLine-1])
		}
	}
	for id := range wants {
		t.Errorf("no edit listed for %s", id)
	}
}

// TestSameValueTwiceIsOneEdit: RG102 and RG104 both replace a hook that
// only sleeps with the native action; the text changes once, and the one
// edit names both rules.
func TestSameValueTwiceIsOneEdit(t *testing.T) {
	t.Parallel()
	data, err := os.ReadFile("../../testdata/corpus/everything-wrong.yaml")
	if err != nil {
		t.Fatal(err)
	}
	res := run(t, "everything-wrong.yaml", data, opts())
	var found bool
	for _, e := range res.Edits {
		if e.Path != "spec.template.spec.containers[0].lifecycle.preStop" {
			continue
		}
		if found {
			t.Error("the preStop edit is listed twice")
		}
		found = true
		var ids []string
		for _, r := range e.Rules {
			ids = append(ids, r.ID)
		}
		if strings.Join(ids, ",") != "RG102,RG104" {
			t.Errorf("the preStop edit names %v, want RG102 and RG104", ids)
		}
	}
	if !found {
		t.Error("no preStop edit")
	}
}

// nativeSleepRule fires on every container and fixes it with a native
// sleep, with the note given: it stands for a remedy that does not say
// which Kubernetes version the sleep action needs.
func nativeSleepRule(note string) *rules.Rule {
	return &rules.Rule{
		ID: "RG999", Name: "test-native-sleep", Case: rules.Case1, Severity: rules.Error,
		Summary: "s", Rollout: "r", Why: "w", Fix: "f", Example: "e",
		Workload: func(s rules.Settings, w *model.Workload) []rules.Finding {
			var out []rules.Finding
			for _, c := range w.Containers {
				if c.Spec.Lifecycle == nil {
					out = append(out, rules.Finding{Container: c.Spec.Name, Path: c.Path, Message: "m", Fix: "f"})
				}
			}
			return out
		},
		Remediate: func(o rules.FixOptions, f rules.Finding) rules.Remedy {
			return rules.Remedy{Note: note, Ops: []rules.Op{{
				Path:  "spec.template.spec.containers[0].lifecycle.preStop",
				Value: rules.M("sleep", rules.M("seconds", 5)),
			}}}
		},
	}
}

// TestNativeSleepNotesTheFloor: an edit that writes a native sleep notes
// that it needs Kubernetes 1.30, unless --k8s-version asked for an older
// one or the remedy's own note says so already.
func TestNativeSleepNotesTheFloor(t *testing.T) {
	t.Parallel()
	data, err := os.ReadFile("../rules/testdata/RG101/fires-no-prestop.yaml")
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name, note string
		minor      int
		want       []string
	}{
		{"the remedy says nothing", "", 0, []string{"the native sleep action needs Kubernetes 1.30 or later (beta and on by default in 1.30, GA in 1.34); " +
			"for older clusters, run fix with --k8s-version (e.g. 1.29) to get an exec sleep instead"}},
		{"a newer cluster was named", "", 31, []string{"the native sleep action needs Kubernetes 1.30 or later (beta and on by default in 1.30, GA in 1.34); " +
			"for older clusters, run fix with --k8s-version (e.g. 1.29) to get an exec sleep instead"}},
		{"the remedy says it", "needs 1.30", 0, []string{"needs 1.30"}},
		{"an older cluster was named", "", 29, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			reg, err := rules.NewRegistry(nativeSleepRule(tc.note))
			if err != nil {
				t.Fatal(err)
			}
			o := opts()
			o.Fix.KubeMinor = tc.minor
			res := fix.Run([]fix.Input{{Name: "x.yaml", Data: data}}, reg, o)
			if len(res.Edits) != 1 {
				t.Fatalf("edits %+v", res.Edits)
			}
			if got := res.Edits[0].Notes; !slices.Equal(got, tc.want) {
				t.Errorf("notes %q, want %q", got, tc.want)
			}
		})
	}
	// The registry's own RG101 fix carries the note, whoever writes it.
	res := run(t, "x.yaml", data, opts())
	if len(res.Edits) != 1 || !strings.Contains(strings.Join(res.Edits[0].Notes, "\n"), "1.30") {
		t.Errorf("RG101's native sleep edit does not note Kubernetes 1.30: %+v", res.Edits)
	}
}

func TestOldKubernetesGetsExecSleep(t *testing.T) {
	t.Parallel()
	data, err := os.ReadFile("../rules/testdata/RG101/fires-no-prestop.yaml")
	if err != nil {
		t.Fatal(err)
	}
	o := opts()
	o.Fix.KubeMinor = 29
	res := run(t, "x.yaml", data, o)
	if !strings.Contains(string(res.Files[0].After), "exec:\n                command: [\"sleep\", \"5\"]") {
		t.Errorf("want an exec sleep for 1.29:\n%s", res.Files[0].After)
	}
	if len(res.Edits) != 1 || len(res.Edits[0].Notes) != 1 || !strings.Contains(res.Edits[0].Notes[0], "1.29 has no native sleep") {
		t.Errorf("want one note, about the sleep binary, got %+v", res.Edits)
	}
}

func TestInputErrorsLeaveTheFileAlone(t *testing.T) {
	t.Parallel()
	good, _ := os.ReadFile("../rules/testdata/RG101/fires-no-prestop.yaml")
	bad := append(append([]byte{}, good...), []byte("---\napiVersion: v1\nkind: Service\nmetadata: [\n")...)
	res := fix.Run([]fix.Input{{Name: "bad.yaml", Data: bad}, {Name: "good.yaml", Data: good}}, rules.Default(), opts())
	if len(res.Errors) != 1 {
		t.Fatalf("errors %v", res.Errors)
	}
	if res.Files[0].Changed() {
		t.Error("a file with an input error was changed")
	}
	if !res.Files[1].Changed() {
		t.Error("the good file was not fixed")
	}
}
