package manifest_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	appsv1 "k8s.io/api/apps/v1"

	"github.com/rollguard/rollguard/pkg/manifest"
)

func decode(src string) *manifest.Result {
	res := &manifest.Result{}
	manifest.Decode("in.yaml", []byte(src), res)
	return res
}

func TestDecodeErrors(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name, src string
		wantLine  int
		wantMsg   string
		wantObjs  int
	}{
		{"bad indentation", "apiVersion: v1\nkind: Service\nmetadata:\n  name: a\n ports: x\n", 4, "invalid YAML", 0},
		{"second document broken, first kept", "apiVersion: v1\nkind: Service\nmetadata: {name: a}\n---\napiVersion: v1\nkind: Service\nmetadata: [\n", 7, "invalid YAML", 1},
		{"not a mapping", "- a\n- b\n", 1, "not a Kubernetes object", 0},
		{"no kind", "apiVersion: v1\nmetadata: {name: a}\n", 1, "kind missing", 0},
		{"no apiVersion or kind", "---\nfoo: bar\n", 2, "apiVersion and kind missing", 0},
		{"misspelt builtin kind", "apiVersion: apps/v1\nkind: Deploymnet\nmetadata: {name: a}\n", 1, `unknown kind "Deploymnet"`, 0},
		{"removed version", "\n\napiVersion: extensions/v1beta1\nkind: Deployment\nmetadata: {name: a}\n", 3, "(removed in Kubernetes 1.16); use apiVersion apps/v1", 0},
		{"wrong field type", "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: a}\nspec:\n  replicas: three\n", 5, "spec.replicas", 0},
		{"duplicate key", "apiVersion: v1\nkind: Service\nmetadata: {name: a}\nspec:\n  type: ClusterIP\n  type: NodePort\n", 6, `duplicate key "type" (first at line 5)`, 0},
		{"no name", "apiVersion: v1\nkind: Service\nmetadata: {}\n", 1, "no metadata.name", 0},
		{"infinite number", "apiVersion: v1\nkind: Service\nmetadata: {name: a}\nspec: {ports: [{port: .inf}]}\n", 4, "cannot be represented", 0},
		{"list item not an object", "apiVersion: v1\nkind: List\nitems:\n  - 3\n", 4, "List item 0: not a Kubernetes object", 0},
		{"alias bomb", aliasBomb(), 0, "expands to more than", 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			res := decode(tc.src)
			if len(res.Objects) != tc.wantObjs {
				t.Errorf("got %d objects, want %d", len(res.Objects), tc.wantObjs)
			}
			if len(res.Errors) != 1 {
				t.Fatalf("got errors %v, want one", res.Errors)
			}
			me, ok := res.Errors[0].(*manifest.Error)
			if !ok {
				t.Fatalf("error %T is not a *manifest.Error", res.Errors[0])
			}
			if !strings.Contains(me.Error(), tc.wantMsg) || me.File != "in.yaml" || (tc.wantLine > 0 && me.Line != tc.wantLine) {
				t.Errorf("got %q (line %d), want line %d and %q", me.Error(), me.Line, tc.wantLine, tc.wantMsg)
			}
		})
	}
}

func aliasBomb() string {
	var b strings.Builder
	b.WriteString("apiVersion: v1\nkind: Service\nmetadata: {name: a}\nspec:\n  a0: &a0 [x, x, x, x, x, x, x, x, x, x]\n")
	for i := 1; i < 9; i++ {
		b.WriteString("  a" + string(rune('0'+i)) + ": &a" + string(rune('0'+i)) + " [")
		for j := 0; j < 10; j++ {
			if j > 0 {
				b.WriteString(", ")
			}
			b.WriteString("*a" + string(rune('0'+i-1)))
		}
		b.WriteString("]\n")
	}
	return b.String()
}

