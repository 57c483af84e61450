// Package render builds Helm charts and kustomizations into manifest
// streams by running the user's own helm and kustomize (or kubectl
// kustomize) binaries, so rollguard sees what the user's pipeline would
// apply: the same tool versions, plugins and settings. docs/architecture.md
// ("Decisions and why") says why it does not link the Helm SDK or the
// kustomize API instead.
package render

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
)

// Tool is the program that builds a folder.
type Tool string

const (
	Helm      Tool = "helm"
	Kustomize Tool = "kustomize"
)

// Environment variables naming the binaries to run instead of the ones in
// PATH.
const (
	HelmEnv      = "ROLLGUARD_HELM"
	KustomizeEnv = "ROLLGUARD_KUSTOMIZE"
)

// kustomizationFiles are the names kustomize accepts, in the order it
// looks for them.
var kustomizationFiles = []string{"kustomization.yaml", "kustomization.yml", "Kustomization"}

// Unit is a folder that is built as a whole rather than read file by file.
type Unit struct {
	Dir  string // the folder, as the caller named it
	File string // the file that makes it a unit: Dir/Chart.yaml or Dir/kustomization.yaml
	Tool Tool
}

// Kind names the unit for people: "Helm chart" or "kustomization".
func (u Unit) Kind() string {
	if u.Tool == Helm {
		return "Helm chart"
	}
	return "kustomization"
}

// Detect says whether dir is a Helm chart (it holds Chart.yaml) or a
// kustomization (it holds kustomization.yaml, kustomization.yml or
// Kustomization). A chart wins over a kustomization in the same folder,
// as `helm template` on that folder would ignore the kustomization.
func Detect(dir string) (Unit, bool) {
	if f := filepath.Join(dir, "Chart.yaml"); isFile(f) {
		return Unit{Dir: dir, File: f, Tool: Helm}, true
	}
	for _, name := range kustomizationFiles {
		if f := filepath.Join(dir, name); isFile(f) {
			return Unit{Dir: dir, File: f, Tool: Kustomize}, true
		}
	}
	return Unit{}, false
}

func isFile(p string) bool {
	fi, err := os.Stat(p)
	return err == nil && !fi.IsDir()
}

// Options are what `helm template` is given, and which binaries to run.
type Options struct {
	// Values are values files (helm -f), in order; later ones win.
	Values []string
	// Set are --set expressions, applied after Values, as helm does.
	Set []string
	// Namespace is passed to helm as --namespace when not empty.
	Namespace string
	// HelmBinary and KustomizeBinary are the programs to run. Empty means
	// the environment variable (HelmEnv, KustomizeEnv), then PATH; for
	// kustomize, PATH's kustomize, then PATH's kubectl (kubectl kustomize).
	HelmBinary, KustomizeBinary string
}

// Render builds u and returns the manifest stream the tool printed. The
// tool's standard error is part of the error when it fails; on success it
// is dropped (helm and kustomize print warnings there that are not about
// the objects).
func Render(ctx context.Context, u Unit, opts Options) ([]byte, error) {
	switch u.Tool {
	case Helm:
		bin, err := findHelm(u, opts)
		if err != nil {
			return nil, err
		}
		return run(ctx, bin, HelmArgs(u, opts))
	case Kustomize:
		bin, args, err := findKustomize(u, opts)
		if err != nil {
			return nil, err
		}
		return run(ctx, bin, args)
	}
	return nil, fmt.Errorf("unknown tool %q", u.Tool)
}

// HelmArgs are the arguments of the helm command that renders u: the
// release name is the chart folder's name (see ReleaseName), Helm test
// hooks are left out (they run only under `helm test`, never in a
// rollout), and values come in the order helm applies them.
func HelmArgs(u Unit, opts Options) []string {
	args := []string{"template", ReleaseName(u.Dir), u.Dir, "--skip-tests"}
	if opts.Namespace != "" {
		args = append(args, "--namespace", opts.Namespace)
	}
	for _, v := range opts.Values {
		args = append(args, "--values", v)
	}
	for _, s := range opts.Set {
		args = append(args, "--set", s)
	}
	return args
}

