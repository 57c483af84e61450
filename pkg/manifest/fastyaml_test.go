package manifest

import (
	"bytes"
	"fmt"
	"io/fs"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"

	yaml "go.yaml.in/yaml/v3"
)

// sameTree reports where two node trees differ in anything the loader or a
// later reader could see (comments aside), or "".
func sameTree(got, want *yaml.Node, path string) string {
	if got == nil || want == nil {
		if got != want {
			return fmt.Sprintf("%s: got %v, want %v", path, got, want)
		}
		return ""
	}
	g := fmt.Sprintf("kind=%v style=%v tag=%q value=%q anchor=%q at %d:%d children=%d",
		got.Kind, got.Style, got.Tag, got.Value, got.Anchor, got.Line, got.Column, len(got.Content))
	w := fmt.Sprintf("kind=%v style=%v tag=%q value=%q anchor=%q at %d:%d children=%d",
		want.Kind, want.Style, want.Tag, want.Value, want.Anchor, want.Line, want.Column, len(want.Content))
	if g != w {
		return fmt.Sprintf("%s:\n got  %s\n want %s", path, g, w)
	}
	if got.ShortTag() != want.ShortTag() || (got.Alias == nil) != (want.Alias == nil) {
		return fmt.Sprintf("%s: short tag %s or alias differs from %s", path, got.ShortTag(), want.ShortTag())
	}
	for i := range got.Content {
		if d := sameTree(got.Content[i], want.Content[i], fmt.Sprintf("%s/%d", path, i)); d != "" {
			return d
		}
	}
	return ""
}

// checkFast holds fastParse to yaml.v3: when it takes a document, yaml.v3
// must read the document without an error into the same tree.
func checkFast(t *testing.T, data []byte) bool {
	t.Helper()
	got, release, ok := fastParse(data, false)
	if !ok {
		return false
	}
	defer release()
	// A fixed document gives the same tree, from its own bytes.
	fixed, releaseFixed, okFixed := fastParse(bytes.Clone(data), true)
	if !okFixed {
		t.Fatalf("fast path took a copy of the document but not the document itself:\n%s", data)
	}
	defer releaseFixed()
	if d := sameTree(fixed, got, "doc"); d != "" {
		t.Fatalf("fast path differs on a fixed document at %s\ninput:\n%s", d, data)
	}
	var want yaml.Node
	if err := yaml.Unmarshal(data, &want); err != nil {
		t.Fatalf("fast path took a document yaml.v3 refuses (%v):\n%s", err, data)
	}
	if d := sameTree(got, &want, "doc"); d != "" {
		t.Fatalf("fast path differs from yaml.v3 at %s\ninput:\n%s", d, data)
	}
	return true
}

