package manifest_test

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/rollguard/rollguard/pkg/manifest"
)

// TestLoadKeepsInputOrder: documents are decoded on several cores in
// chunks, and objects and errors still come out in input order, with each
// document's own line.
func TestLoadKeepsInputOrder(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	var b strings.Builder
	for i := range 300 {
		if i == 150 {
			b.WriteString("---\nkind: [\n") // invalid YAML in the middle of a large stream
			continue
		}
		fmt.Fprintf(&b, "---\napiVersion: v1\nkind: Service\nmetadata: {name: s%d}\nspec: {ports: [{port: 80}]}\n", i)
	}
	a := filepath.Join(dir, "a.yaml")
	c := filepath.Join(dir, "c.yaml")
	if err := os.WriteFile(a, []byte(b.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(c, []byte("apiVersion: v1\nkind: Service\nmetadata: {name: last}\nspec: {ports: [{port: 80}]}\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	res := manifest.Load([]string{a, filepath.Join(dir, "missing.yaml"), c}, manifest.Options{})
	if len(res.Objects) != 300 || res.Files != 2 {
		t.Fatalf("%d objects from %d files, want 300 from 2", len(res.Objects), res.Files)
	}
	for i, o := range res.Objects[:299] {
		want := i
		if i >= 150 {
			want = i + 1
		}
		if o.Name != fmt.Sprintf("s%d", want) || o.Source.Line != 5*want+2-3*btoi(want > 150) {
			t.Fatalf("object %d is %s at line %d, want s%d", i, o.Name, o.Source.Line, want)
		}
	}
	if res.Objects[299].Name != "last" {
		t.Errorf("the last object is %s", res.Objects[299].Name)
	}
	if len(res.Errors) != 2 || !strings.Contains(res.Errors[0].Error(), "a.yaml:") || !strings.Contains(res.Errors[1].Error(), "missing.yaml") {
		t.Errorf("errors %v: want a.yaml's, then the missing file's", res.Errors)
	}
}

func btoi(b bool) int {
	if b {
		return 1
	}
	return 0
}
