package fix_test

import (
	"bytes"
	"flag"
	"os"
	"path/filepath"
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
	if res.Files[0].Changed() {
		t.Errorf("a hook that does other work was changed:\n%s", res.Files[0].After)
	}
	why := map[string]string{}
	for _, r := range res.Remaining {
		why[r.Finding.Rule.ID] = r.Why
	}
	if len(why) != 2 || !strings.Contains(why["RG102"], "--prepend-sleep") || !strings.Contains(why["RG104"], "more than sleep") {
		t.Fatalf("remaining %v: want RG102 naming --prepend-sleep, and RG104", why)
	}
	o := opts()
	o.Fix.PrependSleep = true
	res = run(t, "hook-does-work.yaml", data, o)
	// The hook still needs a shell, so RG104 stays.
	if !strings.Contains(string(res.Files[0].After), `command: ["/bin/sh", "-c", "sleep 5; sleep 1 && nginx -s quit"]`) ||
		len(res.Remaining) != 1 || res.Remaining[0].Finding.Rule.ID != "RG104" {
		t.Errorf("--prepend-sleep: remaining %v, text:\n%s", res.Remaining, res.Files[0].After)
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
	if len(res.Applied) != 1 || !strings.Contains(res.Applied[0].Note, "1.29 has no native sleep") {
		t.Errorf("want a note about the sleep binary, got %+v", res.Applied)
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