func TestDecodeObjects(t *testing.T) {
	t.Parallel()
	src := `# Source: chart/templates/deploy.yaml
---
---
apiVersion: v1
kind: ConfigMap
metadata: {name: c}
--- # a comment after the separator
defaults: &defaults
  replicas: 2
apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
  namespace: shop
spec:
  <<: *defaults
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec:
      containers:
        - name: web
          image: web:1
          readinessProbe:
            tcpSocket: {port: 8080}
---
apiVersion: v1
kind: List
items:
  - apiVersion: v1
    kind: Service
    metadata: {name: web}
  - apiVersion: example.com/v1
    kind: Widget
    metadata: {name: w}
`
	res := decode(src)
	if len(res.Errors) > 0 {
		t.Fatal(res.Errors)
	}
	if len(res.Objects) != 2 || res.Skipped["ConfigMap"] != 1 || res.Skipped["Widget"] != 1 {
		t.Fatalf("got %d objects, skipped %v", len(res.Objects), res.Skipped)
	}
	d := res.Objects[0]
	if d.Ref() != "shop/Deployment/web" || d.Source.Line != 8 {
		t.Errorf("got %s at line %d, want shop/Deployment/web at line 8", d.Ref(), d.Source.Line)
	}
	if r := d.Value.(*appsv1.Deployment).Spec.Replicas; r == nil || *r != 2 {
		t.Errorf("merge key not expanded: replicas %v", r)
	}
	for path, line := range map[string]int{
		"spec.template.spec.containers[0]":                 22,
		"spec.template.spec.containers[0].readinessProbe":  24,
		"spec.template.spec.containers[0].lifecycle":       22, // missing: its container
		"spec.template.spec.terminationGracePeriodSeconds": 20, // missing: the pod spec
		"spec.replicas": 9, // merged: where the anchor wrote it
	} {
		if got := d.At(path).Line; got != line {
			t.Errorf("At(%s) = line %d, want %d", path, got, line)
		}
	}
	if s := res.Objects[1]; s.Kind != "Service" || s.Source.Line != 30 {
		t.Errorf("List item: got %s at line %d, want Service at 30", s.Kind, s.Source.Line)
	}
}

func TestYAMLScalars(t *testing.T) {
	t.Parallel()
	res := decode("apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: a\n  labels: {v: \"1.0\", on: yes}\nspec:\n  replicas: 0x3\n  minReadySeconds: 1_0\n  paused: true\n")
	if len(res.Errors) > 0 {
		t.Fatal(res.Errors)
	}
	d := res.Objects[0].Value.(*appsv1.Deployment)
	if *d.Spec.Replicas != 3 || d.Spec.MinReadySeconds != 10 || !d.Spec.Paused {
		t.Errorf("got replicas %d minReady %d paused %v", *d.Spec.Replicas, d.Spec.MinReadySeconds, d.Spec.Paused)
	}
	if d.Labels["v"] != "1.0" || d.Labels["on"] != "yes" {
		t.Errorf("labels %v", d.Labels)
	}
}

