package config

import (
	"strings"
	"testing"
	"time"

	"github.com/rollguard/rollguard/pkg/rules"
)

func TestSetPropagationBudget(t *testing.T) {
	t.Parallel()
	reg := rules.Default()
	for _, tc := range []struct {
		name, in, want string
	}{
		{"new file", "", "apiVersion: rollguard.io/v1alpha1\nkind: Config\npropagationBudget: 3s  # measured\n"},
		{"replaced in place, comments and order kept",
			"# team settings\napiVersion: rollguard.io/v1alpha1\nkind: Config\npropagationBudget: 8s   # a guess\nfailOn: warning\n",
			"# team settings\napiVersion: rollguard.io/v1alpha1\nkind: Config\npropagationBudget: 3s   # a guess\nfailOn: warning\n"},
		{"double-quoted", "propagationBudget: \"8s\"\nfailOn: error\n", "propagationBudget: 3s\nfailOn: error\n"},
		{"single-quoted", "propagationBudget: '1m30s' # x\n", "propagationBudget: 3s # x\n"},
		{"CRLF kept", "failOn: warning\r\npropagationBudget: 8s\r\ndrainAllowance: 10s\r\n", "failOn: warning\r\npropagationBudget: 3s\r\ndrainAllowance: 10s\r\n"},
		{"added at the end", "failOn: warning\nseverity:\n  RG305: warning\n", "failOn: warning\nseverity:\n  RG305: warning\npropagationBudget: 3s  # measured\n"},
		{"added after a last line without newline", "failOn: warning", "failOn: warning\npropagationBudget: 3s  # measured\n"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			got, err := SetPropagationBudget([]byte(tc.in), 3*time.Second, "measured", reg)
			if err != nil {
				t.Fatal(err)
			}
			if string(got) != tc.want {
				t.Errorf("got\n%q\nwant\n%q", got, tc.want)
			}
		})
	}
	for _, tc := range []struct {
		name, in, says string
	}{
		{"unknown key", "propagationBudgt: 8s\n", "the file as it is"},
		{"flow mapping", "{failOn: warning}\n", "flow mapping"},
		{"not YAML", "failOn: [\n", "the file as it is"},
		{"block scalar", "propagationBudget: >-\n  8s\n", "not a one-line value"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			_, err := SetPropagationBudget([]byte(tc.in), 3*time.Second, "", reg)
			if err == nil || !strings.Contains(err.Error(), tc.says) {
				t.Errorf("err = %v, want one saying %q", err, tc.says)
			}
		})
	}
	if _, err := SetPropagationBudget(nil, 0, "", reg); err == nil {
		t.Error("a zero budget was accepted")
	}
}
