// Command gendocs writes docs/rules/ from the rule registry: one page per
// rule and an index. A test fails when the checked-in pages differ from
// what it would write, so the docs never drift from the code.
package main

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/rollguard/rollguard/pkg/rules"
)

func main() {
	dir := "docs/rules"
	if len(os.Args) > 1 {
		dir = os.Args[1]
	}
	if err := write(dir); err != nil {
		fmt.Fprintf(os.Stderr, "gendocs: %v\n", err)
		os.Exit(1)
	}
}

func write(dir string) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	reg := rules.Default()
	want := map[string]string{"README.md": reg.IndexMarkdown()}
	for _, r := range reg.All() {
		want[r.ID+".md"] = r.Markdown()
	}
	old, err := filepath.Glob(filepath.Join(dir, "*.md"))
	if err != nil {
		return err
	}
	for _, p := range old {
		if _, keep := want[filepath.Base(p)]; !keep && strings.HasPrefix(filepath.Base(p), "RG") {
			if err := os.Remove(p); err != nil {
				return err
			}
		}
	}
	for name, text := range want {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(text), 0o644); err != nil {
			return err
		}
	}
	return nil
}
