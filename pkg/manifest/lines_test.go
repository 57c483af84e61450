package manifest

import (
	"bytes"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"testing"

	yaml "go.yaml.in/yaml/v3"
)

// refWriter is the JSON writer as it was before the scratch buffers: a
// path string made for every field, a fresh slice of entries for every
// mapping. jsonWriter must write the same JSON and the same line map.
type refWriter struct {
	buf   bytes.Buffer
	lines []pathLine
	depth int
	nodes int
}

func refKeepPath(p string) bool {
	if i := max(strings.LastIndex(p, ".containers["), strings.LastIndex(p, ".initContainers[")); i >= 0 {
		return strings.Count(p[i+1:], ".") <= 2
	}
	return strings.Count(p, ".") <= 3 && !strings.HasPrefix(p, "metadata.") && !strings.HasPrefix(p, "status")
}

func (w *refWriter) node(n *yaml.Node, path string) error {
	w.depth++
	defer func() { w.depth-- }()
	if w.depth > maxDepth {
		return fmt.Errorf("too deep")
	}
	if w.nodes++; w.nodes > maxNodes {
		return fmt.Errorf("too many")
	}
	if n.Kind == yaml.AliasNode {
		if n.Alias == nil {
			return fmt.Errorf("unknown anchor")
		}
		return w.node(n.Alias, path)
	}
	switch n.Kind {
	case yaml.MappingNode:
		pairs, err := w.pairs(n, 0)
		if err != nil {
			return err
		}
		w.buf.WriteByte('{')
		for i, kv := range pairs {
			if i > 0 {
				w.buf.WriteByte(',')
			}
			appendString(&w.buf, kv.key.Value)
			w.buf.WriteByte(':')
			p := kv.key.Value
			if path != "" {
				p = path + "." + kv.key.Value
			}
			if refKeepPath(p) {
				w.lines = append(w.lines, pathLine{p, kv.key.Line})
			}
			if err := w.node(kv.value, p); err != nil {
				return err
			}
		}
		w.buf.WriteByte('}')
		return nil
	case yaml.SequenceNode:
		w.buf.WriteByte('[')
		for i, it := range n.Content {
			if i > 0 {
				w.buf.WriteByte(',')
			}
			p := path + "[" + strconv.Itoa(i) + "]"
			if path != "" && refKeepPath(p) {
				w.lines = append(w.lines, pathLine{p, it.Line})
			}
			if err := w.node(it, p); err != nil {
				return err
			}
		}
		w.buf.WriteByte(']')
		return nil
	case yaml.ScalarNode:
		var jw jsonWriter // scalars are written as before
		jw.buf = &w.buf
		return jw.scalar(n)
	}
	return fmt.Errorf("unexpected node")
}

func (w *refWriter) pairs(n *yaml.Node, depth int) ([]mapPair, error) {
	if depth > 20 {
		return nil, fmt.Errorf("merge keys nested too deep")
	}
	out := make([]mapPair, 0, len(n.Content)/2)
	var merged []mapPair
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := deref(n.Content[i]), n.Content[i+1]
		if k == nil || k.Kind != yaml.ScalarNode {
			return nil, fmt.Errorf("mapping key is not a scalar")
		}
		if k.ShortTag() == "!!merge" {
			src := deref(v)
			var srcs []*yaml.Node
			switch {
			case src != nil && src.Kind == yaml.MappingNode:
				srcs = []*yaml.Node{src}
			case src != nil && src.Kind == yaml.SequenceNode:
				for _, s := range src.Content {
					srcs = append(srcs, deref(s))
				}
			}
			for _, s := range srcs {
				if s == nil || s.Kind != yaml.MappingNode {
					return nil, fmt.Errorf("bad merge")
				}
				ps, err := w.pairs(s, depth+1)
				if err != nil {
					return nil, err
				}
				merged = append(merged, ps...)
			}
			continue
		}
		for _, prev := range out {
			if prev.key.Value == k.Value {
				return nil, fmt.Errorf("duplicate key")
			}
		}
		out = append(out, mapPair{k, v})
	}
outer:
	for _, m := range merged {
		for _, have := range out {
			if have.key.Value == m.key.Value {
				continue outer
			}
		}
		out = append(out, m)
	}
	return out, nil
}

func TestKeepPath(t *testing.T) {
	t.Parallel()
	for _, p := range []string{"", "spec", "a.b.c.d", "a.b.c.d.e", "metadata", "metadata.name", "status", "statusX.a",
		"spec.containers[0]", "spec.containers[0].a.b", "spec.containers[0].a.b.c", "containers[0].a.b.c.d",
		"x.initContainers[1].a.b", "x.initContainers[1].a.b.c", "a.containers[0].b.containers[1].c.d",
		"a.containers[0].b.c.d.e.initContainers[2]", "a.containersX[0]", "a.xcontainers[0].b", ".containers[", "..",
		"spec.jobTemplate.spec.template.spec.containers[0].ports[0].name", "spec.template.spec.containers[0].env[0].valueFrom.fieldRef"} {
		if got, want := keepPath([]byte(p)), refKeepPath(p); got != want {
			t.Errorf("keepPath(%q) = %v, want %v", p, got, want)
		}
	}
}

