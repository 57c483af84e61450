package render_test

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/rollguard/rollguard/pkg/render"
)

// needHelm returns the helm binary the tests run, or skips: these tests
// need the real program (hack/tools.sh installs a pinned one into
// .cache/bin, and hack/test.sh puts it in PATH).
func needHelm(t *testing.T) string {
	t.Helper()
	if p := os.Getenv(render.HelmEnv); p != "" {
		return p
	}
	p, err := exec.LookPath("helm")
	if err != nil {
		t.Skip("helm is not installed: run with PATH=\"$(hack/tools.sh):$PATH\" (hack/test.sh does) or set " + render.HelmEnv)
	}
	return p
}

func TestDetect(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	mk := func(files ...string) string {
		d, err := os.MkdirTemp(dir, "")
		if err != nil {
			t.Fatal(err)
		}
		for _, f := range files {
			if err := os.WriteFile(filepath.Join(d, f), []byte("x: 1\n"), 0o644); err != nil {
				t.Fatal(err)
			}
		}
		return d
	}
	for _, tc := range []struct {
		files []string
		tool  render.Tool
		file  string
	}{
		{[]string{"Chart.yaml", "values.yaml"}, render.Helm, "Chart.yaml"},
		{[]string{"kustomization.yaml"}, render.Kustomize, "kustomization.yaml"},
		{[]string{"kustomization.yml"}, render.Kustomize, "kustomization.yml"},
		{[]string{"Kustomization"}, render.Kustomize, "Kustomization"},
		{[]string{"Chart.yaml", "kustomization.yaml"}, render.Helm, "Chart.yaml"},
		{[]string{"deployment.yaml", "values.yaml"}, "", ""},
	} {
		d := mk(tc.files...)
		u, ok := render.Detect(d)
		if ok != (tc.tool != "") || u.Tool != tc.tool || (ok && u.File != filepath.Join(d, tc.file)) || (ok && u.Dir != d) {
			t.Errorf("%v: got %+v %v, want %s from %s", tc.files, u, ok, tc.tool, tc.file)
		}
	}
	// A folder named Chart.yaml is not a chart.
	d := mk()
	if err := os.Mkdir(filepath.Join(d, "Chart.yaml"), 0o755); err != nil {
		t.Fatal(err)
	}
	if u, ok := render.Detect(d); ok {
		t.Errorf("a folder named Chart.yaml made %+v", u)
	}
}

func TestReleaseName(t *testing.T) {
	t.Parallel()
	for dir, want := range map[string]string{
		"charts/shop":                  "shop",
		"charts/My_Shop.v2/":           "my-shop-v2",
		"charts/___":                   "rollguard",
		"x/" + strings.Repeat("a", 60): strings.Repeat("a", 53),
	} {
		if got := render.ReleaseName(dir); got != want {
			t.Errorf("ReleaseName(%q) = %q, want %q", dir, got, want)
		}
	}
	// "." is named after the folder it stands for.
	wd, _ := os.Getwd()
	if got := render.ReleaseName("."); got != filepath.Base(wd) {
		t.Errorf("ReleaseName(.) = %q, want %q", got, filepath.Base(wd))
	}
}

func TestHelmArgs(t *testing.T) {
	t.Parallel()
	u := render.Unit{Dir: "charts/shop", Tool: render.Helm}
	got := render.HelmArgs(u, render.Options{Values: []string{"a.yaml", "b.yaml"}, Set: []string{"x=1,y=2", "z=3"}, Namespace: "prod"})
	want := []string{"template", "shop", "charts/shop", "--skip-tests", "--namespace", "prod",
		"--values", "a.yaml", "--values", "b.yaml", "--set", "x=1,y=2", "--set", "z=3"}
	if !slices.Equal(got, want) {
		t.Errorf("got %q\nwant %q", got, want)
	}
	if got := render.HelmArgs(u, render.Options{}); !slices.Equal(got, want[:4]) {
		t.Errorf("no options: got %q", got)
	}
}

