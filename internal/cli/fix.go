package cli

import (
	"cmp"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/pmezard/go-difflib/difflib"
	"github.com/spf13/cobra"

	"github.com/rollguard/rollguard/pkg/config"
	"github.com/rollguard/rollguard/pkg/fix"
	"github.com/rollguard/rollguard/pkg/manifest"
	"github.com/rollguard/rollguard/pkg/rules"
)

type fixFlags struct {
	ruleFlags
	write        bool
	only         []string
	k8sVersion   string
	prependSleep bool
	failOn       string
}

func newFixCommand(s Streams) *cobra.Command {
	f := &fixFlags{}
	cmd := &cobra.Command{
		Use:   "fix PATH... | -",
		Short: "Rewrite manifests so their rollouts are lossless",
		Long: `Fix applies the audit rules' remediations to your manifests as a careful engineer would
edit them by hand: comments, key order, indentation, quoting, document separators and
every unrelated field stay byte for byte as they were.

By default it prints a unified diff and changes nothing; --write edits the files in place
(each file atomically: a temporary file renamed over it). With - it reads standard input
and writes the whole fixed stream to standard output.

Standard error lists every edit made (file:line, rule, object, field and new value, with
notes on the choices made), including the follow-on edits of later rounds, and then every
finding that remains, with the reason it was not fixed.
Exit status: 0 when nothing at or above --fail-on remains, 1 when something does, 2 on a
usage or input error (a file with an input error is never changed).`,
		Example: `  # See what would change
  rollguard fix ./deploy/

  # Change it
  rollguard fix --write ./deploy/

  # Fix a rendered stream
  kustomize build overlays/prod | rollguard fix - > fixed.yaml

  # Only some rules, a measured budget, clusters as old as 1.29 (exec sleep, not native)
  rollguard fix --rules RG101,RG201 --propagation-budget 8s --k8s-version 1.29 ./deploy/`,
		RunE: func(cmd *cobra.Command, args []string) error { return f.run(cmd, s, args) },
	}
	f.ruleFlags.add(cmd)
	fs := cmd.Flags()
	fs.BoolVarP(&f.write, "write", "w", false, "edit the files in place instead of printing a diff")
	fs.StringSliceVar(&f.only, "rules", nil, "fix (and report) only these rules, by ID or name (comma-separated)")
	fs.StringVar(&f.k8sVersion, "k8s-version", "", "oldest Kubernetes version the manifests must run on (e.g. 1.29); below 1.30 a preStop delay is an exec sleep")
	fs.BoolVar(&f.prependSleep, "prepend-sleep", false, "put a sleep in front of a shell preStop hook that does other work, instead of leaving it")
	fs.StringVar(&f.failOn, "fail-on", "error", "lowest severity of a remaining finding that makes the exit status 1: error, warning or info")
	return cmd
}

func (f *fixFlags) run(cmd *cobra.Command, s Streams, args []string) error {
	if len(args) == 0 {
		return usageError("no input: give files or folders, or - to read standard input (see 'rollguard fix --help')")
	}
	stdin := false
	for _, a := range args {
		stdin = stdin || a == "-"
	}
	if stdin && (len(args) > 1 || f.write) {
		return usageError("- reads standard input and writes the fixed stream to standard output: give it alone, without --write")
	}
	fixOpts := rules.FixOptions{PrependSleep: f.prependSleep}
	if f.k8sVersion != "" {
		minor, err := config.ParseK8sVersion(f.k8sVersion)
		if err != nil {
			return usageError("--k8s-version: %v", err)
		}
		fixOpts.KubeMinor = minor
	}
	failOn, err := rules.ParseSeverity(f.failOn)
	if err != nil {
		return usageError("--fail-on: %v", err)
	}
	res, err := f.resolve(cmd)
	if err != nil {
		return err
	}
	if len(f.only) > 0 {
		res.opts.Only = map[*rules.Rule]bool{}
		for _, k := range f.only {
			r := res.reg.Lookup(strings.TrimSpace(k))
			if r == nil {
				return usageError("--rules: unknown rule %q (run 'rollguard rules' for the list)", k)
			}
			res.opts.Only[r] = true
		}
	}
	fixOpts.Settings = res.opts.Settings
	if f.k8sVersion == "" && res.cfg != nil {
		fixOpts.KubeMinor = res.cfg.KubeMinor // the file's k8sVersion; the flag wins
	}

	read := &manifest.Result{}
	var inputs []fix.Input
	manifest.Read(args, manifest.Options{Stdin: s.In, Ignore: res.cfg.IgnorePaths}, read,
		func(name string, data []byte) { inputs = append(inputs, fix.Input{Name: name, Data: data}) })
	out := fix.Run(inputs, res.reg, fix.Options{Rules: res.opts, Fix: fixOpts, Model: res.modelOpt})
	inputErrors := append(read.Errors, out.Errors...)

	for _, file := range out.Files {
		switch {
		case stdin:
			if _, err := s.Out.Write(file.After); err != nil {
				return err
			}
		case !file.Changed():
		case f.write:
			if err := writeAtomic(file.Name, file.After); err != nil {
				return &exitError{code: ExitUsage, err: err}
			}
		default:
			if err := writeDiff(s.Out, file); err != nil {
				return err
			}
		}
	}
	// Lines name the file as the reader will open it: the fixed text with
	// --write and -, the file on disk (which the diff has not changed yet)
	// otherwise. The same goes for the findings that remain.
	onDisk := !f.write && !stdin
	writeEdits(s.ErrOut, out, onDisk, res.modelOpt.Namespace)
	failing := false
	for _, r := range out.Remaining {
		fd := r.Finding
		where := fd.Source // in the fixed text, which --write and - produce
		if onDisk {
			where = r.Original
		}
		fmt.Fprintf(s.ErrOut, "not fixed: %s: %s %s (%s): %s\n    why: %s\n    fix by hand: %s\n",
			where, fd.Rule.ID, fd.Rule.Name, fd.Severity, fd.Message, r.Why, fd.Fix)
		failing = failing || fd.Severity >= failOn
	}
	for _, e := range inputErrors {
		fmt.Fprintf(s.ErrOut, "error: %v\n", e)
	}
	switch {
	case len(inputErrors) > 0:
		return &exitError{code: ExitUsage, err: fmt.Errorf("%d input error(s); files with errors were not changed", len(inputErrors))}
	case failing:
		return &exitError{code: ExitFindings}
	}
	return nil
}