// checkLines renders one document with jsonWriter, on a scratch that
// earlier documents used, and with refWriter, and requires the same
// JSON, the same failure and the same line map.
func checkLines(t *testing.T, s *scratch, data []byte) {
	t.Helper()
	var root yaml.Node
	if err := yaml.Unmarshal(data, &root); err != nil || len(root.Content) == 0 {
		return
	}
	n := root.Content[0]
	var ref refWriter
	refErr := ref.node(n, "")
	w := jsonWriter{s: s, buf: &s.buf}
	err := w.node(n)
	defer func() {
		// as release does, without giving the scratch back
		clear(s.pairs[:cap(s.pairs)])
		s.buf.Reset()
		s.path, s.lines, s.pairs = s.path[:0], s.lines[:0], s.pairs[:0]
	}()
	if (err != nil) != (refErr != nil) {
		t.Fatalf("error %v, before %v:\n%s", err, refErr, data)
	}
	if err != nil {
		return
	}
	if !bytes.Equal(s.buf.Bytes(), ref.buf.Bytes()) {
		t.Fatalf("JSON differs:\n got %s\nwant %s\ninput:\n%s", s.buf.Bytes(), ref.buf.Bytes(), data)
	}
	if len(s.lines) != len(ref.lines) || (len(s.lines) > 0 && !reflect.DeepEqual(s.lines, ref.lines)) {
		t.Fatalf("line map differs:\n got %v\nwant %v\ninput:\n%s", s.lines, ref.lines, data)
	}
}

var linesCases = []string{
	"apiVersion: batch/v1\nkind: CronJob\nmetadata: {name: c, labels: {a: b}}\nspec:\n  jobTemplate:\n    spec:\n      template:\n        spec:\n" +
		"          initContainers: [{name: i, image: x}]\n          containers:\n          - name: a\n            ports: [{containerPort: 1}]\n            env: [{name: X, valueFrom: {fieldRef: {fieldPath: y}}}]\n",
	"base: &b {x: 1, spec: {y: 2}}\nspec:\n  <<: *b\n  z: [*b, *b]\n  containers:\n  - <<: [*b, {q: 1}]\n    name: a\n",
	"\"\": {\"\": {a: 1}, b: [[1, [2]], {c: {d: {e: 1}}}]}\nstatus: {a: {b: 1}}\nmetadataX: {a: 1}\n",
	"spec:\n  template:\n    spec:\n      containers:\n      - name: a\n        x: {containers: [{y: {z: 1}}]}\n",
	"a: {b: 1, b: 2}\n",
	"- 1\n- [2, {a: 1}]\n",
}

// TestJSONWriterMatchesBefore runs the cases, then every document of the
// repository's YAML fixtures, through both writers on one scratch.
func TestJSONWriterMatchesBefore(t *testing.T) {
	t.Parallel()
	s := &scratch{paths: map[string]string{}}
	for _, c := range linesCases {
		checkLines(t, s, []byte(c))
	}
	docs := 0
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
			checkLines(t, s, doc.Data)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if docs < 200 {
		t.Errorf("only %d fixture documents", docs)
	}
}

// BenchmarkDecode decodes a stream of Deployments and Services like the
// audit benchmark's corpus, allocations reported.
func BenchmarkDecode(b *testing.B) {
	var sb strings.Builder
	for i := range 500 {
		fmt.Fprintf(&sb, `---
apiVersion: apps/v1
kind: Deployment
metadata:
  name: app-%[1]d
  labels: {app.kubernetes.io/name: app-%[1]d}
spec:
  replicas: 2
  selector:
    matchLabels: {app: app-%[1]d}
  template:
    metadata:
      labels: {app: app-%[1]d}
    spec:
      containers:
        - name: app
          image: registry.example.com/app:1.0
          ports:
            - {name: http, containerPort: 8080}
          env:
            - {name: POD_NAME, valueFrom: {fieldRef: {fieldPath: metadata.name}}}
          resources:
            requests: {cpu: 100m, memory: 128Mi}
          readinessProbe:
            httpGet: {path: /ready, port: http}
---
apiVersion: v1
kind: Service
metadata:
  name: app-%[1]d
spec:
  selector: {app: app-%[1]d}
  ports:
    - {name: http, port: 80, targetPort: http}
`, i)
	}
	data := []byte(sb.String())
	b.ReportAllocs()
	b.SetBytes(int64(len(data)))
	for b.Loop() {
		var res Result
		Decode("bench.yaml", data, &res)
		if len(res.Objects) != 1000 || len(res.Errors) > 0 {
			b.Fatalf("%d objects, errors %v", len(res.Objects), res.Errors)
		}
	}
}