// fastCases are documents of the kinds Kubernetes manifests hold, and the
// edges of what the fast path takes; take says whether it must take them.
var fastCases = []struct {
	in   string
	take bool
}{
	{"apiVersion: v1\nkind: Service\nmetadata:\n  name: web\n", true},
	{"# only a comment\n\n", true},
	{"", true},
	{"a: 1\nb:\nc:\n  - x\n  -\n  - y: |\n      hi\n", true},
	{"a: |\n  x", true},
	{"a: |+\n  x\n\n", true},
	{"a: |-\n  x\n\n  y\n\n", true},
	{"a: |\n  x\n   y\n  # not a comment\nb: 2\n", true},
	{"a: | # a comment\n    x\n", true},
	{"- a\n- b:\n", true},
	{"\n  \n  k: v\n", true},
	{"a: \nb: 2", true},
	{"a:   # comment\n  b: c # comment\n", true},
	{"spec:\n  containers:\n  - name: app\n    image: x:1\n    args: [--port=80, \"-v\", 'it''s']\n  - name: b\nkind: Pod\n", true},
	{"labels: {app.kubernetes.io/name: web, tier: \"front end\"}\nports:\n  - {name: http, containerPort: 8080}\n", true},
	{"a: {}\nb: []\nc: [[1, 2], {x: [y]}]\n", true},
	{"v: \"tab\\there \\u00e9 \\x41 \\U0001F600 \\\\ \\\" \\N \\_ \\L \\P \\/\"\n", false}, // "\/" is no YAML escape
	{"v: \"tab\\there \\u00e9 \\x41 \\U0001F600 \\\\ \\\" \\N \\_ \\L \\P \\e \\0\"\n", true},
	{"bools: [yes, no, true, False, on]\nnums: [0x1f, 1e3, .5, -1, +2, 0o7, 1_000, .inf, .nan]\nnull: ~\nt: 2001-12-14\n", true},
	{"<<: {a: 1}\nb: 2\n", true},
	{"key with spaces: value with spaces\n'quoted key': 1\n\"dq\": 2\n", true},
	{"a: b#c\nd: e #f\ng: -1\nh: --flag\ni: http://x:80/y\n", true},
	{"名前: 値\nk: {名: 値, x: y}\n", true},
	{"a: b: c\n", false},
	{"a: b\n  c\n", false},            // a multi-line plain scalar
	{"a: &x 1\nb: *x\n", false},       // anchors
	{"a: !!str 1\n", false},           // tags
	{"a: >\n  folded\n", false},       // folded scalars
	{"a: [1,\n  2]\n", false},         // multi-line flow
	{"a: \"x\n  y\"\n", false},        // multi-line quoted
	{"a:\tb\n", false},                // tabs
	{"a: b\r\n", false},               // CR
	{"? a\n: b\n", false},             // explicit keys
	{"a: 1\n- b\n", false},            // malformed
	{"- - a\n", false},                // nested compact sequences
	{"a: [1, 2,]\n", false},           // trailing comma
	{"a: \"\\/\"\n", false},           // no such escape in yaml.v3
	{"a: \"\\ud800\"\n", false},       // a surrogate
	{"a: \"\x01\"\n", false},          // a control character
	{"a: \"\xff\"\n", false},          // invalid UTF-8
	{"a: |2\n   x\n", false},          // an indentation indicator
	{"a: |\n\n  x\n", false},          // a blank line first
	{"a: |\nb: 1\n", false},           // an empty block scalar
	{"a\n", false},                    // a scalar document
	{"a:\n  b\n", false},              // a scalar on the next line
	{"--- a: 1\n", false},             // a document marker
	{"a: 1\n...\n", false},            // a document end
	{"%YAML 1.2\n---\na: 1\n", false}, // a directive
}

func TestFastParseMatchesYAMLv3(t *testing.T) {
	t.Parallel()
	for _, c := range fastCases {
		if took := checkFast(t, []byte(c.in)); took != c.take {
			t.Errorf("fast path took=%v, want %v:\n%s", took, c.take, c.in)
		}
	}
}

