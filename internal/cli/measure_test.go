package cli_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/rollguard/rollguard/internal/cli"
)

// kubeconfigTo writes a kubeconfig for a server that is never contacted:
// the errors below must come before measure reaches the cluster.
func kubeconfigTo(t *testing.T) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "kubeconfig")
	data := `apiVersion: v1
kind: Config
clusters: [{name: c, cluster: {server: "https://127.0.0.1:1"}}]
users: [{name: u, user: {token: t}}]
contexts: [{name: x, context: {cluster: c, user: u}}]
current-context: x
`
	if err := os.WriteFile(path, []byte(data), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// TestMeasureRefusesBeforeTheCluster: bad flags and a config file that
// cannot be edited are exit 2, named, before anything is created, and the
// file is left as it was.
func TestMeasureRefusesBeforeTheCluster(t *testing.T) {
	t.Parallel()
	kc := kubeconfigTo(t)
	bad := filepath.Join(t.TempDir(), "rollguard.yaml")
	const badText = "propagationBudgt: 8s\n"
	if err := os.WriteFile(bad, []byte(badText), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		args []string
		says string
	}{
		{"output", []string{"-o", "yaml"}, `-o "yaml": want text or json`},
		{"config file", []string{"--write-config", bad}, "--write-config " + bad + ": the file as it is"},
		{"samples", []string{"--image", "x", "--samples", "0"}, "--samples 0: want 1 to 1000"},
		{"one canary", []string{"--image", "x", "--canaries", "1"}, "--canaries 1: want 2 to 20"},
		{"rate", []string{"--image", "x", "--rate", "1"}, "--rate 1: want 10 to"},
		{"hold", []string{"--image", "x", "--max-propagation", "1s"}, "--max-propagation 1s: want 5s to 10m"},
		{"no image for a dev build", nil, "has no release image"},
		{"from", []string{"--image", "x", "--from", ","}, `--from ",": want all-nodes or node names`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			var out, errOut strings.Builder
			code := cli.Main(append([]string{"measure", "--kubeconfig", kc}, tc.args...), cli.Streams{In: strings.NewReader(""), Out: &out, ErrOut: &errOut})
			if code != cli.ExitUsage || !strings.Contains(errOut.String(), tc.says) || out.Len() != 0 {
				t.Errorf("exit %d, stdout %q, stderr %q: want 2 and %q", code, out.String(), errOut.String(), tc.says)
			}
		})
	}
	if data, _ := os.ReadFile(bad); string(data) != badText {
		t.Errorf("the config file changed: %q", data)
	}
}