// TestMissingBinaries: a tool that is not installed is named, with how to
// install it, how to point rollguard at it, and the pipe to use instead.
func TestMissingBinaries(t *testing.T) {
	t.Setenv("PATH", t.TempDir()) // nothing in it
	t.Setenv(render.HelmEnv, "")
	t.Setenv(render.KustomizeEnv, "")
	ctx := context.Background()
	chart := render.Unit{Dir: "charts/shop", File: "charts/shop/Chart.yaml", Tool: render.Helm}
	_, err := render.Render(ctx, chart, render.Options{})
	for _, want := range []string{"needs helm, which is not in PATH", "install Helm", render.HelmEnv, "helm template shop charts/shop | rollguard audit -"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("helm missing: got %v, want %q in it", err, want)
		}
	}
	kust := render.Unit{Dir: "overlays/prod", File: "overlays/prod/kustomization.yaml", Tool: render.Kustomize}
	_, err = render.Render(ctx, kust, render.Options{})
	for _, want := range []string{"needs kustomize or kubectl, and neither is in PATH", "install kustomize", render.KustomizeEnv, "kustomize build overlays/prod | rollguard audit -"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("kustomize missing: got %v, want %q in it", err, want)
		}
	}
	// A binary named by the variable that does not exist is named too.
	t.Setenv(render.HelmEnv, "/nonexistent/helm")
	_, err = render.Render(ctx, chart, render.Options{})
	if err == nil || !strings.Contains(err.Error(), render.HelmEnv+"=/nonexistent/helm cannot be run") {
		t.Errorf("bad %s: got %v", render.HelmEnv, err)
	}
	_, err = render.Render(ctx, kust, render.Options{KustomizeBinary: "/nonexistent/kustomize"})
	if err == nil || !strings.Contains(err.Error(), "/nonexistent/kustomize cannot be run") {
		t.Errorf("bad KustomizeBinary: got %v", err)
	}
}

// TestHelmFailure: when helm fails, the error has the command and helm's
// own message.
func TestHelmFailure(t *testing.T) {
	t.Parallel()
	helm := needHelm(t)
	dir := filepath.Join(t.TempDir(), "broken")
	if err := os.MkdirAll(filepath.Join(dir, "templates"), 0o755); err != nil {
		t.Fatal(err)
	}
	os.WriteFile(filepath.Join(dir, "Chart.yaml"), []byte("apiVersion: v2\nname: broken\nversion: 0.1.0\n"), 0o644)
	os.WriteFile(filepath.Join(dir, "templates", "cm.yaml"), []byte("kind: ConfigMap\nname: {{ .Values.x | nosuchfunction }}\n"), 0o644)
	u, ok := render.Detect(dir)
	if !ok {
		t.Fatal("not detected as a chart")
	}
	_, err := render.Render(context.Background(), u, render.Options{HelmBinary: helm})
	for _, want := range []string{"helm template broken " + dir + " --skip-tests failed (exit status 1)", `function "nosuchfunction" not defined`} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("got %v, want %q in it", err, want)
		}
	}
}

// TestHelmRenders: values files and --set reach the chart, in helm's order.
func TestHelmRenders(t *testing.T) {
	t.Parallel()
	helm := needHelm(t)
	u, ok := render.Detect("../manifest/testdata/charts/shop")
	if !ok {
		t.Fatal("the fixture chart is not detected")
	}
	out, err := render.Render(context.Background(), u, render.Options{HelmBinary: helm, Namespace: "prod",
		Values: []string{"../manifest/testdata/charts/shop/values-prod.yaml"}, Set: []string{"logLevel=debug"}})
	if err != nil {
		t.Fatal(err)
	}
	text := string(out)
	for _, want := range []string{"replicas: 3", `value: "debug"`, "# Source: shop/templates/deployment.yaml", "name: shop\n"} {
		if !strings.Contains(text, want) {
			t.Errorf("rendered output lacks %q:\n%s", want, text)
		}
	}
	if strings.Contains(text, "test-connection") {
		t.Error("the Helm test hook was rendered; --skip-tests should leave it out")
	}
}
