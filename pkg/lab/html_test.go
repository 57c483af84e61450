package lab_test

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/rollguard/rollguard/pkg/lab"
)

// chromium finds Debian's headless browser; hack/test.sh installs it, so
// in CI its absence is a failure, not a skip.
func chromium(t *testing.T) string {
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	if os.Getenv("CI") != "" {
		t.Fatal("chromium is not installed (hack/deps.sh installs it)")
	}
	t.Skip("chromium is not installed; run hack/deps.sh")
	return ""
}

// TestHTMLReportRenders loads the report in headless Chromium and finds, in
// the DOM the page's script built, a lane per pod and the failure marks.
func TestHTMLReportRenders(t *testing.T) {
	t.Parallel()
	browser := chromium(t)
	s := fast()
	s.Name = "no fixes"
	r, err := lab.Run(context.Background(), s, 80)
	if err != nil {
		t.Fatal(err)
	}
	if r.Summary.Failed() == 0 {
		t.Fatal("the scenario lost nothing; the report would have no marks to find")
	}
	var html bytes.Buffer
	if err := lab.WriteHTML(&html, []*lab.Result{r}); err != nil {
		t.Fatal(err)
	}
	if bytes.Contains(html.Bytes(), []byte("http://")) && !bytes.Contains(html.Bytes(), []byte(`"http://www.w3.org/2000/svg"`)) {
		t.Error("the report refers to a network address")
	}
	dir := t.TempDir()
	page := filepath.Join(dir, "report.html")
	if err := os.WriteFile(page, html.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, browser, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
		"--disable-background-networking", "--disable-component-update", "--disable-sync", "--user-data-dir="+filepath.Join(dir, "profile"),
		"--dump-dom", "file://"+page)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	dom, err := cmd.Output()
	if err != nil {
		t.Fatalf("chromium: %v\n%s", err, stderr.String())
	}
	text := string(dom)
	if !strings.Contains(text, `data-rendered="1"`) {
		t.Fatalf("the page's script did not run to the end:\n%.2000s", text)
	}
	pods := len(r.Addrs)
	if got := strings.Count(text, `class="lane" data-pod=`); got != pods {
		t.Errorf("%d pod lanes, want %d", got, pods)
	}
	if got := strings.Count(text, `class="lane requests"`); got != len(s.Propagation) {
		t.Errorf("%d request lanes, want one per node (%d)", got, len(s.Propagation))
	}
	if got := strings.Count(text, `class="mark class-`); got != r.Summary.Failed() {
		t.Errorf("%d failure marks, want %d", got, r.Summary.Failed())
	}
	if !strings.Contains(text, "state-ready-not-listening") || !strings.Contains(text, "state-stopped") {
		t.Error("the Case 2 and Case 1 phases are not drawn")
	}
}
