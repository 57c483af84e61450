package cli

import (
	"encoding/json"
	"fmt"
	"strings"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"github.com/rollguard/rollguard/pkg/rules"
)

type rulesFlags struct {
	output string
}

type ruleJSON struct {
	ID       string `json:"id"`
	Name     string `json:"name"`
	Case     string `json:"case"`
	Severity string `json:"severity"`
	Summary  string `json:"summary"`
	Rollout  string `json:"rollout"`
	Why      string `json:"why"`
	Fix      string `json:"fix"`
	Example  string `json:"example"`
}

func newRulesCommand(s Streams) *cobra.Command {
	f := &rulesFlags{}
	cmd := &cobra.Command{
		Use:   "rules [ID|NAME]",
		Short: "List the rules, or explain one",
		Example: `  # The catalogue: ID, case, severity and summary of every rule
  rollguard rules

  # One rule's full documentation: why, how to fix, an example
  rollguard rules RG101
  rollguard rules readiness-missing

  # For scripts
  rollguard rules -o json`,
		Args: cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return f.run(s, args)
		},
	}
	cmd.Flags().StringVarP(&f.output, "output", "o", "text", "output format: text or json")
	return cmd
}

func (f *rulesFlags) run(s Streams, args []string) error {
	if f.output != "text" && f.output != "json" {
		return usageError("--output %q: want text or json", f.output)
	}
	reg := rules.Default()
	list := reg.All()
	if len(args) == 1 {
		r := reg.Lookup(args[0])
		if r == nil {
			return usageError("unknown rule %q: run 'rollguard rules' for the list", args[0])
		}
		list = []*rules.Rule{r}
	}
	if f.output == "json" {
		out := make([]ruleJSON, 0, len(list))
		for _, r := range list {
			out = append(out, ruleJSON{r.ID, r.Name, string(r.Case), r.Severity.String(), r.Summary, r.Rollout,
				oneLine(r.Why), oneLine(r.Fix), r.Example})
		}
		enc := json.NewEncoder(s.Out)
		enc.SetIndent("", "  ")
		enc.SetEscapeHTML(false)
		return enc.Encode(out)
	}
	if len(args) == 1 {
		_, err := fmt.Fprint(s.Out, list[0].Markdown())
		return err
	}
	tw := tabwriter.NewWriter(s.Out, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "ID\tCASE\tSEVERITY\tNAME\tSUMMARY")
	for _, r := range list {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", r.ID, r.Case.Title(), r.Severity, r.Name, r.Summary)
	}
	return tw.Flush()
}

func oneLine(s string) string { return strings.Join(strings.Fields(s), " ") }