var notReleaseChars = regexp.MustCompile(`[^a-z0-9-]+`)

// ReleaseName is the release name rollguard renders a chart under: the
// chart folder's name, as `helm install shop ./shop` would name it, made a
// valid release name (lower case letters, digits and dashes, at most 53
// characters); "rollguard" when nothing is left.
func ReleaseName(dir string) string {
	if abs, err := filepath.Abs(dir); err == nil {
		dir = abs
	}
	name := notReleaseChars.ReplaceAllString(strings.ToLower(filepath.Base(dir)), "-")
	if len(name) > 53 {
		name = name[:53]
	}
	if name = strings.Trim(name, "-"); name == "" {
		return "rollguard"
	}
	return name
}

func findHelm(u Unit, opts Options) (string, error) {
	bin, from := opts.HelmBinary, "the configured helm"
	if bin == "" {
		bin, from = os.Getenv(HelmEnv), HelmEnv
	}
	if bin != "" {
		p, err := exec.LookPath(bin)
		if err != nil {
			return "", fmt.Errorf("rendering needs helm, and %s=%s cannot be run: %v; %s", from, bin, unwrapExec(err), helmHint(u))
		}
		return p, nil
	}
	p, err := exec.LookPath("helm")
	if err != nil {
		return "", fmt.Errorf("rendering needs helm, which is not in PATH: install Helm 3 or later "+
			"(https://helm.sh/docs/intro/install/) or set %s to its path; %s", HelmEnv, helmHint(u))
	}
	return p, nil
}

func helmHint(u Unit) string {
	return "or render it yourself and pipe it in: helm template " + ReleaseName(u.Dir) + " " + u.Dir + " | rollguard audit -"
}

func findKustomize(u Unit, opts Options) (string, []string, error) {
	hint := "or build it yourself and pipe it in: kustomize build " + u.Dir + " | rollguard audit -"
	bin, from := opts.KustomizeBinary, "the configured kustomize"
	if bin == "" {
		bin, from = os.Getenv(KustomizeEnv), KustomizeEnv
	}
	if bin != "" {
		p, err := exec.LookPath(bin)
		if err != nil {
			return "", nil, fmt.Errorf("building needs kustomize, and %s=%s cannot be run: %v; %s", from, bin, unwrapExec(err), hint)
		}
		return p, []string{"build", u.Dir}, nil
	}
	if p, err := exec.LookPath("kustomize"); err == nil {
		return p, []string{"build", u.Dir}, nil
	}
	if p, err := exec.LookPath("kubectl"); err == nil {
		return p, []string{"kustomize", u.Dir}, nil
	}
	return "", nil, fmt.Errorf("building needs kustomize or kubectl, and neither is in PATH: install kustomize "+
		"(https://kubectl.docs.kubernetes.io/installation/kustomize/) or kubectl, or set %s to kustomize's path; %s", KustomizeEnv, hint)
}

// unwrapExec drops exec's "exec: NAME:" prefix and the path error's
// "stat NAME:", which the message names already.
func unwrapExec(err error) error {
	var ee *exec.Error
	if errors.As(err, &ee) {
		err = ee.Err
	}
	var pe *fs.PathError
	if errors.As(err, &pe) {
		err = pe.Err
	}
	return err
}

// maxStderr bounds how much of a failing tool's standard error goes into
// the message: enough for helm's or kustomize's error, not a page of
// warnings before it.
const maxStderr = 4000

func run(ctx context.Context, bin string, args []string) ([]byte, error) {
	var stdout, stderr bytes.Buffer
	cmd := exec.CommandContext(ctx, bin, args...)
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	if err == nil {
		return stdout.Bytes(), nil
	}
	if ctx.Err() != nil {
		return nil, ctx.Err()
	}
	line := filepath.Base(bin) + " " + strings.Join(args, " ")
	msg := strings.TrimSpace(stderr.String())
	if len(msg) > maxStderr {
		msg = "..." + msg[len(msg)-maxStderr:]
	}
	if msg == "" {
		return nil, fmt.Errorf("%s failed (%v) and printed no error", line, err)
	}
	return nil, fmt.Errorf("%s failed (%v): %s", line, err, msg)
}
