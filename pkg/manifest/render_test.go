package manifest_test

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	appsv1 "k8s.io/api/apps/v1"

	"github.com/rollguard/rollguard/pkg/manifest"
	"github.com/rollguard/rollguard/pkg/render"
)

// fakeRender renders every unit as canned output and records the folders.
type fakeRender struct {
	out   map[string]string // by unit folder
	fail  map[string]error
	units []render.Unit
}

func (f *fakeRender) render(u render.Unit) ([]byte, error) {
	f.units = append(f.units, u)
	if err := f.fail[u.Dir]; err != nil {
		return nil, err
	}
	return []byte(f.out[u.Dir]), nil
}

// TestWalkRendersUnits: chart and kustomization folders, given or found by
// a walk, are rendered whole; their own files are never read as manifests.
func TestWalkRendersUnits(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	write := func(name, text string) {
		p := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write("deploy/plain.yaml", "apiVersion: v1\nkind: Service\nmetadata: {name: plain}\n")
	write("deploy/chart/Chart.yaml", "apiVersion: v2\nname: shop\nversion: 0.1.0\n")
	write("deploy/chart/templates/svc.yaml", "metadata:\n  name: {{ .Release.Name }}\n") // unparseable if read
	write("deploy/chart/charts/sub/Chart.yaml", "apiVersion: v2\nname: sub\nversion: 0.1.0\n")
	write("deploy/overlay/kustomization.yml", "resources: [../base]\npatches: [{path: patch.yaml}]\n")
	write("deploy/overlay/patch.yaml", "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: web}\nspec: {replicas: 3}\n")
	write("deploy/broken/Kustomization", "resources: [nope.yaml]\n")
	write("other/kustomization.yaml", "resources: []\n")

	chart, overlay, broken := filepath.Join(dir, "deploy/chart"), filepath.Join(dir, "deploy/overlay"), filepath.Join(dir, "deploy/broken")
	other := filepath.Join(dir, "other")
	f := &fakeRender{
		out: map[string]string{
			chart:   "---\n# Source: shop/templates/svc.yaml\napiVersion: v1\nkind: Service\nmetadata: {name: shop}\n",
			overlay: "apiVersion: v1\nkind: Service\nmetadata: {name: prod-web}\n",
			other:   "",
		},
		fail: map[string]error{broken: errors.New("kustomize build failed: missing nope.yaml")},
	}
	res := manifest.Load([]string{filepath.Join(dir, "deploy"), other}, manifest.Options{Render: f.render})
	var got []string
	for _, u := range f.units {
		got = append(got, string(u.Tool)+" "+u.Dir+" "+filepath.Base(u.File))
	}
	want := []string{"kustomize " + broken + " Kustomization", "helm " + chart + " Chart.yaml",
		"kustomize " + overlay + " kustomization.yml", "kustomize " + other + " kustomization.yaml"}
	if !slices.Equal(got, want) {
		t.Errorf("rendered\n%q\nwant\n%q", got, want)
	}
	var refs []string
	for _, o := range res.Objects {
		refs = append(refs, o.Name+"@"+o.Source.String())
	}
	wantRefs := []string{"shop@" + filepath.Join(chart, "templates/svc.yaml"), "prod-web@" + filepath.Join(overlay, "kustomization.yml"),
		"plain@" + filepath.Join(dir, "deploy/plain.yaml") + ":1"}
	if !slices.Equal(refs, wantRefs) {
		t.Errorf("objects\n%q\nwant\n%q", refs, wantRefs)
	}
	if len(res.Errors) != 1 || !strings.Contains(res.Errors[0].Error(), broken+": cannot render the kustomization, so nothing in it was audited: kustomize build failed") {
		t.Errorf("errors %v: want the broken kustomization's, naming it and the tool's message", res.Errors)
	}
	if got := manifest.LeftOut(res.Errors); got != "1 kustomization" {
		t.Errorf("LeftOut = %q", got)
	}
	if res.Files != 4 { // plain.yaml and three rendered units
		t.Errorf("Files = %d, want 4", res.Files)
	}

	// A chart given by name is rendered too; without a renderer it is refused.
	res = manifest.Load([]string{chart}, manifest.Options{})
	if len(res.Errors) != 1 || !strings.Contains(res.Errors[0].Error(), chart+": is a Helm chart, and nothing was given to render it") {
		t.Errorf("no renderer: %v", res.Errors)
	}

	// Read, for editors of files, refuses units and reads only plain files.
	read := &manifest.Result{}
	var files []string
	manifest.Read([]string{filepath.Join(dir, "deploy")}, manifest.Options{}, read, func(name string, _ []byte) { files = append(files, name) })
	if !slices.Equal(files, []string{filepath.Join(dir, "deploy/plain.yaml")}) || len(read.Errors) != 3 {
		t.Errorf("Read: files %v, errors %v", files, read.Errors)
	}
	for _, want := range []string{chart + ": is a Helm chart (Chart.yaml): its objects exist only once rendered, and rendered output has no file to edit",
		"helm template chart " + chart + " | rollguard fix -", "kustomize build " + overlay + " | rollguard fix -"} {
		if !strings.Contains(errorsText(read.Errors), want) {
			t.Errorf("Read errors lack %q:\n%s", want, errorsText(read.Errors))
		}
	}
	if got := manifest.LeftOut(read.Errors); got != "1 Helm chart and 2 kustomizations" {
		t.Errorf("LeftOut = %q", got)
	}
}

func errorsText(errs []error) string {
	var s []string
	for _, e := range errs {
		s = append(s, e.Error())
	}
	return strings.Join(s, "\n")
}

// TestRenderedSources: objects from helm output name their template inside
// the chart folder and carry no line; errors say which document of the
// output is wrong.
func TestRenderedSources(t *testing.T) {
	t.Parallel()
	out := `---
# Source: shop/templates/deployment.yaml
apiVersion: apps/v1
kind: Deployment
metadata: {name: shop}
spec:
  replicas: 2
  selector: {matchLabels: {app: shop}}
  template:
    metadata: {labels: {app: shop}}
    spec:
      containers: [{name: app, image: x}]
---
# Source: shop/charts/redis/templates/sts.yaml
apiVersion: apps/v1
kind: StatefulSet
metadata: {name: redis}
spec:
  replicas: many
---
apiVersion: v1
kind: Service
metadata: {name: nosource}
`
	f := &fakeRender{out: map[string]string{"testdata/charts/shop": out}}
	res := manifest.Load([]string{"testdata/charts/shop"}, manifest.Options{Render: f.render})
	if len(res.Objects) != 2 {
		t.Fatalf("got %d objects, errors %v", len(res.Objects), res.Errors)
	}
	d := res.Objects[0]
	if d.Source.File != filepath.Join("testdata/charts/shop/templates/deployment.yaml") || d.Source.Line != 0 {
		t.Errorf("Deployment from %q line %d", d.Source.File, d.Source.Line)
	}
	if at := d.At("spec.template.spec.containers[0]"); at.Line != 0 || at.File != d.Source.File {
		t.Errorf("a field of a rendered object has a line: %v", at)
	}
	if r := d.Value.(*appsv1.Deployment).Spec.Replicas; r == nil || *r != 2 {
		t.Errorf("replicas %v", r)
	}
	if s := res.Objects[1]; s.Source.File != "testdata/charts/shop/Chart.yaml" {
		t.Errorf("an object without # Source names %q, want the chart", s.Source.File)
	}
	if len(res.Errors) != 1 {
		t.Fatalf("errors %v", res.Errors)
	}
	var me *manifest.Error
	if !errors.As(res.Errors[0], &me) || me.Line != 0 || me.File != "testdata/charts/shop/charts/redis/templates/sts.yaml" ||
		!strings.Contains(me.Msg, "invalid StatefulSet (in document 2 of the helm template output)") {
		t.Errorf("got %#v", res.Errors[0])
	}
}

func TestLeftOut(t *testing.T) {
	t.Parallel()
	res := &manifest.Result{}
	manifest.Decode("in.yaml", []byte("apiVersion: v1\nkind: List\nitems:\n  - 3\n  - {apiVersion: v1, kind: Service, metadata: {name: a}}\n---\nnot: [valid\n---\nfoo: bar\n"), res)
	if got := manifest.LeftOut(res.Errors); got != "2 documents and 1 List item" {
		t.Errorf("LeftOut = %q (errors %v)", got, res.Errors)
	}
	if got := manifest.LeftOut(nil); got != "" {
		t.Errorf("LeftOut(nil) = %q", got)
	}
}

// needTool finds a real tool for the rendering tests, or skips.
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

func renderWith(opts render.Options) func(render.Unit) ([]byte, error) {
	return func(u render.Unit) ([]byte, error) { return render.Render(context.Background(), u, opts) }
}

// TestRealHelm renders the fixture chart with the real helm: values reach
// it, the ConfigMap's rendered {{ ... }} is data, the test hook is left out.
func TestRealHelm(t *testing.T) {
	t.Parallel()
	needTool(t, render.Helm)
	const chart = "testdata/charts/shop"
	for _, tc := range []struct {
		opts     render.Options
		replicas int32
	}{
		{render.Options{}, 1},
		{render.Options{Values: []string{chart + "/values-prod.yaml"}}, 3},
		{render.Options{Values: []string{chart + "/values-prod.yaml"}, Set: []string{"replicaCount=5"}}, 5},
	} {
		res := manifest.Load([]string{chart}, manifest.Options{Render: renderWith(tc.opts)})
		if len(res.Errors) > 0 {
			t.Fatal(res.Errors)
		}
		var refs []string
		for _, o := range res.Objects {
			refs = append(refs, o.Kind+"/"+o.Name+"@"+o.Source.String())
		}
		want := []string{"Service/shop@" + chart + "/templates/service.yaml", "Deployment/shop@" + chart + "/templates/deployment.yaml"}
		if !slices.Equal(refs, want) || res.Skipped["ConfigMap"] != 1 || len(res.Skipped) != 1 {
			t.Errorf("%+v: got %v, skipped %v; want %v and the ConfigMap", tc.opts, refs, res.Skipped, want)
			continue
		}
		if r := res.Objects[1].Value.(*appsv1.Deployment).Spec.Replicas; r == nil || *r != tc.replicas {
			t.Errorf("%+v: replicas %v, want %d", tc.opts, r, tc.replicas)
		}
	}
}

// TestRealKustomize builds the fixture overlay with the real kustomize (or
// kubectl kustomize): the patch applies, and walking the tree builds the
// base and the overlay without reading the patch as an object.
func TestRealKustomize(t *testing.T) {
	t.Parallel()
	needTool(t, render.Kustomize)
	res := manifest.Load([]string{"testdata/kustomize"}, manifest.Options{Render: renderWith(render.Options{})})
	if len(res.Errors) > 0 {
		t.Fatal(res.Errors)
	}
	var refs []string
	for _, o := range res.Objects {
		refs = append(refs, o.Ref()+"@"+o.Source.String())
		if o.Kind == "Deployment" {
			want := int32(1)
			if o.Namespace == "prod" {
				want = 3
			}
			if r := o.Value.(*appsv1.Deployment).Spec.Replicas; r == nil || *r != want {
				t.Errorf("%s: replicas %v, want %d", o.Ref(), r, want)
			}
		}
	}
	slices.Sort(refs)
	want := []string{
		"Deployment/web@testdata/kustomize/base/kustomization.yaml",
		"Service/web@testdata/kustomize/base/kustomization.yaml",
		"prod/Deployment/prod-web@testdata/kustomize/overlays/prod/kustomization.yaml",
		"prod/Service/prod-web@testdata/kustomize/overlays/prod/kustomization.yaml",
	}
	if !slices.Equal(refs, want) {
		t.Errorf("got\n%q\nwant\n%q", refs, want)
	}
}