// writeEdits lists every edit the fix made, file by file and top to
// bottom: where, which rules asked for it, on which object, the field and
// its new value, then the notes that explain it.
func writeEdits(w io.Writer, out *fix.Result, onDisk bool, defaultNS string) {
	order := map[string]int{}
	for i, f := range out.Files {
		order[f.Name] = i
	}
	line := func(e fix.Edit) int {
		if onDisk {
			return e.OriginalLine
		}
		return e.Line
	}
	edits := slices.Clone(out.Edits)
	slices.SortStableFunc(edits, func(a, b fix.Edit) int {
		// Two fields inserted at one place on disk are in the fixed text's order.
		return cmp.Or(cmp.Compare(order[a.File], order[b.File]), cmp.Compare(line(a), line(b)), cmp.Compare(a.Line, b.Line))
	})
	for _, e := range edits {
		names := make([]string, len(e.Rules))
		for i, r := range e.Rules {
			names[i] = r.ID + " " + r.Name
		}
		ns := cmp.Or(e.Object.Namespace, defaultNS)
		fmt.Fprintf(w, "fixed: %s:%d: %s: %s %s/%s: %s: %s\n", e.File, line(e), strings.Join(names, ", "),
			e.Object.Kind, ns, e.Object.Name, e.Path, e.ValueText())
		for _, n := range e.Notes {
			fmt.Fprintf(w, "    note: %s\n", n)
		}
	}
}

// writeDiff prints a file's change as a unified diff that git apply and
// patch -p1 accept.
func writeDiff(w io.Writer, file *fix.File) error {
	name := filepath.ToSlash(file.Name)
	err := difflib.WriteUnifiedDiff(w, difflib.UnifiedDiff{
		A: difflib.SplitLines(string(file.Before)), B: difflib.SplitLines(string(file.After)),
		FromFile: "a/" + name, ToFile: "b/" + name, Context: 3,
	})
	if err != nil {
		return fmt.Errorf("diff of %s: %w", file.Name, err)
	}
	return nil
}

// writeAtomic replaces a file's content through a temporary file in the
// same folder, so that a failure leaves either the old or the new file,
// never half of one. The file keeps its permissions; a new one is 0644.
func writeAtomic(path string, data []byte) error {
	perm := os.FileMode(0o644) // a new file
	fi, err := os.Stat(path)
	switch {
	case err == nil:
		perm = fi.Mode().Perm()
	case !errors.Is(err, fs.ErrNotExist):
		return fmt.Errorf("writing %s: %w", path, err)
	}
	tmp, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".rollguard-*")
	if err != nil {
		return fmt.Errorf("writing %s: %w", path, err)
	}
	done := false
	defer func() {
		if !done {
			os.Remove(tmp.Name())
		}
	}()
	if _, err := tmp.Write(data); err != nil {
		tmp.Close()
		return fmt.Errorf("writing %s: %w", path, err)
	}
	if err := tmp.Chmod(perm); err != nil {
		tmp.Close()
		return fmt.Errorf("writing %s: %w", path, err)
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return fmt.Errorf("writing %s: %w", path, err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("writing %s: %w", path, err)
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return fmt.Errorf("writing %s: %w", path, err)
	}
	done = true
	return nil
}