// TestFastParseOnFixtures runs every document of the repository's YAML
// fixtures through both parsers, and requires the fast path to take most
// of them: if it stopped taking common manifests, the audit would only be
// slower, and no other test would notice.
func TestFastParseOnFixtures(t *testing.T) {
	t.Parallel()
	var docs, took int
	err := filepath.WalkDir("../..", func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() && (strings.HasPrefix(d.Name(), ".") && path != "../..") {
			return fs.SkipDir
		}
		if d.IsDir() || !strings.Contains(path, "testdata") || !strings.HasSuffix(path, ".yaml") {
			return nil
		}
		data, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		for _, doc := range Documents(data) {
			docs++
			if checkFast(t, doc.Data) {
				took++
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if docs < 200 || took*100 < docs*85 {
		t.Errorf("the fast path took %d of %d fixture documents, want at least 85%%", took, docs)
	}
	t.Logf("the fast path took %d of %d fixture documents", took, docs)
}

// FuzzFastParse: whatever the fast path takes, yaml.v3 reads into the same
// tree.
func FuzzFastParse(f *testing.F) {
	for _, c := range fastCases {
		f.Add([]byte(c.in))
	}
	seeds, _ := filepath.Glob("../rules/testdata/*/*.yaml")
	for _, p := range seeds {
		if data, err := os.ReadFile(p); err == nil {
			f.Add(data)
		}
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		checkFast(t, data)
	})
}

// TestFastParseGenerated builds documents from the pieces manifests are
// made of, with the spacing, comments and odd values that trip parsers,
// and holds the fast path to yaml.v3 on each (seeded, so a failure
// repeats).
func TestFastParseGenerated(t *testing.T) {
	t.Parallel()
	r := rand.New(rand.NewPCG(1, 2))
	pick := func(s []string) string { return s[r.IntN(len(s))] }
	scalars := []string{"x", "web-1", "1", "-1", "0.5", "1e3", "true", "no", "~", "null", "a b", "a #b", "a#b", "a:b",
		"http://h:80/p", "-", "--x", "-x", "'q'", "'it''s'", `"d"`, `"a\"b"`, `"\u00e9"`, `""`, "''", "é", "a  ", "[]", "{}",
		"[a, b]", "{a: 1, b: [c]}", "[ a , 'b' ]", "{ a: b }", "<<", "a: b", "- a", "* a", "&a", "!t", "%x", "@x", "`x`",
		"? x", ": x", "|", "|-", ">", "[a,]", "{a}", "[a: b]", "a,b", "a]", "a}",
		// scalars that start with a digit: numbers, timestamps, and strings that look like them
		"0", "8080", "007", "089", "0x1F", "0xZZ", "0o17", "0b101", "-0b1", "1_000", "1e3", "1e", "1.0.0", "10.0.0.1", "1:20",
		"12345678901234567890", "999999999999999999", "9223372036854775808", "128Mi", "100m", "3s", "1 2", "1a", "1é",
		"2001-12-14", "2001-12-14t21:59:43.10-05:00", "2001-12-14T21:59:43Z", "2001-12-14 21:59:43.10", "2001-13-14", "1.5E+3"}
	keys := []string{"k", "key", "a.b/c", "'k q'", `"k d"`, "k ", "1", "true", "<<", "é", "-k", "k#", "k:x"}
	comments := []string{"", " # c", "  #c", "#c"}
	var gen func(b *strings.Builder, indent, depth int)
	gen = func(b *strings.Builder, indent, depth int) {
		pad := strings.Repeat(" ", indent)
		seq := r.IntN(3) == 0
		for range 1 + r.IntN(3) {
			if r.IntN(5) == 0 {
				b.WriteString(strings.Repeat(" ", r.IntN(indent+3)) + pick([]string{"", "# note"}) + "\n")
			}
			b.WriteString(pad)
			if seq {
				b.WriteString(pick([]string{"- ", "-  ", "-"}))
			} else {
				b.WriteString(pick(keys) + pick([]string{":", ": ", ":  "}))
			}
			switch n := r.IntN(6); {
			case n == 0 && depth < 4:
				b.WriteString(pick(comments) + "\n")
				gen(b, indent+pick2(r, 0, 2, 4), depth+1)
			case n == 1:
				b.WriteString(pick([]string{" |", " |-", " |+", " | # c"}) + "\n")
				for range 1 + r.IntN(3) {
					b.WriteString(strings.Repeat(" ", indent+2+r.IntN(2)) + pick([]string{"line", "# x", "  y", ""}) + "\n")
					if r.IntN(3) == 0 {
						b.WriteString(strings.Repeat(" ", r.IntN(indent+5)) + "\n")
					}
				}
			default:
				b.WriteString(" " + pick(scalars) + pick(comments) + "\n")
			}
		}
	}
	took := 0
	const n = 20000
	for range n {
		var b strings.Builder
		gen(&b, r.IntN(2), 0)
		s := b.String()
		if r.IntN(4) == 0 {
			s = strings.TrimSuffix(s, "\n")
		}
		if checkFast(t, []byte(s)) {
			took++
		}
	}
	t.Logf("the fast path took %d of %d generated documents", took, n)
	if took < n/10 {
		t.Errorf("the fast path took only %d of %d generated documents", took, n)
	}
}

func pick2(r *rand.Rand, v ...int) int { return v[r.IntN(len(v))] }