func TestTemplates(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	write := func(name, text string) string {
		p := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	tmpl := write("tmpl.yaml", "apiVersion: v1\nkind: Service\nmetadata:\n  name: {{ .Release.Name }}\n")
	ok := write("ok.yaml", "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: alerts\n  annotations: {summary: \"{{ $labels.pod }} down\"}\ndata:\n  tmpl: |\n    {{ define \"x\" }}\n    {{ end }}\n  after: plain\n")
	// A template's documents are judged one by one: the plain one after it
	// is read, the one that needs rendering is the error, at its directive.
	multi := write("multi.yaml", "apiVersion: v1\nkind: Service\nmetadata: {name: plain}\n---\n"+
		"{{- if .Values.enabled }}\napiVersion: v1\nkind: Service\nmetadata:\n  name: x\n{{- end }}\n")
	res := manifest.Load([]string{tmpl, ok, multi}, manifest.Options{})
	var msgs []string
	for _, e := range res.Errors {
		msgs = append(msgs, e.Error())
	}
	all := strings.Join(msgs, "\n")
	if len(res.Errors) != 2 || !strings.Contains(all, "tmpl.yaml:4: contains template directives") ||
		!strings.Contains(all, "multi.yaml:5: contains template directives") {
		t.Fatalf("got %v, want template errors at tmpl.yaml:4 and multi.yaml:5", all)
	}
	for _, want := range []string{"is not a valid manifest (line 4: ", "render it first: helm template CHART | rollguard audit -"} {
		if !strings.Contains(msgs[0], want) {
			t.Errorf("%q lacks %q", msgs[0], want)
		}
	}
	if res.Skipped["ConfigMap"] != 1 {
		t.Errorf("a ConfigMap holding a template in a block scalar or quoted string must load, skipped=%v", res.Skipped)
	}
	if len(res.Objects) != 1 || res.Objects[0].Name != "plain" {
		t.Errorf("the plain document beside the template was not read: %v", res.Objects)
	}
	if got := manifest.LeftOut(res.Errors); got != "2 documents" {
		t.Errorf("LeftOut = %q, want 2 documents", got)
	}

	// A template inside a chart points at the chart, which rollguard renders.
	write("shop/Chart.yaml", "apiVersion: v2\nname: shop\nversion: 0.1.0\n")
	inChart := write("shop/templates/deploy.yaml", "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: x\n  labels:\n    {{- include \"x\" . | nindent 4 }}\n")
	res = manifest.Load([]string{inChart}, manifest.Options{})
	chartDir := filepath.Join(dir, "shop")
	if len(res.Errors) != 1 || !strings.Contains(res.Errors[0].Error(), "deploy.yaml:6: contains template directives") ||
		!strings.Contains(res.Errors[0].Error(), "belongs to the Helm chart "+chartDir+": audit the chart instead") ||
		!strings.Contains(res.Errors[0].Error(), "helm template shop "+chartDir) {
		t.Errorf("got %v, want a template error at deploy.yaml:6 naming the chart", res.Errors)
	}
}

// TestTemplateLikeStringsAreData: valid YAML whose plain scalars hold
// {{ ... }} (a PrometheusRule, an Argo Workflow) is audited with the
// Deployment beside it, from a file and from standard input.
func TestTemplateLikeStringsAreData(t *testing.T) {
	t.Parallel()
	const file = "testdata/mixed/app-and-alerts.yaml"
	data, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	if manifest.TemplateLine(data) == 0 {
		t.Fatal("the fixture no longer has a directive where YAML reads structure; it tests nothing")
	}
	for _, res := range []*manifest.Result{
		manifest.Load([]string{file}, manifest.Options{}),
		manifest.Load([]string{"-"}, manifest.Options{Stdin: strings.NewReader(string(data))}),
	} {
		if len(res.Errors) > 0 {
			t.Errorf("input errors: %v", res.Errors)
		}
		var refs []string
		for _, o := range res.Objects {
			refs = append(refs, o.Ref()+"@"+o.Source.String())
		}
		src := res.Objects[0].Source.File
		want := "Deployment/web@" + src + ":34,Service/web@" + src + ":56"
		if strings.Join(refs, ",") != want || res.Skipped["PrometheusRule"] != 1 || res.Skipped["Workflow"] != 1 {
			t.Errorf("got %v, skipped %v; want %s and the rule and workflow skipped", refs, res.Skipped, want)
		}
	}
}

func TestLoadPaths(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	must := func(err error) {
		if err != nil {
			t.Fatal(err)
		}
	}
	svc := "apiVersion: v1\nkind: Service\nmetadata: {name: %s}\n"
	must(os.MkdirAll(filepath.Join(dir, "app", "nested"), 0o755))
	must(os.MkdirAll(filepath.Join(dir, ".git"), 0o755))
	must(os.MkdirAll(filepath.Join(dir, "empty"), 0o755))
	must(os.WriteFile(filepath.Join(dir, "app", "a.yaml"), []byte(strings.Replace(svc, "%s", "a", 1)), 0o644))
	must(os.WriteFile(filepath.Join(dir, "app", "nested", "b.json"), []byte(`{"apiVersion":"v1","kind":"Service","metadata":{"name":"b"}}`), 0o644))
	must(os.WriteFile(filepath.Join(dir, "app", "values.yaml"), []byte("replicas: [\n"), 0o644))
	must(os.WriteFile(filepath.Join(dir, "app", "notes.txt"), []byte("not yaml: ["), 0o644))
	must(os.WriteFile(filepath.Join(dir, "app", "skip-me.yaml"), []byte("broken: ["), 0o644))
	must(os.WriteFile(filepath.Join(dir, ".git", "x.yaml"), []byte("broken: ["), 0o644))

	res := manifest.Load([]string{filepath.Join(dir, "app"), "-"}, manifest.Options{
		Stdin: strings.NewReader(strings.Replace(svc, "%s", "c", 1)), Ignore: []string{"skip-*.yaml"}})
	if len(res.Errors) > 0 || len(res.Objects) != 3 || res.Files != 3 {
		t.Fatalf("got %d objects from %d files, errors %v; want 3 from 3", len(res.Objects), res.Files, res.Errors)
	}
	if res.Objects[2].Source.File != manifest.StdinName {
		t.Errorf("stdin object from %q", res.Objects[2].Source.File)
	}

	res = manifest.Load([]string{filepath.Join(dir, "empty"), filepath.Join(dir, "missing.yaml"), "-"}, manifest.Options{})
	var msgs []string
	for _, e := range res.Errors {
		msgs = append(msgs, e.Error())
	}
	all := strings.Join(msgs, "\n")
	for _, want := range []string{"empty: no manifests", "missing.yaml: cannot read: no such file", "<stdin>: no standard input"} {
		if !strings.Contains(all, want) {
			t.Errorf("errors %q lack %q", all, want)
		}
	}
	// A folder without manifests costs nothing; the others cost all they held.
	if got := manifest.LeftOut(res.Errors); got != "1 path and standard input" {
		t.Errorf("LeftOut = %q", got)
	}
}
