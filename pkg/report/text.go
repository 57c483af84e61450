package report

import (
	"bufio"
	"fmt"
	"io"
	"strings"

	"github.com/rollguard/rollguard/pkg/rules"
)

const (
	ansiReset  = "\x1b[0m"
	ansiBold   = "\x1b[1m"
	ansiDim    = "\x1b[2m"
	ansiRed    = "\x1b[31m"
	ansiYellow = "\x1b[33m"
	ansiCyan   = "\x1b[36m"
)

// Text writes findings grouped by object, each with its location, rule,
// case, what goes wrong, what happens during a rollout, and the fix. A run
// with no findings writes nothing.
func Text(out io.Writer, in *Input, color bool) error {
	w := bufio.NewWriter(out)
	paint := func(code, s string) string {
		if !color {
			return s
		}
		return code + s + ansiReset
	}
	sevColor := map[rules.Severity]string{rules.Error: ansiRed, rules.Warning: ansiYellow, rules.Info: ansiCyan}
	ns := in.defaultNS()
	grouped := groups(in.Report.Findings)
	for i, g := range grouped {
		if i > 0 {
			fmt.Fprintln(w)
		}
		head := objectName(g.obj, ns)
		if src := g.obj.Source.String(); src != "" {
			head += "  " + paint(ansiDim, src)
		}
		fmt.Fprintln(w, paint(ansiBold, head))
		for _, f := range g.findings {
			loc := ""
			if f.Source.Line > 0 && f.Source.Line != g.obj.Source.Line {
				loc = fmt.Sprintf(" at line %d", f.Source.Line)
			}
			fmt.Fprintf(w, "  %s %s %s (%s)%s\n", paint(sevColor[f.Severity], fmt.Sprintf("%-7s", f.Severity)),
				paint(ansiBold, f.Rule.ID), f.Rule.Name, f.Rule.Case.Title(), loc)
			fmt.Fprintf(w, "          %s\n", f.Message)
			fmt.Fprintf(w, "          %s %s\n", paint(ansiDim, "rollout:"), f.Rule.Rollout)
			fmt.Fprintf(w, "          %s %s\n", paint(ansiDim, "fix:"), f.Fix)
		}
	}
	if len(in.Report.Findings) > 0 {
		c := in.counts()
		var parts []string
		for _, s := range []rules.Severity{rules.Error, rules.Warning, rules.Info} {
			if c[s] > 0 {
				parts = append(parts, plural(c[s], s.String()))
			}
		}
		affected := len(grouped)
		tail := ""
		if n := len(in.Report.Suppressed); n > 0 {
			tail = fmt.Sprintf(", %d suppressed", n)
		}
		fmt.Fprintf(w, "\n%s in %s (%d read%s). Explain a rule: rollguard rules %s\n",
			strings.Join(parts, ", "), plural(affected, "object"), len(in.Load.Objects)+skipped(in), tail, in.Report.Findings[0].Rule.ID)
	}
	for _, warn := range in.Report.Warnings {
		fmt.Fprintf(w, "warning: %s\n", warn)
	}
	return w.Flush()
}

func plural(n int, word string) string {
	if n == 1 {
		return fmt.Sprintf("1 %s", word)
	}
	switch word {
	case "info":
		return fmt.Sprintf("%d info", n)
	default:
		return fmt.Sprintf("%d %ss", n, word)
	}
}

func skipped(in *Input) int {
	n := 0
	for _, c := range in.Load.Skipped {
		n += c
	}
	return n
}
