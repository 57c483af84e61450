//go:build !linux

package cli_test

import (
	"strings"
	"testing"

	"github.com/rollguard/rollguard/internal/cli"
)

// TestLabNetNSNeedsLinux: where there are no network namespaces, --netns
// is refused as a usage error before any scenario starts.
func TestLabNetNSNeedsLinux(t *testing.T) {
	t.Parallel()
	out, stderr, code := rollguard(t, "", "lab", "--netns")
	if code != cli.ExitUsage || !strings.Contains(stderr, "network namespaces need Linux") || out != "" {
		t.Errorf("exit %d, stdout %q, stderr %q; want %d and a message that it needs Linux", code, out, stderr, cli.ExitUsage)
	}
}
