package manifest

import (
	"bytes"
	"fmt"
	"path/filepath"
	"strings"

	"github.com/rollguard/rollguard/pkg/render"
)

// renderUnit renders a chart or kustomization folder with fn and decodes
// what the tool printed. A folder that cannot be rendered is one input
// error naming the folder, and nothing in it is audited.
func renderUnit(u render.Unit, fn func(render.Unit) ([]byte, error), res *Result) {
	if fn == nil {
		lose(res, u.Kind(), &Error{File: u.Dir, Msg: fmt.Sprintf("is a %s, and nothing was given to render it: "+
			"render it yourself and pipe it in (rollguard audit -)", u.Kind())})
		return
	}
	out, err := fn(u)
	if err != nil {
		lose(res, u.Kind(), &Error{File: u.Dir, Msg: "cannot render the " + u.Kind() + ", so nothing in it was audited", Err: err})
		return
	}
	res.Files++
	decodeRendered(u, out, res)
}

// decodeRendered decodes a rendered stream. Objects name the file they came
// from, without lines:
//   - helm marks each document with "# Source: CHART/templates/x.yaml"; the
//     object names that template inside the chart folder
//     (charts/shop/templates/x.yaml). A dependency packed as a .tgz in
//     charts/ has no such file on disk; the path is the one inside it.
//   - kustomize marks nothing, and an object may come from a base and be
//     changed by patches in overlays; it names the kustomization file of
//     the folder that was built.
//
// Lines are dropped because a line of the rendered output is not a line of
// the template (conditionals, includes and indentation move it), and a
// wrong line in an editor or a code-scanning annotation misleads more than
// none. Input errors in the output name the same file and say which
// document of the output holds the problem, so `helm template` or
// `kustomize build` shows it.
func decodeRendered(u render.Unit, data []byte, res *Result) {
	tool := "helm template"
	if u.Tool == render.Kustomize {
		tool = "kustomize build"
	}
	n := 0
	for _, doc := range Documents(data) {
		if len(bytes.TrimSpace(doc.Data)) == 0 {
			continue
		}
		n++
		file := u.File
		if u.Tool == render.Helm {
			if src := helmSource(doc.Data); src != "" {
				file = templateFile(u.Dir, src)
			}
		}
		var one Result
		decodeDocument(file, doc, &one)
		for _, o := range one.Objects {
			o.Source.Line = 0
			o.lines = nil
		}
		for _, err := range one.Errors {
			if me, ok := err.(*Error); ok {
				me.Line = 0
				me.Msg += fmt.Sprintf(" (in document %d of the %s output)", n, tool)
			}
		}
		mergeInto(res, &one)
	}
}

// helmSource returns the template path of helm's "# Source:" comment at
// the top of a rendered document, or "".
func helmSource(doc []byte) string {
	for len(doc) > 0 {
		line := doc
		if i := bytes.IndexByte(doc, '\n'); i >= 0 {
			line, doc = doc[:i], doc[i+1:]
		} else {
			doc = nil
		}
		t := bytes.TrimSpace(line)
		switch {
		case len(t) == 0:
		case bytes.HasPrefix(t, []byte("# Source: ")):
			return strings.TrimSpace(string(t[len("# Source: "):]))
		case t[0] == '#':
		default:
			return "" // the comment comes before any content
		}
	}
	return ""
}

// templateFile maps helm's "CHARTNAME/templates/x.yaml" onto the chart
// folder: the first element is the chart's name, which need not be the
// folder's.
func templateFile(dir, src string) string {
	if i := strings.IndexByte(src, '/'); i >= 0 {
		src = src[i+1:]
	}
	return filepath.Join(dir, filepath.FromSlash(src))
}

// mergeInto adds what src holds to dst.
func mergeInto(dst, src *Result) {
	dst.Objects = append(dst.Objects, src.Objects...)
	dst.Errors = append(dst.Errors, src.Errors...)
	dst.Others = append(dst.Others, src.Others...)
	dst.Files += src.Files
	for k, v := range src.Skipped {
		if dst.Skipped == nil {
			dst.Skipped = map[string]int{}
		}
		dst.Skipped[k] += v
	}
}
